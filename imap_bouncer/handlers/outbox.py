"""Delivering the outbox: each due row to its channel's sender, with retries and backoff.

`deliver_due` is what the scheduled job (service.Runner), `once` and `imap-bouncer outbox
deliver` run. Per row: claim it (so that no other run, in this process or another, attempts it
at the same time), attempt it once, then record the outcome: delivered, or failed and due
again after a backoff (`backoff_first` seconds doubling up to `backoff_max`, with jitter),
or, after `max_attempts` attempts, failed for good (`imap-bouncer outbox retry` revives it).
A run crashing mid-attempt leaves the row claimed; it is due again when the claim lapses.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..ledger import Ledger, LedgerError, OutboxItem
from ..settings import OutboxSettings
from . import DeliveryError, Sender
from .webhooks import where

log = logging.getLogger(__name__)

CLAIM_AT_ONCE = 10  # rows claimed per round trip to the database
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

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed

    def __str__(self) -> str:
        return (f"{self.delivered} delivered, {self.retrying} to retry, "
                f"{self.failed} failed for good")


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
    when the database fails; a failed delivery only reschedules its row."""
    now = now or datetime.now(UTC)
    report = DeliveryReport()
    while stop is None or not stop.is_set():
        # `now` stays fixed for the run: a row rescheduled by it is not due again in it.
        items = ledger.outbox.claim(now, CLAIM_AT_ONCE, CLAIM_LEASE)
        if not items:
            break
        for item in items:
            _attempt(ledger, senders, item, now, settings, rng, report)
    if report.attempted:
        log.info("outbox: %s", report)
    return report


def _attempt(ledger: Ledger, senders: Mapping[str, Sender], item: OutboxItem, now: datetime,
             settings: OutboxSettings, rng: random.Random | None,
             report: DeliveryReport) -> None:
    attempts = item.attempts + 1
    sender = senders.get(item.channel)
    give_up = False
    try:
        if sender is None:
            raise DeliveryError(f"nothing configured delivers {item.channel!r} notifications")
        sender(item)
    except DeliveryError as err:
        retry_at = getattr(err, "retry_at", None)  # e.g. dsn.DsnDeferred: a rate limit
        if retry_at is not None:  # not a failed attempt: the row waits until then, uncounted
            ledger.outbox.mark_failed(item.id, attempts=item.attempts, next_attempt_at=retry_at,
                                      error=str(err)[:_ERROR_CHARS], give_up=False)
            report.retrying += 1
            log.info("outbox: #%s %s to %s deferred until %s: %s", item.id, item.event_type,
                     _shown(item), retry_at.isoformat(), err)
            return
        error, give_up = str(err), err.permanent
    except Exception as err:  # a sender's bug must not stop the other rows
        log.exception("outbox: #%s: the %s sender failed", item.id, item.channel)
        error = f"{type(err).__name__}: {err}"
    else:
        ledger.outbox.mark_delivered(item.id, datetime.now(UTC), attempts=attempts)
        report.delivered += 1
        log.info("outbox: #%s %s delivered to %s (attempt %d)", item.id, item.event_type,
                 _shown(item), attempts)
        return
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
