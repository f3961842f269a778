"""The `imap-bouncer` command: the one place that wires the parts together.

Exit codes: 0 done; 1 the work could not be done (connection, login, database, unreadable
input); 2 bad settings or bad arguments, before anything connects.

A process runs one command, and the MTA starts one per message (`ingest -`, `analyze -`): so
each command imports the parts it needs itself, and `--version` or `analyze` never pay for
the settings, the database, the IMAP client or the scheduler (tests/test_startup.py holds
that, bench/startup.py times it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from .policy import State
from .report import NO_RECIPIENT, shown_address
from .terminal import json_safe, safe, shown

if TYPE_CHECKING:
    import logging

    from .analysis import Options
    from .handlers.outbox import OutboxJob
    from .ledger import Explanation, Ledger
    from .report import Report
    from .service import (
        AnalysisPool,
        MailboxService,
        Outcome,
        PassOptions,
        PassSummary,
        Reanalysis,
    )
    from .settings import ImapSettings, Settings
    from .sources import Input


def log() -> logging.Logger:
    """The commands' logger: logging is loaded with the settings, not at every start."""
    import logging

    return logging.getLogger("imap_bouncer")


EXIT_FAILED = 1
EXIT_SETTINGS = 2


def echo(text: object = "", *, err: bool = False, nl: bool = True) -> None:
    """`click.echo` for what people read: what came from mail may hold any character, and a
    terminal acts on controls, so every one but the line feed is escaped (terminal.safe)."""
    click.echo(safe(str(text)), err=err, nl=nl)


def echo_json(record: Any) -> None:
    """One JSON line: JSON escapes C0 controls itself; json_safe escapes C1 and the rest."""
    click.echo(json_safe(json.dumps(record, ensure_ascii=False)))


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
    from functools import partial

    from .analysis import Options, prepare_for_many, verp_regex
    from .fanout import ordered_map
    from .sources import SourceError, iter_inputs

    try:
        options = Options(verp_patterns=verp_patterns)
        for pattern in verp_patterns:
            verp_regex(pattern)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    failed = False

    def inputs():
        nonlocal failed
        for path in paths:
            try:
                yield from iter_inputs(path)
            except SourceError as err:
                echo(f"imap-bouncer: error: {err}", err=True)
                failed = True

    out = sys.stdout
    render = partial(analyzed, options=options, as_json=as_json, explain=explain)
    for text, error in ordered_map(render, inputs(), prepare=prepare_for_many):
        if error:
            out.flush()
            echo(f"imap-bouncer: error: {error}", err=True)
            failed = True
        else:
            out.write(text)
    out.flush()
    if failed:
        sys.exit(1)


def analyzed(item: Input, *, options: Options, as_json: bool, explain: bool) -> tuple[str, str]:
    """One input read, analyzed and written out: (text, "") or ("", why it cannot be read).
    Runs in a worker process for many inputs."""
    from .analysis import analyze, why_unclaimed
    from .sources import SourceError

    try:
        raw = item.read()
    except SourceError as err:
        return "", str(err)
    report = analyze(raw, options)
    if as_json:
        record = {"source": item.source, **report.to_dict(explain)}
        if explain and report.kind == "unknown":
            record["unclaimed"] = why_unclaimed(raw)
        return json_safe(json.dumps(record, ensure_ascii=False)) + "\n", ""
    unclaimed = why_unclaimed(raw) if explain and report.kind == "unknown" else ()
    return safe(format_report(item.source, report, explain, unclaimed)), ""


# What a recipient's row says first: is the address to be suppressed, or was it the message?
ADDRESS_BAD = "address bad"
MESSAGE_REFUSED = "message refused"
VERDICT_WIDTH = len(MESSAGE_REFUSED)
REASON_WIDTH = 15  # the longest reason of the vocabulary (policyviolation, notcompliantrfc)
CODE_WIDTH = 11  # "5.7.606 550"


def verdict(kind: str, action: str, permanent: bool) -> str:
    """The one word a person looks for: "address bad" (suppress it), "message refused" (the
    address is fine; the message, its sender or the rate was refused), "delayed", or the
    kind of a report that is no failure ("complaint", "auto-reply", "delivered")."""
    if kind == "complaint":
        return "complaint"
    if kind == "autoreply":
        return "auto-reply"
    if action == "failed":
        return ADDRESS_BAD if permanent else MESSAGE_REFUSED
    return action


