"""Delivering the outbox: each due row to its channel's sender, with retries and backoff.

`deliver_due` is what the scheduled job (service.Runner), `once` and `imap-bouncer outbox
deliver` run. Per row: claim it (so that no other run, in this process or another, attempts it
at the same time), attempt it once, then record the outcome: delivered, or failed and due
again after a backoff (`backoff_first` seconds doubling up to `backoff_max`, with jitter),
or, after `max_attempts` attempts, failed for good (`imap-bouncer outbox retry` revives it).
A run crashing mid-attempt leaves the row claimed; it is due again when the claim lapses.
Destinations are served side by side, so that one slow or hanging endpoint delays only its
own rows, and a stopping run ends within seconds, whatever the endpoints do (`deliver_due`).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from ..ledger import Ledger, LedgerError, OutboxItem
from ..settings import OutboxSettings
from . import DeliveryError, Sender
from .webhooks import where

log = logging.getLogger(__name__)

CLAIM_AT_ONCE = 10  # rows claimed per round trip to the database
LANE_QUEUE = 20  # rows waiting in one lane at most; more are put back for the next run
MAX_OUTSTANDING = 100  # rows handed to the lanes and not done, over all lanes
# Seconds a lane starts attempts for in one run (at least; `interval` when longer): a slow
# endpoint's rows beyond wait for the next run rather than hold this one up.
LANE_SECONDS = 30.0
STOP_GRACE = 1.0  # seconds a stopping run waits for answers before putting the rows back
# Seconds past the lanes' time a run still waits for attempts under way (the longest webhook
# timeout): then it ends, and they finish (and are recorded) in their threads. So a run
# ends in bounded time even with an endpoint that answers a byte at a time.
ABANDON_AFTER = 60.0
# How long a claimed row is left to its run before another may take it: more than
# CLAIM_AT_ONCE attempts at the longest timeout (60 s) take.
CLAIM_LEASE = timedelta(minutes=15)
_ERROR_CHARS = 500  # of an error kept in the row


@dataclass(slots=True)
class DeliveryReport:
    """What one run did."""

    delivered: int = 0
    retrying: int = 0  # failed this time, due again later
    failed: int = 0  # gave up
    put_back: int = 0  # not attempted in this run (its lane was failing, busy or stopped)

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed

    def __str__(self) -> str:
        text = (f"{self.delivered} delivered, {self.retrying} to retry, "
                f"{self.failed} failed for good")
        return text + (f", {self.put_back} left for the next run" if self.put_back else "")


def backoff(attempts: int, settings: OutboxSettings, rng: random.Random | None = None) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: backoff_first doubling up to
    backoff_max, drawn from the upper half of that (jitter spreads rows that failed
    together, e.g. during one outage of the endpoint, instead of retrying them in a burst)."""
    ceiling = min(settings.backoff_max, settings.backoff_first * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def deliver_due(ledger: Ledger, senders: Mapping[str, Sender], now: datetime | None = None, *,
                settings: OutboxSettings = OutboxSettings(),  # noqa: B008 - frozen
                stop: threading.Event | None = None,
                rng: random.Random | None = None) -> DeliveryReport:
    """Attempt every row due at `now` (default: the current time) once. Raises LedgerError
    when the database fails; a failed delivery only reschedules its row.

    Rows go out in lanes, one per destination (a webhook endpoint's scheme, host and port;
    the DSN channel's SMTP server), each in a thread of its own, one row at a time: a slow
    or hanging endpoint holds up its own rows only. A lane whose attempt failed takes no
    more rows in this run (they wait for the next one instead of each waiting out the same
    timeout), nor does one that has been at it for `interval` seconds (LANE_SECONDS at
    least); rows a lane does not attempt are put back, due in the next run, their attempts
    uncounted. An attempt still without an answer ABANDON_AFTER seconds after that is left
    to its thread, which records it when it ends; meanwhile later runs leave its
    destination's rows alone. When `stop` is set the run ends within about STOP_GRACE
    seconds: rows not attempted, and attempts still waiting for an answer, are put back as
    they were, due again at the next start (an endpoint may see an id twice).
    """
    now = now or datetime.now(UTC)
    report = DeliveryReport()
    run = _Run(ledger, senders, now, settings, rng, report,
               time.monotonic() + max(settings.interval, LANE_SECONDS))
    try:
        run.deliver(stop)
    finally:
        run.close()
    if report.attempted or report.put_back:
        log.info("outbox: %s", report)
    return report


@dataclass(slots=True)
class _Done:
    """What a lane did with a row: attempted (error None: delivered), or not (put_back)."""

    item: OutboxItem
    error: BaseException | None = None
    put_back: bool = False
    # Set once the run has recorded it: a lane's next attempt waits for that, so that a
    # sender reading the outbox (the DSN rate limit) sees the lane's last delivery.
    recorded: threading.Event = field(default_factory=threading.Event)


def lane_of(item: OutboxItem) -> str:
    """The destination a row is delivered to, for lanes: rows of one go one at a time."""
    if item.channel == "webhook":
        parts = urlsplit(item.target)  # never its user name, password or query
        try:
            port = parts.port or ""
        except ValueError:  # not a number: the attempt will say so
            port = "?"
        return f"webhook {parts.scheme}://{parts.hostname}:{port}".lower()
    return item.channel


class _Lane:
    """The rows of one destination, attempted in order by a thread of its own while it has
    rows. Only the sender runs there; the outcomes go back to the run, which records them
    (the run's thread is the one that writes to the ledger), unless the run has given up
    waiting for this lane's attempt: then the thread records its outcome itself."""

    def __init__(self, run: _Run, key: str) -> None:
        self.run, self.key = run, key
        self.rows: deque[OutboxItem] = deque()
        self.lock = threading.Lock()
        self.running = False
        self.failed = False  # an attempt failed in this run: the rest waits for the next

    def add(self, item: OutboxItem) -> bool:
        """Queue a row; False when the lane has enough waiting already."""
        with self.lock:
            if len(self.rows) >= LANE_QUEUE:
                return False
            self.rows.append(item)
            if not self.running:
                self.running = True
                threading.Thread(target=self._work, name=f"outbox {self.key}",
                                 daemon=True).start()
        return True

    def take_waiting(self) -> list[OutboxItem]:
        with self.lock:
            waiting = list(self.rows)
            self.rows.clear()
        return waiting

    def _work(self) -> None:
        run = self.run
        try:
            while True:
                with self.lock:
                    if not self.rows:
                        self.running = False
                        return
                    item = self.rows.popleft()
                if run.ending or self.failed or time.monotonic() > run.lane_deadline:
                    run.done.put(_Done(item, put_back=True))
                    continue
                with _busy_lock:
                    _busy[self.key] = _busy.get(self.key, 0) + 1
                try:
                    error = _deliver(run.senders, item)
                finally:
                    with _busy_lock:
                        _busy[self.key] -= 1
                done = _Done(item, error)
                if not run.hand_back(done):
                    return
                if error is not None and getattr(error, "retry_at", None) is None:
                    self.failed = True
                while not done.recorded.wait(0.1) and not run.ending:
                    pass
        finally:
            # A sender may read the database (the DSN rate limit), and a late outcome is
            # written here: this thread's connection is closed with the thread.
            with suppress(Exception):
                run.ledger.close()


# Destinations with an attempt under way, over all runs (an attempt a run gave up waiting
# for goes on in its thread): a later run leaves their rows for after it.
_busy: dict[str, int] = {}
_busy_lock = threading.Lock()


class _Run:
    """One delivery run: claims rows, hands them to their lanes, records the outcomes."""

    def __init__(self, ledger: Ledger, senders: Mapping[str, Sender], now: datetime,
                 settings: OutboxSettings, rng: random.Random | None, report: DeliveryReport,
                 lane_deadline: float) -> None:
        self.ledger, self.senders, self.now = ledger, senders, now
        self.settings, self.rng, self.report = settings, rng, report
        self.lane_deadline = lane_deadline
        self.lanes: dict[str, _Lane] = {}
        self.done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        self.outstanding: dict[int, OutboxItem] = {}  # handed to a lane, no outcome yet
        self.ending = False  # stopped, failed or given up: the lanes take no more rows
        self.stopped = False  # by `stop`: the process is going away
        self.gone = False  # returned: outcomes that come now are the lanes' to record
        self.lock = threading.Lock()
        # Put back for the next run: just after this run's `now`, so not claimed again in it.
        self.next_run = now + timedelta(milliseconds=1)

    def deliver(self, stop: threading.Event | None) -> None:
        claimed_all = False
        give_up_at = self.lane_deadline + ABANDON_AFTER
        while stop is None or not stop.is_set():
            if not claimed_all and len(self.outstanding) < MAX_OUTSTANDING:
                # `now` stays fixed for the run: a row rescheduled by it is not due again in it.
                items = self.ledger.outbox.claim(self.now, CLAIM_AT_ONCE, CLAIM_LEASE)
                claimed_all = not items
                for item in items:
                    self._hand_out(item)
                while True:  # what is done meanwhile, without waiting
                    try:
                        self._record(self.done.get_nowait())
                    except queue.Empty:
                        break
                continue
            if not self.outstanding or time.monotonic() > give_up_at:
                return
            try:
                self._record(self.done.get(timeout=0.05))  # wakes to look at `stop`
            except queue.Empty:
                continue
        self.stopped = True

    def hand_back(self, done: _Done) -> bool:
        """From a lane: an outcome. False when the run is gone: recorded here and now (or,
        after a stop, dropped: the row was put back, due again at the next start)."""
        with self.lock:
            if not self.gone:
                self.done.put(done)
                return True
        if not self.stopped:
            with suppress(LedgerError):
                _record(self.ledger, done.item, done.error, self.now, self.settings, self.rng,
                        DeliveryReport())
        return False

    def _hand_out(self, item: OutboxItem) -> None:
        key = lane_of(item)
        lane = self.lanes.get(key)
        if lane is None:
            with _busy_lock:
                busy = _busy.get(key, 0) > 0
            if busy:  # an earlier run's attempt is still under way there
                self._put_back(item, self.next_run)
                return
            lane = self.lanes[key] = _Lane(self, key)
        if lane.add(item):
            self.outstanding[item.id] = item
        else:
            self._put_back(item, self.next_run)

    def close(self) -> None:
        """The run ends: the lanes take no more rows (those waiting are put back); outcomes
        that come within STOP_GRACE are recorded. Then, stopped: the rows still waiting for
        an answer are put back as they were, due at the next start. Else (the lanes took too
        long, or the database failed): they stay claimed, their threads record them."""
        self.ending = True
        for lane in self.lanes.values():
            for item in lane.take_waiting():
                self.outstanding.pop(item.id, None)
                with suppress(LedgerError):
                    self._put_back(item, item.next_attempt_at if self.stopped
                                   else self.next_run)
        deadline = time.monotonic() + STOP_GRACE
        while self.outstanding and time.monotonic() < deadline:
            try:
                done = self.done.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            with suppress(LedgerError):
                self._record(done)
        with self.lock:
            self.gone = True
        while True:  # handed back before `gone`
            try:
                done = self.done.get_nowait()
            except queue.Empty:
                break
            with suppress(LedgerError):
                self._record(done)
        for item in list(self.outstanding.values()):  # still waiting for an answer
            if self.stopped:
                with suppress(LedgerError):
                    self._put_back(item, item.next_attempt_at)
                log.info("outbox: #%s to %s: stopped waiting for its answer; due again at "
                         "the next start", item.id, _shown(item))
            else:
                log.warning("outbox: #%s to %s: no outcome after %.0f s; left to its attempt "
                            "(its endpoint's other notifications wait for it)", item.id,
                            _shown(item), ABANDON_AFTER)
        self.outstanding.clear()

    def _record(self, done: _Done) -> None:
        item = done.item
        self.outstanding.pop(item.id, None)
        try:
            if done.put_back:
                # Stopping: due at once at the next start; else in the next run.
                self._put_back(item, item.next_attempt_at if self.stopped else self.next_run)
            else:
                _record(self.ledger, item, done.error, self.now, self.settings, self.rng,
                        self.report)
        finally:
            done.recorded.set()

    def _put_back(self, item: OutboxItem, due: datetime) -> None:
        self.ledger.outbox.mark_failed(item.id, attempts=item.attempts, next_attempt_at=due,
                                       error=item.last_error, give_up=False)
        self.report.put_back += 1


def _deliver(senders: Mapping[str, Sender], item: OutboxItem) -> BaseException | None:
    """One attempt: None when delivered, else what went wrong."""
    sender = senders.get(item.channel)
    try:
        if sender is None:
            raise DeliveryError(f"nothing configured delivers {item.channel!r} notifications")
        sender(item)
    except DeliveryError as err:
        return err
    except Exception as err:  # a sender's bug must not stop the other rows
        log.exception("outbox: #%s: the %s sender failed", item.id, item.channel)
        return err
    return None


def _record(ledger: Ledger, item: OutboxItem, failure: BaseException | None, now: datetime,
            settings: OutboxSettings, rng: random.Random | None,
            report: DeliveryReport) -> None:
    attempts = item.attempts + 1
    if failure is None:
        ledger.outbox.mark_delivered(item.id, datetime.now(UTC), attempts=attempts)
        report.delivered += 1
        log.info("outbox: #%s %s delivered to %s (attempt %d)", item.id, item.event_type,
                 _shown(item), attempts)
        return
    if isinstance(failure, DeliveryError):
        retry_at = getattr(failure, "retry_at", None)  # e.g. dsn.DsnDeferred: a rate limit
        if retry_at is not None:  # not a failed attempt: the row waits until then, uncounted
            ledger.outbox.mark_failed(item.id, attempts=item.attempts, next_attempt_at=retry_at,
                                      error=str(failure)[:_ERROR_CHARS], give_up=False)
            report.retrying += 1
            log.info("outbox: #%s %s to %s deferred until %s: %s", item.id, item.event_type,
                     _shown(item), retry_at.isoformat(), failure)
            return
        error, give_up = str(failure), failure.permanent
    else:
        error, give_up = f"{type(failure).__name__}: {failure}", False
    give_up = give_up or attempts >= settings.max_attempts
    delay = backoff(attempts, settings, rng)
    next_at = now + timedelta(seconds=delay)  # from the run's start: not due again in it
    ledger.outbox.mark_failed(item.id, attempts=attempts, next_attempt_at=next_at,
                              error=error[:_ERROR_CHARS], give_up=give_up)
    if give_up:
        report.failed += 1
        log.warning("outbox: #%s %s to %s failed for good after %d attempt(s): %s "
                    "(imap-bouncer outbox retry %s)", item.id, item.event_type, _shown(item),
                    attempts, error, item.id)
    else:
        report.retrying += 1
        log.warning("outbox: #%s %s to %s: attempt %d of %d failed: %s; next in %.0f s",
                    item.id, item.event_type, _shown(item), attempts, settings.max_attempts,
                    error, delay)


def _shown(item: OutboxItem) -> str:
    return where(item.target) if item.channel == "webhook" else item.target


class OutboxJob:
    """The scheduled delivery job: one run at a time (the scheduler's max_instances=1), its
    faults logged, never raised into the scheduler."""

    def __init__(self, ledger: Ledger, senders: Mapping[str, Sender],
                 settings: OutboxSettings) -> None:
        self.ledger, self.senders, self.settings = ledger, senders, settings

    @property
    def interval(self) -> float:
        return self.settings.interval

    def run(self, stop: threading.Event | None = None) -> DeliveryReport | None:
        try:
            return deliver_due(self.ledger, self.senders, settings=self.settings, stop=stop)
        except LedgerError as err:
            log.warning("outbox: database unavailable: %s; next try in %g s", err,
                        self.settings.interval)
            return None


__all__ = ["DeliveryReport", "OutboxJob", "backoff", "deliver_due"]
