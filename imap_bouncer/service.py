"""One pass over a bounce mailbox, and the loops that keep doing it.

A pass takes the source folder's messages in UID order, in batches, and for each batch:
fetch (BODY.PEEK, nothing marked read) -> analyze -> record (one transaction) -> move by UID
set -> note the move. Order is what keeps the promises:

- a message is moved only after its record is committed; killed between the two, the next
  pass finds it recorded (by UIDVALIDITY + UID, or by sha256 when UIDVALIDITY changed) and
  only moves it, so nothing is counted twice and nothing is lost;
- a database or connection fault aborts the pass before any move: the messages stay where
  they are and the loop retries with backoff. Only a message's own content sends it to Error.

`MailboxService.serve` is the long-running loop of one mailbox (IDLE, or polling for servers
without IDLE); `Runner` runs one per configured mailbox, in IDLE threads or as APScheduler
interval jobs, and stops them all on SIGTERM/SIGINT.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from . import analysis
from .ledger import Ledger, LedgerError, MessageItem, Recorded
from .mailbox import FetchedMessage, Mailbox, MailboxError
from .report import Kind, Report
from .settings import ImapSettings

log = logging.getLogger(__name__)

# How long the loop waits before reconnecting after a fault: doubles from the first to the
# last, with jitter, and starts over after a pass that worked.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
# Recorded messages are moved in UID sets of about this size (and at the end of a pass).
MOVE_AT_ONCE = 1000


@dataclass(frozen=True, slots=True)
class PassOptions:
    """What a pass takes: unseen messages by default."""

    include_seen: bool = False  # backfill: seen messages too
    since: date | None = None  # only messages that arrived on or after this day
    limit: int | None = None  # at most this many messages
    dry_run: bool = False  # analyze and show; no writes, no moves


@dataclass(slots=True)
class Outcome:
    """What became of one message in a pass."""

    uid: int
    message_id: str
    folder: str  # the folder setting's value (Processed, Unknown, Error), not the full name
    kind: str | None  # None when only moved (already recorded) without analysis
    report: Report | None = None
    errors: Sequence[str] = ()
    only_moved: bool = False  # recorded by an earlier pass that was cut short


@dataclass(slots=True)
class PassSummary:
    """Counts of one pass, for the end-of-pass log line and `once`'s summary."""

    mailbox: str
    found: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_folder: Counter[str] = field(default_factory=Counter)
    only_moved: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.by_folder[outcome.folder] += 1
        if outcome.only_moved:
            self.only_moved += 1
        else:
            self.by_kind[outcome.kind or "unanalyzed"] += 1
        for error in outcome.errors:
            self.errors.append(f"UID {outcome.uid} {outcome.message_id or '(no Message-ID)'}: "
                               f"{error}")

    @property
    def processed(self) -> int:
        return sum(self.by_folder.values())


def _by_folder(outcomes: list[Outcome]) -> dict[str, list[int]]:
    by_folder: dict[str, list[int]] = {}
    for outcome in outcomes:
        by_folder.setdefault(outcome.folder, []).append(outcome.uid)
    return by_folder


class _Moves:
    """Moves of recorded messages: gathered per folder into large UID sets (a server's cost
    is mostly per command: one MOVE of a thousand messages takes little longer than one of
    a hundred), sent on the IMAP thread, and each one done noted in the ledger."""

    def __init__(self, imap: ThreadPoolExecutor, mailbox: Mailbox, ledger: Ledger | None,
                 name: str, uidvalidity: int) -> None:
        self.imap, self.mailbox = imap, mailbox
        self.ledger, self.name, self.uidvalidity = ledger, name, uidvalidity
        self.waiting: dict[str, list[int]] = {}
        self.pending: list[tuple[Future, list[int]]] = []

    def add(self, folder: str, uids: list[int]) -> None:
        waiting = self.waiting.setdefault(folder, [])
        waiting.extend(uids)
        if len(waiting) >= MOVE_AT_ONCE:
            self._send(folder)

    def flush(self) -> None:
        for folder in list(self.waiting):
            self._send(folder)

    def _send(self, folder: str) -> None:
        uids = self.waiting.pop(folder)
        self.pending.append((self.imap.submit(self.mailbox.move, uids, folder), uids))

    def settle(self, *, block: bool, quiet: bool = False) -> None:
        """Note the finished moves; raise the first failure (unless quiet: on the way out of
        a pass that already failed, note what did get moved and say nothing more)."""
        while self.pending and (block or self.pending[0][0].done()):
            future, uids = self.pending.pop(0)
            try:
                future.result()
                if self.ledger is not None:
                    self.ledger.mark_moved(self.name, self.uidvalidity, uids)
            except (MailboxError, LedgerError):
                if not quiet:
                    raise


