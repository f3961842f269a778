"""Send state in the ledger, on SQLite and PostgreSQL: states move in the events' transaction,
storms are raised once, people's changes are recorded with their reason, reads for people."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from imap_bouncer.ledger import Ledger, LedgerError, MessageItem
from imap_bouncer.models import AddressState, Event, Storm, Transition
from imap_bouncer.policy import Policy, PolicyError
from imap_bouncer.report import Action, Kind, Original, Reason, Recipient, Report

MAILBOX = "bounces"
POLICY = Policy(storm_refusals=3, storm_window_minutes=30)


@pytest.fixture
def ledger(test_db) -> Iterator[Ledger]:
    ledger = Ledger.open(test_db.url, policy=POLICY, store_raw=True)
    yield ledger
    ledger.close()


def report(address: str, reason: Reason = Reason.USERUNKNOWN, permanent: bool | None = None,
           kind: Kind = Kind.BOUNCE, action: Action = Action.FAILED) -> Report:
    if permanent is None:
        permanent = reason == Reason.USERUNKNOWN
    return Report(kind=kind, recipients=[Recipient(
        address=address, action=action, status="5.1.1" if permanent else "4.2.2",
        reason=reason, permanent=permanent, evidence=f"because {reason}")],
        original=Original(message_id=f"<orig-{address}>", from_="news@example.org"),
        analyzer="dsn", evidence="a delivery status notification")


_uids = iter(range(1, 1_000_000))


def item(rep: Report, arrived: datetime | None = None) -> MessageItem:
    uid = next(_uids)
    return MessageItem(mailbox=MAILBOX, uidvalidity=1, uid=uid, target_folder="Processed",
                       raw=f"Message-ID: <b{uid}@mx>\r\n\r\nbounce {uid}".encode(), report=rep,
                       message_id=f"<b{uid}@mx>", internal_date=arrived)


def state_of(address: str) -> str | None:
    row = AddressState.get_or_none(AddressState.address == address)
    return None if row is None else row.state


# -- states move with the events --------------------------------------------------------------


def test_events_update_states_and_record_transitions(ledger: Ledger) -> None:
    ledger.record_batch([item(report("gone@example.net")),
                         item(report("full@example.net", Reason.MAILBOXFULL)),
                         item(report("away@example.net", Reason.VACATION, kind=Kind.AUTOREPLY,
                                     action=Action.DELIVERED)),
                         item(report("angry@example.net", Reason.FEEDBACK, kind=Kind.COMPLAINT,
                                     action=Action.DELIVERED))])
    assert state_of("gone@example.net") == "invalid"
    assert state_of("full@example.net") == "soft_bouncing"
    assert state_of("away@example.net") == "active"  # recorded, changes nothing
    assert state_of("angry@example.net") == "complained"
    transition = Transition.get(Transition.address == "gone@example.net")
    event = Event.get(Event.address == "gone@example.net")
    assert (transition.from_state, transition.to_state, transition.cause, transition.reason,
            transition.event_id) == ("active", "invalid", "event", "userunknown", event.id)
    assert Transition.select().count() == 3


def test_changes_reach_the_notifications_with_their_transition(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(ledger, "_plan_notifications",
                        lambda events, changes, now: seen.append((events, changes)))
    ledger.record_batch([item(report("gone@example.net"))])
    [(events, [change])] = seen
    assert change.address == "gone@example.net" and change.to_state == "invalid"
    assert change.event_id == events[0].id
    assert change.transition_id == Transition.get().id


def test_a_failing_batch_leaves_no_state_change(ledger: Ledger,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.record_batch([item(report("full@example.net", Reason.MAILBOXFULL))])
    before = (list(AddressState.select().dicts()), Transition.select().count())

    def broken(events, changes, now):
        assert changes  # the policy ran, in this same transaction
        raise RuntimeError("the outbox failed")

    monkeypatch.setattr(ledger, "_plan_notifications", broken)
    with pytest.raises(RuntimeError):
        ledger.record_batch([item(report("gone@example.net")),
                             item(report("full@example.net", Reason.MAILBOXFULL),
                                  datetime.now(UTC) + timedelta(days=1))])
    assert (list(AddressState.select().dicts()), Transition.select().count()) == before
    assert state_of("gone@example.net") is None
    assert Event.select().count() == 1


def test_a_backlog_counts_soft_bounces_on_the_days_they_arrived(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    days = [now - timedelta(days=d) for d in (8, 6, 4, 2, 1)]
    ledger.record_batch([item(report("full@example.net", Reason.MAILBOXFULL), day)
                         for day in days])
    row = AddressState.get(AddressState.address == "full@example.net")
    assert row.state == "unreachable" and row.soft_count == 5
    assert row.suppressed_until == days[-1] + timedelta(days=POLICY.unreachable_days)
    # The same five recorded as arriving now would count once.
    ledger.record_batch([item(report("other@example.net", Reason.MAILBOXFULL))
                         for _ in days])
    assert AddressState.get(AddressState.address == "other@example.net").soft_count == 1


def test_refusals_never_suppress(ledger: Ledger) -> None:
    ledger.record_batch([item(report("a@example.net", reason))
                         for reason in (Reason.BLOCKED, Reason.SPAMDETECTED,
                                        Reason.AUTHFAILURE, Reason.BADREPUTATION)])
    assert state_of("a@example.net") == "active"
    assert Transition.select().count() == 0


# -- storms -----------------------------------------------------------------------------------


def test_a_storm_is_raised_once(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    refused = [item(report(f"user{n}@big.example", Reason.BLOCKED)) for n in range(4)]
    ledger.record_batch(refused[:2])
    assert ledger.batch_storms == [] and Storm.select().count() == 0
    ledger.record_batch(refused[2:])
    [alert] = ledger.batch_storms
    assert alert.domain == "big.example" and alert.refusals == 4
    assert alert.reasons == ("blocked",)
    assert alert.addresses == tuple(f"user{n}@big.example" for n in range(4))
    assert [r.message for r in caplog.records if "storm" in r.message].__len__() == 1
    # More refusals in the same storm: no new alert, the storm is extended.
    ledger.record_batch([item(report(f"more{n}@big.example", Reason.SPAMDETECTED))
                         for n in range(5)])
    assert ledger.batch_storms == []
    [storm] = Storm.select()
    assert storm.refusals == 9 and storm.reasons == ["blocked", "spamdetected"]
    assert sum("storm" in r.message for r in caplog.records) == 1
    # No address was touched.
    assert {row.state for row in AddressState.select()} == {"active"}


def test_refusals_spread_over_domains_or_one_address_make_no_storm(ledger: Ledger) -> None:
    ledger.record_batch([item(report(f"u@d{n}.example", Reason.BLOCKED)) for n in range(5)])
    ledger.record_batch([item(report("same@one.example", Reason.BLOCKED)) for _ in range(5)])
    ledger.record_batch([item(report(f"u{n}@soft.example", Reason.MAILBOXFULL))
                         for n in range(5)])
    assert Storm.select().count() == 0 and ledger.batch_storms == []


def test_old_refusals_in_a_backlog_make_no_storm(ledger: Ledger) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    ledger.record_batch([item(report(f"u{n}@big.example", Reason.BLOCKED), old)
                         for n in range(6)])
    assert Storm.select().count() == 0


def test_a_storm_after_the_window_is_a_new_storm(ledger: Ledger) -> None:
    ledger.record_batch([item(report(f"u{n}@big.example", Reason.BLOCKED)) for n in range(3)])
    # The first storm ended long ago (as if its refusals were all older than the window).
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    Storm.update(started_at=long_ago, last_at=long_ago).execute()
    Event.update(created_at=long_ago).execute()
    ledger.record_batch([item(report(f"v{n}@big.example", Reason.BLOCKED)) for n in range(3)])
    assert len(ledger.batch_storms) == 1 and Storm.select().count() == 2


# -- people's changes -------------------------------------------------------------------------


def test_manual_changes_are_recorded_with_reason_and_actor(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.record_batch([item(report("gone@example.net"))])
    notified = []
    real = ledger._plan_notifications
    monkeypatch.setattr(ledger, "_plan_notifications",
                        lambda events, changes, now: (notified.append(changes),
                                                      real(events, changes, now)))
    change = ledger.manual_change("Gone@EXAMPLE.net", "reset", "mailbox recreated", "alice")
    assert (change.address, change.from_state, change.to_state, change.cause) == (
        "gone@example.net", "invalid", "active", "manual")
    assert notified == [[change]]
    row = Transition.get_by_id(change.transition_id)
    assert (row.actor, row.note, row.reason, row.event_id) == (
        "alice", "mailbox recreated", "reset", None)
    assert state_of("gone@example.net") == "active"
    assert AddressState.get(AddressState.address == "gone@example.net").note == \
        "mailbox recreated"


def test_manual_change_of_an_unknown_address_creates_it(ledger: Ledger) -> None:
    change = ledger.manual_change("vip@example.net", "persist", "the CEO", "bob")
    assert (change.from_state, change.to_state) == ("active", "persistent")
    ledger.record_batch([item(report("vip@example.net"))])
    assert state_of("vip@example.net") == "persistent"


def test_refused_manual_change_writes_nothing(ledger: Ledger) -> None:
    with pytest.raises(PolicyError, match="not held"):
        ledger.manual_change("x@example.net", "release", "why not", "carol")
    with pytest.raises(PolicyError, match="reason"):
        ledger.manual_change("x@example.net", "hold", " ", "carol")
    with pytest.raises(PolicyError, match="not an address"):
        ledger.manual_change("nobody", "hold", "why", "carol")
    assert AddressState.select().count() == 0 and Transition.select().count() == 0


def test_concurrent_writers_lose_no_count(ledger: Ledger) -> None:
    """Permanent bounces for one address recorded by four connections at once: all counted
    (the rows are locked on PostgreSQL, writers queue on SQLite)."""
    ledger.policy = Policy(hard_threshold=10, hard_window_days=365)
    items = [item(report("gone@example.net")) for _ in range(4)]
    barrier = threading.Barrier(len(items))
    errors: list[BaseException] = []

    def record(one: MessageItem) -> None:
        try:
            barrier.wait(timeout=30)
            ledger.record_batch([one])  # each thread has its own connection
        except BaseException as err:
            errors.append(err)
        finally:
            ledger.db.close()

    threads = [threading.Thread(target=record, args=(one,)) for one in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    row = AddressState.get(AddressState.address == "gone@example.net")
    assert (row.state, row.hard_count) == ("active", 4)


# -- time -------------------------------------------------------------------------------------


def test_expiry_shows_at_once_and_is_recorded_by_expire_due(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    ledger.record_batch([item(report("full@example.net", Reason.MAILBOXFULL),
                              now - timedelta(days=d)) for d in (5, 4, 3, 2, 1)])
    later = now + timedelta(days=POLICY.unreachable_days + 1)
    info = ledger.address_state("full@example.net", now=later)
    assert info is not None and (info.state, info.stored_state) == ("active", "unreachable")
    assert [i.address for i in ledger.export(now=now)] == ["full@example.net"]
    assert ledger.export(now=later) == []
    [change] = ledger.expire_due(now=later)
    assert (change.from_state, change.to_state, change.cause) == (
        "unreachable", "active", "expiry")
    assert state_of("full@example.net") == "active"
    assert ledger.expire_due(now=later) == []


# -- reading ----------------------------------------------------------------------------------


def test_list_export_events_and_explain(ledger: Ledger) -> None:
    ledger.record_batch([item(report("gone@example.net")),
                         item(report("full@example.net", Reason.MAILBOXFULL)),
                         item(report("angry@example.net", Reason.FEEDBACK, kind=Kind.COMPLAINT,
                                     action=Action.DELIVERED))])
    ledger.manual_change("held@example.net", "hold", "legal asked", "dave")
    listed = {i.address: i.state for i in ledger.list_addresses()}
    assert listed == {"gone@example.net": "invalid", "full@example.net": "soft_bouncing",
                      "angry@example.net": "complained", "held@example.net": "held"}
    assert [i.address for i in ledger.list_addresses(["invalid", "held"])] == [
        "held@example.net", "gone@example.net"]  # the latest changed first
    assert len(ledger.list_addresses(limit=2)) == 2
    assert [i.address for i in ledger.export()] == ["angry@example.net", "gone@example.net"]
    assert ledger.address_state("nobody@example.net") is None

    events = ledger.events(address="GONE@example.net")
    assert [(e.address, e.reason, e.evidence) for e in events] == [
        ("gone@example.net", "userunknown", "because userunknown")]
    assert events[0].bounce_message_id.startswith("<b") and events[0].analyzer == "dsn"
    assert [e.address for e in ledger.events(limit=2)] == ["angry@example.net",
                                                            "full@example.net"]
    assert ledger.events(since=datetime.now(UTC) + timedelta(minutes=5)) == []

    bounce_id = events[0].bounce_message_id
    for ident in (bounce_id, bounce_id.strip("<>"), str(events[0].message_pk),
                  "<orig-gone@example.net>"):
        [found] = ledger.explain(ident)
        assert found.id == events[0].message_pk and found.analyzer == "dsn"
        assert [t.to_state for t in found.transitions] == ["invalid"]
        assert found.raw is not None and b"bounce" in found.raw
    assert ledger.explain("<nothing@here>") == [] and ledger.explain("999999") == []
    assert ledger.transitions("held@example.net")[0].note == "legal asked"


def test_reads_fail_as_ledger_errors(ledger: Ledger) -> None:
    ledger.db.close()
    ledger.db.connect()
    ledger.db.execute_sql("DROP TABLE transition")
    with pytest.raises(LedgerError, match="read transitions"):
        ledger.transitions("x@example.net")