def format_report(source: str, report: Report, explain: bool,
                  unclaimed: Sequence[tuple[str, str]] = ()) -> str:
    """A readable block per message: what it is, then a row per recipient: the verdict, the
    reason and the codes in fixed columns, the address last (long ones wrap alone)."""
    head = f"{shown(source)}: {report.kind}" + (f" ({report.analyzer})" if report.analyzer
                                                  else "")
    if report.feedback_type:
        head += f", feedback-type {shown(report.feedback_type)}" + (
            f", user-agent {shown(report.user_agent)}" if report.user_agent else "")
    if report.autoreply_type:
        head += f", autoreply-type {report.autoreply_type}"
    lines = [head]
    if explain and report.evidence:
        lines.append(f"  why: {shown(report.evidence)}")
    lines.extend(f"    {name}: {shown(note)}" for name, note in unclaimed)
    for r in report.recipients:
        code = " ".join(x for x in (r.status, r.smtp_code) if x) or "-"
        lines.append(f"  {verdict(report.kind, r.action, r.permanent):<{VERDICT_WIDTH}}  "
                     f"{r.reason:<{REASON_WIDTH}}  {code:<{CODE_WIDTH}}  "
                     f"{shown(shown_address(r.address))}")
        if explain:
            if r.diagnostic:
                lines.append(f"      said: {shown(r.diagnostic[:200])}")
            lines.append(f"      why:  {shown(r.evidence)}")
    if not report.recipients and report.kind in ("bounce", "delay"):
        lines.append(f"  {NO_RECIPIENT}")
    for error in report.errors:
        lines.append(f"  error: {shown(error)}")
    if report.partial:
        lines.append("  partial: recipients may be missing (see the errors); "
                     "the service files it in Error")
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
    echo(f"imap-bouncer: error: {message}", err=True)
    sys.exit(code)