@dataclass(slots=True)
class _Analyzing:
    """A batch between fetch and record: its analysis may still be running elsewhere."""

    recorded: dict[int, Recorded]  # recorded by an earlier pass: only to be moved
    fetched: list[FetchedMessage]
    digests: dict[int, str]
    relocated: dict[int, Recorded]  # known by their bytes under an older UIDVALIDITY
    to_analyze: list[FetchedMessage]
    reports: Future  # of list[Report], in the order of to_analyze
    size: int  # UIDs in the batch


class AnalysisPool:
    """Analysis in worker processes: it is pure (bytes in, report out) and CPU-bound, so
    on a machine with more than one core it runs beside the IMAP and database work instead of
    sharing one interpreter with them. `workers = 0`: inline, in this process."""

    def __init__(self, workers: int, options: analysis.Options) -> None:
        self.options = options
        self.depth = max(1, workers)  # batches a pass keeps in analysis at once
        self._executor: ProcessPoolExecutor | None = None
        if workers > 0:
            self._executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, raws: list[bytes]) -> Future:
        if self._executor is not None and raws:
            try:
                return self._executor.submit(analysis.analyze_many, raws, self.options)
            except (BrokenProcessPool, RuntimeError) as err:
                self._give_up(err)
        done: Future = Future()
        done.set_result(analysis.analyze_many(raws, self.options))
        return done

    def result(self, future: Future, messages: list[FetchedMessage]) -> list[Report]:
        """The reports of a submitted batch; analyzed here should a worker have died."""
        try:
            return future.result()
        except BrokenProcessPool as err:
            self._give_up(err)
            return analysis.analyze_many([m.raw for m in messages], self.options)

    def _give_up(self, err: BaseException) -> None:
        log.error("analysis worker process failed (%s): analyzing in the service's own "
                  "process from now on", err)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def folder_for(report: Report, folders) -> str:
    """Where a message goes: understood -> Processed; not understood -> Unknown; not
    understood and not fully readable -> Error, for a person to look at."""
    if report.kind is not Kind.UNKNOWN:
        return folders.processed
    return folders.error if report.errors else folders.unknown


