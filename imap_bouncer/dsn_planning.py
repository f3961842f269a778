"""Which delivery reports to send back to original senders: events in, outbox rows out. PURE.

When mail from one of the configured sender domains bounces (or is delayed), its sender, the
person in the original's From (the envelope sender is our bounce address, which is why the
bounce came here), gets an RFC 3464 report built by handlers/dsn.py. The ledger calls
`plan_dsn` inside the transaction that records the events (`Ledger._plan_dsn`) and writes the
rows it returns to the Outbox, ignoring rows whose `dedupe_key` is already taken.

The rules, in order (`refusal` names the first that refuses an event):

1. only bounces and delays, only recipients that failed (or were delayed, with `delays`);
2. only senders whose domain is one of `sender_domains` (or a subdomain of one);
3. never to an empty sender, nor to one of FORBIDDEN_SENDERS (mailer-daemon, postmaster,
   no-reply, list and bounce addresses), nor to our own `from_address`;
4. never about a message that was itself automatic (`Original.automatic`: Auto-Submitted,
   Precedence bulk/junk/list, a null Return-Path, one of our own reports, Exchange's
   X-Auto-Response-Suppress) nor about list mail (a List-Id: a list has its own bounce
   handling, and one post bouncing at many members must not flood its author);
5. only about mail we sent (`only_signed`, the default): the event's recipient has a signed
   VERP address, or the original carries a good X-Imap-Bouncer-Id (verp.py), signed at most
   [verp] max_age_days before. Anyone can write to the bounce mailbox; without this, a forged
   bounce whose "original" names someone in sender_domains makes us mail them the forger's
   words from our postmaster address (backscatter);
6. once per original message and action, covering all its recipients: the dedupe key is
   `dsn:<action>:<original Message-ID>` (the bounce's own Message-ID when the original's is
   unknown; no report at all when both are). A bounce for 1,000 recipients of one message is
   one report listing them (the first MAX_RECIPIENTS in full, the count of the others); a
   later bounce about the same message and action makes none; a delay warning and the final
   failure make two, as a sender's own mail system would send.

The rate limits (per sender, per sender domain, in all: `rate_limit_per_hour`,
`rate_limit_per_domain_per_hour`, `rate_limit_global_per_hour`) are applied at delivery time
from the outbox's record of what was sent (`next_allowed`): excess reports wait, none is
dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from . import verp
from .notifications import OutboxRow, iso, sender_matches

if TYPE_CHECKING:
    from .ledger import EventRecord

DSN = "dsn"  # the outbox channel
PAYLOAD_VERSION = 2  # 2: "recipients", a list (1: one "recipient"; handlers/dsn.py reads both)
MAX_RECIPIENTS = 100  # recipients described in one report; the others are counted
DEFAULT_MAX_AGE_DAYS = 60  # [verp] max_age_days when only [dsn] is given
EVENT_TYPES = {"failed": "dsn.failed", "delayed": "dsn.delayed"}
RATE_WINDOW = timedelta(hours=1)
_MAX_KEY = 255  # models.Outbox.dedupe_key

# Local parts of senders that never get a report (case-insensitive, whole local part).
FORBIDDEN_SENDERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # RFC 5321 section 4.5.5 / RFC 3834 section 2: the null sender's stand-ins.
    ("mailer-daemon", re.compile(r"^mailer[-_.]?daemon$|^mail[-_.]?daemon$", re.I)),
    # RFC 5321 section 4.5.1: the postmaster role.
    ("postmaster", re.compile(r"^postmaster$", re.I)),
    # Convention: senders that say no one reads replies (no-reply, noreply, do-not-reply...).
    ("no-reply", re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|no[-_.]?response)"
                            r"(?:[-+_.].*)?$", re.I)),
    # RFC 3834 section 2 / RFC 2142: list administrative addresses (owner-x, x-request, and
    # Mailman's x-owner, x-bounces).
    ("list address", re.compile(r"^owner-.+|.+-(?:request|owner|bounces)(?:\+.*)?$", re.I)),
    # Bounce and VERP return addresses (bounces+jo=example.net@...): bounce processors.
    ("bounce address", re.compile(r"^bounces?(?:[-+=].*)?$", re.I)),
)


class DsnPlanSettings(Protocol):
    """What the planner reads ([dsn]; settings.DsnSettings is one)."""

    @property
    def enabled(self) -> bool: ...

    @property
    def sender_domains(self) -> Sequence[str]: ...

    @property
    def from_address(self) -> str: ...

    @property
    def delays(self) -> bool: ...


def dsn_settings(settings: Any) -> Any:
    """The [dsn] settings from the whole Settings, or the argument itself when it is them."""
    return getattr(settings, "dsn", settings)


def plan_dsn(events: Sequence[EventRecord], settings: Any, now: datetime) -> list[OutboxRow]:
    """The "dsn" outbox rows these newly recorded events call for (rules: module docstring).

    `settings`: the whole Settings (its [verp] max_age_days counts) or its [dsn] table;
    None, or enabled = false: no rows. Rows come in the order of the events, one per
    original message and action, each listing the recipients it covers.
    """
    dsn = dsn_settings(settings) if settings is not None else None
    if dsn is None or not getattr(dsn, "enabled", False):
        return []
    max_age = getattr(getattr(settings, "verp", None), "max_age_days", DEFAULT_MAX_AGE_DAYS)
    rows: dict[str, OutboxRow] = {}
    covered: dict[str, set[str]] = {}  # dedupe key -> the addresses its report covers
    for event in events:
        if refusal(event, dsn, max_age):
            continue
        key = dedupe_key(event.action, event.original_message_id, event.bounce_message_id)
        row = rows.get(key)
        if row is None:
            rows[key] = _row(event, key, now)
            covered[key] = {event.address}
        elif event.address not in covered[key]:
            covered[key].add(event.address)
            _add_recipient(row.payload, event)
    return list(rows.values())


def refusal(event: EventRecord, dsn: DsnPlanSettings,
            max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> str:
    """Why no report goes to this event's sender ("" when one does): the first rule refusing."""
    if event.kind not in ("bounce", "delay"):
        return f"a {event.kind or 'unknown'} message, not a bounce or delay"
    if event.action not in ("failed", "delayed"):
        return f"the recipient was {event.action or 'not reported on'}, not failed or delayed"
    if event.action == "delayed" and not dsn.delays:
        return "a delay, and delays are not reported (delays = false)"
    if not event.address:
        return "the bounce names no recipient"
    sender = sender_address(event.original_from)
    if not sender:
        return "the original has no sender address"
    domain = sender.rpartition("@")[2]
    if not dsn.sender_domains or not sender_matches(dsn.sender_domains, [domain]):
        return f"the sender's domain {domain} is not one of sender_domains"
    forbidden = forbidden_sender(sender)
    if forbidden:
        return f"the sender {sender} is a {forbidden} address"
    if sender.lower() == sender_address(dsn.from_address).lower():
        return "the sender is our own from_address"
    if event.original_automatic:
        return f"the original was itself automatic ({event.original_automatic})"
    if event.list_id:
        return f"the original is list mail (List-Id {event.list_id})"
    if getattr(dsn, "only_signed", True):
        if event.signed not in verp.SENT_PROOFS:
            return ("the original is not proven sent through us (only_signed): "
                    f"{event.proof_note or 'unsigned'}")
        too_old = verp.age_problem(event.signed_day, event.created_at, max_age_days)
        if too_old:
            return f"the original's signature no longer counts: {too_old}"
    if not (event.original_message_id or event.bounce_message_id):
        return "neither the original nor the bounce has a Message-ID to report once on"
    return ""


