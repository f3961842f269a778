"""The only writer to the database: messages, their per-recipient events, and moves.

The service hands in plain dataclasses (`MessageItem`, holding the analyzer's `Report`) and gets
plain dataclasses back (`Recorded`); it never sees a peewee object. A pass over a mailbox goes:

    recorded = ledger.find_recorded(mailbox, uidvalidity, uids)   # already done: only move
    ... fetch and analyze the others ...
    results = ledger.record_batch(items)                          # ONE transaction per batch
    ... move each to results[i].target_folder ...
    ledger.mark_moved(mailbox, uidvalidity, moved_uids)

Recording is idempotent. A message already recorded under the same mailbox + UIDVALIDITY + UID
is not recorded again (its stored row is returned). A message whose raw bytes (sha256) are
already recorded in the same mailbox under another UIDVALIDITY (the folder was recreated or
renumbered) is the same message at a new address: the stored row is moved to the new UIDVALIDITY
and UID, marked not moved, and no new events are written. (The same bytes at a new UID under
the *same* UIDVALIDITY are a deliberate re-append, e.g. a person moving a message back from the
error folder to retry it: that is recorded anew.) `find_by_sha256` lets the service skip the
analysis for such messages: an item with `report=None` is enough to relocate them.

Every database error raises `LedgerError` chained to the original; a batch that fails leaves
nothing behind.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Any, TypeVar

import peewee
from peewee import Database, PostgresqlDatabase, SqliteDatabase, fn

from . import models, notifications, policy, review, verp
from .analysis.addresses import normalize_address
from .models import AddressState, Event, Message, Storm, Transition
from .notifications import NotificationSettings, OutboxRow
from .policy import Policy, SendState, State
from .report import Kind, Report

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...) and rows per multi-row INSERT, well inside SQLite's limits
_T = TypeVar("_T")


class LedgerError(Exception):
    """The database could not be read or written; `__cause__` holds the driver's error."""


def is_database_fault(err: BaseException) -> bool:
    """Whether an error recording messages is the database's own (unreachable, locked, gone
    away: worth retrying later as it is) rather than one message's (a value the database
    refuses, or a bug any exception but a LedgerError is: retrying the same cannot help)."""
    if not isinstance(err, LedgerError):
        return False
    cause = err.__cause__
    return cause is None or isinstance(cause, peewee.OperationalError | peewee.InterfaceError
                                       | peewee.InternalError)


@dataclass(frozen=True, slots=True)
class MessageItem:
    """One message to record: where it is, its bytes, and what the analysis said.

    `sha256` and `size` are computed from `raw` when not given. `raw` is stored only when the
    ledger was opened with store_raw. `report` is None when the analysis failed (give the why in
    `errors`) or was skipped for a message `find_by_sha256` already knows.
    """

    mailbox: str
    uidvalidity: int
    uid: int
    target_folder: str
    raw: bytes | None = None
    report: Report | None = None
    errors: Sequence[str] = ()
    message_id: str = ""  # the message's own Message-ID header
    internal_date: datetime | None = None
    received_at: datetime | None = None  # when fetched; default: now
    analyzer_version: str = ""
    sha256: str | None = None
    size: int | None = None

    def digest(self) -> str | None:
        if self.sha256:
            return self.sha256.lower()
        return hashlib.sha256(self.raw).hexdigest() if self.raw is not None else None


@dataclass(frozen=True, slots=True)
class Recorded:
    """A message as stored. `created`: recorded by this call; `relocated`: found by its
    sha256 under another UIDVALIDITY and given this new address."""

    id: int
    mailbox: str
    uidvalidity: int
    uid: int
    sha256: str | None
    message_id: str
    kind: str | None
    target_folder: str
    moved: bool
    moved_at: datetime | None
    errors: tuple[str, ...] = ()
    created: bool = False
    relocated: bool = False


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A message a person filed in a review folder, with their verdict (review.py).

    `message` says where it is (its own place: the service records review folders under a
    mailbox name of their own), its bytes, its target folder and, as `report`, what the
    verdict makes of it (`review.verdict_report`): its recipients become the events.
    """

    message: MessageItem
    verdict: str  # review.Verdict: hard, soft, ignore
    folder: str = ""  # the review folder, noted with the changes


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A recorded event, as the policy and the notifications see it."""

    id: int
    message_pk: int
    mailbox: str
    bounce_message_id: str  # the Message-ID of the bounce that reported it
    kind: str
    address: str
    action: str
    status: str
    smtp_code: str
    reason: str
    permanent: bool
    diagnostic: str
    remote_mta: str
    original_message_id: str
    original_from: str
    sender_domain: str
    list_id: str
    verp_recipient: str
    recipient_domain: str
    created_at: datetime
    original_subject: str = ""
    original_date: str = ""
    original_automatic: str = ""  # the original's header marking it automatic, or ""
    signed: str = ""  # what signatures prove about this recipient (verp.VERP, ID, ...)
    signed_day: int = 0  # the day it was signed (verp.day_of)
    proof_note: str = ""


@dataclass(frozen=True, slots=True)
class StateChange:
    """An address's state changed (recorded as a Transition)."""

    address: str
    from_state: str
    to_state: str
    cause: str  # event, manual, expiry, review
    reason: str
    at: datetime
    event_id: int | None = None
    transition_id: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class StormAlert:
    """Refusals for many addresses at one destination domain within the storm window: the
    ledger opened a Storm row for it (one alert per storm, however long it lasts)."""

    id: int  # the Storm row
    domain: str
    started_at: datetime
    refusals: int  # distinct addresses refused within the window
    reasons: tuple[str, ...]
    addresses: tuple[str, ...]  # the refused addresses (at most _STORM_SAMPLE of them)


class _JsonView:
    """What people and scripts are shown: every field, JSON-ready."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class AddressInfo(_JsonView):
    """An address's send state as people and scripts see it. `state` is the state now (an
    unreachable address whose time is up reads active even before the row is updated);
    `stored_state` is what the row says."""

    address: str
    state: str
    stored_state: str
    suppressed: bool
    soft_count: int
    soft_since: datetime | None
    last_soft_at: datetime | None
    hard_count: int
    first_hard_at: datetime | None
    last_event_at: datetime | None
    suppressed_until: datetime | None
    reason: str
    note: str
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventView(_JsonView):
    """A recorded event with the bounce that reported it."""

    id: int
    message_pk: int
    mailbox: str
    bounce_message_id: str
    analyzer: str
    kind: str
    address: str
    action: str
    status: str
    smtp_code: str
    reason: str
    permanent: bool
    diagnostic: str
    remote_mta: str
    evidence: str
    original_message_id: str
    original_from: str
    sender_domain: str
    list_id: str
    recipient_domain: str
    created_at: datetime
    signed: str = ""
    proof_note: str = ""
    held: str = ""  # why require_signed kept it from changing the address's state


@dataclass(frozen=True, slots=True)
class TransitionView(_JsonView):
    """A recorded change of an address's state."""

    id: int
    address: str
    from_state: str
    to_state: str
    cause: str
    reason: str
    event_id: int | None
    actor: str
    note: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Explanation:
    """One recorded message and what was made of it: for `imap-bouncer explain`."""

    id: int
    mailbox: str
    uidvalidity: int
    uid: int
    message_id: str
    kind: str | None
    analyzer: str
    analyzer_version: str
    feedback_type: str
    target_folder: str
    processed_at: datetime
    errors: tuple[str, ...]
    events: tuple[EventView, ...]
    transitions: tuple[TransitionView, ...]
    raw: bytes | None  # when the database keeps raw messages (store_raw)

    def to_dict(self) -> dict[str, Any]:
        data = {name: _plain(getattr(self, name)) for name in self.__slots__
                if name not in ("events", "transitions", "raw")}
        data["events"] = [e.to_dict() for e in self.events]
        data["transitions"] = [t.to_dict() for t in self.transitions]
        data["raw_stored"] = self.raw is not None
        return data


