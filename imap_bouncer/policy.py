"""The send state of an address, decided by a pure function of its state, an event and time.

No I/O: the ledger loads an address's `SendState`, calls `step` for each new event (oldest
first) and stores what comes back, with a `Change` for every change of state, in the same
transaction as the events. People change states with `manual`. Everything here depends only
on its arguments, so the rules are tested as sequences of events in time (tests/test_policy.py).

States (`State`):

- active: mail may be sent.
- soft_bouncing: soft bounces are being counted; mail may still be sent.
- unreachable: `soft_threshold` soft bounces were counted: suppressed until `suppressed_until`
  (`unreachable_days` after the last one), then active again with the counts reset.
- invalid: the address is bad (`hard_threshold` permanent bounces): suppressed.
- complained: the recipient complained (a feedback report): suppressed.
- held: set by a person: suppressed until a person releases it.
- persistent: set by a person: never suppressed, never changed by events or time.

What an event does (`effect`):

- a complaint (kind complaint, or reason feedback) -> complained;
- a permanent bounce (the analyzer's `permanent`: the address itself is bad) -> counts toward
  invalid;
- a failed delivery refused for the message rather than the address (`REFUSAL_REASONS`) ->
  nothing, ever: it is counted per destination domain by the ledger (storm alerts) instead;
- any other failed delivery (a full mailbox, a network error, an unknown cause) -> counts
  toward unreachable;
- delays, auto-replies, delivery notices and unknown messages -> nothing (they are recorded).

Times are aware datetimes; "calendar day" means the UTC day.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from .report import Action, Kind, Reason


class State(StrEnum):
    ACTIVE = "active"
    SOFT_BOUNCING = "soft_bouncing"
    UNREACHABLE = "unreachable"
    INVALID = "invalid"
    COMPLAINED = "complained"
    HELD = "held"
    PERSISTENT = "persistent"


# States in which mail must not be sent to the address.
SUPPRESSED = frozenset({State.UNREACHABLE, State.INVALID, State.COMPLAINED, State.HELD})
# States only a person sets or leaves: events and time never change them.
MANUAL = frozenset({State.HELD, State.PERSISTENT})


class Effect(StrEnum):
    """What one event means for its address."""

    NONE = "none"  # recorded, changes nothing
    COMPLAINT = "complaint"
    HARD = "hard"  # the address is bad
    SOFT = "soft"  # delivery failed for a reason that may pass
    REFUSAL = "refusal"  # the message was refused, not the address: never suppresses


class ManualAction(StrEnum):
    """What a person can do to an address's state."""

    RESET = "reset"  # back to active, every count forgotten (from any state)
    HOLD = "hold"  # suppress until released
    RELEASE = "release"  # end a hold (or persistent): back to active, counts forgotten
    PERSIST = "persist"  # never suppress, never change automatically