def load(config_path: str | None, bad_settings: int = EXIT_SETTINGS) -> Settings:
    """Settings, with logging set up from them and the database layer loaded for their URL
    (a SQLite one without PostgreSQL's driver); bad settings end the command with exit 2 (or
    `bad_settings`)."""
    import logging

    from . import drivers
    from .settings import SettingsError, load_settings

    try:
        settings = load_settings(config_path)
    except SettingsError as err:
        fail(str(err), bad_settings)
    logging.basicConfig(
        level=settings.logging.level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    drivers.load_for(settings.database.url)
    return settings


def chosen_mailboxes(settings: Settings, names: tuple[str, ...]) -> tuple[ImapSettings, ...]:
    from .settings import SettingsError

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
    from .ledger import Ledger, LedgerError
    from .policy import Policy

    try:
        return Ledger.open(settings.database.url, store_raw=settings.database.store_raw,
                           upgrade=upgrade, policy=Policy(**settings.policy.model_dump()),
                           notifications=settings)
    except LedgerError as err:
        fail(f"database {settings.database.redacted_url}: {err}")


def services(settings: Settings, mailboxes, ledger: Ledger | None,
             pool: AnalysisPool | None = None) -> list[MailboxService]:
    """One service per mailbox, sharing the ledger and the analysis worker processes."""
    from .analysis import Options
    from .service import MailboxService

    options = Options(verp_patterns=settings.verp_patterns)
    return [MailboxService(mailbox, ledger, options, analysis_pool=pool) for mailbox in mailboxes]


def analysis_pool(settings: Settings) -> AnalysisPool:
    from .analysis import Options
    from .service import AnalysisPool

    return AnalysisPool(settings.analysis.workers,
                        Options(verp_patterns=settings.verp_patterns),
                        time_budget=settings.analysis.time_budget)


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
    from .ledger import LedgerError
    from .mailbox import MailboxError
    from .service import PassOptions
    from .settings import SettingsError

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
            except (MailboxError, LedgerError, SettingsError) as err:
                echo(f"imap-bouncer: error: {service.name}: {err}", err=True)
                failed = True
                continue
            echo(format_summary(summary, dry_run))
        if ledger is not None:
            expire_at_exit(ledger)
            deliver_at_exit(settings, ledger)
    finally:
        pool.close()
        if ledger is not None:
            ledger.close()
    sys.exit(EXIT_FAILED if failed else 0)


def expire_at_exit(ledger: Ledger) -> None:
    """Write the state changes time alone has made (best effort, like the notifications)."""
    from .ledger import LedgerError

    try:
        ledger.expire_due()
    except LedgerError as err:
        log().warning("address states: expiry not written now (%s)", err)


def deliver_at_exit(settings: Settings, ledger: Ledger) -> None:
    """Deliver the notifications due now, once: best effort, never failing the command (what
    is not delivered stays in the outbox for the next run)."""
    from . import handlers
    from .handlers.outbox import deliver_due

    senders = handlers.senders(settings)
    if not senders:
        return
    try:
        report = deliver_due(ledger, senders, settings=settings.outbox)
    except Exception as err:  # a pass that worked is not failed by its notifications
        log().warning("outbox: not delivered now (%s); they stay in the outbox", err)
        return
    if report.attempted:
        echo(f"notifications: {report}")


def outbox_job(settings: Settings, ledger: Ledger) -> OutboxJob | None:
    """The scheduled delivery job, when the settings configure anything to deliver with."""
    from . import handlers
    from .handlers.outbox import OutboxJob

    senders = handlers.senders(settings)
    return OutboxJob(ledger, senders, settings.outbox) if senders else None


def run_once(service: MailboxService, options: PassOptions) -> PassSummary:
    """One pass, with a progress bar on a terminal and a line per message in a dry run."""
    show: Callable[[Outcome], None] | None = None
    if options.dry_run:
        def show(outcome: Outcome) -> None:
            echo(format_outcome(outcome))
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
    line = (f"  UID {outcome.uid:<8} {what:<10} -> {outcome.folder:<10} "
            f"{shown(outcome.message_id)}")
    if outcome.report is not None:
        for r in outcome.report.recipients:
            line += (f"\n      {shown(shown_address(r.address))} {r.action} {r.status} "
                     f"{r.reason}{' HARD' if r.permanent else ''}")
    for error in outcome.errors:
        line += f"\n      error: {shown(error)}"
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
    if summary.reviewed:
        lines.append("  reviewed:  " + ", ".join(f"{k} {n}" for k, n in
                                                 sorted(summary.reviewed.items())))
    if summary.errors:
        lines.append(f"  {len(summary.errors)} message error(s):")
        lines.extend(f"    {shown(error)}" for error in summary.errors[:50])
    return "\n".join(lines)


@main.command("run")
@config_option
@mailbox_option
def run_command(config_path: str | None, mailbox_names: tuple[str, ...]) -> None:
    """Run until stopped: IDLE (or poll) and process new mail as it arrives."""
    import signal

    from .service import Runner

    settings = load(config_path)
    mailboxes = chosen_mailboxes(settings, mailbox_names)
    ledger = open_ledger(settings)
    pool = analysis_pool(settings)
    runner = Runner(services(settings, mailboxes, ledger, pool),
                    outbox=outbox_job(settings, ledger), upkeep=ledger.expire_due)

    def stop(signum: int, _frame: Any) -> None:
        log().info("received %s: finishing the batch in hand, then stopping",
                 signal.Signals(signum).name)
        runner.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log().info("imap-bouncer %s starting: %d mailbox(es), database %s", __version__,
             len(mailboxes), settings.database.redacted_url)
    runner.start()
    runner.wait()
    pool.close()
    ledger.close()
    log().info("imap-bouncer stopped")


@main.command("check")
@config_option
@mailbox_option
@click.option("--dry-run", is_flag=True, help="Only say which folders are missing.")
def check_command(config_path: str | None, mailbox_names: tuple[str, ...],
                  dry_run: bool) -> None:
    """Check settings, IMAP login, folders and the database."""
    from .mailbox import CapabilityError, MailboxError
    from .settings import SettingsError

    settings = load(config_path)
    echo(f"settings: ok ({settings.config_file or 'defaults and environment'})")
    echo(f"bounces: {signed_bounces(settings)}")
    mailboxes = chosen_mailboxes(settings, mailbox_names)
    failed = False
    for service in services(settings, mailboxes, None):
        s = service.settings
        try:
            with service.connected(create_folders=False) as mailbox:
                caps = mailbox.capabilities
                echo(f"{s.name}: logged in to {s.host}:{mailbox.port} ({s.security}) "
                     f"as {s.username}")
                echo(f"  capabilities: MOVE {_yes(caps.move)}, UIDPLUS "
                     f"{_yes(caps.uidplus)}, IDLE {_yes(caps.idle)}")
                try:
                    echo(f"  moves with: {mailbox.move_method()}")
                except CapabilityError as err:
                    echo(f"{s.name}: error: {err}", err=True)
                    failed = True
                if mailbox.folder_exists(s.source_folder):
                    echo(f"  folder {mailbox.folder(s.source_folder)}: ok")
                else:  # never created here: a typo would otherwise start an empty folder
                    echo(f"{s.name}: error: the source folder "
                         f"{mailbox.folder(s.source_folder)} does not exist", err=True)
                    failed = True
                missing = mailbox.ensure_folders(service.target_folders, dry_run=True)
                for name in service.target_folders:
                    full = mailbox.folder(name)
                    state = "missing" if full in missing else "ok"
                    echo(f"  folder {full}: {state}")
                if missing and not dry_run:
                    mailbox.ensure_folders(service.target_folders)
                    echo(f"  created {', '.join(missing)}")
        except (MailboxError, SettingsError) as err:
            echo(f"{s.name}: error: {err}", err=True)
            failed = True
    if not check_database(settings):
        failed = True
    sys.exit(EXIT_FAILED if failed else 0)


def signed_bounces(settings: Settings) -> str:
    """What a forged bounce can do with these settings, in one line (docs/security.md)."""
    verp = settings.verp
    if verp.require_signed:
        return (f"require_signed: only signed bounces change send states (signatures count "
                f"{verp.max_age_days} days)")
    if verp.key:
        return ("signatures checked and shown, but require_signed = false: an unsigned, "
                "forged bounce still changes send states (docs/security.md)")
    return ("no [verp] secret: anyone who can mail the bounce address can suppress any "
            "address (docs/security.md)")


def check_database(settings: Settings) -> bool:
    """Reachable, with a schema `once` and `run` can use: a new, empty database is fine (they
    create the schema at start), one written by a newer imap-bouncer is not."""
    import peewee

    from . import models

    where = f"database {settings.database.redacted_url}"
    try:
        db = models.connect(settings.database.url)
        try:
            version = models.schema_version(db)
        finally:
            db.close()
    except (models.SchemaError, peewee.PeeweeException) as err:
        lines = str(err).strip().splitlines()  # the driver's words never hold the password
        echo(f"{where}: error: {type(err).__name__}: {lines[0] if lines else ''}",
             err=True)
        return False
    if version > models.LATEST_VERSION:
        echo(f"{where}: error: schema version {version} is newer than this "
             f"imap-bouncer knows ({models.LATEST_VERSION}): upgrade imap-bouncer",
             err=True)
        return False
    if version < models.LATEST_VERSION:
        echo(f"{where}: ok (schema version {version}; `once`, `run` and `db upgrade` "
             f"bring it to {models.LATEST_VERSION})")
    else:
        echo(f"{where}: ok (schema version {version})")
    return True


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# -- messages from elsewhere: piped in by the MTA, or analyzed again ----------------------------


@main.command("prepare")
@click.option("--quiet", is_flag=True, help="Print nothing when it worked.")
def prepare_command(quiet: bool) -> None:
    """Compile the analyzers' patterns once, for fast start-up (run it after installing).

    Each `analyze` or `ingest -` process then reads the compiled patterns from a store beside
    the package (else in the user's cache directory) instead of compiling them again.
    """
    from .analysis import compile_everything, pattern_store

    count, added, path = compile_everything()
    if added and path is None:
        places = ", ".join(map(str, pattern_store.locations()))
        fail(f"{count} patterns compiled, but none of these could be written: {places}")
    if not quiet:
        where = f"{added} new, written to {path}" if path else "all already stored"
        echo(f"pattern store: {count} patterns ({where})")


@main.command("ingest")
@config_option
@click.argument("source", metavar="FILE|-", default="-")
def ingest_command(config_path: str | None, source: str) -> None:
    """Record one message piped in by the MTA (- : standard input), as if from a mailbox.

    Exit status (sysexits, for the MTA): 0 recorded, whatever the message is (an unrecognised
    one too; a retry of a message already recorded records nothing again); 75 not recorded
    now (database unavailable, or anything else that may pass): the MTA keeps the message and
    tries again; 66 no message (empty input); 78 bad settings.
    """
    from . import ingest
    from .analysis import Options

    settings = load(config_path, bad_settings=ingest.EX_CONFIG)
    try:
        stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as err:
        fail(f"cannot open {source}: {err.strerror or err}", ingest.EX_NOINPUT)
    try:
        with stream:
            piped = ingest.read_message(stream, settings.ingest.max_message_size)
    except ingest.EmptyInput as err:
        fail(str(err), ingest.EX_NOINPUT)
    except OSError as err:
        fail(f"cannot read the message: {err.strerror or err}", ingest.EX_TEMPFAIL)
    from .ledger import Ledger, LedgerError
    from .policy import Policy

    options = Options(verp_patterns=settings.verp_patterns)
    try:
        ledger = Ledger.open(settings.database.url, store_raw=settings.database.store_raw,
                             policy=Policy(**settings.policy.model_dump()),
                             notifications=settings)
        try:
            done = ingest.ingest(piped, ledger, options, settings.ingest.mailbox)
        finally:
            ledger.close()
    except LedgerError as err:
        fail(f"database {settings.database.redacted_url}: {err} (not recorded: try again "
             "later)", ingest.EX_TEMPFAIL)
    except Exception:  # a bug must not lose the message: the MTA keeps it and retries
        log().exception("ingest: unexpected error (not recorded: try again later)")
        sys.exit(ingest.EX_TEMPFAIL)
    what = (f"already recorded (message {done.recorded.id})" if not done.recorded.created
            else f"recorded {done.report.kind}, {len(done.report.recipients)} recipient(s) "
                 f"(message {done.recorded.id})")
    echo(f"{settings.ingest.mailbox}: {done.report.message_id or '(no Message-ID)'}: "
         f"{what}")


@main.command("reprocess")
@config_option
@mailbox_option
@click.option("--folder", metavar="FOLDER",
              help="The folder to analyze again (default: the unknown folder, e.g. Unknown).")
@click.option("--dry-run", is_flag=True,
              help="Show what would change: no database writes, no moves.")
def reprocess_command(config_path: str | None, mailbox_names: tuple[str, ...],
                      folder: str | None, dry_run: bool) -> None:
    """Analyze a folder's messages again; record and file in Processed those recognised now.

    Messages still not recognised stay where they are. A message's bytes recorded before as
    unknown: that record takes the new analysis and its events (send states follow).
    """
    from .ledger import LedgerError
    from .mailbox import MailboxError
    from .settings import SettingsError

    settings = load(config_path)
    mailboxes = chosen_mailboxes(settings, mailbox_names)
    for mailbox in mailboxes:
        target = folder or mailbox.folders.unknown
        f = mailbox.folders
        refused = {mailbox.source_folder: "the source folder (`once` processes it)",
                   f.processed: "the processed folder",
                   **{review_folder: "a review folder (its messages carry a person's verdict)"
                      for _verdict, review_folder in f.reviews}}
        why = next((text for name, text in refused.items()
                    if name.lower() == target.lower()), None)
        if why:
            fail(f"--folder {target}: {mailbox.name}: that is {why}", EXIT_SETTINGS)
    ledger = open_ledger(settings)
    failed = False
    pool = analysis_pool(settings)
    try:
        for service in services(settings, mailboxes, ledger, pool):
            target = folder or service.settings.folders.unknown
            rows: list[Reanalysis] = []
            try:
                with service.connected(create_folders=not dry_run) as mailbox:
                    if not mailbox.folder_exists(target):
                        fail(f"{service.name}: no folder {mailbox.folder(target)}")
                    rows = service.reprocess(mailbox, target, dry_run=dry_run)
            except (MailboxError, LedgerError, SettingsError) as err:
                echo(f"imap-bouncer: error: {service.name}: {err}", err=True)
                failed = True
            echo(format_reprocess(service.name, target, rows, dry_run,
                                  service.settings.folders.processed))
        if not dry_run:
            deliver_at_exit(settings, ledger)
    finally:
        pool.close()
        ledger.close()
    sys.exit(EXIT_FAILED if failed else 0)


def format_reprocess(name: str, folder: str, rows: list[Reanalysis], dry_run: bool,
                     processed: str) -> str:
    recognised = [row for row in rows if row.new_kind != "unknown"]
    verb = "would file" if dry_run else "filed"
    lines = [f"{name}: {len(rows)} message(s) in {folder}, {len(recognised)} recognised now, "
             f"{verb} in {processed}; {len(rows) - len(recognised)} stay"]
    if rows:
        lines.append(table(
            ["UID", "WAS", "", "NOW", "RECIPIENTS", "MESSAGE-ID"],
            [[str(row.uid), row.old_kind or "not recorded", "->", row.new_kind,
              ", ".join(row.recipients) or "-", row.message_id or "-"] for row in rows]))
    return "\n".join(lines)


# -- send state: commands for people ------------------------------------------------------------

json_option = click.option("--json", "as_json", is_flag=True,
                           help="JSON for scripts instead of a table.")
STATE_NAMES = [str(s) for s in State]


def parse_states(_ctx: click.Context, _param: click.Parameter,
                 values: tuple[str, ...]) -> tuple[str, ...]:
    """--state a,b --state c -> (a, b, c), each a known state."""
    states = [s.strip().lower() for value in values for s in value.split(",") if s.strip()]
    unknown = sorted(set(states) - set(STATE_NAMES))
    if unknown:
        raise click.BadParameter(f"unknown state {', '.join(unknown)} (one of "
                                 f"{', '.join(STATE_NAMES)})")
    return tuple(dict.fromkeys(states))


def parse_since(_ctx: click.Context, _param: click.Parameter,
                value: datetime | None) -> datetime | None:
    """A day or time given without a zone is UTC."""
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns as wide as their widest cell; the last one unpadded. Cells come from mail:
    each is shown with its controls and line feeds escaped."""
    rows = [[shown(cell) for cell in row] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows,
                                                                           strict=True)]
    lines = []
    for row in [headers, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def write_json_lines(records: list[dict[str, Any]]) -> None:
    for record in records:
        echo_json(record)


@contextmanager
def ledger_for(config_path: str | None):
    """The settings and an open ledger; a database error ends the command with exit 1."""
    from .ledger import LedgerError

    settings = load(config_path)
    ledger = open_ledger(settings)
    try:
        yield settings, ledger
    except LedgerError as err:
        fail(f"database {settings.database.redacted_url}: {err}")
    finally:
        ledger.close()


@main.group("addresses")
def addresses_group() -> None:
    """Send state per address: list, show, change, export."""


@addresses_group.command("list")
@config_option
@click.option("--state", "states", multiple=True, callback=parse_states, metavar="STATE[,..]",
              help=f"Only these states ({', '.join(STATE_NAMES)}); repeatable.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="At most this many, the latest changed first.")
@json_option
def addresses_list_command(config_path: str | None, states: tuple[str, ...], limit: int,
                           as_json: bool) -> None:
    """Addresses and their send state, the latest changed first."""
    with ledger_for(config_path) as (_settings, ledger):
        found = ledger.list_addresses(states, limit=limit)
    if as_json:
        write_json_lines([info.to_dict() for info in found])
        return
    if not found:
        echo("no addresses" + (f" in state {', '.join(states)}" if states else ""))
        return
    echo(table(["ADDRESS", "STATE", "SOFT", "HARD", "REASON", "CHANGED", "UNTIL"],
               [[i.address, i.state, str(i.soft_count), str(i.hard_count),
                 i.reason or "-", when(i.updated_at), when(i.suppressed_until)]
                for i in found]))


@addresses_group.command("show")
@config_option
@click.argument("address")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many events, the latest first.")
@json_option
def addresses_show_command(config_path: str | None, address: str, limit: int,
                           as_json: bool) -> None:
    """One address: state, counters, changes and events (with the bounce's Message-ID)."""
    from .analysis.addresses import normalize_address

    clean = normalize_address(address)
    if not clean:
        fail(f"not an address: {address!r}", EXIT_SETTINGS)
    with ledger_for(config_path) as (_settings, ledger):
        info = ledger.address_state(clean)
        changes = ledger.transitions(clean)
        events = ledger.events(address=clean, limit=limit)
    if as_json:
        echo_json({
            "address": clean, "recorded": info is not None,
            "state": info.to_dict() if info else {"address": clean, "state": "active",
                                                  "suppressed": False},
            "transitions": [t.to_dict() for t in changes],
            "events": [e.to_dict() for e in events]})
        return
    if info is None:
        echo(f"{clean}: nothing recorded (active)")
        return
    echo(f"{shown(clean)}: {info.state}" + (" (suppressed)" if info.suppressed else "")
         + (f", stored as {info.stored_state}, expired"
            if info.stored_state != info.state else ""))
    echo(f"  reason:      {shown(info.reason or '-')}" + (f"  note: {shown(info.note)}"
                                                   if info.note else ""))
    echo(f"  soft:        {info.soft_count} counted since {when(info.soft_since)}, "
         f"last {when(info.last_soft_at)}")
    echo(f"  permanent:   {info.hard_count} counted since {when(info.first_hard_at)}")
    if info.suppressed_until:
        echo(f"  until:       {when(info.suppressed_until)}")
    echo(f"  last event:  {when(info.last_event_at)}   changed: {when(info.updated_at)}")
    if changes:
        echo("\nchanges:")
        echo(table(["WHEN", "FROM", "TO", "CAUSE", "REASON", "BY", "NOTE"],
                   [[when(t.created_at), t.from_state, t.to_state, t.cause,
                     t.reason or "-", t.actor or "-", t.note or "-"] for t in changes]))
    if events:
        echo("\nevents (latest first):")
        echo(table(["WHEN", "KIND", "ACTION", "STATUS", "REASON", "BOUNCE MESSAGE-ID"],
                   [[when(e.created_at), e.kind, e.action, e.status or "-", e.reason,
                     e.bounce_message_id or f"(id {e.message_pk})"] for e in events]))


def manual_command(action: str, summary: str) -> None:
    @addresses_group.command(action, help=summary)
    @config_option
    @click.argument("address")
    @click.option("--reason", "note", required=True, metavar="TEXT",
                  help="Why (recorded with the change).")
    @click.option("--actor", default=lambda: _user(), show_default="your user name",
                  help="Who makes the change (recorded with it).")
    def command(config_path: str | None, address: str, note: str, actor: str) -> None:
        from .policy import PolicyError

        if not note.strip():
            fail("--reason must say why", EXIT_SETTINGS)
        with ledger_for(config_path) as (_settings, ledger):
            try:
                change = ledger.manual_change(address, action, note, actor=actor)
            except PolicyError as err:
                fail(f"{address}: {err}")
        echo(f"{shown(change.address)}: {change.from_state} -> {change.to_state} ({action}, "
             f"transition {change.transition_id})")


manual_command("reset", "Back to active, every count forgotten (from any state).")
manual_command("hold", "Suppress the address until it is released.")
manual_command("release", "End a hold (or persistent): back to active, counts forgotten.")
manual_command("persist", "Never suppress the address, never change it automatically.")


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


EXPORT_COLUMNS = ("address", "state", "reason", "updated_at", "suppressed_until",
                  "last_event_at", "note")


@addresses_group.command("export")
@config_option
@click.option("--state", "states", multiple=True, callback=parse_states, metavar="STATE[,..]",
              help="States to export (default: invalid,unreachable,complained).")
@click.option("--format", "form", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write to FILE (replaced whole once complete) instead of standard output.")
def addresses_export_command(config_path: str | None, states: tuple[str, ...], form: str,
                             output: str | None) -> None:
    """The addresses to suppress (or in the states given), for a sending system."""
    import csv
    import io
    from pathlib import Path

    states = states or (State.INVALID, State.UNREACHABLE, State.COMPLAINED)
    with ledger_for(config_path) as (_settings, ledger):
        found = ledger.export(states)
    records = [{key: info.to_dict()[key] for key in EXPORT_COLUMNS} for info in found]
    buffer = io.StringIO()
    if form == "json":
        json.dump(records, buffer, ensure_ascii=False, indent=1)
        buffer.write("\n")
    else:
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)
    if output is None:
        click.echo(json_safe(buffer.getvalue()) if form == "json" else buffer.getvalue(),
                   nl=False)  # data, not prose: the addresses as stored
        return
    target = Path(output)
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_text(buffer.getvalue(), encoding="utf-8")
        temporary.replace(target)
    except OSError as err:
        fail(f"cannot write {output}: {err.strerror or err}")
    echo(f"{len(records)} address(es) written to {output}", err=True)


@main.command("events")
@config_option
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S",
                                                     "%Y-%m-%d %H:%M"]),
              callback=parse_since, metavar="DATE", help="Only events recorded since (UTC).")