class MailboxService:
    """Drains one mailbox: passes, and the IDLE or polling loop around them."""

    def __init__(self, settings: ImapSettings, ledger: Ledger | None,
                 options: analysis.Options | None = None,
                 mailbox_factory: Callable[..., Mailbox] = Mailbox,
                 analysis_pool: AnalysisPool | None = None) -> None:
        self.settings = settings
        self.ledger = ledger
        self.options = options or analysis.Options()
        self.mailbox_factory = mailbox_factory
        self.name = settings.name
        self.analysis = analysis_pool or AnalysisPool(0, self.options)

    # -- connection ----------------------------------------------------------------------------

    @contextmanager
    def connected(self, *, create_folders: bool = True) -> Iterator[Mailbox]:
        """A logged-in mailbox with the target folders present; logged out at the end."""
        s = self.settings
        mailbox = self.mailbox_factory(
            s.host, s.port, security=s.security, timeout=s.timeout,
            ca_file=str(s.ca_file) if s.ca_file else None,
            verify_certificate=s.verify_certificate,
            allow_plain_expunge=s.allow_plain_expunge)
        try:
            mailbox.connect()
            secret = s.secret().get_secret_value()
            if s.auth == "xoauth2":
                mailbox.login(s.username, oauth2_token=secret)
            else:
                mailbox.login(s.username, secret)
            if create_folders:
                mailbox.ensure_folders(self.target_folders)
            yield mailbox
        finally:
            mailbox.logout()

    @property
    def target_folders(self) -> list[str]:
        f = self.settings.folders
        return [f.processed, f.unknown, f.error]

    # -- one pass ------------------------------------------------------------------------------

    def run_pass(self, mailbox: Mailbox, options: PassOptions = PassOptions(),
                 stop: threading.Event | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 show: Callable[[Outcome], None] | None = None) -> PassSummary:
        """Process what is in the source folder now. Raises MailboxError or LedgerError when
        the pass cannot go on; what was recorded and moved before that stays done."""
        started = time.monotonic()
        summary = PassSummary(self.name)
        uidvalidity = mailbox.select(self.settings.source_folder)
        uids = mailbox.search_uids(unseen=not options.include_seen, since=options.since)
        if options.limit is not None:
            uids = uids[:options.limit]
        summary.found = len(uids)
        if uids:
            log.info("%s: %d message(s) to process in %s", self.name, len(uids),
                     self.settings.source_folder)
        size = self.settings.batch_size
        batches = [uids[start:start + size] for start in range(0, len(uids), size)]
        done = 0
        # A pipeline, so that the IMAP server, the analysis and the database work at once:
        # one thread sends every IMAP command of the pass, in order (it fetches the next
        # batch and moves the last one); analysis runs in worker processes (or inline); this
        # thread records each batch once analyzed and hands its moves to the IMAP thread.
        # At most three batches are in memory at once.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"imap-{self.name}") as imap:
            moves = _Moves(imap, mailbox, self.ledger, self.name, uidvalidity)
            analyzing: deque[_Analyzing] = deque()
            upcoming = imap.submit(self._fetch, mailbox, uidvalidity, batches[0],
                                   options.dry_run) if batches else None
            try:
                for index, batch in enumerate(batches):
                    recorded, fetched = upcoming.result()
                    upcoming = None
                    stopping = stop is not None and stop.is_set()
                    last = stopping or index + 1 == len(batches)
                    if not last:
                        upcoming = imap.submit(self._fetch, mailbox, uidvalidity,
                                               batches[index + 1], options.dry_run)
                    analyzing.append(self._start_analysis(recorded, fetched, uidvalidity,
                                                          options.dry_run, len(batch)))
                    while len(analyzing) > self.analysis.depth or (analyzing and last):
                        started_batch = analyzing.popleft()
                        outcomes = self._file(started_batch, uidvalidity, options.dry_run)
                        if not options.dry_run:
                            for folder, folder_uids in _by_folder(outcomes).items():
                                moves.add(folder, folder_uids)
                        moves.settle(block=False)
                        for outcome in outcomes:
                            summary.add(outcome)
                            if show is not None:
                                show(outcome)
                        done += started_batch.size
                        if progress is not None:
                            progress(done, len(uids))
                    if stopping and done < len(uids):
                        log.info("%s: stopping after %d of %d messages", self.name, done,
                                 len(uids))
                        break
                moves.flush()
                moves.settle(block=True)
            finally:
                if upcoming is not None:
                    upcoming.cancel()
                moves.flush()  # on the way out of a failed pass: what is recorded may be filed
                moves.settle(block=True, quiet=True)
        summary.seconds = time.monotonic() - started
        if summary.processed:
            log.info("%s: processed %d message(s) in %.1f s: %s", self.name, summary.processed,
                     summary.seconds, ", ".join(f"{n} {k}" for k, n in
                                                sorted(summary.by_folder.items())))
        return summary

    def _fetch(self, mailbox: Mailbox, uidvalidity: int, uids: list[int],
               dry_run: bool) -> tuple[dict[int, Recorded], list[FetchedMessage]]:
        """A batch's messages, but for those an earlier pass recorded and did not move."""
        recorded = {} if dry_run or self.ledger is None else \
            self.ledger.find_recorded(self.name, uidvalidity, uids)
        fetched = mailbox.fetch([uid for uid in uids if uid not in recorded],
                                size_cap=self.settings.max_message_size)
        return recorded, fetched

    def _start_analysis(self, recorded: dict[int, Recorded], fetched: list[FetchedMessage],
                        uidvalidity: int, dry_run: bool, size: int) -> _Analyzing:
        """Hand a batch's messages to the analysis, but those already known by their bytes
        (the folder was renumbered: UIDVALIDITY changed), which only need moving."""
        ledger = None if dry_run else self.ledger
        digests = {message.uid: hashlib.sha256(message.raw).hexdigest() for message in fetched}
        known = ledger.find_by_sha256(self.name, digests.values()) if ledger else {}
        relocated = {uid: known[digest] for uid, digest in digests.items()
                     if digest in known and known[digest].uidvalidity != uidvalidity}
        to_analyze = [message for message in fetched if message.uid not in relocated]
        reports = self.analysis.submit([message.raw for message in to_analyze])
        return _Analyzing(recorded, fetched, digests, relocated, to_analyze, reports, size)

    def _file(self, batch: _Analyzing, uidvalidity: int, dry_run: bool) -> list[Outcome]:
        """Record an analyzed batch in one transaction; say where each message goes."""
        reports = dict(zip((m.uid for m in batch.to_analyze),
                           self.analysis.result(batch.reports, batch.to_analyze), strict=True))
        outcomes: list[Outcome] = [
            Outcome(uid, r.message_id, r.target_folder, r.kind, only_moved=True)
            for uid, r in batch.recorded.items()]
        items: list[MessageItem] = []
        for message in batch.fetched:
            earlier = batch.relocated.get(message.uid)
            if earlier is not None:
                outcome = Outcome(message.uid, earlier.message_id, earlier.target_folder,
                                  earlier.kind, only_moved=True)
            else:
                outcome = self._outcome(message, reports[message.uid])
            outcomes.append(outcome)
            items.append(self._item(message, uidvalidity, batch.digests, outcome,
                                    outcome.report))
        if not dry_run and self.ledger is not None:
            self.ledger.record_batch(items)  # one transaction; raises before anything moves
        return sorted(outcomes, key=lambda o: o.uid)

    def _outcome(self, message: FetchedMessage, report: Report) -> Outcome:
        errors: list[str] = []
        if message.truncated:
            errors.append(f"larger than max_message_size: analyzed from the first "
                          f"{len(message.raw)} of {message.size} bytes")
        folder = folder_for(report, self.settings.folders)
        errors.extend(report.errors)
        message_id = report.message_id
        if folder == self.settings.folders.unknown:
            log.info("%s UID %s %s: not recognised, filed in %s", self.name, message.uid,
                     message_id or "(no Message-ID)", folder)
        elif folder == self.settings.folders.error:
            log.warning("%s UID %s %s: unreadable (%s), filed in %s", self.name, message.uid,
                        message_id or "(no Message-ID)", "; ".join(report.errors)[:300], folder)
        else:
            log.debug("%s UID %s %s: %s, %d recipient(s)", self.name, message.uid,
                      message_id, report.kind, len(report.recipients))
        return Outcome(message.uid, message_id, folder, str(report.kind), report, errors)

    def _item(self, message: FetchedMessage, uidvalidity: int, digests: dict[int, str],
              outcome: Outcome, report: Report | None) -> MessageItem:
        return MessageItem(
            mailbox=self.name, uidvalidity=uidvalidity, uid=message.uid,
            target_folder=outcome.folder, raw=message.raw, report=report,
            errors=tuple(outcome.errors), message_id=outcome.message_id,
            internal_date=_aware(message.internaldate), received_at=datetime.now(UTC),
            analyzer_version=analysis.ANALYZER_VERSION, sha256=digests[message.uid],
            size=message.size)

    # -- the long-running loop -----------------------------------------------------------------

    def serve(self, stop: threading.Event, on_no_idle: Callable[[], None] | None = None) -> None:
        """Catch up, then IDLE and process on new mail, until `stop` is set.

        Reconnects with exponential backoff and jitter after any connection or database
        fault. A server without IDLE hands over to `on_no_idle` (polling) and returns.
        """
        backoff = Backoff()
        while not stop.is_set():
            try:
                with self.connected() as mailbox:
                    self.run_pass(mailbox, stop=stop)
                    backoff.reset()
                    if not (mailbox.capabilities and mailbox.capabilities.idle):
                        log.warning("%s: the server does not offer IDLE: polling every %g s",
                                    self.name, self.settings.poll_interval)
                        if on_no_idle is not None:
                            on_no_idle()
                            return
                        self._poll_here(mailbox, stop)
                        continue
                    log.info("%s: waiting for new mail (IDLE)", self.name)
                    while not stop.is_set():
                        mailbox.wait_for_changes(self.settings.idle_renew, should_stop=stop.is_set)
                        if not stop.is_set():
                            self.run_pass(mailbox, stop=stop)
            except (MailboxError, LedgerError) as err:
                self._wait_after_fault(err, backoff, stop)
        log.info("%s: stopped", self.name)

    def _poll_here(self, mailbox: Mailbox, stop: threading.Event) -> None:
        while not stop.wait(self.settings.poll_interval):
            mailbox.noop()
            self.run_pass(mailbox, stop=stop)

    def poll_once(self, stop: threading.Event) -> None:
        """One scheduled poll: connect, process, log out. Faults are logged; the next run
        retries (the scheduler never overlaps runs of one mailbox)."""
        if stop.is_set():
            return
        try:
            with self.connected() as mailbox:
                self.run_pass(mailbox, stop=stop)
        except (MailboxError, LedgerError) as err:
            log.warning("%s: %s; nothing more was moved; next try in %g s", self.name,
                        _fault(err), self.settings.poll_interval)

    def _wait_after_fault(self, err: Exception, backoff: Backoff, stop: threading.Event) -> None:
        delay = backoff.next()
        log.warning("%s: %s; nothing more was moved; retrying in %.1f s", self.name,
                    _fault(err), delay)
        stop.wait(delay)


