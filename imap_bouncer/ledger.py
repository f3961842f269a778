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
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any, TypeVar

import peewee
from peewee import Database, SqliteDatabase

from . import models
from .models import Event, Message
from .report import Report

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...) and rows per multi-row INSERT, well inside SQLite's limits
_T = TypeVar("_T")


class LedgerError(Exception):
    """The database could not be read or written; `__cause__` holds the driver's error."""


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


@dataclass(slots=True)
class _Batch:
    """Bookkeeping for one record_batch call."""

    by_key: dict[tuple[str, int, int], Recorded] = field(default_factory=dict)
    by_sha: dict[tuple[str, str], list[Message]] = field(default_factory=dict)


class Ledger:
    """Reads and writes the record of messages and events in one database."""

    def __init__(self, db: Database, *, store_raw: bool = False) -> None:
        self.db = db
        self.store_raw = store_raw
        models.bind(db)

    @classmethod
    def open(cls, url: str, *, store_raw: bool = False, upgrade: bool = True,
             **params: Any) -> Ledger:
        """Connect to a database URL, upgrading its schema (or checking it when not upgrade)."""
        try:
            db = models.open_database(url, upgrade_schema=upgrade, **params)
        except models.SchemaError as err:
            raise LedgerError(str(err)) from err
        except peewee.PeeweeException as err:
            raise LedgerError(f"cannot open the database: {_describe(err)}") from err
        return cls(db, store_raw=store_raw)

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

    # -- internals ----------------------------------------------------------------------------

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
                                           item.report, now)]
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

    def _bulk_insert(self, model: type[peewee.Model], rows: list[dict[str, Any]]) -> None:
        """One prepared INSERT run for every row (`executemany`): building each row's SQL
        with peewee costs more than the database's own work, 30 ms for a batch of 100."""
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
        """The events of these messages, oldest first, as plain records."""
        records: list[EventRecord] = []
        for chunk in _chunks(message_pks):
            query = (Event.select(Event, Message.mailbox, Message.message_id.alias("bounce_id"))
                     .join(Message).where(Event.message.in_(chunk)).order_by(Event.id))
            for row in query.objects():
                records.append(EventRecord(
                    id=row.id, message_pk=row.message_id, mailbox=row.mailbox,
                    bounce_message_id=row.bounce_id, kind=row.kind, address=row.address,
                    action=row.action, status=row.status, smtp_code=row.smtp_code,
                    reason=row.reason, permanent=bool(row.permanent), diagnostic=row.diagnostic,
                    remote_mta=row.remote_mta, original_message_id=row.original_message_id,
                    original_from=row.original_from, sender_domain=row.sender_domain,
                    list_id=row.list_id, verp_recipient=row.verp_recipient,
                    recipient_domain=row.recipient_domain, created_at=row.created_at))
        return records

    def _apply_policy(self, events: list[EventRecord], now: datetime) -> list[StateChange]:
        """Update the send state of each event's address; return the changes made."""
        return []

    def _plan_notifications(self, events: list[EventRecord], changes: list[StateChange],
                            now: datetime) -> None:
        """Write the outbox rows (webhooks, DSNs to senders) these facts call for."""

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


def _event_rows(message_pk: int, report: Report, now: datetime) -> list[dict[str, Any]]:
    original = report.original
    sender = parseaddr(original.from_)[1]
    sender_domain = sender.rpartition("@")[2].lower().rstrip(">") if "@" in sender else ""
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
        }
        for recipient in report.recipients
    ]


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


__all__ = ["Ledger", "LedgerError", "MessageItem", "Recorded"]