@click.option("--address", metavar="ADDRESS", help="Only events about this address.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many, the latest first.")
@json_option
def events_command(config_path: str | None, since: datetime | None, address: str | None,
                   limit: int, as_json: bool) -> None:
    """Recorded events, the latest first."""
    with ledger_for(config_path) as (_settings, ledger):
        found = ledger.events(address=address, since=since, limit=limit)
    if as_json:
        write_json_lines([e.to_dict() for e in found])
        return
    if not found:
        echo("no events")
        return
    echo(table(["WHEN", "VERDICT", "REASON", "STATUS", "ADDRESS", "SENDER",
                "BOUNCE MESSAGE-ID"],
               [[when(e.created_at), verdict(e.kind, e.action, e.permanent), e.reason,
                 " ".join(x for x in (e.status, e.smtp_code) if x) or "-",
                 shown_address(e.address), e.sender_domain or "-",
                 e.bounce_message_id or f"(id {e.message_pk})"] for e in found]))


@main.command("explain")
@config_option
@click.argument("ident", metavar="ID")
@json_option
def explain_command(config_path: str | None, ident: str, as_json: bool) -> None:
    """Why a recorded message was classified as it was: by database id or Message-ID."""
    with ledger_for(config_path) as (settings, ledger):
        found = ledger.explain(ident)
    if not found:
        fail(f"no recorded message {ident}")
    from .analysis import Options, analyze, why_unclaimed

    options = Options(verp_patterns=settings.verp_patterns)
    records = []
    for message in found:
        now = analyze(message.raw, options) if message.raw is not None else None
        unclaimed = why_unclaimed(message.raw) if now is not None and now.kind == "unknown" \
            else []
        if as_json:
            analysis_now = now.to_dict(explain=True) if now else None
            if analysis_now is not None and unclaimed:
                analysis_now["unclaimed"] = unclaimed
            records.append({**message.to_dict(), "analysis_now": analysis_now})
        else:
            echo(format_explanation(message, now, unclaimed))
    if as_json:
        write_json_lines(records)


