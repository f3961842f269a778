"""The send-state policy: sequences of events in time (a table), then properties (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imap_bouncer.policy import (
    MANUAL,
    REFUSAL_REASONS,
    SUPPRESSED,
    Effect,
    Policy,
    PolicyError,
    SendState,
    State,
    effect,
    expire,
    manual,
    step,
)
from imap_bouncer.report import Action, Kind, Reason

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday morning


@dataclass(frozen=True)
class Ev:
    kind: str = Kind.BOUNCE
    action: str = Action.FAILED
    reason: str = Reason.MAILBOXFULL
    permanent: bool = False


SOFT = Ev()
HARD = Ev(reason=Reason.USERUNKNOWN, permanent=True)
COMPLAINT = Ev(kind=Kind.COMPLAINT, action=Action.DELIVERED, reason=Reason.FEEDBACK)
BLOCKED = Ev(reason=Reason.BLOCKED)
DELAY = Ev(kind=Kind.DELAY, action=Action.DELAYED, reason=Reason.EXPIRED)
AUTOREPLY = Ev(kind=Kind.AUTOREPLY, action=Action.DELIVERED, reason=Reason.VACATION)
DELIVERED = Ev(kind=Kind.DELIVERED, action=Action.DELIVERED, reason=Reason.DELIVERED)


def run(events: list[tuple[timedelta, Ev]], policy: Policy | None = None,
        start: SendState | None = None) -> tuple[SendState, list[tuple[str, str, str]]]:
    """Apply events at T0 + offset, in order; the final state and the (from, to, cause)s."""
    state = start or SendState()
    changes = []
    for offset, event in events:
        state, made = step(state, event, policy or Policy(), T0 + offset)
        changes.extend((str(c.from_state), str(c.to_state), c.cause) for c in made)
    return state, changes


def days(n: float) -> timedelta:
    return timedelta(days=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# (name, policy, events, final state, soft_count, changes)
SEQUENCES = [
    ("one soft bounce starts counting", Policy(), [(days(0), SOFT)],
     State.SOFT_BOUNCING, 1, [("active", "soft_bouncing", "event")]),
    ("five soft bounces on five days: unreachable", Policy(),
     [(days(d), SOFT) for d in range(5)], State.UNREACHABLE, 5,
     [("active", "soft_bouncing", "event"), ("soft_bouncing", "unreachable", "event")]),
    ("ten soft bounces on one day count once", Policy(),
     [(hours(h), SOFT) for h in range(10)], State.SOFT_BOUNCING, 1,
     [("active", "soft_bouncing", "event")]),
    ("23:59 then 00:01 are two calendar days", Policy(),
     [(hours(14) + timedelta(minutes=59), SOFT), (hours(15) + timedelta(minutes=1), SOFT)],
     State.SOFT_BOUNCING, 2, [("active", "soft_bouncing", "event")]),
    ("two per day allowed, 12 hours apart", Policy(soft_count_per_day=2),
     [(hours(0), SOFT), (hours(1), SOFT), (hours(12), SOFT)], State.SOFT_BOUNCING, 2,
     [("active", "soft_bouncing", "event")]),
    ("two per day: five within three days", Policy(soft_count_per_day=2),
     [(hours(h), SOFT) for h in (0, 12, 24, 36, 48)], State.UNREACHABLE, 5,
     [("active", "soft_bouncing", "event"), ("soft_bouncing", "unreachable", "event")]),
    ("outside the window counting starts again", Policy(soft_window_days=10, soft_reset_days=30),
     [(days(d), SOFT) for d in (0, 3, 6, 9, 12)], State.SOFT_BOUNCING, 1,
     [("active", "soft_bouncing", "event")]),
    ("a quiet period resets, then counting starts again", Policy(soft_reset_days=7),
     [(days(0), SOFT), (days(1), SOFT), (days(9), SOFT)], State.SOFT_BOUNCING, 1,
     [("active", "soft_bouncing", "event"), ("soft_bouncing", "active", "expiry"),
      ("active", "soft_bouncing", "event")]),
    ("weekly bounces within the quiet period add up", Policy(),
     [(days(7 * w), SOFT) for w in range(5)], State.UNREACHABLE, 5,
     [("active", "soft_bouncing", "event"), ("soft_bouncing", "unreachable", "event")]),
    ("unreachable expires, then active again", Policy(unreachable_days=10),
     [*((days(d), SOFT) for d in range(5)), (days(15), DELIVERED)], State.ACTIVE, 0,
     [("active", "soft_bouncing", "event"), ("soft_bouncing", "unreachable", "event"),
      ("unreachable", "active", "expiry")]),
    ("soft bounces do not extend unreachable", Policy(unreachable_days=10),
     [*((days(d), SOFT) for d in range(5)), (days(8), SOFT), (days(14), SOFT)],
     State.SOFT_BOUNCING, 1,
     [("active", "soft_bouncing", "event"), ("soft_bouncing", "unreachable", "event"),
      ("unreachable", "active", "expiry"), ("active", "soft_bouncing", "event")]),
    ("one permanent bounce: invalid", Policy(), [(days(0), HARD)], State.INVALID, 0,
     [("active", "invalid", "event")]),
    ("two permanent bounces needed, hours apart: too close",
     Policy(hard_threshold=2, hard_min_hours=24), [(hours(0), HARD), (hours(2), HARD)],
     State.ACTIVE, 0, []),
    ("two permanent bounces needed, hours apart: far enough",
     Policy(hard_threshold=2, hard_min_hours=24), [(hours(0), HARD), (hours(2), HARD),
                                                   (hours(25), HARD)],
     State.INVALID, 0, [("active", "invalid", "event")]),
    ("a permanent bounce outside the hard window is forgotten",
     Policy(hard_threshold=2, hard_window_days=5), [(days(0), HARD), (days(6), HARD)],
     State.ACTIVE, 0, []),
    ("permanent after soft bounces: invalid", Policy(),
     [(days(0), SOFT), (days(1), SOFT), (days(2), HARD)], State.INVALID, 2,
     [("active", "soft_bouncing", "event"), ("soft_bouncing", "invalid", "event")]),
    ("permanent while unreachable stays unreachable until expiry", Policy(unreachable_days=3),
     [*((days(d), SOFT) for d in range(5)), (days(5), HARD), (days(8), HARD)],
     State.INVALID, 0,
     [("active", "soft_bouncing", "event"), ("soft_bouncing", "unreachable", "event"),
      ("unreachable", "active", "expiry"), ("active", "invalid", "event")]),
    ("a complaint: complained", Policy(), [(days(0), COMPLAINT)], State.COMPLAINED, 0,
     [("active", "complained", "event")]),
    ("a complaint about an invalid address", Policy(), [(days(0), HARD), (days(1), COMPLAINT)],
     State.COMPLAINED, 0, [("active", "invalid", "event"), ("invalid", "complained", "event")]),
    ("complained ignores later bounces", Policy(),
     [(days(0), COMPLAINT), (days(1), HARD), (days(2), SOFT), (days(3), COMPLAINT)],
     State.COMPLAINED, 0, [("active", "complained", "event")]),
    ("refusals never count", Policy(),
     [(days(d), Ev(reason=r)) for d, r in enumerate(sorted(REFUSAL_REASONS))],
     State.ACTIVE, 0, []),
    ("a refusal claimed permanent still never suppresses", Policy(),
     [(days(0), Ev(reason=Reason.BLOCKED, permanent=True))], State.ACTIVE, 0, []),
    ("delays, auto-replies and deliveries change nothing", Policy(),
     [(days(d), e) for d, e in enumerate([DELAY, AUTOREPLY, DELIVERED] * 3)],
     State.ACTIVE, 0, []),
    ("a delayed recipient of a bounce changes nothing", Policy(),
     [(days(0), Ev(action=Action.DELAYED))], State.ACTIVE, 0, []),
    ("a non-permanent user unknown (4.x.x) counts as soft", Policy(),
     [(days(0), Ev(reason=Reason.USERUNKNOWN, permanent=False))], State.SOFT_BOUNCING, 1,
     [("active", "soft_bouncing", "event")]),
]


@pytest.mark.parametrize(("policy", "events", "final", "soft_count", "changes"),
                         [pytest.param(*row[1:], id=row[0]) for row in SEQUENCES])
def test_sequences(policy: Policy, events: list[tuple[timedelta, Ev]], final: State,
                   soft_count: int, changes: list[tuple[str, str, str]]) -> None:
    state, made = run(events, policy)
    assert state.state is final
    assert state.soft_count == soft_count
    assert made == changes
    assert state.last_event_at == T0 + events[-1][0]


def test_unreachable_lasts_from_the_last_counted_bounce() -> None:
    state, _ = run([(days(d), SOFT) for d in range(5)], Policy(unreachable_days=30))
    assert state.suppressed and state.suppressed_until == T0 + days(4) + days(30)
    assert expire(state, Policy(), T0 + days(33))[0].state is State.UNREACHABLE
    after, change = expire(state, Policy(), T0 + days(34))
    assert after.state is State.ACTIVE and after.soft_count == 0
    assert after.suppressed_until is None
    assert change is not None and change.cause == "expiry"


def test_change_reasons() -> None:
    _, made = step(SendState(), HARD, Policy(), T0)
    assert made[0].reason == "userunknown"
    _, made = step(SendState(), COMPLAINT, Policy(), T0)
    assert made[0].reason == "feedback"


@pytest.mark.parametrize("start", sorted(MANUAL))
def test_manual_states_ignore_events_and_time(start: State) -> None:
    events = [(days(d), e) for d, e in enumerate([HARD, SOFT, COMPLAINT, SOFT, SOFT, SOFT])]
    state, made = run(events, start=SendState(state=start))
    assert state.state is start and made == []
    assert expire(state, Policy(), T0 + days(9999))[1] is None


def test_held_is_suppressed_and_persistent_is_not() -> None:
    assert SendState(state=State.HELD).suppressed
    assert not SendState(state=State.PERSISTENT).suppressed


# -- manual changes ---------------------------------------------------------------------------


def test_manual_changes() -> None:
    invalid, _ = run([(days(0), HARD)])
    held, change = manual(invalid, "hold", T0, "checking with the customer")
    assert (held.state, change.from_state, change.to_state, change.cause) == (
        State.HELD, State.INVALID, State.HELD, "manual")
    assert change.note == held.note == "checking with the customer"
    assert change.reason == "hold"
    released, change = manual(held, "release", T0, "confirmed")
    assert released.state is State.ACTIVE and released.hard_count == 0
    persistent, _ = manual(released, "persist", T0, "the CEO")
    assert persistent.state is State.PERSISTENT
    reset, change = manual(persistent, "reset", T0, "back to normal")
    assert reset.state is State.ACTIVE and change.from_state is State.PERSISTENT


def test_reset_forgets_counts_from_any_state() -> None:
    bouncing, _ = run([(days(0), SOFT), (days(1), SOFT)])
    reset, change = manual(bouncing, "reset", T0 + days(1), "mailbox fixed")
    assert (reset.state, reset.soft_count, reset.soft_since) == (State.ACTIVE, 0, None)
    assert change.from_state is State.SOFT_BOUNCING


@pytest.mark.parametrize(("start", "action", "message"), [
    (State.ACTIVE, "release", "not held"),
    (State.INVALID, "release", "use reset"),
    (State.HELD, "hold", "already held"),
    (State.PERSISTENT, "persist", "already persistent"),
    (State.ACTIVE, "reset", "already active"),
    (State.ACTIVE, "delete", "unknown action"),
])
def test_manual_changes_that_change_nothing_are_refused(start: State, action: str,
                                                        message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        manual(SendState(state=start), action, T0, "why")


def test_manual_change_needs_a_reason() -> None:
    with pytest.raises(PolicyError, match="reason"):
        manual(SendState(state=State.INVALID), "reset", T0, "  ")


@pytest.mark.parametrize("bad", [{"soft_threshold": 0}, {"unreachable_days": 0},
                                 {"hard_min_hours": 24 * 31}, {"hard_min_hours": -1}])
def test_policy_refuses_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Policy(**bad)


def test_every_reason_is_classified_on_purpose() -> None:
    """A reason added to report.Reason must be placed here knowingly: a refusal or not."""
    soft = {r for r in Reason if effect(Ev(reason=r)) is Effect.SOFT}
    assert soft == {Reason.MAILBOXFULL, Reason.SYSTEMFULL, Reason.SUSPEND, Reason.EXPIRED,
                    Reason.NETWORKERROR, Reason.SYSTEMERROR, Reason.MAILERERROR,
                    Reason.ONHOLD, Reason.UNDEFINED, Reason.USERUNKNOWN, Reason.HOSTUNKNOWN,
                    Reason.HASMOVED, Reason.NOTACCEPT}
    assert {r for r in Reason if effect(Ev(reason=r)) is Effect.REFUSAL} == REFUSAL_REASONS
    assert effect(Ev(reason=Reason.FEEDBACK)) is Effect.COMPLAINT
    assert effect(Ev(reason=Reason.VACATION)) is Effect.NONE


# -- properties -------------------------------------------------------------------------------

EVENTS = st.builds(
    Ev,
    kind=st.sampled_from(list(Kind)),
    action=st.sampled_from(list(Action)),
    reason=st.sampled_from(list(Reason)),
    permanent=st.booleans(),
)
POLICIES = st.builds(
    Policy,
    soft_threshold=st.integers(1, 8),
    soft_count_per_day=st.integers(1, 4),
    soft_window_days=st.integers(1, 60),
    soft_reset_days=st.integers(1, 30),
    hard_threshold=st.integers(1, 3),
    hard_min_hours=st.integers(0, 48),
    hard_window_days=st.integers(2, 60),
    unreachable_days=st.integers(1, 60),
)
# Events at non-decreasing times, minutes to weeks apart.
TIMELINES = st.lists(st.tuples(st.integers(0, 60 * 24 * 20), EVENTS), max_size=40)
STATES = st.builds(SendState, state=st.sampled_from(list(State)))


def replay(start: SendState, policy: Policy, timeline: list[tuple[int, Ev]]):
    state, at = start, T0
    for gap, event in timeline:
        at += timedelta(minutes=gap)
        before = state
        state, made = step(state, event, policy, at)
        yield before, event, at, state, made


@settings(max_examples=300, deadline=None)
@given(POLICIES, TIMELINES)
def test_persistent_never_changes(policy: Policy, timeline: list[tuple[int, Ev]]) -> None:
    for _, _, _, state, made in replay(SendState(state=State.PERSISTENT), policy, timeline):
        assert state.state is State.PERSISTENT and made == []


@settings(max_examples=300, deadline=None)
@given(POLICIES, STATES, TIMELINES)
def test_refusals_never_suppress(policy: Policy, start: SendState,
                                 timeline: list[tuple[int, Ev]]) -> None:
    for before, event, _, state, made in replay(start, policy, timeline):
        if effect(event) is Effect.REFUSAL:
            # Only time (an expiry) may have changed the state, and never toward suppression.
            assert all(c.cause == "expiry" for c in made)
            assert not (state.suppressed and not before.suppressed)
            assert state.soft_count <= before.soft_count
            assert state.hard_count <= before.hard_count


@settings(max_examples=300, deadline=None)
@given(POLICIES, STATES, TIMELINES)
def test_counts_never_negative_nor_beyond_reason(policy: Policy, start: SendState,
                                                 timeline: list[tuple[int, Ev]]) -> None:
    for _, _, _, state, made in replay(start, policy, timeline):
        assert state.soft_count >= 0 and state.hard_count >= 0
        assert state.soft_count <= policy.soft_threshold
        assert (state.state is State.UNREACHABLE) == (state.suppressed_until is not None)
        for change in made:
            assert change.from_state != change.to_state


@settings(max_examples=300, deadline=None)
@given(POLICIES, TIMELINES, st.integers(0, 365))
def test_expiry_always_returns_to_active(policy: Policy, timeline: list[tuple[int, Ev]],
                                         extra_days: int) -> None:
    state, at = SendState(), T0
    for _, _, when, after, _ in replay(state, policy, timeline):
        state, at = after, when
    if state.state in (State.UNREACHABLE, State.SOFT_BOUNCING):
        later = at + timedelta(days=max(policy.unreachable_days, policy.soft_reset_days)
                               + extra_days)
        expired, change = expire(state, policy, later)
        assert expired.state is State.ACTIVE and change is not None
        assert expired.soft_count == 0 and expired.suppressed_until is None
        assert not expired.suppressed


@settings(max_examples=200, deadline=None)
@given(POLICIES, STATES, TIMELINES)
def test_only_people_leave_or_enter_manual_states(policy: Policy, start: SendState,
                                                  timeline: list[tuple[int, Ev]]) -> None:
    for _, _, _, _, made in replay(start, policy, timeline):
        for change in made:
            assert change.from_state not in MANUAL and change.to_state not in MANUAL


def test_suppressed_states() -> None:
    assert {State.UNREACHABLE, State.INVALID, State.COMPLAINED, State.HELD} == SUPPRESSED