# Reasons for which the *message* was refused, not the address: the fix is on the sending
# side (or the refusal is about this one message), so they never suppress an address, however
# often they come and whatever their status code. Each with why:
REFUSAL_REASONS = frozenset({
    Reason.BLOCKED,  # our sending IP or host is on a blocklist or refused
    Reason.BADREPUTATION,  # our sender's reputation: fix the sending, not the list
    Reason.REQUIREPTR,  # our sending IP has no reverse DNS
    Reason.AUTHFAILURE,  # our SPF, DKIM or DMARC failed
    Reason.REJECTED,  # our envelope sender was refused
    Reason.NORELAYING,  # the route was refused (a misconfigured relay), not the mailbox
    Reason.SECURITYERROR,  # TLS or encryption trouble between the servers
    Reason.SPAMDETECTED,  # this message's content was judged spam
    Reason.VIRUSDETECTED,  # this message carried a virus
    Reason.CONTENTERROR,  # this message's content is malformed or forbidden
    Reason.NOTCOMPLIANTRFC,  # this message breaks RFC 5322
    Reason.POLICYVIOLATION,  # the destination's local policy refused this message
    Reason.FILTERED,  # the recipient's own filter refused it: the mailbox exists
    Reason.MESGTOOBIG,  # this message is too big for the receiving system: send a smaller one
    Reason.EXCEEDLIMIT,  # this message is over the recipient's size limit: idem
    Reason.SPEEDING,  # we sent too fast (rate limit)
    Reason.TOOMANYCONN,  # we opened too many connections or gave too many recipients
    Reason.SYNTAXERROR,  # our MTA spoke bad SMTP
})
# Counted as soft bounces, because they may pass but, repeated, mean the mailbox cannot be
# reached: mailboxfull, systemfull, suspend, expired, networkerror, systemerror, mailererror,
# onhold, undefined, and the address reasons (userunknown, hostunknown, hasmoved, notaccept)
# when the analyzer did not judge them permanent (e.g. a 4.x.x status).
# Never a failure: delivered, vacation (and feedback, a complaint).
_NOT_FAILURES = frozenset({Reason.DELIVERED, Reason.VACATION})
_IGNORED_KINDS = frozenset({Kind.DELAY, Kind.AUTOREPLY, Kind.DELIVERED, Kind.UNKNOWN})