def format_explanation(message: Explanation, now: Report | None,
                       unclaimed: Sequence[tuple[str, str]] = ()) -> str:
    lines = [f"message {message.id}: {message.kind or 'not analyzed'}"
             + (f" by {message.analyzer}" if message.analyzer else "")
             + (f" (version {message.analyzer_version})" if message.analyzer_version else ""),
             f"  Message-ID: {shown(message.message_id or '-')}",
             f"  mailbox {message.mailbox}, UIDVALIDITY {message.uidvalidity} UID {message.uid},"
             f" filed in {message.target_folder or '(none: piped in)'}, recorded "
             f"{when(message.processed_at)}"]
    if message.feedback_type:
        lines.append(f"  feedback-type: {shown(message.feedback_type)}")
    lines.extend(f"  error: {shown(error)}" for error in message.errors)
    for e in message.events:
        code = " ".join(x for x in (e.status, e.smtp_code) if x) or "-"
        lines.append(f"  event {e.id}: {verdict(e.kind, e.action, e.permanent)}, {e.reason}, "
                     f"{code}: {shown(shown_address(e.address))}")
        if e.diagnostic:
            lines.append(f"      said: {shown(e.diagnostic[:300])}")
        lines.append(f"      why:  {shown(e.evidence or '-')}")
        if e.original_message_id:
            lines.append(f"      original: {shown(e.original_message_id)} from "
                         f"{shown(e.original_from or '-')}")
        if e.proof_note:
            lines.append(f"      signed: {e.signed or 'no'}: {shown(e.proof_note)}")
        if e.held:
            lines.append(f"      no state change: {shown(e.held)}")
    for t in message.transitions:
        lines.append(f"  changed {shown(t.address)}: {t.from_state} -> {t.to_state} "
                     f"({shown(t.reason)})")
    if now is None:
        lines.append("  (the raw message is not stored: set database.store_raw to re-analyze)")
    else:
        lines.append(f"  analyzed again now: {now.kind}"
                     + (f" by {now.analyzer}" if now.analyzer else "")
                     + (f": {shown(now.evidence)}" if now.evidence else ""))
        lines.extend(f"      {name}: {shown(note)}" for name, note in unclaimed)
        for r in now.recipients:
            lines.append(f"      {verdict(now.kind, r.action, r.permanent)}, {r.reason}, "
                         f"{r.status or '-'}: {shown(shown_address(r.address))}: "
                         f"{shown(r.evidence)}")
        lines.extend(f"      error: {shown(error)}" for error in now.errors)
        if now.kind != message.kind or now.analyzer != message.analyzer:
            lines.append("      (differs from what was recorded: the analyzer or the settings "
                         "changed since)")
    return "\n".join(lines)