@dataclass(slots=True)
class _Batch:
    """Bookkeeping for one record_batch call."""

    by_key: dict[tuple[str, int, int], Recorded] = field(default_factory=dict)
    by_sha: dict[tuple[str, str], list[Message]] = field(default_factory=dict)


class Ledger:
    """Reads and writes the record of messages and events in one database."""

    def __init__(self, db: Database, *, store_raw: bool = False,
                 policy: Policy = Policy(),  # noqa: B008 - frozen, shared safely
                 notifications: NotificationSettings | None = None) -> None:
        self.db = db
        # What to notify (the settings' [[webhooks]]; the whole Settings will do): None or no
        # endpoints, no webhook rows are planned. `outbox` reads and updates the rows.
        self.notifications = notifications
        self.outbox = OutboxQueue(self)
        self.store_raw = store_raw
        self.policy = policy
        # The storms the current recording transaction opened (see _apply_policy).
        self.batch_storms: list[StormAlert] = []
        models.bind(db)

    @classmethod
    def open(cls, url: str, *, store_raw: bool = False, upgrade: bool = True,
             policy: Policy = Policy(),  # noqa: B008 - frozen
             notifications: NotificationSettings | None = None, **params: Any) -> Ledger:
        """Connect to a database URL, upgrading its schema (or checking it when not upgrade)."""
        try:
            db = models.open_database(url, upgrade_schema=upgrade, **params)
        except models.SchemaError as err:
            raise LedgerError(str(err)) from err
        except peewee.PeeweeException as err:
            raise LedgerError(f"cannot open the database: {_describe(err)}") from err
        return cls(db, store_raw=store_raw, policy=policy, notifications=notifications)

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    # -- writing ------------------------------------------------------------------------------

    def record_batch(self, items: Sequence[MessageItem]) -> list[Recorded]:
        """Record the messages and their events in one transaction; one result per item.

        Idempotent (see the module docstring). Raises LedgerError, having written nothing.
        """
        if not items:
            return []
        for attempt in (1, 2):
            try:
                with self._errors("record a batch"), self._write():
                    return self._record(items)
            except LedgerError as err:
                # Another writer recorded one of these messages between our look-up and our
                # insert: the second attempt finds its row. Any other error is final.
                if attempt == 2 or not _is_unique_violation(err.__cause__):
                    raise
                log.warning("ledger: batch collided with another writer, retrying: %s", err)
        raise AssertionError("unreachable")

    def mark_moved(self, mailbox: str, uidvalidity: int, uids: Iterable[int],
                   at: datetime | None = None) -> int:
        """Note that these messages now sit in their target folder; returns how many rows."""
        uids = sorted(set(uids))
        at = at or datetime.now(UTC)
        count = 0
        with self._errors("mark messages moved"), self._write():
            for chunk in _chunks(uids):
                count += (Message.update(moved=True, moved_at=at)
                          .where((Message.mailbox == mailbox)
                                 & (Message.uidvalidity == uidvalidity)
                                 & Message.uid.in_(chunk))
                          .execute())
        return count

    def find_unmoved(self, mailbox: str, uidvalidity: int) -> list[int]:
        """The UIDs of this mailbox's rows still waiting for their move, ascending."""
        with self._errors("look up messages not yet moved"):
            query = (Message.select(Message.uid)
                     .where((Message.mailbox == mailbox) & (Message.uidvalidity == uidvalidity)
                            & (Message.moved == False))  # noqa: E712 - SQL, not Python
                     .order_by(Message.uid).tuples())
            return [uid for (uid,) in query]

    def mark_moved_ids(self, ids: Iterable[int], at: datetime | None = None) -> int:
        """Note that these rows' messages now sit in their target folder, by row id: for
        messages filed from somewhere other than where they were recorded (reprocess)."""
        ids = sorted(set(ids))
        at = at or datetime.now(UTC)
        count = 0
        with self._errors("mark messages moved"), self._write():
            for chunk in _chunks(ids):
                count += (Message.update(moved=True, moved_at=at)
                          .where(Message.id.in_(chunk)).execute())
        return count

    def record_review(self, items: Sequence[ReviewItem]) -> list[Recorded]:
        """Record reviewed messages and apply their verdicts, in one transaction; one result
        per item.

        Each message is recorded like record_batch records one, idempotently: a message
        already recorded at its place (or, by its bytes, under another UIDVALIDITY) is
        returned as stored and its verdict is not applied again. For a new one (`created`),
        an event per recipient of its verdict report, then `review.judge` per event (not the
        policy's own step: the verdict decides), a Transition per change (cause "review"),
        and the webhooks about those events and changes (no delivery report to the original
        sender: a person's verdict is not the remote server's). Raises LedgerError, having
        written nothing.
        """
        if not items:
            return []
        return self._write_retrying("record reviewed messages",
                                    lambda: self._record_reviews(items))

    def record_reanalysis(self, items: Sequence[MessageItem], mailbox: str) -> list[Recorded]:
        """Record messages analyzed again (reprocess) and recognised now, in one transaction;
        one result per item.

        An item's bytes already recorded in `mailbox` (or at the item's own place) under a row
        still unrecognised (kind unknown, or not analyzed): that row takes the new analysis
        (kind, analyzer, version, errors, target folder; not moved) and gets its events, and
        the policy and notifications follow as for any new events; `created` is True. A row
        already recognised: returned as stored (only to be moved). Bytes never recorded: the
        item is recorded at its own place, like record_batch. Raises LedgerError, having
        written nothing.
        """
        if not items:
            return []
        return self._write_retrying("record messages analyzed again",
                                    lambda: self._record_reanalyses(items, mailbox))

    # -- reading ------------------------------------------------------------------------------

    def find_recorded(self, mailbox: str, uidvalidity: int,
                      uids: Iterable[int]) -> dict[int, Recorded]:
        """The messages among `uids` already recorded, by UID."""
        uids = sorted(set(uids))
        found: dict[int, Recorded] = {}
        with self._errors("look up messages"):
            for chunk in _chunks(uids):
                query = Message.select(*_SUMMARY).where(
                    (Message.mailbox == mailbox) & (Message.uidvalidity == uidvalidity)
                    & Message.uid.in_(chunk))
                for row in query:
                    found[row.uid] = _recorded(row)
        return found

    def find_by_sha256(self, mailbox: str, digests: Iterable[str]) -> dict[str, Recorded]:
        """The messages of this mailbox with these raw-byte sha256 digests (the latest each)."""
        digests = sorted({d.lower() for d in digests if d})
        found: dict[str, Recorded] = {}
        with self._errors("look up messages by sha256"):
            for chunk in _chunks(digests):
                query = (Message.select(*_SUMMARY)
                         .where((Message.mailbox == mailbox) & Message.sha256.in_(chunk))
                         .order_by(Message.id))
                for row in query:
                    found[row.sha256] = _recorded(row)  # later ids overwrite earlier ones
        return found

    # -- send state: what people read and change ----------------------------------------------

    def address_state(self, address: str, now: datetime | None = None) -> AddressInfo | None:
        """The send state of one address, or None when nothing was ever recorded for it."""
        address = normalize_address(address) or address.strip()
        with self._errors("read an address's state"):
            row = AddressState.get_or_none(AddressState.address == address)
        return None if row is None else _info(row, now or datetime.now(UTC), self.policy)

    def list_addresses(self, states: Iterable[str] = (), limit: int | None = None,
                       now: datetime | None = None) -> list[AddressInfo]:
        """Addresses in these states now (all when none given), the latest changed first."""
        now = now or datetime.now(UTC)
        wanted = {str(State(s)) for s in states}
        query = AddressState.select().order_by(AddressState.updated_at.desc(),
                                               AddressState.address)
        if wanted:
            # Time may have moved an unreachable or soft_bouncing row to active.
            stored = wanted | ({State.UNREACHABLE, State.SOFT_BOUNCING}
                               if State.ACTIVE in wanted else set())
            query = query.where(AddressState.state.in_(sorted(stored)))
        found: list[AddressInfo] = []
        with self._errors("list addresses"):
            for row in query.iterator():
                info = _info(row, now, self.policy)
                if not wanted or info.state in wanted:
                    found.append(info)
                    if limit is not None and len(found) >= limit:
                        break
        return found

    def export(self, states: Iterable[str] = (State.INVALID, State.UNREACHABLE,
                                              State.COMPLAINED),
               now: datetime | None = None) -> list[AddressInfo]:
        """Every address in these states now (by default the ones to suppress), by address."""
        return sorted(self.list_addresses(states, now=now), key=lambda info: info.address)

    def transitions(self, address: str) -> list[TransitionView]:
        """Every recorded change of an address's state, oldest first."""
        address = normalize_address(address) or address.strip()
        with self._errors("read transitions"):
            query = (Transition.select().where(Transition.address == address)
                     .order_by(Transition.id))
            return [_transition_view(row) for row in query]

    def events(self, address: str | None = None, since: datetime | None = None,
               limit: int | None = 100) -> list[EventView]:
        """Recorded events, the latest first: of one address, since a time, at most limit."""
        query = _event_query().order_by(Event.id.desc())
        if address:
            query = query.where(Event.address == (normalize_address(address)
                                                  or address.strip()))
        if since is not None:
            query = query.where(Event.created_at >= since)
        if limit is not None:
            query = query.limit(limit)
        with self._errors("read events"):
            return [_event_view(row) for row in query.objects()]

    def explain(self, ident: str) -> list[Explanation]:
        """The recorded messages `ident` names, with their events and the changes they made.

        `ident` is a database id, or a Message-ID (with or without <>): the bounce's own, or,
        when no bounce has it, the original message's that bounced. Several rows may match
        (the same message in several mailboxes); none: an empty list.
        """
        ident = ident.strip()
        with self._errors("look up a message"):
            if ident.isdigit():
                rows = list(Message.select().where(Message.id == int(ident)))
            else:
                wanted = ident if ident.startswith("<") else f"<{ident}>"
                variants = sorted({wanted, wanted.strip("<>")})
                rows = list(Message.select().where(Message.message_id.in_(variants))
                            .order_by(Message.id))
                if not rows:
                    pks = (Event.select(Event.message)
                           .where(Event.original_message_id.in_(variants)))
                    rows = list(Message.select().where(Message.id.in_(pks))
                                .order_by(Message.id))
            return [self._explanation(row) for row in rows]

    def manual_change(self, address: str, action: str, note: str,
                      actor: str = "") -> StateChange:
        """A person's change (policy.manual: reset, hold, release, persist) with their words,
        recorded as a Transition, notified like any change, all in one transaction.

        Raises policy.PolicyError when the change makes no sense (e.g. release an address that
        is not held, or an empty note), LedgerError when the database fails.
        """
        clean = normalize_address(address)
        if not clean:
            raise policy.PolicyError(f"not an address: {address!r}")
        if not note.strip():
            raise policy.PolicyError("a reason is required")
        now = datetime.now(UTC)
        with self._errors("change an address's state"), self._write():
            self.batch_storms = []
            rows = self._lock_states([clean])
            state = _send_state(rows[clean]) if clean in rows else SendState()
            state, expired = policy.expire(state, self.policy, now)
            state, change = policy.manual(state, action, now, note.strip())
            self._save_states({clean: state}, rows, now)
            made = [_state_change(clean, c, now, None) for c in (expired, change)
                    if c is not None]
            changes = self._insert_transitions(made, actor=actor)
            self._plan_notifications([], changes, now)
        log.info("address %s: %s -> %s by %s (%s): %s", clean, changes[-1].from_state,
                 changes[-1].to_state, actor or "?", action, note.strip())
        return changes[-1]

    def expire_due(self, now: datetime | None = None) -> list[StateChange]:
        """Write the changes time alone has made (unreachable addresses whose time is up,
        soft counts after the quiet period) and notify them: for a scheduled job. Reads
        already show them (`AddressInfo.state`); this makes them recorded facts."""
        now = now or datetime.now(UTC)
        quiet = now - timedelta(days=self.policy.soft_reset_days)
        with self._errors("expire address states"), self._write():
            self.batch_storms = []
            due = [row.address for row in AddressState.select(AddressState.address).where(
                ((AddressState.state == State.UNREACHABLE)
                 & (AddressState.suppressed_until.is_null()
                    | (AddressState.suppressed_until <= now)))
                | ((AddressState.state == State.SOFT_BOUNCING)
                   & (AddressState.last_soft_at.is_null()
                      | (AddressState.last_soft_at <= quiet))))]
            rows = self._lock_states(due)
            states: dict[str, SendState] = {}
            made: list[StateChange] = []
            for address, row in rows.items():
                state, change = policy.expire(_send_state(row), self.policy, now)
                if change is not None:
                    states[address] = state
                    made.append(_state_change(address, change, now, None))
            self._save_states(states, rows, now)
            changes = self._insert_transitions(made, actor="")
            if changes:
                self._plan_notifications([], changes, now)
        return changes

    # -- internals ----------------------------------------------------------------------------

    def _write_retrying(self, doing: str, work: Any) -> Any:
        """`work()` in a write transaction; once more after a unique violation (another
        writer recorded the same thing meanwhile: the second attempt finds its rows)."""
        for attempt in (1, 2):
            try:
                with self._errors(doing), self._write():
                    return work()
            except LedgerError as err:
                if attempt == 2 or not _is_unique_violation(err.__cause__):
                    raise
                log.warning("ledger: collided with another writer, retrying: %s", err)
        raise AssertionError("unreachable")

    def _record_reviews(self, items: Sequence[ReviewItem]) -> list[Recorded]:
        now = datetime.now(UTC)
        self.batch_storms = []
        # The message rows the usual way, without events: those come from the verdict.
        results = self._record([replace(item.message, report=_without_recipients(
            item.message.report)) for item in items])
        judged = {result.id: item for item, result in zip(items, results, strict=True)
                  if result.created and item.message.report is not None
                  and item.message.report.recipients}
        if not judged:
            return results
        self._bulk_insert(Event, [row for pk, item in judged.items()
                                  for row in _event_rows(pk, item.message.report, now)])
        events = self._load_events(sorted(judged))
        addressed = [event for event in events if event.address]  # "" names nobody to judge
        rows = self._lock_states(sorted({event.address for event in addressed}))
        states = {address: _send_state(row) for address, row in rows.items()}
        made: list[StateChange] = []
        for event in addressed:
            item = judged[event.message_pk]
            note = f"filed in {item.folder}" if item.folder else ""
            state, changes = review.judge(states.get(event.address, SendState()),
                                          review.Verdict(item.verdict), self.policy, now, note)
            states[event.address] = state
            made.extend(_state_change(event.address, change, now,
                                      event.id if change.cause == review.CAUSE else None)
                        for change in changes)
        self._save_states(states, rows, now)
        changes = self._insert_transitions(made, actor="")
        self._insert_outbox(notifications.plan(events, changes, [], self.notifications, now),
                            now)
        for change in changes:
            log.info("address %s: %s -> %s (%s, %s)", change.address, change.from_state,
                     change.to_state, change.reason, change.note or change.cause)
        return results

    def _record_reanalyses(self, items: Sequence[MessageItem], mailbox: str) -> list[Recorded]:
        now = datetime.now(UTC)
        places = sorted({mailbox} | {item.mailbox for item in items})
        digests = sorted({digest for item in items if (digest := item.digest())})
        by_sha: dict[str, list[Message]] = {}
        for chunk in _chunks(digests):
            query = (Message.select(*_SUMMARY)
                     .where(Message.mailbox.in_(places) & Message.sha256.in_(chunk))
                     .order_by(Message.id.desc()))
            for row in query:
                by_sha.setdefault(row.sha256, []).append(row)
        results: list[Recorded | None] = []
        updated: list[int] = []
        new: list[MessageItem] = []
        for item in items:
            rows = by_sha.get(item.digest() or "", [])
            open_rows = [row for row in rows if row.kind in (None, str(Kind.UNKNOWN))]
            if open_rows and item.report is not None:
                row = open_rows[0]
                rows.remove(row)  # each stored row takes one new analysis
                self._update_analysis(row.id, item, now)
                updated.append(row.id)
                results.append(_replace(
                    _recorded(row), kind=str(item.report.kind), target_folder=item.target_folder,
                    moved=False, moved_at=None, created=True,
                    errors=tuple(self._message_row(item, now)["errors"])))
            elif rows:
                results.append(_recorded(rows[0]))
            else:
                new.append(item)
                results.append(None)
        if updated:
            self._after_events(updated, now)  # the policy, then the notifications
        inserted = iter(self._record(new)) if new else iter(())
        return [result if result is not None else next(inserted) for result in results]

    def _update_analysis(self, pk: int, item: MessageItem, now: datetime) -> None:
        """A stored row takes a message's new analysis and its events (not yet their
        consequences: the caller runs `_after_events` once for all)."""
        values = self._message_row(item, now)
        changes = {name: values[name] for name in ("kind", "analyzer", "analyzer_version",
                                                   "feedback_type", "errors", "target_folder",
                                                   "processed_at")}
        if self.store_raw and item.raw is not None:
            changes["raw"] = item.raw
        Message.update(**changes, moved=False, moved_at=None).where(Message.id == pk).execute()
        if item.report is not None:
            self._bulk_insert(Event, _event_rows(pk, item.report, now, self._verp))

    def _record(self, items: Sequence[MessageItem]) -> list[Recorded]:
        batch = self._look_up(items)
        now = datetime.now(UTC)
        results: list[Recorded | MessageItem] = []
        new: dict[tuple[str, int, int], MessageItem] = {}
        for item in items:
            key = (item.mailbox, item.uidvalidity, item.uid)
            known = batch.by_key.get(key)
            if known is None and key not in new:
                known = self._relocate(item, batch)
                if known is None:
                    new[key] = item
                    results.append(item)  # replaced by its row once inserted
                    continue
                batch.by_key[key] = known
            elif known is None or known.created or known.relocated:
                # The same message twice in one batch: report it as stored, once.
                results.append(item if known is None else
                               _replace(known, created=False, relocated=False))
                continue
            results.append(known)
        inserted = self._insert_all(list(new.values()), now)
        seen: set[tuple[str, int, int]] = set()
        final: list[Recorded] = []
        for result in results:
            if isinstance(result, MessageItem):
                key = (result.mailbox, result.uidvalidity, result.uid)
                recorded = inserted[key]
                final.append(recorded if key not in seen else _replace(recorded, created=False))
                seen.add(key)
            else:
                final.append(result)
        return final

    def _look_up(self, items: Sequence[MessageItem]) -> _Batch:
        batch = _Batch()
        groups: dict[tuple[str, int], set[int]] = {}
        for item in items:
            groups.setdefault((item.mailbox, item.uidvalidity), set()).add(item.uid)
        for (mailbox, uidvalidity), uids in groups.items():
            for uid, recorded in self.find_recorded(mailbox, uidvalidity, uids).items():
                batch.by_key[(mailbox, uidvalidity, uid)] = recorded
        wanted: dict[str, set[str]] = {}
        for item in items:
            digest = item.digest()
            if digest and (item.mailbox, item.uidvalidity, item.uid) not in batch.by_key:
                wanted.setdefault(item.mailbox, set()).add(digest)
        for mailbox, digests in wanted.items():
            for chunk in _chunks(sorted(digests)):
                query = (Message.select(*_SUMMARY)
                         .where((Message.mailbox == mailbox) & Message.sha256.in_(chunk))
                         .order_by(Message.id.desc()))
                for row in query:
                    batch.by_sha.setdefault((mailbox, row.sha256), []).append(row)
        return batch

    def _relocate(self, item: MessageItem, batch: _Batch) -> Recorded | None:
        """The same bytes recorded under another UIDVALIDITY: move that row here."""
        digest = item.digest()
        rows = batch.by_sha.get((item.mailbox, digest), []) if digest else []
        for row in rows:
            if row.uidvalidity == item.uidvalidity:
                continue  # a re-append in the same folder: record anew
            rows.remove(row)  # each stored row is relocated at most once
            (Message.update(uidvalidity=item.uidvalidity, uid=item.uid, moved=False,
                            moved_at=None)
             .where(Message.id == row.id).execute())
            log.info("ledger: mailbox %s: message %s (sha256 %s) moved from UIDVALIDITY %s "
                     "UID %s to UIDVALIDITY %s UID %s", item.mailbox, row.message_id or "-",
                     digest, row.uidvalidity, row.uid, item.uidvalidity, item.uid)
            return _replace(_recorded(row), uidvalidity=item.uidvalidity, uid=item.uid,
                            moved=False, moved_at=None, relocated=True)
        return None

    def _insert_all(self, items: Sequence[MessageItem],
                    now: datetime) -> dict[tuple[str, int, int], Recorded]:
        """Insert new messages and their events with a few multi-row statements (a batch of
        a hundred messages is three statements, not two hundred)."""
        if not items:
            return {}
        rows = [self._message_row(item, now) for item in items]
        self._bulk_insert(Message, rows)
        ids: dict[tuple[str, int, int], int] = {}
        groups: dict[tuple[str, int], list[int]] = {}
        for item in items:
            groups.setdefault((item.mailbox, item.uidvalidity), []).append(item.uid)
        for (mailbox, uidvalidity), uids in groups.items():
            for chunk in _chunks(uids):
                query = (Message.select(Message.id, Message.uid)
                         .where((Message.mailbox == mailbox)
                                & (Message.uidvalidity == uidvalidity) & Message.uid.in_(chunk))
                         .tuples())
                for message_pk, uid in query:
                    ids[(mailbox, uidvalidity, uid)] = message_pk
        events = [event for item in items if item.report and item.report.recipients
                  for event in _event_rows(ids[(item.mailbox, item.uidvalidity, item.uid)],
                                           item.report, now, self._verp)]
        self._bulk_insert(Event, events)
        if events:
            self._after_events(sorted(set(ids.values())), now)
        recorded = {}
        for item, row in zip(items, rows, strict=True):
            key = (item.mailbox, item.uidvalidity, item.uid)
            recorded[key] = Recorded(
                id=ids[key], mailbox=item.mailbox, uidvalidity=item.uidvalidity, uid=item.uid,
                sha256=row["sha256"], message_id=row["message_id"], kind=row["kind"],
                target_folder=item.target_folder, moved=False, moved_at=None,
                errors=tuple(row["errors"]), created=True)
        return recorded

    def _bulk_insert(self, model: type[peewee.Model], rows: list[dict[str, Any]],
                     ignore_conflicts_on: str = "") -> None:
        """One prepared INSERT run for every row (`executemany`): building each row's SQL
        with peewee costs more than the database's own work, 30 ms for a batch of 100.
        `ignore_conflicts_on`: a unique column; rows whose value is taken are skipped (ON
        CONFLICT DO NOTHING: SQLite 3.24+ and PostgreSQL alike)."""
        if not rows:
            return
        fields = [column for column in model._meta.sorted_fields if not column.primary_key]
        for column in fields:  # what peewee would fill in: the fields' defaults
            if column.name not in rows[0]:
                default = column.default() if callable(column.default) else column.default
                for row in rows:
                    row[column.name] = default
        names = [column.name for column in fields]
        open_quote, close_quote = self.db.quote  # e.g. '""'

        def quoted(name: str) -> str:
            return f"{open_quote}{name}{close_quote}"

        columns = ", ".join(quoted(column.column_name) for column in fields)
        marks = ", ".join([self.db.param] * len(fields))
        sql = f"INSERT INTO {quoted(model._meta.table_name)} ({columns}) VALUES ({marks})"
        if ignore_conflicts_on:
            sql += f" ON CONFLICT ({quoted(ignore_conflicts_on)}) DO NOTHING"
        pairs = list(zip(fields, names, strict=True))
        params = [tuple(column.db_value(row[name]) for column, name in pairs) for row in rows]
        with peewee.__exception_wrapper__:  # driver errors become peewee's, as elsewhere
            self.db.cursor().executemany(sql, params)

    # -- what new events change (same transaction) ---------------------------------------------

    def _after_events(self, message_pks: list[int], now: datetime) -> None:
        """The consequences of newly recorded events, in the same transaction: the address
        send states (the policy), then the notifications about them (the outbox)."""
        events = self._load_events(message_pks)
        changes = self._apply_policy(events, now)
        self._plan_notifications(events, changes, now)

    def _load_events(self, message_pks: list[int]) -> list[EventRecord]:
        """The events of these messages, oldest first, as plain records (read as tuples:
        building peewee model objects costs more than the query)."""
        columns = (Event.id, Event.message, Message.mailbox, Message.message_id, Event.kind,
                   Event.address, Event.action, Event.status, Event.smtp_code, Event.reason,
                   Event.permanent, Event.diagnostic, Event.remote_mta,
                   Event.original_message_id, Event.original_from, Event.sender_domain,
                   Event.list_id, Event.verp_recipient, Event.recipient_domain,
                   Event.created_at, Event.original_subject, Event.original_date,
                   Event.original_automatic, Event.signed, Event.signed_day, Event.proof_note)
        records: list[EventRecord] = []
        for chunk in _chunks(message_pks):
            query = (Event.select(*columns).join(Message)
                     .where(Event.message.in_(chunk)).order_by(Event.id).tuples())
            for row in query:
                (pk, message_pk, mailbox, bounce_id, kind, address, action, status, smtp_code,
                 reason, permanent, diagnostic, remote_mta, original_message_id, original_from,
                 sender_domain, list_id, verp_recipient, recipient_domain, created_at,
                 original_subject, original_date, original_automatic, signed, signed_day,
                 proof_note) = row
                records.append(EventRecord(
                    id=pk, message_pk=message_pk, mailbox=mailbox, bounce_message_id=bounce_id,
                    kind=kind, address=address, action=action, status=status,
                    smtp_code=smtp_code, reason=reason, permanent=bool(permanent),
                    diagnostic=diagnostic, remote_mta=remote_mta,
                    original_message_id=original_message_id, original_from=original_from,
                    sender_domain=sender_domain, list_id=list_id, verp_recipient=verp_recipient,
                    recipient_domain=recipient_domain, created_at=created_at,
                    original_subject=original_subject, original_date=original_date,
                    original_automatic=original_automatic, signed=signed,
                    signed_day=signed_day, proof_note=proof_note))
        return records

    def _apply_policy(self, events: list[EventRecord], now: datetime) -> list[StateChange]:
        """Update the send state of each event's address; return the changes made.

        1. Each event happened when its bounce reached the mailbox (the message's INTERNALDATE,
           never later than `now`; `now` when unknown), so a backlog recorded at once is
           counted as it happened, day by day.
        2. Load the AddressState rows of the events' addresses (one query per 500; on
           PostgreSQL FOR UPDATE, so that two writers never lose a count).
        3. For each event, oldest first: policy.step (expiry first, then the event), at its
           time. Events without an address change nothing.
        4. Write the rows, and a Transition per change (linked to its event; expiries have
           none). The StateChanges returned carry their transition_id; their `at` is the time
           of the event that made them.
        5. Storms (`_detect_storms`): the storms this batch opened are left in
           `self.batch_storms` (list[StormAlert]) for `_plan_notifications` to announce
           (storm.detected). It is reset at every call (and by manual_change and expire_due),
           so it only ever holds this transaction's storms.
        """
        self.batch_storms = []
        addressed = [event for event in events if event.address]
        if not addressed:
            return []
        times = self._event_times(addressed, now)  # 1
        addressed = self._gate(addressed, times)
        if not addressed:
            return []
        rows = self._lock_states(sorted({event.address for event in addressed}))  # 2
        states = {address: _send_state(row) for address, row in rows.items()}
        made: list[StateChange] = []
        for event in addressed:  # 3
            at = times[event.message_pk]
            state, changes = policy.step(states.get(event.address, SendState()), event,
                                         self.policy, at)
            states[event.address] = state
            made.extend(_state_change(event.address, change, at,
                                      event.id if change.cause == "event" else None)
                        for change in changes)
        self._save_states(states, rows, now)  # 4
        recorded = self._insert_transitions(made, actor="")
        self.batch_storms = self._detect_storms(addressed, times, now)  # 5
        return recorded

    @property
    def _verp(self) -> Any:
        """The [verp] settings (signed VERP, require_signed), from the whole Settings handed
        in as `notifications`; None when there are none."""
        return getattr(self.notifications, "verp", None)

    def _gate(self, events: list[EventRecord], times: dict[int, datetime]
              ) -> list[EventRecord]:
        """The events that may change their address's state: all of them, unless [verp]
        require_signed, then only those a signature proves (verp.ADDRESS_PROOFS) within
        max_age_days of when the bounce arrived. The others stay recorded, with why they
        changed nothing in `Event.held` (shown by `explain`); the storms still count them."""
        settings = self._verp
        if settings is None or not settings.require_signed:
            return events
        passed, held = [], []
        for event in events:
            why = verp.hold_reason(event.signed, event.signed_day, event.proof_note,
                                   times[event.message_pk], settings.max_age_days)
            if why:
                held.append((why, event.id))
            else:
                passed.append(event)
        for chunk in _chunks(held):
            reasons = {pk: why for why, pk in chunk}
            (Event.update(held=peewee.Case(Event.id, list(reasons.items())))
             .where(Event.id.in_(list(reasons))).execute())
        if held:
            log.warning("require_signed: %d event(s) not proven by a signature changed no "
                        "address state (e.g. event %d: %s)", len(held), held[0][1], held[0][0])
        return passed

    def _explanation(self, row: Message) -> Explanation:
        events = [_event_view(e) for e in
                  _event_query().where(Event.message == row.id).order_by(Event.id).objects()]
        transitions = []
        if events:
            # A subquery, not a list of ids: a bounce of 100,000 recipients has as many events,
            # more than PostgreSQL's 65,535 parameters of one query.
            of_message = Event.select(Event.id).where(Event.message == row.id)
            query = (Transition.select().where(Transition.event.in_(of_message))
                     .order_by(Transition.id))
            transitions = [_transition_view(t) for t in query]
        raw = None if row.raw is None else bytes(row.raw)
        return Explanation(
            id=row.id, mailbox=row.mailbox, uidvalidity=row.uidvalidity, uid=row.uid,
            message_id=row.message_id, kind=row.kind, analyzer=row.analyzer,
            analyzer_version=row.analyzer_version, feedback_type=row.feedback_type,
            target_folder=row.target_folder, processed_at=row.processed_at,
            errors=tuple(row.errors or ()), events=tuple(events),
            transitions=tuple(transitions), raw=raw)

    def _event_times(self, events: Sequence[EventRecord], now: datetime) -> dict[int, datetime]:
        """message pk -> when its bounce arrived (INTERNALDATE), at the latest `now`."""
        pks = sorted({event.message_pk for event in events})
        times = dict.fromkeys(pks, now)
        for chunk in _chunks(pks):
            query = (Message.select(Message.id, Message.internal_date)
                     .where(Message.id.in_(chunk) & Message.internal_date.is_null(False))
                     .tuples())
            for pk, arrived in query:
                times[pk] = min(arrived, now)
        return times

    def _lock_states(self, addresses: Sequence[str]) -> dict[str, AddressState]:
        """The AddressState rows of these addresses, locked for this transaction."""
        rows: dict[str, AddressState] = {}
        for chunk in _chunks(addresses):
            query = AddressState.select().where(AddressState.address.in_(chunk))
            if isinstance(self.db, PostgresqlDatabase):
                # Same order in every writer: no deadlock between two of them.
                query = query.order_by(AddressState.address).for_update()
            for row in query:
                rows[row.address] = row
        return rows

    def _save_states(self, states: dict[str, SendState], rows: dict[str, AddressState],
                     now: datetime) -> None:
        """Update the rows that exist, insert the others (a new address inserted by another
        writer meanwhile is a unique violation: record_batch then tries again)."""
        new, changed = [], []
        for address, state in states.items():
            fields = _state_fields(state)
            row = rows.get(address)
            if row is None:
                new.append({"address": address, **fields, "updated_at": now})
            elif _state_fields(_send_state(row)) != fields:
                changed.append({**fields, "updated_at": now, "id": row.id})
        for chunk in _chunks(new):
            self._bulk_insert(AddressState, list(chunk))
        self._update_states(changed)

    def _update_states(self, rows: list[dict[str, Any]]) -> None:
        """One prepared UPDATE run for every row (`executemany`), as `_bulk_insert` does for
        inserts: a statement built by peewee per address would cost more than the work."""
        if not rows:
            return
        fields = [AddressState._meta.fields[name] for name in rows[0] if name != "id"]
        open_quote, close_quote = self.db.quote
        mark = self.db.param
        sets = ", ".join(f"{open_quote}{f.column_name}{close_quote} = {mark}" for f in fields)
        sql = (f"UPDATE {open_quote}{AddressState._meta.table_name}{close_quote} SET {sets} "
               f"WHERE {open_quote}id{close_quote} = {mark}")
        params = [(*(f.db_value(row[f.name]) for f in fields), row["id"]) for row in rows]
        with peewee.__exception_wrapper__:
            self.db.cursor().executemany(sql, params)

    def _insert_transitions(self, changes: Sequence[StateChange],
                            actor: str) -> list[StateChange]:
        """Insert a Transition per change; the changes with their transition_id."""
        done: list[StateChange] = []
        for chunk in _chunks(changes):
            rows = [{"address": c.address, "from_state": c.from_state, "to_state": c.to_state,
                     "cause": c.cause, "reason": c.reason[:30], "event": c.event_id,
                     "actor": actor[:100], "note": c.note, "created_at": c.at} for c in chunk]
            # Ids are drawn in the order of the VALUES rows (SQLite's rowid, PostgreSQL's
            # sequence); RETURNING's own order is not promised, so sort them.
            ids = sorted(row.id for row in Transition.insert_many(rows)
                         .returning(Transition.id).execute())
            done.extend(replace(c, transition_id=pk) for c, pk in zip(chunk, ids, strict=True))
        return done

    def _detect_storms(self, events: Sequence[EventRecord], times: dict[int, datetime],
                       now: datetime) -> list[StormAlert]:
        """Open a Storm (log one warning) for each domain where refusals for at least
        `storm_refusals` distinct addresses arrived within the storm window, unless a storm
        there is still open (its last refusal within the window): that one is only extended.
        Refusals older than the window (a backlog) make no storm."""
        since = now - self.policy.storm_window
        domains = sorted({event.recipient_domain for event in events
                          if event.recipient_domain and policy.is_refusal(event)
                          and times[event.message_pk] >= since})
        alerts: list[StormAlert] = []
        # Two queries for the whole batch say which domains have anything to do (most have a
        # refusal or two and no open storm); only those are locked and looked at closely.
        counted = self._refusal_counts(domains, since)
        open_storms = {domain for (domain,) in Storm.select(Storm.domain).where(
            Storm.domain.in_(domains) & (Storm.last_at >= since)).tuples()} if domains else set()
        for domain in domains:
            if domain not in open_storms and counted.get(domain, 0) < self.policy.storm_refusals:
                continue
            if isinstance(self.db, PostgresqlDatabase):
                # Two writers refused at the same domain at once: one alert, not two.
                self.db.execute_sql("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                                    (_STORM_LOCK_KEY, domain))
            refused = self._recent_refusals(domain, since)
            storm = (Storm.select().where((Storm.domain == domain) & (Storm.last_at >= since))
                     .order_by(Storm.id.desc()).first())
            reasons = sorted(set(refused.values()))
            if storm is not None:
                (Storm.update(last_at=now, refusals=max(storm.refusals, len(refused)),
                              reasons=sorted(set(storm.reasons) | set(reasons)))
                 .where(Storm.id == storm.id).execute())
                continue
            if len(refused) < self.policy.storm_refusals:
                continue
            pk = Storm.insert(domain=domain, started_at=now, last_at=now,
                              refusals=len(refused), reasons=reasons).execute()
            log.warning("storm: %d addresses at %s refused within %g minutes (%s): the "
                        "message or the sending is refused, no address is suppressed",
                        len(refused), domain, self.policy.storm_window_minutes,
                        ", ".join(reasons))
            alerts.append(StormAlert(id=pk, domain=domain, started_at=now,
                                     refusals=len(refused), reasons=tuple(reasons),
                                     addresses=tuple(sorted(refused)[:_STORM_SAMPLE])))
        return alerts

    def _refusal_counts(self, domains: Sequence[str], since: datetime) -> dict[str, int]:
        """domain -> distinct addresses refused there since `since`, for many domains."""
        counts: dict[str, int] = {}
        for chunk in _chunks(list(domains)):
            query = (Event.select(Event.recipient_domain, fn.COUNT(Event.address.distinct()))
                     .join(Message)
                     .where(Event.recipient_domain.in_(chunk) & (Event.created_at >= since)
                            & (Message.internal_date.is_null()
                               | (Message.internal_date >= since))
                            & Event.reason.in_(sorted(policy.REFUSAL_REASONS))
                            & (Event.action == "failed") & (Event.kind == "bounce"))
                     .group_by(Event.recipient_domain).tuples())
            counts.update(dict(query))
        return counts

    def _recent_refusals(self, domain: str, since: datetime) -> dict[str, str]:
        """address -> reason of the refusals at `domain` that arrived since `since`."""
        query = (Event.select(Event.address, Event.reason).join(Message)
                 .where((Event.recipient_domain == domain) & (Event.created_at >= since)
                        & (Message.internal_date.is_null() | (Message.internal_date >= since))
                        & Event.reason.in_(sorted(policy.REFUSAL_REASONS))
                        & (Event.action == "failed") & (Event.kind == "bounce"))
                 .order_by(Event.id).tuples())
        return dict(query)

    def _plan_notifications(self, events: list[EventRecord], changes: list[StateChange],
                            now: datetime) -> None:
        """Write the outbox rows (webhooks, DSNs to senders) these facts call for, in the
        caller's transaction, so a notification exists exactly when its fact is committed.

        `events`: the events just recorded (may be empty: a manual change, an expiry);
        `changes`: the state changes made; the storms opened come from `self.batch_storms`
        (set by `_apply_policy`, reset by every writer that calls this). Webhook rows come
        from the pure `notifications.plan`, DSN rows from `_plan_dsn`. A row whose
        dedupe_key is already taken (the same fact planned before) is skipped.
        """
        rows = notifications.plan(events, changes, self.batch_storms, self.notifications, now)
        rows.extend(self._plan_dsn(events, now))
        self._insert_outbox(rows, now)

    def _plan_dsn(self, events: list[EventRecord], now: datetime) -> list[OutboxRow]:
        """The "dsn" channel's rows (delivery reports back to original senders): the DSN
        part's planner goes here, returning OutboxRows (channel "dsn", its dedupe_key one per
        original message and recipient); `_plan_notifications` writes them."""
        from .dsn_planning import plan_dsn  # pure; [dsn] is read from the whole Settings

        return plan_dsn(events, self.notifications, now)

    def _insert_outbox(self, rows: Sequence[OutboxRow], now: datetime) -> None:
        """Write outbox rows, pending and due at once; a taken dedupe_key is skipped."""
        self._bulk_insert(models.Outbox, [
            {"channel": row.channel, "event_type": row.event_type, "target": row.target,
             "payload": row.payload, "dedupe_key": row.dedupe_key, "status": PENDING,
             "attempts": 0, "next_attempt_at": now, "last_error": "", "created_at": now,
             "delivered_at": None}
            for row in rows], ignore_conflicts_on="dedupe_key")

    def _message_row(self, item: MessageItem, now: datetime) -> dict[str, Any]:
        report = item.report
        return {
            "mailbox": item.mailbox, "uidvalidity": item.uidvalidity, "uid": item.uid,
            "message_id": item.message_id.strip(), "sha256": item.digest(),
            "size": item.size if item.size is not None else len(item.raw or b""),
            "internal_date": item.internal_date, "received_at": item.received_at or now,
            "processed_at": now, "kind": str(report.kind) if report else None,
            "target_folder": item.target_folder,
            "analyzer": report.analyzer if report else "",
            "analyzer_version": item.analyzer_version,
            "feedback_type": report.feedback_type if report else "",
            "errors": [*(report.errors if report else ()), *item.errors],
            "raw": item.raw if self.store_raw else None,
        }

    @contextmanager
    def _write(self) -> Iterator[None]:
        # SQLite: take the write lock at BEGIN, so that two writers queue on the busy timeout
        # instead of failing when a reader turns writer. PostgreSQL: a plain transaction.
        if isinstance(self.db, SqliteDatabase):
            with self.db.atomic("IMMEDIATE"):
                yield
        else:
            with self.db.atomic():
                yield

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except peewee.PeeweeException as err:
            if (isinstance(err, peewee.OperationalError | peewee.InterfaceError)
                    and not self.db.in_transaction()):
                # Probably a lost connection: drop it, so that the next call reconnects.
                with suppress(peewee.PeeweeException):
                    self.db.close()
            raise LedgerError(f"cannot {doing}: {_describe(err)}") from err


# Outbox row statuses.
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True, slots=True)
class OutboxItem(_JsonView):
    """An outbox row: a notification to deliver, and how its delivery went."""

    id: int
    channel: str  # webhook, dsn
    event_type: str
    target: str
    payload: dict[str, Any]
    dedupe_key: str
    status: str  # pending, delivered, failed (gave up)
    attempts: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    delivered_at: datetime | None


