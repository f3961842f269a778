"""One pass over a bounce mailbox, and the loops that keep doing it.

A pass takes the source folder's messages in UID order, in batches, and for each batch:
fetch (BODY.PEEK, nothing marked read) -> analyze -> record (one transaction) -> move by UID
set -> note the move. Order is what keeps the promises:

- a message is moved only after its record is committed; killed between the two, the next
  pass finds it recorded (by UIDVALIDITY + UID, or by sha256 when UIDVALIDITY changed) and
  only moves it, so nothing is counted twice and nothing is lost;
- a database or connection fault aborts the pass before any move: the messages stay where
  they are and the loop retries with backoff. Only a message's own content sends it to Error;
- a message the recording cannot take (a value the database refuses, a bug) is recorded
  alone, without its analysis, and filed in Error with the error (a shunt): one message
  never holds up its mailbox;
- a move done but not noted (the pass killed, or the database refusing the note, between
  the two) is noted at the next pass: the moved flags end up right.

`MailboxService.serve` is the long-running loop of one mailbox (IDLE, or polling for servers
without IDLE); `Runner` runs one per configured mailbox, in IDLE threads or as APScheduler
interval jobs, and stops them all on SIGTERM/SIGINT.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TypeVar

from apscheduler.schedulers.background import BackgroundScheduler

from . import analysis, review
from .analysis_workers import AnalysisPool, AnalysisStopped
from .handlers.outbox import OutboxJob
from .ledger import Ledger, LedgerError, MessageItem, Recorded, ReviewItem, is_database_fault
from .mailbox import ConnectError, DisconnectedError, FetchedMessage, Mailbox, MailboxError
from .report import Kind, Report, shown_address
from .settings import ImapSettings, SettingsError

log = logging.getLogger(__name__)

_Item = TypeVar("_Item", MessageItem, ReviewItem)

# How long the loop waits before reconnecting after a fault: doubles from the first to the
# last, with jitter, and starts over after a pass that worked.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
# Recorded messages are moved in UID sets of about this size (and at the end of a pass).
MOVE_AT_ONCE = 1000
# How often the states that time alone changes (unreachable addresses expiring) are written.
UPKEEP_MINUTES = 15


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
    reviewed: Counter[str] = field(default_factory=Counter)  # verdict -> messages filed

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
                # Moved but not noted (or a MOVE whose answer was lost): the service's next
                # pass notes what left the source folder (MailboxService._note_moves).
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


def folder_for(report: Report, folders) -> str:
    """Where a message goes: understood -> Processed; not understood -> Unknown; not
    understood and not fully readable, or understood but partial -> Error, for a person to
    look at."""
    if report.kind is not Kind.UNKNOWN and not report.partial:
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
        # Whether the moved flags of this mailbox's rows may be stale: at the first pass of a
        # process (the last one may have been killed between a MOVE and its note) and after
        # a pass that failed (the database may have refused the note of a MOVE done).
        self._flags_unsure = True
        self._reviews_unsure = True  # the same, for the review folders' rows

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
        return [f.processed, f.unknown, f.error, *(folder for _verdict, folder in f.reviews)]

    # -- one pass ------------------------------------------------------------------------------

    def run_pass(self, mailbox: Mailbox, options: PassOptions = PassOptions(),
                 stop: threading.Event | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 show: Callable[[Outcome], None] | None = None) -> PassSummary:
        """Process what is in the source folder now (first, unless a dry run: the verdicts
        people left in the review folders, `review`). Raises MailboxError or LedgerError when
        the pass cannot go on; what was recorded and moved before that stays done."""
        started = time.monotonic()
        summary = PassSummary(self.name)
        if not options.dry_run:
            mailbox.move_method()  # a server we may not move on is refused before any record
            if self.ledger is not None:
                self.review(mailbox, summary, stop)  # before the source folder: IDLE waits there
        uidvalidity = mailbox.select(self.settings.source_folder)
        if not options.dry_run and self.ledger is not None and self._flags_unsure:
            self._note_moves(mailbox, uidvalidity)
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
            if not options.dry_run:
                self._flags_unsure = True  # till the pass ends well
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
                        outcomes = self._file(started_batch, uidvalidity, options.dry_run,
                                              stop)
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
                if not options.dry_run:
                    self._flags_unsure = False
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

    def _note_moves(self, mailbox: Mailbox, uidvalidity: int) -> None:
        """Note as moved the rows still waiting for their move whose messages have left the
        source folder: moved by a pass that was killed, or whose database refused the note,
        after the MOVE. (Those still in the folder are found and moved by the pass.)"""
        self._note_gone(self.name, uidvalidity, lambda: mailbox.search_uids(unseen=False))
        self._flags_unsure = False

    def _note_gone(self, place: str, uidvalidity: int,
                   present: Callable[[], Sequence[int]]) -> None:
        """Rows of `place` waiting for their move whose UIDs are not `present()` any more:
        noted as moved."""
        assert self.ledger is not None
        waiting = self.ledger.find_unmoved(place, uidvalidity)
        if not waiting:
            return
        here = set(present())
        gone = [uid for uid in waiting if uid not in here]
        if gone:
            self.ledger.mark_moved(place, uidvalidity, gone)
            log.info("%s: %d message(s) had been moved without the move being noted (a pass "
                     "cut short): noted now", place, len(gone))

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

    def _file(self, batch: _Analyzing, uidvalidity: int, dry_run: bool,
              stop: threading.Event | None = None) -> list[Outcome]:
        """Record an analyzed batch in one transaction; say where each message goes."""
        reports = dict(zip((m.uid for m in batch.to_analyze),
                           self.analysis.result(batch.reports, batch.to_analyze, stop=stop),
                           strict=True))
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
            self._record(items, {o.uid: o for o in outcomes if not o.only_moved})
        return sorted(outcomes, key=lambda o: o.uid)

    def _record(self, items: list[MessageItem], outcomes: dict[int, Outcome]) -> None:
        """Record a batch (one transaction, or one per message should the batch fail: see
        `_record_each`); raises before anything moves."""
        assert self.ledger is not None
        _results, shunted = self._record_each(items, self.ledger.record_batch, self._shunted)
        folder = self.settings.folders.error
        for index, error in shunted.items():
            outcome = outcomes.get(items[index].uid)
            if outcome is not None:
                outcome.folder, outcome.errors = folder, (*outcome.errors, error)
                outcome.kind = outcome.report = None

    def _record_each(self, items: list[_Item], record: Callable[[list[_Item]], list[Recorded]],
                     shunted: Callable[[_Item, str], _Item]
                     ) -> tuple[list[Recorded], dict[int, str]]:
        """`record(items)`; should it fail for anything but the database itself (a message
        the recording cannot take: a bug, a value the database refuses), the items one by
        one, and one that still fails as `shunted(item, error)`: its row alone, without its
        analysis, bound for Error with the error (a shunt, like Mailman's). So the others
        flow instead of the whole pass failing on one message forever. A fault of the
        database still raises. Returns the results, and the error of each item shunted by
        its index."""
        try:
            return record(items), {}
        except Exception as err:
            if is_database_fault(err):
                raise
            log.warning("%s: a batch of %d message(s) could not be recorded at once (%s): "
                        "recording them one by one", self.name, len(items), _short(err))
        results: list[Recorded] = []
        shunts: dict[int, str] = {}
        for index, item in enumerate(items):
            try:
                results.extend(record([item]))
                continue
            except Exception as err:
                if is_database_fault(err):
                    raise
                error = f"recording failed ({_short(err)}): filed without its analysis"
            try:
                results.extend(record([shunted(item, error)]))
            except LedgerError:
                raise  # not even the row alone: the database is the problem; the pass stops
            except Exception as err:
                raise LedgerError(f"cannot record a message even without its analysis: "
                                  f"{_short(err)}") from err
            shunts[index] = error
            message = item.message if isinstance(item, ReviewItem) else item
            log.error("%s UID %s %s: %s; filed in %s", message.mailbox, message.uid,
                      _printable(message.message_id) or "(no Message-ID)", error,
                      self.settings.folders.error)
        return results, shunts

    def _shunted(self, item: MessageItem, error: str) -> MessageItem:
        """The row alone of a message that cannot be recorded with its analysis: no events,
        no state changes, bound for Error, the error kept in the row."""
        return replace(item, target_folder=self.settings.folders.error, report=None,
                       errors=(error,), message_id=_printable(item.message_id))

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
            # The report's own errors are recorded with the report; these are the others.
            errors=tuple(e for e in outcome.errors if report is None or e not in report.errors),
            message_id=outcome.message_id,
            internal_date=_aware(message.internaldate), received_at=datetime.now(UTC),
            analyzer_version=analysis.ANALYZER_VERSION, sha256=digests[message.uid],
            size=message.size)

    # -- review folders and reprocess: other folders than the source ---------------------------

    def place(self, folder: str) -> str:
        """The mailbox name of the messages recorded from `folder`: see `folder_place`."""
        return folder_place(self.name, folder)

    def review(self, mailbox: Mailbox, summary: PassSummary | None = None,
               stop: threading.Event | None = None) -> Counter[str]:
        """Record the verdicts of the messages people filed in the review folders, then file
        them in processed (in error: a hard or soft verdict on a message naming no address).
        Returns how many were filed per verdict.

        Like a pass: recorded (ledger.record_review, one transaction per batch) before moved,
        and a message recorded but not moved (a pass cut short) is only moved next time. A
        review folder that cannot be selected is skipped with a warning: the source folder's
        pass never waits for the review folders.
        """
        assert self.ledger is not None
        filed: Counter[str] = Counter()
        unsure, self._reviews_unsure = self._reviews_unsure, True  # till this review ends well
        for verdict, folder in self.settings.folders.reviews:
            try:
                uidvalidity = mailbox.select(folder)
            except (DisconnectedError, ConnectError):
                raise
            except MailboxError as err:
                log.warning("%s: review folder %s skipped: %s", self.name, folder, err)
                continue
            place = self.place(folder)
            uids = mailbox.search_uids(unseen=False)
            if unsure:  # moves of an earlier review that were done but not noted
                self._note_gone(place, uidvalidity, lambda uids=uids: uids)
            size = self.settings.batch_size
            for start in range(0, len(uids), size):
                if stop is not None and stop.is_set():
                    return filed
                batch = uids[start:start + size]
                recorded = self.ledger.find_recorded(place, uidvalidity, batch)
                fetched = mailbox.fetch([uid for uid in batch if uid not in recorded],
                                        size_cap=self.settings.max_message_size)
                reports = self.analysis.result(
                    self.analysis.submit([message.raw for message in fetched]), fetched)
                items = [self._review_item(message, report, review.Verdict(verdict), folder,
                                           place, uidvalidity)
                         for message, report in zip(fetched, reports, strict=True)]
                results, shunted = self._record_each(
                    items, self.ledger.record_review,
                    lambda item, error: replace(item, message=self._shunted(item.message, error)))
                targets: dict[str, list[int]] = {}
                for uid, known in recorded.items():
                    targets.setdefault(known.target_folder, []).append(uid)
                for index, (item, result) in enumerate(zip(items, results, strict=True)):
                    targets.setdefault(result.target_folder, []).append(item.message.uid)
                    if summary is not None and result.created:
                        for error in result.errors if index in shunted else item.message.errors:
                            summary.errors.append(f"{folder} UID {item.message.uid} "
                                                  f"{item.message.message_id}: {error}")
                for target, target_uids in targets.items():
                    mailbox.move(target_uids, target)
                    self.ledger.mark_moved(place, uidvalidity, target_uids)
                filed[verdict] += len(recorded) + len(items)
            if uids:
                log.info("%s: %d message(s) reviewed in %s (%s)", self.name, len(uids),
                         folder, verdict)
        self._reviews_unsure = False
        if summary is not None:
            summary.reviewed.update(filed)
        return filed

    def _review_item(self, message: FetchedMessage, report: Report, verdict: review.Verdict,
                     folder: str, place: str, uidvalidity: int) -> ReviewItem:
        found = review.addresses(report)
        errors = _size_errors(message)
        target = self.settings.folders.processed
        if not found and verdict is not review.Verdict.IGNORE:
            errors.append(f"filed in {folder}, but it names no address (no recipient, no "
                          "VERP address): no verdict recorded")
            target = self.settings.folders.error
            log.warning("%s %s UID %s %s: names no address; filed in %s", self.name, folder,
                        message.uid, report.message_id or "(no Message-ID)", target)
        return ReviewItem(
            MessageItem(
                mailbox=place, uidvalidity=uidvalidity, uid=message.uid, target_folder=target,
                raw=message.raw, report=review.verdict_report(report, verdict, found, folder),
                errors=tuple(errors), message_id=report.message_id,
                internal_date=_aware(message.internaldate), received_at=datetime.now(UTC),
                analyzer_version=analysis.ANALYZER_VERSION,
                sha256=hashlib.sha256(message.raw).hexdigest(), size=message.size),
            verdict=str(verdict), folder=folder)

    def reprocess(self, mailbox: Mailbox, folder: str, *, dry_run: bool = False,
                  show: Callable[[Reanalysis], None] | None = None) -> list[Reanalysis]:
        """Analyze the messages in `folder` again. Those recognised now (kind not unknown)
        are recorded (ledger.record_reanalysis: the row of their bytes takes the new analysis
        and its events) and filed in processed; the others stay. dry_run: analyze and show,
        no writes, no moves. Recorded before moved, like a pass."""
        if not dry_run:
            mailbox.move_method()
        uidvalidity = mailbox.select(folder)
        uids = mailbox.search_uids(unseen=False)
        place = self.place(folder)
        processed = self.settings.folders.processed
        seen: list[Reanalysis] = []
        size = self.settings.batch_size
        for start in range(0, len(uids), size):
            fetched = mailbox.fetch(uids[start:start + size],
                                    size_cap=self.settings.max_message_size)
            reports = self.analysis.result(
                self.analysis.submit([message.raw for message in fetched]), fetched)
            digests = {m.uid: hashlib.sha256(m.raw).hexdigest() for m in fetched}
            known: dict[str, Recorded] = {}
            if self.ledger is not None:
                for name in (place, self.name):  # the mailbox's own rows win
                    known.update(self.ledger.find_by_sha256(name, digests.values()))
            items: list[MessageItem] = []
            batch: list[Reanalysis] = []
            for message, report in zip(fetched, reports, strict=True):
                earlier = known.get(digests[message.uid])
                entry = Reanalysis(
                    uid=message.uid, message_id=report.message_id,
                    old_kind=(earlier.kind or "not analyzed") if earlier else None,
                    new_kind=str(report.kind),
                    recipients=tuple(shown_address(r.address) for r in report.recipients))
                batch.append(entry)
                if report.kind is Kind.UNKNOWN:
                    continue
                items.append(MessageItem(
                    mailbox=place, uidvalidity=uidvalidity, uid=message.uid,
                    target_folder=processed, raw=message.raw, report=report,
                    errors=tuple(_size_errors(message)), message_id=report.message_id,
                    internal_date=_aware(message.internaldate), received_at=datetime.now(UTC),
                    analyzer_version=analysis.ANALYZER_VERSION, sha256=digests[message.uid],
                    size=message.size))
            if items and not dry_run and self.ledger is not None:
                results = self.ledger.record_reanalysis(items, self.name)
                by_uid = {item.uid: result for item, result in zip(items, results, strict=True)}
                for entry in batch:
                    result = by_uid.get(entry.uid)
                    if result is not None:
                        entry.filed, entry.recorded = processed, result.created
                mailbox.move(sorted(by_uid), processed)
                self.ledger.mark_moved_ids(result.id for result in results)
            for entry in batch:
                if show is not None:
                    show(entry)
            seen.extend(batch)
        if uids:
            log.info("%s: %d message(s) in %s analyzed again, %d recognised%s", self.name,
                     len(uids), folder, sum(e.new_kind != Kind.UNKNOWN for e in seen),
                     " (dry run)" if dry_run else "")
        return seen

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
            except (MailboxError, LedgerError, SettingsError) as err:
                self._wait_after_fault(err, backoff, stop)
            except AnalysisStopped as err:
                log.info("%s: %s", self.name, err)
            except Exception as err:
                # A bug, not a fault outside: said loudly, and retried like one, because a
                # dead thread would leave the process running and the mailbox unserved.
                log.exception("%s: unexpected error", self.name)
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
        except (MailboxError, LedgerError, SettingsError) as err:
            log.warning("%s: %s; nothing more was moved; next try in %g s", self.name,
                        _fault(err), self.settings.poll_interval)
        except AnalysisStopped as err:
            log.info("%s: %s", self.name, err)

    def _wait_after_fault(self, err: Exception, backoff: Backoff, stop: threading.Event) -> None:
        delay = backoff.next()
        log.warning("%s: %s; nothing more was moved; retrying in %.1f s", self.name,
                    _fault(err), delay)
        stop.wait(delay)


@dataclass(slots=True)
class Reanalysis:
    """One message of a reprocessed folder: what it was recorded as, what it is now."""

    uid: int
    message_id: str
    old_kind: str | None  # None: its bytes were never recorded in this mailbox
    new_kind: str
    recipients: tuple[str, ...]
    filed: str | None = None  # the folder it was filed in (None: it stays)
    recorded: bool = False  # the new analysis was recorded now (False: only moved)


def folder_place(name: str, folder: str) -> str:
    """The mailbox name (`Message.mailbox`) of messages recorded from a folder other than the
    source folder (review folders, reprocess): "<mailbox>#<folder>". A folder's UIDs are
    its own, and a server may give two folders one UIDVALIDITY, so two folders' messages must
    never share a name. Names too long for the column end in a digest of the folder's."""
    place = f"{name}#{folder}"
    if len(place) <= 100:
        return place
    return f"{name[:70]}#{hashlib.sha256(place.encode()).hexdigest()[:29]}"


def _size_errors(message: FetchedMessage) -> list[str]:
    if not message.truncated:
        return []
    return [f"larger than max_message_size: analyzed from the first {len(message.raw)} of "
            f"{message.size} bytes"]


def _short(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:300]


def _printable(text: str) -> str:
    """Text with no controls (nor NUL, which PostgreSQL refuses) and of a sane length."""
    return "".join(c if c.isprintable() else "?" for c in text[:500])


def _fault(err: Exception) -> str:
    if isinstance(err, LedgerError):
        what = "database unavailable"
    elif isinstance(err, DisconnectedError | ConnectError):
        what = "IMAP connection lost"
    elif isinstance(err, MailboxError):
        what = "IMAP error"
    elif isinstance(err, SettingsError):
        what = "settings"
    else:
        what = f"unexpected {type(err).__name__}"
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

    def __init__(self, services: Sequence[MailboxService],
                 outbox: OutboxJob | None = None,
                 upkeep: Callable[[], object] | None = None) -> None:
        self.services = services
        self.outbox = outbox  # delivers notifications; None when nothing is configured
        self.upkeep = upkeep  # what time alone changes (address states that expire)
        self.stop = threading.Event()
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.scheduler.start()
        if self.outbox is not None:
            # Never two runs at once (each row is attempted by one run at a time); a run that
            # overran its interval is followed by one run, not a burst.
            self.scheduler.add_job(
                self.outbox.run, "interval", args=(self.stop,), seconds=self.outbox.interval,
                id="outbox", max_instances=1, coalesce=True, replace_existing=True,
                next_run_time=datetime.now(UTC))
        if self.upkeep is not None:
            self.scheduler.add_job(
                self._run_upkeep, "interval", minutes=UPKEEP_MINUTES, id="upkeep",
                max_instances=1, coalesce=True, replace_existing=True,
                next_run_time=datetime.now(UTC))
        for service in self.services:
            if service.settings.mode == "poll":
                self._schedule(service)
            else:
                thread = threading.Thread(
                    target=service.serve, args=(self.stop, lambda s=service: self._schedule(s)),
                    name=f"idle-{service.name}", daemon=True)
                thread.start()
                self.threads.append(thread)

    def _run_upkeep(self) -> None:
        try:
            self.upkeep()
        except LedgerError as err:
            log.warning("address state upkeep failed, next try in %d minutes: %s",
                        UPKEEP_MINUTES, err)

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
