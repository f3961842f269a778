"""The pure notification planner: facts in, outbox rows out (imap_bouncer/notifications.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from imap_bouncer import notifications
from imap_bouncer.ledger import EventRecord, StateChange, StormAlert
from imap_bouncer.notifications import EVENT_RECORDED, STATE_CHANGED, STORM_DETECTED, plan

NOW = datetime(2026, 11, 21, 10, 30, 5, 123456, tzinfo=UTC)
ALL = (STATE_CHANGED, EVENT_RECORDED, STORM_DETECTED)


@dataclass(frozen=True)
class Endpoint:
    url: str
    sender_domains: tuple[str, ...] = ()
    events: tuple[str, ...] = notifications.DEFAULT_EVENT_TYPES


@dataclass(frozen=True)
class Config:
    webhooks: tuple[Endpoint, ...]


def event(ident: int = 1, address: str = "jo@example.net", sender: str = "example.org",
          bounce_id: str = "<b1@mx.example.net>", **changes) -> EventRecord:
    record = EventRecord(
        id=ident, message_pk=10, mailbox="default", bounce_message_id=bounce_id, kind="bounce",
        address=address, action="failed", status="5.1.1", smtp_code="550",
        reason="userunknown", permanent=True, diagnostic="550 5.1.1 unknown",
        remote_mta="mx.example.net", original_message_id="<o1@example.org>",
        original_from=f"News <news@{sender}>", sender_domain=sender,
        list_id="<news.example.org>", verp_recipient="", recipient_domain="example.net",
        created_at=NOW)
    return replace(record, **changes)


def change(event_id: int | None = 1, address: str = "jo@example.net", transition_id=7,
           cause: str = "event", to_state: str = "invalid") -> StateChange:
    return StateChange(address=address, from_state="active", to_state=to_state, cause=cause,
                       reason="userunknown", at=NOW, event_id=event_id,
                       transition_id=transition_id)


def storm(domain: str = "example.net") -> StormAlert:
    return StormAlert(id=3, domain=domain, started_at=NOW, refusals=12,
                      reasons=("blocked", "badreputation", "blocked"),
                      addresses=("b@example.net", "a@example.net"))


def config(*endpoints: Endpoint) -> Config:
    return Config(tuple(endpoints))


# -- routing ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("wanted", "senders", "matches"), [
    ((), [], True),  # no filter: everything, even facts without a sender
    ((), ["example.org"], True),
    (("example.org",), ["example.org"], True),
    (("example.org",), ["news.example.org"], True),  # a subdomain
    (("example.org",), ["NEWS.Example.ORG."], True),
    (("example.org",), ["badexample.org"], False),  # not a suffix match on characters
    (("example.org",), ["example.org.evil.net"], False),
    (("example.org",), [], False),  # a filter and no sender: not for this endpoint
    (("shop.example.org",), ["example.org"], False),  # a parent is not a subdomain
    (("a.org", "b.org"), ["x.b.org"], True),
    (("a.org",), ["c.org", "a.org"], True),  # any of a storm's senders
])
def test_sender_matches(wanted, senders, matches) -> None:
    assert notifications.sender_matches(wanted, senders) is matches


@pytest.mark.parametrize(("template", "address", "url"), [
    ("https://h.example/hooks", "jo@example.net", "https://h.example/hooks"),
    ("https://h.example/a/{address}", "jo@example.net", "https://h.example/a/jo%40example.net"),
    ("https://h.example/a?who={address}&x=1", "jo+news/x@example.net",
     "https://h.example/a?who=jo%2Bnews%2Fx%40example.net&x=1"),
    ("https://h.example/{address}", "jö@bücher.example", "https://h.example/j%C3%B6%40b%C3%BCcher.example"),
    ("https://h.example/{address}", "", None),  # a storm: no address to put there
    ("https://h.example/{address}", None, None),
])
def test_url_templates(template, address, url) -> None:
    assert notifications.resolve_url(template, address) == url


def test_no_endpoints_no_rows() -> None:
    assert plan([event()], [change()], [storm()], None, NOW) == []
    assert plan([event()], [change()], [storm()], config(), NOW) == []


def test_each_endpoint_gets_what_it_asked_for() -> None:
    changes_only = Endpoint("https://a.example/changes")
    everything = Endpoint("https://b.example/all/{address}", events=ALL)
    storms_only = Endpoint("https://c.example/storms", events=(STORM_DETECTED,))
    rows = plan([event()], [change()], [storm()], config(changes_only, everything, storms_only),
                NOW)
    got = sorted((row.event_type, row.target) for row in rows)
    assert got == [
        (STATE_CHANGED, "https://a.example/changes"),
        (STATE_CHANGED, "https://b.example/all/jo%40example.net"),
        (EVENT_RECORDED, "https://b.example/all/jo%40example.net"),
        # the endpoint with {address} gets no storm: a storm has no address
        (STORM_DETECTED, "https://a.example/changes"),
        (STORM_DETECTED, "https://c.example/storms"),
    ]
    assert {row.channel for row in rows} == {"webhook"}


def test_routing_by_the_original_senders_domain() -> None:
    org = Endpoint("https://h.example/org", sender_domains=("example.org",), events=ALL)
    shop = Endpoint("https://h.example/shop", sender_domains=("shop.example.com",), events=ALL)
    anyone = Endpoint("https://h.example/any", events=ALL)
    events = [event(1, sender="news.example.org"), event(2, "sam@example.net",
                                                         sender="shop.example.com",
                                                         bounce_id="<b2@x>")]
    rows = plan(events, [change(1), change(2, "sam@example.net", 8)], [],
                config(org, shop, anyone), NOW)
    by_target: dict[str, set[tuple[str, str]]] = {}
    for row in rows:
        by_target.setdefault(row.target, set()).add((row.event_type,
                                                     row.payload["data"].get("address", "")))
    assert by_target["https://h.example/org"] == {(STATE_CHANGED, "jo@example.net"),
                                                  (EVENT_RECORDED, "jo@example.net")}
    assert by_target["https://h.example/shop"] == {(STATE_CHANGED, "sam@example.net"),
                                                   (EVENT_RECORDED, "sam@example.net")}
    assert len(by_target["https://h.example/any"]) == 4


def test_a_manual_change_goes_only_to_endpoints_for_every_sender() -> None:
    routed = Endpoint("https://h.example/org", sender_domains=("example.org",))
    anyone = Endpoint("https://h.example/any")
    rows = plan([], [change(None, cause="manual", transition_id=9, to_state="held")], [],
                config(routed, anyone), NOW)
    assert [row.target for row in rows] == ["https://h.example/any"]
    data = rows[0].payload["data"]
    assert data["cause"] == "manual" and data["event"] is None and data["suppressed"] is True


def test_a_storm_is_routed_by_the_senders_refused_at_its_domain() -> None:
    org = Endpoint("https://h.example/org", sender_domains=("example.org",))
    shop = Endpoint("https://h.example/shop", sender_domains=("shop.example.com",))
    refused = [event(1, "a@example.net", sender="example.org", reason="blocked",
                     permanent=False)]
    rows = plan(refused, [], [storm("example.net")], config(org, shop), NOW)
    assert [row.target for row in rows] == ["https://h.example/org"]


# -- ids and dedupe keys ----------------------------------------------------------------------

def test_one_id_per_fact_one_row_per_fact_and_endpoint() -> None:
    first = Endpoint("https://a.example/{address}", events=ALL)
    second = Endpoint("https://b.example/hook", events=ALL)
    rows = plan([event()], [change()], [storm()], config(first, second), NOW)
    ids: dict[str, set[str]] = {}
    for row in rows:
        ids.setdefault(row.event_type, set()).add(row.payload["id"])
    # the same fact has the same id at every endpoint; different facts, different ids
    assert all(len(found) == 1 for found in ids.values())
    assert len({next(iter(found)) for found in ids.values()}) == 3
    keys = [row.dedupe_key for row in rows]
    assert len(keys) == len(set(keys)) == 5
    assert all(len(key) <= 255 for key in keys)
    assert all(re.fullmatch(r"msg_[0-9a-f]{32}", row.payload["id"]) for row in rows)


def test_planning_is_deterministic() -> None:
    endpoints = config(Endpoint("https://a.example/{address}", events=ALL))
    once = plan([event()], [change()], [storm()], endpoints, NOW)
    again = plan([event()], [change()], [storm()], endpoints, NOW)
    assert once == again


def test_the_same_report_recorded_again_is_the_same_fact() -> None:
    """A bounce moved back to the inbox is recorded again, with new row ids: its
    event.recorded must not become a second notification with another id."""
    endpoints = config(Endpoint("https://a.example/hook", events=(EVENT_RECORDED,)))
    [first] = plan([event(1)], [], [], endpoints, NOW)
    [again] = plan([event(99, created_at=datetime(2026, 11, 22, tzinfo=UTC))], [], [],
                   endpoints, NOW)
    assert again.dedupe_key == first.dedupe_key
    assert again.payload["id"] == first.payload["id"]
    # another recipient of that bounce, or another bounce, is another fact
    [other] = plan([event(2, "sam@example.net")], [], [], endpoints, NOW)
    [later] = plan([event(3, bounce_id="<b2@mx.example.net>")], [], [], endpoints, NOW)
    assert len({first.dedupe_key, other.dedupe_key, later.dedupe_key}) == 3
    # without a Message-ID there is nothing to know it by but its row
    [a] = plan([event(5, bounce_id="")], [], [], endpoints, NOW)
    [b] = plan([event(6, bounce_id="")], [], [], endpoints, NOW)
    assert a.dedupe_key != b.dedupe_key


def test_a_change_is_known_by_its_transition() -> None:
    endpoints = config(Endpoint("https://a.example/hook"))
    [one] = plan([], [change(transition_id=7)], [], endpoints, NOW)
    [two] = plan([], [change(transition_id=8)], [], endpoints, NOW)
    assert one.payload["id"] != two.payload["id"]
    # no transition recorded: what changed, where and when
    [three] = plan([], [change(transition_id=None)], [], endpoints, NOW)
    [four] = plan([], [change(transition_id=None)], [], endpoints, NOW)
    assert three.dedupe_key == four.dedupe_key != one.dedupe_key


def test_duplicate_facts_in_one_call_make_one_row() -> None:
    endpoints = config(Endpoint("https://a.example/hook", events=ALL))
    rows = plan([event(1), event(2)], [change(), change()], [storm(), storm()], endpoints, NOW)
    assert sorted(row.event_type for row in rows) == [STATE_CHANGED, EVENT_RECORDED,
                                                      STORM_DETECTED]


# -- payloads (docs/webhooks.md) --------------------------------------------------------------

def test_state_changed_payload() -> None:
    [row] = plan([event()], [change()], [], config(Endpoint("https://a.example/")), NOW)
    payload = row.payload
    assert set(payload) == {"type", "version", "id", "timestamp", "data"}
    assert (payload["type"], payload["version"]) == (STATE_CHANGED, 1)
    assert payload["timestamp"] == "2026-11-21T10:30:05Z"
    data = payload["data"]
    assert {k: data[k] for k in ("address", "from_state", "to_state", "suppressed", "cause",
                                 "reason", "note", "changed_at")} == {
        "address": "jo@example.net", "from_state": "active", "to_state": "invalid",
        "suppressed": True, "cause": "event", "reason": "userunknown", "note": "",
        "changed_at": "2026-11-21T10:30:05Z"}
    assert data["event"]["id"] == 1 and data["event"]["status"] == "5.1.1"
    assert data["event"]["original"] == {
        "message_id": "<o1@example.org>", "from": "News <news@example.org>",
        "sender_domain": "example.org", "list_id": "<news.example.org>", "verp_recipient": ""}


def test_event_and_storm_payloads() -> None:
    endpoints = config(Endpoint("https://a.example/", events=ALL))
    rows = {row.event_type: row.payload for row in plan([event()], [], [storm()], endpoints,
                                                        NOW)}
    recorded = rows[EVENT_RECORDED]["data"]
    assert set(recorded) == {"id", "kind", "address", "action", "status", "smtp_code",
                             "reason", "permanent", "diagnostic", "remote_mta", "recorded_at",
                             "mailbox", "bounce_message_id", "signed", "original"}
    assert recorded["signed"] == ""  # nothing signed it (docs/security.md)
    assert recorded["permanent"] is True and recorded["recorded_at"] == "2026-11-21T10:30:05Z"
    assert rows[STORM_DETECTED]["data"] == {
        "domain": "example.net", "started_at": "2026-11-21T10:30:05Z",
        "last_at": "2026-11-21T10:30:05Z", "refusals": 12,
        "reasons": ["badreputation", "blocked"], "addresses": ["a@example.net", "b@example.net"],
        "storm_id": 3}