class EventLike(Protocol):
    """What the policy reads of an event (ledger.EventRecord has these and more)."""

    @property
    def kind(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def permanent(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules' numbers; settings.toml [policy] documents each with its default."""

    soft_threshold: int = 5  # soft bounces counted to make an address unreachable
    soft_count_per_day: int = 1  # at most this many counted per calendar day
    soft_window_days: float = 30  # ... all within this many days of the first one counted
    soft_reset_days: float = 14  # no soft bounce for this long: counts forgotten, active again
    hard_threshold: int = 1  # permanent bounces to make an address invalid
    hard_min_hours: float = 0  # ... spread over at least this many hours (first to last)
    hard_window_days: float = 30  # ... within this many days of the first one
    unreachable_days: float = 30  # how long unreachable lasts
    storm_refusals: int = 10  # refused addresses at one domain that make a storm
    storm_window_minutes: float = 30  # ... within this many minutes

    def __post_init__(self) -> None:
        for name in ("soft_threshold", "soft_count_per_day", "hard_threshold",
                     "storm_refusals"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("soft_window_days", "soft_reset_days", "hard_window_days",
                     "unreachable_days", "storm_window_minutes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0")
        if not 0 <= self.hard_min_hours <= self.hard_window_days * 24:
            raise ValueError("hard_min_hours must be between 0 and hard_window_days in hours")

    @property
    def storm_window(self) -> timedelta:
        return timedelta(minutes=self.storm_window_minutes)


@dataclass(frozen=True, slots=True)
class SendState:
    """One address's state and counters (the fields of models.AddressState)."""

    state: State = State.ACTIVE
    soft_count: int = 0  # soft bounces counted in the current window
    soft_since: datetime | None = None  # the first soft bounce counted in the window
    last_soft_at: datetime | None = None  # the last soft bounce counted
    hard_count: int = 0  # permanent bounces counted while not yet invalid
    first_hard_at: datetime | None = None
    last_event_at: datetime | None = None
    suppressed_until: datetime | None = None  # unreachable: when it ends
    reason: str = ""  # the reason of the last change
    note: str = ""  # a person's words with the last manual change

    @property
    def suppressed(self) -> bool:
        return self.state in SUPPRESSED


@dataclass(frozen=True, slots=True)
class Change:
    """A change of state, to be recorded as a Transition."""

    from_state: State
    to_state: State
    cause: str  # event, expiry, manual
    reason: str  # the event's reason, or why time or a person changed it
    note: str = ""


class PolicyError(ValueError):
    """A manual change that cannot be made (e.g. releasing an address that is not held)."""


def effect(event: EventLike) -> Effect:
    """What an event means for its address (see the module docstring)."""
    if event.kind == Kind.COMPLAINT or event.reason == Reason.FEEDBACK:
        return Effect.COMPLAINT
    if event.kind in _IGNORED_KINDS or event.action != Action.FAILED \
            or event.reason in _NOT_FAILURES:
        return Effect.NONE
    # Before `permanent`: a refused message never suppresses, whatever else was said.
    if event.reason in REFUSAL_REASONS:
        return Effect.REFUSAL
    return Effect.HARD if event.permanent else Effect.SOFT


def is_refusal(event: EventLike) -> bool:
    return effect(event) is Effect.REFUSAL


def step(state: SendState, event: EventLike, policy: Policy,
         now: datetime) -> tuple[SendState, list[Change]]:
    """`expire`, then `apply`: what the ledger runs for each new event."""
    state, expired = expire(state, policy, now)
    state, changed = apply(state, event, policy, now)
    return state, [c for c in (expired, changed) if c is not None]


def apply(state: SendState, event: EventLike, policy: Policy,
          now: datetime) -> tuple[SendState, Change | None]:
    """The state after one event at time `now`, and the change, if the state changed.

    The algorithm:

    1. Note the event's time (`last_event_at`), whatever it is.
    2. held and persistent belong to people: nothing else changes.
    3. Name the event's effect (`effect`). None and refusal: nothing else changes.
    4. A complaint: complained (from any state but the manual ones), reason feedback.
    5. invalid and complained addresses stay so (only a person resets them); an unreachable
       address stays unreachable until its time is up (no soft bounce extends it).
    6. A permanent bounce: forget an earlier one older than `hard_window_days`; count it
       (`hard_count`, `first_hard_at`). With `hard_threshold` counted, spread over at least
       `hard_min_hours`: invalid.
    7. A soft bounce: when the window that began with the first one counted (`soft_since`) is
       over, start a new window. Count it only when it falls on a later calendar day than the
       last one counted, or, with `soft_count_per_day` N > 1, at least 24/N hours after it (so
       at most N per calendar day, and a burst of retries counts once). With `soft_threshold`
       counted: unreachable until `unreachable_days` from now; else soft_bouncing.
    """
    current = state.state
    state = replace(state, last_event_at=_later(state.last_event_at, now))  # 1
    if current in MANUAL:  # 2
        return state, None
    what = effect(event)  # 3
    if what in (Effect.NONE, Effect.REFUSAL):
        return state, None
    if what is Effect.COMPLAINT:  # 4
        if current is State.COMPLAINED:
            return state, None
        return _move(state, State.COMPLAINED, "event", str(Reason.FEEDBACK),
                     suppressed_until=None)
    if current in (State.INVALID, State.COMPLAINED, State.UNREACHABLE):  # 5
        return state, None
    if what is Effect.HARD:  # 6
        return _hard(state, event, policy, now)
    return _soft(state, event, policy, now)  # 7


def _hard(state: SendState, event: EventLike, policy: Policy,
          now: datetime) -> tuple[SendState, Change | None]:
    first = state.first_hard_at
    if first is None or now - first > timedelta(days=policy.hard_window_days):
        state = replace(state, hard_count=0, first_hard_at=None)
        first = now
    first = min(first, now)
    state = replace(state, hard_count=state.hard_count + 1, first_hard_at=first)
    if state.hard_count >= policy.hard_threshold \
            and now - first >= timedelta(hours=policy.hard_min_hours):
        return _move(state, State.INVALID, "event", str(event.reason), suppressed_until=None)
    return state, None


def _soft(state: SendState, event: EventLike, policy: Policy,
          now: datetime) -> tuple[SendState, Change | None]:
    if state.soft_since is not None \
            and now - state.soft_since >= timedelta(days=policy.soft_window_days):
        state = replace(state, soft_count=0, soft_since=None, last_soft_at=None)
    if not _counts(state.last_soft_at, now, policy.soft_count_per_day):
        return state, None
    state = replace(state, soft_count=state.soft_count + 1,
                    soft_since=state.soft_since or now, last_soft_at=now)
    if state.soft_count >= policy.soft_threshold:
        return _move(state, State.UNREACHABLE, "event", str(event.reason),
                     suppressed_until=now + timedelta(days=policy.unreachable_days))
    if state.state is State.ACTIVE:
        return _move(state, State.SOFT_BOUNCING, "event", str(event.reason))
    return state, None


def _counts(last: datetime | None, now: datetime, per_day: int) -> bool:
    if last is None:
        return True
    if _day(now) > _day(last):
        return True
    return per_day > 1 and now - last >= timedelta(hours=24 / per_day)


def expire(state: SendState, policy: Policy, now: datetime) -> tuple[SendState, Change | None]:
    """The state once time has passed, before anything new happens at `now`.

    1. unreachable, and `suppressed_until` has come: active, every count forgotten.
    2. soft_bouncing, and no soft bounce counted for `soft_reset_days`: active, counts
       forgotten.
    3. A pending permanent-bounce count older than `hard_window_days` is forgotten (no change
       of state).
    held, persistent, invalid and complained never expire.
    """
    if state.state is State.UNREACHABLE and (state.suppressed_until is None
                                             or state.suppressed_until <= now):
        return _move(_cleared(state), State.ACTIVE, "expiry", "unreachable expired",
                     suppressed_until=None)
    if state.state is State.SOFT_BOUNCING and (
            state.last_soft_at is None
            or now - state.last_soft_at >= timedelta(days=policy.soft_reset_days)):
        return _move(_cleared(state), State.ACTIVE, "expiry", "soft bounces stopped")
    if state.state not in MANUAL and state.hard_count and (
            state.first_hard_at is None
            or now - state.first_hard_at > timedelta(days=policy.hard_window_days)):
        state = replace(state, hard_count=0, first_hard_at=None)
    return state, None


def manual(state: SendState, action: str, now: datetime,
           note: str) -> tuple[SendState, Change]:
    """A person's change, with their words; PolicyError when it would change nothing.

    reset: active, counts forgotten, from any state. hold: held. release: from held or
    persistent to active, counts forgotten. persist: persistent.
    """
    if not note.strip():
        raise PolicyError("a reason is required")
    try:
        what = ManualAction(action)
    except ValueError:
        raise PolicyError(f"unknown action {action!r} (reset, hold, release, persist)") from None
    current = state.state
    if what is ManualAction.RESET:
        if current is State.ACTIVE and _cleared(state) == state:
            raise PolicyError("already active, with nothing counted")
        target, state = State.ACTIVE, _cleared(state)
    elif what is ManualAction.RELEASE:
        if current not in MANUAL:
            raise PolicyError(f"not held or persistent but {current} (use reset)")
        target, state = State.ACTIVE, _cleared(state)
    else:
        target = State.HELD if what is ManualAction.HOLD else State.PERSISTENT
        if current is target:
            raise PolicyError(f"already {target}")
    state = replace(state, note=note)
    new, change = _move(state, target, "manual", str(what), suppressed_until=None)
    return new, replace(change, note=note)


# -- helpers ----------------------------------------------------------------------------------


def _move(state: SendState, to: State, cause: str, reason: str,
          **fields: object) -> tuple[SendState, Change]:
    change = Change(from_state=state.state, to_state=to, cause=cause, reason=reason)
    return replace(state, state=to, reason=reason, **fields), change  # type: ignore[arg-type]


def _cleared(state: SendState) -> SendState:
    return replace(state, soft_count=0, soft_since=None, last_soft_at=None, hard_count=0,
                   first_hard_at=None, suppressed_until=None)


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _day(when: datetime) -> date:
    return when.astimezone(UTC).date()


__all__ = [
    "MANUAL",
    "REFUSAL_REASONS",
    "SUPPRESSED",
    "Change",
    "Effect",
    "EventLike",
    "ManualAction",
    "Policy",
    "PolicyError",
    "SendState",
    "State",
    "apply",
    "effect",
    "expire",
    "is_refusal",
    "manual",
    "step",
]
