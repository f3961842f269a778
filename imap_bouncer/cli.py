"""The `imap-bouncer` command: the one place that wires the parts together."""

from __future__ import annotations

import json
import sys

import click

from . import __version__
from .analysis import Options, analyze
from .report import Report
from .sources import SourceError, iter_messages


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imap-bouncer")
def main() -> None:
    """Read a bounce mailbox and tell, per recipient, what happened and why."""


@main.command("analyze")
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message per line.")
@click.option("--explain", is_flag=True, help="Add the evidence behind each decision.")
@click.option("--verp", "verp_patterns", multiple=True, metavar="PATTERN",
              help="VERP pattern such as 'bounces+{local}={domain}@lists.example.org'.")
def analyze_command(paths: tuple[str, ...], as_json: bool, explain: bool,
                    verp_patterns: tuple[str, ...]) -> None:
    """Analyze message files, Maildirs, directories, mbox files or - (standard input)."""
    try:
        options = Options(verp_patterns=verp_patterns)
        for pattern in verp_patterns:
            from .analysis import verp_regex
            verp_regex(pattern)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    failed = False
    out = sys.stdout
    for path in paths:
        try:
            for source, raw in iter_messages(path):
                report = analyze(raw, options)
                if as_json:
                    record = {"source": source, **report.to_dict(explain)}
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                else:
                    out.write(format_report(source, report, explain))
        except SourceError as err:
            click.echo(f"imap-bouncer: error: {err}", err=True)
            failed = True
    out.flush()
    if failed:
        sys.exit(1)


def format_report(source: str, report: Report, explain: bool) -> str:
    """A readable block per message: the verdict, then a row per recipient."""
    lines = [f"{source}: {report.kind}" + (f" ({report.analyzer})" if report.analyzer else "")]
    if report.feedback_type:
        lines.append(f"  feedback-type: {report.feedback_type}  user-agent: {report.user_agent}")
    if explain and report.evidence:
        lines.append(f"  why: {report.evidence}")
    for r in report.recipients:
        hard = "HARD" if r.permanent else "soft"
        code = " ".join(x for x in (r.status, r.smtp_code) if x)
        lines.append(f"  {r.address or '(unknown)':<40} {r.action:<9} {code:<12} "
                     f"{r.reason:<16} {hard}")
        if explain:
            if r.diagnostic:
                lines.append(f"      said: {r.diagnostic[:200]}")
            lines.append(f"      why:  {r.evidence}")
    for error in report.errors:
        lines.append(f"  error: {error}")
    return "\n".join(lines) + "\n"