@lru_cache(maxsize=1024)
def sender_address(value: str) -> str:
    """The bare address in a From value, domain lower-cased; "" when there is none. Cached:
    the events of one bounce share their original's From (parseaddr was most of the time
    of planning for a 100,000-recipient bounce)."""
    address = parseaddr(value or "")[1].strip()
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or len(address) > 254 or any(
            c.isspace() or c in "<>" or not c.isprintable() for c in address):
        return ""
    return f"{local}@{domain.lower().rstrip('.')}"


def forbidden_sender(address: str) -> str:
    """Which FORBIDDEN_SENDERS entry the address's local part is, "" when none."""
    local = address.rpartition("@")[0]
    if not local:
        return "empty"
    for name, pattern in FORBIDDEN_SENDERS:
        if pattern.match(local):
            return name
    return ""


def dedupe_key(action: str, original_message_id: str, bounce_message_id: str) -> str:
    """One report per original message and action; at most 255 characters."""
    about = (f"{original_message_id.strip()}" if original_message_id.strip()
             else f"bounce:{bounce_message_id.strip()}")
    key = f"{DSN}:{action}:{about}"
    if len(key) <= _MAX_KEY:
        return key
    return f"{DSN}:{action}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def next_allowed(sent_at: Sequence[datetime], limit: int, now: datetime,
                 window: timedelta = RATE_WINDOW) -> datetime | None:
    """None when one more report to a sender may go at `now`, given when the earlier ones to
    that sender went (`sent_at`); else when it may: as soon as the window holds fewer than
    `limit`. `limit` 0 means no limit."""
    if limit <= 0:
        return None
    recent = sorted(moment for moment in sent_at if now - window < moment <= now)
    if len(recent) < limit:
        return None
    return recent[len(recent) - limit] + window


def _row(event: EventRecord, key: str, now: datetime) -> OutboxRow:
    sender = sender_address(event.original_from)
    payload = {
        "version": PAYLOAD_VERSION,
        "id": hashlib.sha256(key.encode()).hexdigest()[:32],  # the report's Message-ID
        "to": sender,
        "action": event.action,
        "recipients": [_recipient(event)],
        "recipients_total": 1,
        "original": {
            "message_id": event.original_message_id,
            "from": event.original_from,
            "subject": event.original_subject,
            "date": event.original_date,
        },
        "bounce_message_id": event.bounce_message_id,
        "event_id": event.id,
        "mailbox": event.mailbox,
        "reported_at": iso(event.created_at if event.created_at else now.astimezone(UTC)),
    }
    return OutboxRow(DSN, EVENT_TYPES[event.action], sender, payload, key)


def _recipient(event: EventRecord) -> dict[str, Any]:
    return {
        "address": event.address,
        "status": event.status,
        "smtp_code": event.smtp_code,
        "diagnostic": event.diagnostic,
        "remote_mta": event.remote_mta,
        "reason": event.reason,
        "permanent": event.permanent,
    }


def _add_recipient(payload: dict[str, Any], event: EventRecord) -> None:
    """Another recipient of the same original in the same report: listed while there is
    room (MAX_RECIPIENTS), counted always."""
    payload["recipients_total"] += 1
    if len(payload["recipients"]) < MAX_RECIPIENTS:
        payload["recipients"].append(_recipient(event))


__all__ = [
    "DSN",
    "EVENT_TYPES",
    "FORBIDDEN_SENDERS",
    "MAX_RECIPIENTS",
    "PAYLOAD_VERSION",
    "dedupe_key",
    "dsn_settings",
    "forbidden_sender",
    "next_allowed",
    "plan_dsn",
    "refusal",
    "sender_address",
]