class OutboxQueue:
    """The outbox as the delivery job and people see it (`ledger.outbox`). Rows are written
    by `Ledger._plan_notifications`, in the transaction of the fact they report."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def due(self, now: datetime, limit: int = 100) -> list[OutboxItem]:
        """Pending rows whose time has come, the longest waiting first (reads only)."""
        with self._ledger._errors("read the outbox"):
            return [_outbox_item(row) for row in self._due_query(now, limit)]

    def claim(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxItem]:
        """Take up to `limit` due rows for one delivery attempt each: they are not due again
        (to this or any other process) for `lease`, unless marked before. On PostgreSQL rows
        another transaction is claiming are skipped (FOR UPDATE SKIP LOCKED); SQLite's
        claims queue on its write lock."""
        ledger = self._ledger
        with ledger._errors("claim outbox rows"), ledger._write():
            query = self._due_query(now, limit)
            if isinstance(ledger.db, PostgresqlDatabase):
                query = query.for_update("FOR UPDATE SKIP LOCKED")
            items = [_outbox_item(row) for row in query]
            if items:
                (models.Outbox.update(next_attempt_at=now + lease)
                 .where(models.Outbox.id.in_([item.id for item in items])).execute())
        return items

    def mark_delivered(self, ident: int, at: datetime, attempts: int | None = None) -> None:
        """The row was delivered (`attempts`: counting this one)."""
        changes: dict[Any, Any] = {models.Outbox.status: DELIVERED,
                                   models.Outbox.delivered_at: at,
                                   models.Outbox.last_error: ""}
        if attempts is not None:
            changes[models.Outbox.attempts] = attempts
        with self._ledger._errors("mark an outbox row delivered"), self._ledger._write():
            models.Outbox.update(changes).where(models.Outbox.id == ident).execute()

    def mark_failed(self, ident: int, *, attempts: int, next_attempt_at: datetime,
                    error: str, give_up: bool) -> None:
        """An attempt failed: try again at next_attempt_at, or, give_up, never (status
        failed, until `retry`)."""
        with self._ledger._errors("mark an outbox row failed"), self._ledger._write():
            (models.Outbox.update(status=FAILED if give_up else PENDING, attempts=attempts,
                                  next_attempt_at=next_attempt_at, last_error=error)
             .where(models.Outbox.id == ident).execute())

    def list(self, status: str | Iterable[str] | None = None,
             limit: int | None = None) -> list[OutboxItem]:
        """Rows in these statuses (all when None), oldest first."""
        query = models.Outbox.select().order_by(models.Outbox.id)
        if status is not None:
            wanted = [status] if isinstance(status, str) else sorted(set(status))
            query = query.where(models.Outbox.status.in_(wanted))
        if limit is not None:
            query = query.limit(limit)
        with self._ledger._errors("read the outbox"):
            return [_outbox_item(row) for row in query]

    def counts(self) -> dict[str, int]:
        """How many rows per status."""
        query = (models.Outbox.select(models.Outbox.status, peewee.fn.COUNT(models.Outbox.id))
                 .group_by(models.Outbox.status).tuples())
        with self._ledger._errors("count the outbox"):
            return dict(query)

    def retry(self, ids: Iterable[int] = (), *, all_failed: bool = False,
              now: datetime | None = None) -> int:
        """Make rows due now with a fresh count of attempts: these ids (pending or failed;
        a delivered row stays delivered) and, with all_failed, every failed row. Returns how
        many rows were changed."""
        now = now or datetime.now(UTC)
        Outbox = models.Outbox
        wanted = None
        if all_failed:
            wanted = Outbox.status == FAILED
        ids = sorted(set(ids))
        if ids:  # a person's list: a few ids
            named = Outbox.id.in_(ids) & (Outbox.status != DELIVERED)
            wanted = named if wanted is None else (wanted | named)
        if wanted is None:
            return 0
        with self._ledger._errors("retry outbox rows"), self._ledger._write():
            return (Outbox.update(status=PENDING, attempts=0, next_attempt_at=now)
                    .where(wanted).execute())

    def _due_query(self, now: datetime, limit: int) -> peewee.ModelSelect:
        return (models.Outbox.select()
                .where((models.Outbox.status == PENDING)
                       & (models.Outbox.next_attempt_at <= now))
                .order_by(models.Outbox.next_attempt_at, models.Outbox.id).limit(limit))


def _outbox_item(row: models.Outbox) -> OutboxItem:
    return OutboxItem(id=row.id, channel=row.channel, event_type=row.event_type,
                      target=row.target, payload=row.payload, dedupe_key=row.dedupe_key,
                      status=row.status, attempts=row.attempts,
                      next_attempt_at=row.next_attempt_at, last_error=row.last_error,
                      created_at=row.created_at, delivered_at=row.delivered_at)


_SUMMARY = (Message.id, Message.mailbox, Message.uidvalidity, Message.uid, Message.sha256,
            Message.message_id, Message.kind, Message.target_folder, Message.moved,
            Message.moved_at, Message.errors)


def _recorded(row: Message) -> Recorded:
    return Recorded(id=row.id, mailbox=row.mailbox, uidvalidity=row.uidvalidity, uid=row.uid,
                    sha256=row.sha256, message_id=row.message_id, kind=row.kind,
                    target_folder=row.target_folder, moved=bool(row.moved),
                    moved_at=row.moved_at, errors=tuple(row.errors or ()))


def _replace(recorded: Recorded, **changes: Any) -> Recorded:
    return replace(recorded, **changes)


# -- send state helpers -----------------------------------------------------------------------

_STORM_SAMPLE = 100  # refused addresses named in a storm alert, at most
# pg_advisory_xact_lock(key1, key2): key1 says "imap-bouncer storm", key2 is the domain.
_STORM_LOCK_KEY = 0x1B0B_0002
_STATE_FIELDS = ("soft_count", "soft_since", "last_soft_at", "hard_count", "first_hard_at",
                 "last_event_at", "suppressed_until", "reason", "note")


def _send_state(row: AddressState) -> SendState:
    return SendState(state=State(row.state), **{name: getattr(row, name)
                                                for name in _STATE_FIELDS})


def _state_fields(state: SendState) -> dict[str, Any]:
    return {"state": str(state.state), **{name: getattr(state, name) for name in _STATE_FIELDS}}


def _state_change(address: str, change: policy.Change, at: datetime,
                  event_id: int | None) -> StateChange:
    return StateChange(address=address, from_state=str(change.from_state),
                       to_state=str(change.to_state), cause=change.cause, reason=change.reason,
                       at=at, event_id=event_id, note=change.note)


def _info(row: AddressState, now: datetime, rules: Policy) -> AddressInfo:
    stored = _send_state(row)
    state, _ = policy.expire(stored, rules, now)
    return AddressInfo(
        address=row.address, state=str(state.state), stored_state=str(stored.state),
        suppressed=state.suppressed, soft_count=state.soft_count, soft_since=state.soft_since,
        last_soft_at=state.last_soft_at, hard_count=state.hard_count,
        first_hard_at=state.first_hard_at, last_event_at=state.last_event_at,
        suppressed_until=state.suppressed_until, reason=state.reason, note=state.note,
        updated_at=row.updated_at)


def _event_query() -> peewee.ModelSelect:
    return Event.select(Event, Message.mailbox, Message.message_id.alias("bounce_id"),
                        Message.analyzer).join(Message)


def _event_view(row: Any) -> EventView:
    return EventView(
        id=row.id, message_pk=row.message_id, mailbox=row.mailbox,
        bounce_message_id=row.bounce_id, analyzer=row.analyzer, kind=row.kind,
        address=row.address, action=row.action, status=row.status, smtp_code=row.smtp_code,
        reason=row.reason, permanent=bool(row.permanent), diagnostic=row.diagnostic,
        remote_mta=row.remote_mta, evidence=row.evidence,
        original_message_id=row.original_message_id, original_from=row.original_from,
        sender_domain=row.sender_domain, list_id=row.list_id,
        recipient_domain=row.recipient_domain, created_at=row.created_at,
        signed=row.signed, proof_note=row.proof_note, held=row.held)


def _transition_view(row: Transition) -> TransitionView:
    return TransitionView(id=row.id, address=row.address, from_state=row.from_state,
                          to_state=row.to_state, cause=row.cause, reason=row.reason,
                          event_id=row.event_id, actor=row.actor, note=row.note,
                          created_at=row.created_at)


def _plain(value: Any) -> Any:
    """A JSON-ready value: datetimes as ISO 8601, tuples as lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _event_rows(message_pk: int, report: Report, now: datetime,
                verp_settings: Any = None) -> list[dict[str, Any]]:
    original = report.original
    sender = parseaddr(original.from_)[1]
    sender_domain = sender.rpartition("@")[2].lower().rstrip(">") if "@" in sender else ""
    key = verp_settings.key if verp_settings is not None else b""
    pattern = verp_settings.address if verp_settings is not None else ""
    old_keys = verp_settings.old_keys if verp_settings is not None else ()

    def proof(address: str) -> verp.Proof:
        if not key:  # nothing to check with: no note on every event of every install
            return verp.Proof()
        return verp.prove(address, envelope=original.signed_addresses,
                          correlation=original.correlation_id, sender=sender,
                          message_id=original.message_id, key=key, pattern=pattern,
                          old_keys=old_keys)

    proofs = [proof(recipient.address) for recipient in report.recipients]
    return [
        {
            "message": message_pk,
            "kind": str(report.kind),
            "address": recipient.address,
            "action": str(recipient.action),
            "status": recipient.status,
            "smtp_code": recipient.smtp_code,
            "reason": str(recipient.reason),
            "permanent": recipient.permanent,
            "diagnostic": recipient.diagnostic,
            "remote_mta": recipient.remote_mta,
            "evidence": recipient.evidence,
            "original_message_id": original.message_id,
            "original_from": original.from_,
            "sender_domain": sender_domain,
            "list_id": original.list_id,
            "verp_recipient": original.verp_recipient,
            "created_at": now,
            "recipient_domain": recipient.address.rpartition("@")[2],
            "original_subject": original.subject,
            "original_date": original.date,
            "original_automatic": original.automatic,
            "signed": found.kind,
            "signed_day": found.day,
            "proof_note": found.note,
        }
        for recipient, found in zip(report.recipients, proofs, strict=True)
    ]


def _without_recipients(report: Report | None) -> Report | None:
    return None if report is None else replace(report, recipients=[])


def _is_unique_violation(err: BaseException | None) -> bool:
    if not isinstance(err, peewee.IntegrityError):
        return False
    state = models.sqlstate(err)
    return state == "23505" if state else "unique" in str(err).lower()


def _chunks(values: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _describe(err: BaseException) -> str:
    """One line about a driver error (the database URL, and so any password, is never in it)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


__all__ = ["AddressInfo", "EventView", "Explanation", "Ledger", "LedgerError", "MessageItem",
           "OutboxItem", "OutboxQueue", "Recorded", "ReviewItem", "StateChange", "StormAlert",
           "TransitionView"]
