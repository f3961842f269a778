"""Which notifications the recorded facts call for: facts in, outbox rows out. PURE (no I/O).

The ledger calls `plan` inside the transaction that records the events, and writes the rows it
returns to the Outbox table in that same transaction (so a notification exists exactly when its
fact does); a scheduled job delivers them later (handlers/outbox.py). Facts and webhook types:

- a StateChange (an address's send state changed)          -> `address.state_changed`
- an EventRecord (a recipient reported on), when asked for  -> `event.recorded`
- a storm (many refusals at one domain: one alert)          -> `storm.detected`

Each (fact, endpoint) pair is one row, named by its `dedupe_key`; the database keeps that key
unique, so planning the same fact twice (a batch retried, the same bounce recorded again)
never makes a second row. The webhook id sent with every attempt is stored in the payload at
planning time and derived from the fact alone: every retry, every restart and every endpoint
sees the same id for one fact. The payload schema is documented in docs/webhooks.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from .policy import SUPPRESSED

if TYPE_CHECKING:  # data only: the ledger imports this module, not the other way round
    from .ledger import EventRecord, StateChange

SCHEMA_VERSION = 1
WEBHOOK = "webhook"  # the outbox channel of webhook deliveries
STATE_CHANGED = "address.state_changed"
EVENT_RECORDED = "event.recorded"
STORM_DETECTED = "storm.detected"
EVENT_TYPES = (STATE_CHANGED, EVENT_RECORDED, STORM_DETECTED)
DEFAULT_EVENT_TYPES = (STATE_CHANGED, STORM_DETECTED)
ADDRESS_PLACEHOLDER = "{address}"


class Endpoint(Protocol):
    """A webhook endpoint as the planner needs it (settings.WebhookSettings is one)."""

    @property
    def url(self) -> str: ...  # may hold {address}

    @property
    def sender_domains(self) -> Sequence[str]: ...  # empty: every sender

    @property
    def events(self) -> Sequence[str]: ...  # which of EVENT_TYPES it receives


class NotificationSettings(Protocol):
    """What `plan` reads from the settings (the whole settings.Settings will do)."""

    @property
    def webhooks(self) -> Sequence[Endpoint]: ...


class StormFact(Protocol):
    """A storm raised in this transaction (the policy's record of it; models.Storm fields).

    `id` is the Storm row's id: the storm's identity, so that it is announced once however
    many batches it spans. Read when present: `last_at`, `addresses` (a sample of the refused
    addresses) and `sender_domains`, which routes the alert; without it the planner takes
    the sender domains of this batch's events at the storm's domain (ledger.StormAlert).
    """

    @property
    def id(self) -> int | None: ...

    @property
    def domain(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def refusals(self) -> int: ...

    @property
    def reasons(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One notification to write to the Outbox table."""

    channel: str  # "webhook" (or "dsn", planned elsewhere)
    event_type: str
    target: str  # the endpoint URL with {address} filled in
    payload: dict[str, Any]  # the JSON body, exactly as it will be sent
    dedupe_key: str  # unique per (fact, endpoint): at most one row ever


def plan(events: Sequence[EventRecord], changes: Sequence[StateChange],
         storms: Sequence[StormFact], settings: NotificationSettings | None,
         now: datetime) -> list[OutboxRow]:
    """The webhook rows for these facts: per fact, one row per endpoint that wants it.

    `events` are the events just recorded (oldest first), `changes` the state changes they (or
    a person) caused, `storms` the storms raised. A change's sender domain is its event's; a
    change without an event (a manual one) has none and so goes only to the endpoints that
    take every sender. Order: per fact, in the order given, changes first.
    """
    endpoints = tuple(settings.webhooks) if settings is not None else ()
    if not endpoints:
        return []
    by_id = {event.id: event for event in events}
    rows: list[OutboxRow] = []
    for change in changes:
        event = by_id.get(change.event_id) if change.event_id is not None else None
        fact = _state_changed(change, event)
        rows.extend(_deliveries(fact, endpoints, [event.sender_domain] if event else [],
                                change.address))
    for event in events:
        fact = _event_recorded(event)
        rows.extend(_deliveries(fact, endpoints, [event.sender_domain], event.address))
    for storm in storms:
        fact = _storm_detected(storm, now)
        senders = getattr(storm, "sender_domains", None)
        if senders is None:
            senders = sorted({e.sender_domain for e in events
                              if e.recipient_domain == storm.domain and e.sender_domain})
        rows.extend(_deliveries(fact, endpoints, senders, None))
    unique: dict[str, OutboxRow] = {}
    for row in rows:
        unique.setdefault(row.dedupe_key, row)
    return list(unique.values())


# -- routing ----------------------------------------------------------------------------------


def resolve_url(template: str, address: str | None) -> str | None:
    """The endpoint's URL for a fact: {address} replaced by the URL-encoded address (every
    reserved character, "@" and "/" too, so it stays one path segment or query value). None
    when the template needs an address and the fact has none (a storm is about a domain)."""
    if ADDRESS_PLACEHOLDER not in template:
        return template
    if not address:
        return None
    return template.replace(ADDRESS_PLACEHOLDER, quote(address, safe=""))


def sender_matches(wanted: Sequence[str], sender_domains: Iterable[str]) -> bool:
    """Empty `wanted` takes every sender. Otherwise a sender domain matches an entry that is
    the domain itself or one of its parents (news.example.org matches example.org)."""
    if not wanted:
        return True
    for sender in sender_domains:
        sender = sender.lower().rstrip(".")
        for domain in wanted:
            domain = domain.lower().strip(".")
            if sender == domain or sender.endswith("." + domain):
                return True
    return False


def webhook_id(fact_key: str) -> str:
    """The Standard Webhooks message id of a fact: the same for every attempt and endpoint."""
    return "msg_" + hashlib.sha256(fact_key.encode()).hexdigest()[:32]


def dedupe_key(fact_key: str, target: str) -> str:
    """One row per fact and endpoint URL, at most 255 characters whatever the URL."""
    return f"{WEBHOOK}:{_short(fact_key)}:{hashlib.sha256(target.encode()).hexdigest()[:24]}"


@dataclass(frozen=True, slots=True)
class _Fact:
    key: str  # stable identity of the fact
    event_type: str
    timestamp: datetime
    data: dict[str, Any]


def _deliveries(fact: _Fact, endpoints: Sequence[Endpoint], sender_domains: Sequence[str],
                address: str | None) -> list[OutboxRow]:
    rows = []
    payload = {"type": fact.event_type, "version": SCHEMA_VERSION, "id": webhook_id(fact.key),
               "timestamp": iso(fact.timestamp), "data": fact.data}
    for endpoint in endpoints:
        if fact.event_type not in endpoint.events:
            continue
        if not sender_matches(endpoint.sender_domains, sender_domains):
            continue
        target = resolve_url(endpoint.url, address)
        if target is None:
            continue
        rows.append(OutboxRow(WEBHOOK, fact.event_type, target, payload,
                              dedupe_key(fact.key, target)))
    return rows


# -- payloads (docs/webhooks.md) ----------------------------------------------------------------


def _state_changed(change: StateChange, event: EventRecord | None) -> _Fact:
    # A transition row is the change's identity; without one (a caller that records none),
    # what changed, where, when and because of which event.
    if change.transition_id is not None:
        key = f"transition:{change.transition_id}:{change.address}"
    else:
        key = (f"change:{change.address}:{change.from_state}:{change.to_state}:"
               f"{iso(change.at)}:{change.event_id or ''}")
    data = {
        "address": change.address,
        "from_state": change.from_state,
        "to_state": change.to_state,
        "suppressed": change.to_state in SUPPRESSED,
        "cause": change.cause,
        "reason": change.reason,
        "note": change.note,
        "changed_at": iso(change.at),
        "event": event_data(event) if event is not None else None,
    }
    return _Fact(key, STATE_CHANGED, change.at, data)


def _event_recorded(event: EventRecord) -> _Fact:
    # The same report about the same recipient is one fact however often it is recorded
    # (a bounce moved back to the inbox is recorded again, under new ids): key on what the
    # bounce says, not on the row. Only a bounce without a Message-ID falls back to the row.
    if event.bounce_message_id:
        said = "\n".join((event.bounce_message_id, event.address, event.action, event.status,
                          event.reason, event.original_message_id))
        key = "event:" + hashlib.sha256(said.encode()).hexdigest()
    else:
        key = f"event-id:{event.id}"
    return _Fact(key, EVENT_RECORDED, event.created_at, event_data(event))


def _storm_detected(storm: StormFact, now: datetime) -> _Fact:
    storm_id = getattr(storm, "id", None)
    started = storm.started_at
    key = (f"storm:{storm_id}" if storm_id is not None
           else f"storm:{storm.domain}:{iso(started)}")
    last = getattr(storm, "last_at", None) or now
    data = {
        "domain": storm.domain,
        "started_at": iso(started),
        "last_at": iso(last),
        "refusals": storm.refusals,
        "reasons": sorted(set(storm.reasons)),
        "addresses": sorted(getattr(storm, "addresses", ())),  # a sample, when known
        "storm_id": storm_id,
    }
    return _Fact(key, STORM_DETECTED, now, data)


def event_data(event: EventRecord) -> dict[str, Any]:
    """An event as webhooks show it (docs/webhooks.md, "The event object")."""
    return {
        "id": event.id,
        "kind": event.kind,
        "address": event.address,
        "action": event.action,
        "status": event.status,
        "smtp_code": event.smtp_code,
        "reason": event.reason,
        "permanent": event.permanent,
        "diagnostic": event.diagnostic,
        "remote_mta": event.remote_mta,
        "recorded_at": iso(event.created_at),
        "mailbox": event.mailbox,
        "bounce_message_id": event.bounce_message_id,
        "signed": event.signed,
        "original": {
            "message_id": event.original_message_id,
            "from": event.original_from,
            "sender_domain": event.sender_domain,
            "list_id": event.list_id,
            "verp_recipient": event.verp_recipient,
        },
    }


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second: 2026-11-21T10:30:00Z."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(key: str) -> str:
    return key if len(key) <= 150 else hashlib.sha256(key.encode()).hexdigest()


__all__ = [
    "DEFAULT_EVENT_TYPES",
    "EVENT_RECORDED",
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "STATE_CHANGED",
    "STORM_DETECTED",
    "WEBHOOK",
    "Endpoint",
    "NotificationSettings",
    "OutboxRow",
    "StormFact",
    "event_data",
    "plan",
    "resolve_url",
    "sender_matches",
    "webhook_id",
]
