"""The `imap-bouncer` command: the one place that wires the parts together.

Exit codes: 0 done; 1 the work could not be done (connection, login, database, unreadable
input); 2 bad settings or bad arguments, before anything connects.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

import click

from . import __version__
from .analysis import Options, analyze, verp_regex
from .ledger import Ledger, LedgerError
from .mailbox import MailboxError
from .models import schema_version
from .report import Report
from .service import AnalysisPool, MailboxService, Outcome, PassOptions, PassSummary, Runner
from .settings import ImapSettings, Settings, SettingsError, load_settings
from .sources import SourceError, iter_messages

log = logging.getLogger("imap_bouncer")

EXIT_FAILED = 1
EXIT_SETTINGS = 2


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


# -- the service commands -----------------------------------------------------------------------

config_option = click.option(
    "-c", "--config", "config_path", metavar="PATH", type=click.Path(dir_okay=False),
    help="Settings file (default: $IMAP_BOUNCER_CONFIG, ./settings.toml, "
         "/etc/imap-bouncer/settings.toml).")
mailbox_option = click.option(
    "--mailbox", "mailbox_names", multiple=True, metavar="NAME",
    help="Only this mailbox (a [[mailboxes]] name); repeatable.")


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"imap-bouncer: error: {message}", err=True)
    sys.exit(code)


def load(config_path: str | None) -> Settings:
    """Settings, with logging set up from them; bad settings end the command with exit 2."""
    try:
        settings = load_settings(config_path)
    except SettingsError as err:
        fail(str(err), EXIT_SETTINGS)
    logging.basicConfig(
        level=settings.logging.level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


def chosen_mailboxes(settings: Settings, names: tuple[str, ...]) -> tuple[ImapSettings, ...]:
    try:
        mailboxes = settings.imap_mailboxes()
    except SettingsError as err:
        fail(str(err), EXIT_SETTINGS)
    if names:
        unknown = sorted(set(names) - {m.name for m in mailboxes})
        if unknown:
            fail(f"--mailbox: no mailbox named {', '.join(unknown)} "
                 f"(configured: {', '.join(m.name for m in mailboxes)})", EXIT_SETTINGS)
        mailboxes = tuple(m for m in mailboxes if m.name in names)
    return mailboxes


def open_ledger(settings: Settings, *, upgrade: bool = True) -> Ledger:
    try:
        return Ledger.open(settings.database.url, store_raw=settings.database.store_raw,
                           upgrade=upgrade)
    except LedgerError as err:
        fail(f"database {settings.database.redacted_url}: {err}")


def services(settings: Settings, mailboxes, ledger: Ledger | None,
             pool: AnalysisPool | None = None) -> list[MailboxService]:
    """One service per mailbox, sharing the ledger and the analysis worker processes."""
    options = Options(verp_patterns=settings.analysis.verp_patterns)
    return [MailboxService(mailbox, ledger, options, analysis_pool=pool) for mailbox in mailboxes]


def analysis_pool(settings: Settings) -> AnalysisPool:
    return AnalysisPool(settings.analysis.workers,
                        Options(verp_patterns=settings.analysis.verp_patterns))


@main.command("once")
@config_option
@mailbox_option
@click.option("--all", "include_seen", is_flag=True,
              help="Also take messages already marked read (backfill).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Only messages that arrived on or after this day.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N",
              help="At most N messages per mailbox.")
@click.option("--dry-run", is_flag=True,
              help="Analyze and show what would happen: no database writes, no moves.")
def once_command(config_path: str | None, mailbox_names: tuple[str, ...], include_seen: bool,
                 since: datetime | None, limit: int | None, dry_run: bool) -> None:
    """Process what is in the mailbox now, then exit."""
    settings = load(config_path)
    mailboxes = chosen_mailboxes(settings, mailbox_names)
    ledger = None if dry_run else open_ledger(settings)
    options = PassOptions(include_seen=include_seen, since=since.date() if since else None,
                          limit=limit, dry_run=dry_run)
    failed = False
    pool = analysis_pool(settings)
    try:
        for service in services(settings, mailboxes, ledger, pool):
            try:
                summary = run_once(service, options)
            except (MailboxError, LedgerError) as err:
                click.echo(f"imap-bouncer: error: {service.name}: {err}", err=True)
                failed = True
                continue
            click.echo(format_summary(summary, dry_run))
    finally:
        pool.close()
        if ledger is not None:
            ledger.close()
    sys.exit(EXIT_FAILED if failed else 0)


def run_once(service: MailboxService, options: PassOptions) -> PassSummary:
    """One pass, with a progress bar on a terminal and a line per message in a dry run."""
    show: Callable[[Outcome], None] | None = None
    if options.dry_run:
        def show(outcome: Outcome) -> None:
            click.echo(format_outcome(outcome))
    with service.connected(create_folders=not options.dry_run) as mailbox, \
            progress_bar(f"{service.name}") as progress:
        return service.run_pass(mailbox, options, progress=progress, show=show)


@contextmanager
def progress_bar(label: str):
    """A progress callback: a bar on a terminal, nothing otherwise (logs say enough)."""
    if not sys.stderr.isatty():
        yield None
        return
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def format_outcome(outcome: Outcome) -> str:
    what = "already recorded" if outcome.only_moved else (outcome.kind or "not analyzed")
    line = f"  UID {outcome.uid:<8} {what:<10} -> {outcome.folder:<10} {outcome.message_id}"
    if outcome.report is not None:
        for r in outcome.report.recipients:
            line += (f"\n      {r.address or '(unknown)'} {r.action} {r.status} {r.reason}"
                     f"{' HARD' if r.permanent else ''}")
    for error in outcome.errors:
        line += f"\n      error: {error}"
    return line


def format_summary(summary: PassSummary, dry_run: bool) -> str:
    verb = "would file" if dry_run else "filed"
    lines = [f"{summary.mailbox}: {summary.found} message(s) found, {verb} "
             f"{summary.processed} in {summary.seconds:.1f} s"]
    if summary.by_kind:
        lines.append("  by kind:   " + ", ".join(f"{k} {n}" for k, n in
                                                 sorted(summary.by_kind.items())))
    if summary.by_folder:
        lines.append("  by folder: " + ", ".join(f"{k} {n}" for k, n in
                                                 sorted(summary.by_folder.items())))
    if summary.only_moved:
        lines.append(f"  {summary.only_moved} already recorded by an earlier pass, only moved")
    if summary.errors:
        lines.append(f"  {len(summary.errors)} message error(s):")
        lines.extend(f"    {error}" for error in summary.errors[:50])
    return "\n".join(lines)


@main.command("run")
@config_option
@mailbox_option
def run_command(config_path: str | None, mailbox_names: tuple[str, ...]) -> None:
    """Run until stopped: IDLE (or poll) and process new mail as it arrives."""
    settings = load(config_path)
    mailboxes = chosen_mailboxes(settings, mailbox_names)
    ledger = open_ledger(settings)
    pool = analysis_pool(settings)
    runner = Runner(services(settings, mailboxes, ledger, pool))

    def stop(signum: int, _frame: Any) -> None:
        log.info("received %s: finishing the batch in hand, then stopping",
                 signal.Signals(signum).name)
        runner.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("imap-bouncer %s starting: %d mailbox(es), database %s", __version__,
             len(mailboxes), settings.database.redacted_url)
    runner.start()
    runner.wait()
    pool.close()
    ledger.close()
    log.info("imap-bouncer stopped")


@main.command("check")
@config_option
@mailbox_option
@click.option("--dry-run", is_flag=True, help="Only say which folders are missing.")
def check_command(config_path: str | None, mailbox_names: tuple[str, ...],
                  dry_run: bool) -> None:
    """Check settings, IMAP login, folders and the database."""
    settings = load(config_path)
    click.echo(f"settings: ok ({settings.config_file or 'defaults and environment'})")
    mailboxes = chosen_mailboxes(settings, mailbox_names)
    failed = False
    for service in services(settings, mailboxes, None):
        s = service.settings
        try:
            with service.connected(create_folders=False) as mailbox:
                caps = mailbox.capabilities
                click.echo(f"{s.name}: logged in to {s.host}:{mailbox.port} ({s.security}) "
                           f"as {s.username}")
                click.echo(f"  capabilities: MOVE {_yes(caps.move)}, UIDPLUS "
                           f"{_yes(caps.uidplus)}, IDLE {_yes(caps.idle)}")
                folders = [s.source_folder, *service.target_folders]
                missing = mailbox.ensure_folders(service.target_folders, dry_run=True)
                for name in folders:
                    full = mailbox.folder(name)
                    state = "missing" if full in missing else "ok"
                    click.echo(f"  folder {full}: {state}")
                if missing and not dry_run:
                    mailbox.ensure_folders(service.target_folders)
                    click.echo(f"  created {', '.join(missing)}")
        except MailboxError as err:
            click.echo(f"{s.name}: error: {err}", err=True)
            failed = True
    try:
        ledger = Ledger.open(settings.database.url, upgrade=False)
        ledger.close()
        click.echo(f"database {settings.database.redacted_url}: ok")
    except LedgerError as err:
        click.echo(f"database {settings.database.redacted_url}: error: {err}", err=True)
        failed = True
    sys.exit(EXIT_FAILED if failed else 0)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@main.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
@config_option
def db_upgrade_command(config_path: str | None) -> None:
    """Create or upgrade the database schema (also done at every start)."""
    settings = load(config_path)
    ledger = open_ledger(settings, upgrade=True)
    click.echo(f"database {settings.database.redacted_url}: schema version "
               f"{schema_version(ledger.db)}")
    ledger.close()