@main.group("verp")
def verp_group() -> None:
    """Sign for sending systems: signed VERP addresses and X-Imap-Bouncer-Id headers
    ([verp] secret and address; the format is in docs/security.md)."""


def verp_key(config_path: str | None, need_address: bool) -> tuple[bytes, str]:
    settings = load(config_path)
    if not settings.verp.key:
        fail("verp.secret: not set (nor secret_file): there is nothing to sign with",
             EXIT_SETTINGS)
    if need_address and not settings.verp.address:
        fail("verp.address: not set: the signed envelope sender's pattern, e.g. "
             "'bounces+{token}-{local}={domain}@bounce.example.org'", EXIT_SETTINGS)
    return settings.verp.key, settings.verp.address


def verp_day(date: datetime | None) -> int:
    from .verp import day_of

    return day_of(date.replace(tzinfo=UTC) if date else datetime.now(UTC))


@verp_group.command("sign")
@config_option
@click.option("--date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day the mail is sent (default: today, UTC).")
@click.argument("address")
def verp_sign_command(config_path: str | None, date: datetime | None, address: str) -> None:
    """Print the envelope sender (Return-Path) to use for mail to ADDRESS."""
    from .verp import VerpError, sign

    key, pattern = verp_key(config_path, need_address=True)
    try:
        echo(sign(address, key, pattern, verp_day(date)))
    except VerpError as err:
        fail(str(err), EXIT_SETTINGS)