def _fault(err: Exception) -> str:
    what = "database unavailable" if isinstance(err, LedgerError) else "IMAP connection lost"
    return f"{what}: {err}"


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.astimezone()  # imapclient gives local naive times unless normalised


class Backoff:
    """Exponential backoff with full jitter: 1, 2, 4 ... seconds, at most BACKOFF_MAX."""

    def __init__(self, first: float = BACKOFF_FIRST, most: float = BACKOFF_MAX) -> None:
        self.first, self.most = first, most
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.most, self.first * 2 ** self.attempt)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class Runner:
    """Runs every configured mailbox until stopped: IDLE mailboxes in threads of their own,
    polled ones as APScheduler interval jobs (one instance at a time, coalesced)."""

    def __init__(self, services: Sequence[MailboxService]) -> None:
        self.services = services
        self.stop = threading.Event()
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.scheduler.start()
        for service in self.services:
            if service.settings.mode == "poll":
                self._schedule(service)
            else:
                thread = threading.Thread(
                    target=service.serve, args=(self.stop, lambda s=service: self._schedule(s)),
                    name=f"idle-{service.name}", daemon=True)
                thread.start()
                self.threads.append(thread)

    def _schedule(self, service: MailboxService) -> None:
        """Poll a mailbox: a catch-up run now, then every poll_interval seconds."""
        self.scheduler.add_job(
            service.poll_once, "interval", args=(self.stop,),
            seconds=service.settings.poll_interval, id=f"poll-{service.name}",
            max_instances=1, coalesce=True, replace_existing=True,
            next_run_time=datetime.now(UTC))

    def wait(self) -> None:
        """Block until `stop` is set (by a signal handler), then shut everything down."""
        while not self.stop.wait(1.0):
            pass
        self.shutdown()

    def shutdown(self) -> None:
        self.stop.set()
        self.scheduler.shutdown(wait=True)  # waits for a running poll to finish its batch
        for thread in self.threads:
            thread.join(timeout=30)