@verp_group.command("id")
@config_option
@click.option("--date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day the mail is sent (default: today, UTC).")
@click.option("--from", "sender", required=True, help="The message's From address.")
@click.option("--message-id", required=True, help="Its Message-ID, with the <>.")
@click.option("--to", "recipient", default="",
              help="Its one recipient; leave out for a message sent to several at once.")
def verp_id_command(config_path: str | None, date: datetime | None, sender: str,
                    message_id: str, recipient: str) -> None:
    """Print the X-Imap-Bouncer-Id header for a message."""
    from email.utils import parseaddr

    from .verp import ID_HEADER, correlation_id

    key, _ = verp_key(config_path, need_address=False)
    bare = parseaddr(sender)[1]
    if "@" not in bare or not message_id.strip():
        fail("--from needs an address and --message-id a Message-ID", EXIT_SETTINGS)
    echo(f"{ID_HEADER}: "
         f"{correlation_id(key, bare, message_id, recipient, verp_day(date))}")


@main.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
@config_option
def db_upgrade_command(config_path: str | None) -> None:
    """Create or upgrade the database schema (also done at every start)."""
    from .models import schema_version

    settings = load(config_path)
    ledger = open_ledger(settings, upgrade=True)
    echo(f"database {settings.database.redacted_url}: schema version "
         f"{schema_version(ledger.db)}")
    ledger.close()


# -- the outbox: notifications and their delivery ------------------------------------------------

OUTBOX_STATUSES = ("pending", "failed", "delivered")


@main.group("outbox", invoke_without_command=True)
@config_option
@click.option("--status", "statuses", multiple=True, type=click.Choice(OUTBOX_STATUSES),
              help="Only these (repeatable; default: pending and failed).")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="At most this many rows, oldest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row per line.")
@click.pass_context
def outbox_group(ctx: click.Context, config_path: str | None, statuses: tuple[str, ...],
                 limit: int, as_json: bool) -> None:
    """Notifications (webhooks, DSNs to senders) waiting, failed or delivered."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    if ctx.invoked_subcommand is not None:
        return
    from .ledger import LedgerError

    settings = load(config_path)
    ledger = open_ledger(settings)
    try:
        items = ledger.outbox.list(statuses or ("pending", "failed"), limit)
    except LedgerError as err:
        fail(f"database {settings.database.redacted_url}: {err}")
    finally:
        ledger.close()
    if as_json:
        for item in items:
            echo_json(item.to_dict())
        return
    if not items:
        echo("the outbox holds no such notification")
        return
    rows = [[str(item.id), item.status, item.event_type, str(item.attempts),
             when(item.next_attempt_at) if item.status == "pending" else
             when(item.delivered_at) if item.status == "delivered" else "-",
             _outbox_target(item), item.last_error[:80]] for item in items]
    echo(table(["ID", "STATUS", "TYPE", "ATTEMPTS", "NEXT/DONE", "TARGET", "LAST ERROR"],
               rows))


def _outbox_target(item: Any) -> str:
    from .handlers.webhooks import where as webhook_where

    return webhook_where(item.target) if item.channel == "webhook" else item.target


@outbox_group.command("retry")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--all-failed", is_flag=True, help="Every notification that failed for good.")
@config_option
@click.pass_context
def outbox_retry_command(ctx: click.Context, ids: tuple[int, ...], all_failed: bool,
                         config_path: str | None) -> None:
    """Deliver these notifications (by ID) again at the next run, with fresh attempts."""
    if not ids and not all_failed:
        raise click.UsageError("give the IDs to retry, or --all-failed")
    from .ledger import LedgerError

    settings = load(config_path or ctx.obj.get("config_path"))
    ledger = open_ledger(settings)
    try:
        count = ledger.outbox.retry(ids, all_failed=all_failed)
    except LedgerError as err:
        fail(f"database {settings.database.redacted_url}: {err}")
    finally:
        ledger.close()
    echo(f"{count} notification(s) queued for delivery"
         + ("" if count or not ids else " (delivered ones are not sent again)"))


@outbox_group.command("deliver")
@config_option
@click.pass_context
def outbox_deliver_command(ctx: click.Context, config_path: str | None) -> None:
    """Deliver the notifications due now, then exit (1 when an attempt failed)."""
    from . import handlers
    from .handlers.outbox import deliver_due
    from .ledger import LedgerError

    settings = load(config_path or ctx.obj.get("config_path"))
    senders = handlers.senders(settings)
    if not senders:
        echo("nothing is configured to deliver notifications with ([[webhooks]])")
        return
    ledger = open_ledger(settings)
    try:
        report = deliver_due(ledger, senders, settings=settings.outbox)
    except LedgerError as err:
        fail(f"database {settings.database.redacted_url}: {err}")
    finally:
        ledger.close()
    echo(f"outbox: {report}")
    if report.retrying or report.failed:
        sys.exit(EXIT_FAILED)

