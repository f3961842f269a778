"""The rules for delivery reports to senders (dsn_planning), table-driven: pure, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from imap_bouncer import verp
from imap_bouncer.dsn_planning import (
    MAX_RECIPIENTS,
    dedupe_key,
    forbidden_sender,
    next_allowed,
    plan_dsn,
    refusal,
)
from imap_bouncer.ledger import EventRecord
from imap_bouncer.settings import DsnSettings, Settings, SettingsError, load_settings

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
DSN = DsnSettings(enabled=True, sender_domains=("example.org",),
                  from_address="Mail Delivery System <postmaster@example.org>")


def event(**changes) -> EventRecord:
    base = EventRecord(
        id=1, message_pk=1, mailbox="bounces", bounce_message_id="<bounce.1@mx.example.net>",
        kind="bounce", address="jo@example.net", action="failed", status="5.1.1",
        smtp_code="550", reason="userunknown", permanent=True,
        diagnostic="550 5.1.1 <jo@example.net>: User unknown", remote_mta="mx.example.net",
        original_message_id="<orig.1@mail.example.org>",
        original_from="Anna Example <anna@example.org>", sender_domain="example.org",
        list_id="", verp_recipient="", recipient_domain="example.net",
        created_at=NOW - timedelta(minutes=5), original_subject="Your quote",
        original_date="Sat, 21 Nov 2026 10:00:00 +0000", original_automatic="",
        signed="verp", signed_day=verp.day_of(NOW) - 1, proof_note="signed VERP address in "
        "Delivered-To")
    return replace(base, **changes)


# (what, event changes, settings changes, refused?) -- "" means a report is planned.
RULES = [
    ("a plain bounce from a configured sender", {}, {}, ""),
    ("a subdomain of a configured domain", {"original_from": "anna@news.example.org"}, {}, ""),
    ("a delay", {"kind": "delay", "action": "delayed", "status": "4.4.1"}, {}, ""),
    ("a delay with delays off", {"kind": "delay", "action": "delayed"}, {"delays": False},
     "delays are not reported"),
    ("a complaint", {"kind": "complaint", "action": "delivered"}, {}, "not a bounce"),
    ("an auto-reply", {"kind": "autoreply", "action": "delivered"}, {}, "not a bounce"),
    ("a delivered recipient of a bounce", {"action": "delivered"}, {}, "not failed"),
    ("no recipient", {"address": ""}, {}, "names no recipient"),
    ("another sender domain", {"original_from": "x@example.com"}, {}, "not one of"),
    ("a look-alike domain", {"original_from": "x@badexample.org"}, {}, "not one of"),
    ("no sender domains configured", {}, {"sender_domains": ()}, "not one of"),
    ("an empty sender", {"original_from": ""}, {}, "no sender address"),
    ("a null sender", {"original_from": "<>"}, {}, "no sender address"),
    ("a sender with a control character", {"original_from": "an\x1bna@example.org"}, {},
     "no sender address"),
    ("a 300-character sender", {"original_from": "a" * 290 + "@example.org"}, {},
     "no sender address"),
    ("MAILER-DAEMON", {"original_from": "MAILER-DAEMON@example.org"}, {}, "mailer-daemon"),
    ("postmaster", {"original_from": "Postmaster <postmaster@example.org>"}, {}, "postmaster"),
    ("no-reply", {"original_from": "Shop <no-reply@example.org>"}, {}, "no-reply"),
    ("noreply+tag", {"original_from": "noreply+orders@example.org"}, {}, "no-reply"),
    ("do-not-reply", {"original_from": "do_not_reply@example.org"}, {}, "no-reply"),
    ("a list's -request address", {"original_from": "news-request@example.org"}, {},
     "list address"),
    ("a VERP bounce address", {"original_from": "bounces+jo=example.net@example.org"}, {},
     "bounce address"),
    ("our own from_address", {"original_from": "postmaster2@example.org"},
     {"from_address": "postmaster2@example.org"}, "our own from_address"),
    ("an automatic original", {"original_automatic": "Auto-Submitted: auto-generated"}, {},
     "itself automatic"),
    ("one of our own reports", {"original_automatic": "X-Imap-Bouncer-DSN: 1f2e"}, {},
     "itself automatic"),
    ("list mail", {"list_id": "<news.example.org>"}, {}, "list mail"),
    ("no Message-ID anywhere", {"original_message_id": "", "bounce_message_id": ""}, {},
     "Message-ID"),
    ("only the bounce's Message-ID", {"original_message_id": ""}, {}, ""),
    # Only about mail we sent (only_signed, the default): a forged bounce plans nothing.
    ("an unsigned bounce", {"signed": "", "proof_note": "unsigned: no X-Imap-Bouncer-Id"}, {},
     "not proven sent through us (only_signed): unsigned: no X-Imap-Bouncer-Id"),
    ("an unsigned bounce, only_signed off", {"signed": ""}, {"only_signed": False}, ""),
    ("an id proving the message only", {"signed": "id-message"}, {}, ""),
    ("an id proving the recipient", {"signed": "id"}, {}, ""),
    ("a signature older than max_age_days", {"signed_day": verp.day_of(NOW) - 61}, {},
     "no longer counts"),
    ("a signature from the future", {"signed_day": verp.day_of(NOW) + 5}, {},
     "in the future"),
]


@pytest.mark.parametrize(("what", "changes", "settings", "refused"), RULES,
                         ids=[row[0] for row in RULES])
def test_rules(what: str, changes: dict, settings: dict, refused: str) -> None:
    dsn = DSN.model_copy(update=settings)
    why = refusal(event(**changes), dsn)
    rows = plan_dsn([event(**changes)], dsn, NOW)
    if refused:
        assert refused in why and rows == []
    else:
        assert why == "" and len(rows) == 1


def test_row_carries_everything_the_report_needs() -> None:
    [row] = plan_dsn([event()], DSN, NOW)
    assert (row.channel, row.event_type, row.target) == ("dsn", "dsn.failed", "anna@example.org")
    assert row.dedupe_key == "dsn:failed:<orig.1@mail.example.org>"
    payload = row.payload
    assert payload["to"] == "anna@example.org" and payload["action"] == "failed"
    [recipient] = payload["recipients"]
    assert payload["recipients_total"] == 1
    assert recipient["status"] == "5.1.1"
    assert recipient["diagnostic"] == "550 5.1.1 <jo@example.net>: User unknown"
    assert payload["original"]["subject"] == "Your quote"
    assert payload["reported_at"] == "2026-11-21T11:55:00Z"
    assert len(payload["id"]) == 32


def test_disabled_or_unconfigured_plans_nothing() -> None:
    assert plan_dsn([event()], DSN.model_copy(update={"enabled": False}), NOW) == []
    assert plan_dsn([event()], None, NOW) == []
    assert plan_dsn([event()], Settings(), NOW) == []  # the whole Settings: [dsn] is off


def test_whole_settings_are_accepted() -> None:
    settings = Settings(dsn=DSN, verp={"secret": "0123456789abcdef0123", "max_age_days": 3})
    assert len(plan_dsn([event()], settings, NOW)) == 1
    # [verp] max_age_days counts when the whole Settings are given.
    assert plan_dsn([event(signed_day=verp.day_of(NOW) - 5)], settings, NOW) == []


def test_once_per_original_and_action_covering_its_recipients() -> None:
    same = [event(id=1), event(id=2, bounce_message_id="<another.bounce@mx>"),
            event(id=3, address="kim@example.net")]
    [row] = plan_dsn(same, DSN, NOW)
    assert [r["address"] for r in row.payload["recipients"]] == ["jo@example.net",
                                                                   "kim@example.net"]
    assert row.payload["recipients_total"] == 2
    other = [event(), event(address="kim@example.net"),
             event(original_message_id="<orig.2@mail.example.org>"),
             event(kind="delay", action="delayed"), event(kind="delay", action="delayed", id=9)]
    rows = plan_dsn(other, DSN, NOW)
    assert [row.event_type for row in rows] == ["dsn.failed"] * 2 + ["dsn.delayed"]


def test_a_thousand_recipients_of_one_original_are_one_report() -> None:
    many = [event(id=n, address=f"user{n}@example.net") for n in range(1000)]
    [row] = plan_dsn(many, DSN, NOW)
    assert row.payload["recipients_total"] == 1000
    assert len(row.payload["recipients"]) == MAX_RECIPIENTS


def test_dedupe_keys_fit_the_column() -> None:
    long_id = "<" + "x" * 400 + "@example.org>"
    key = dedupe_key("failed", long_id, "")
    assert len(key) <= 255 and key.startswith("dsn:failed:sha256:")
    assert key == dedupe_key("failed", long_id, "<other bounce>")
    assert dedupe_key("failed", "", "<b@x>") == "dsn:failed:bounce:<b@x>"


@pytest.mark.parametrize(("address", "kind"), [
    ("MAILER-DAEMON@x.org", "mailer-daemon"), ("mailer_daemon@x.org", "mailer-daemon"),
    ("postmaster@x.org", "postmaster"), ("noreply@x.org", "no-reply"),
    ("no.reply@x.org", "no-reply"), ("donotreply@x.org", "no-reply"),
    ("owner-news@x.org", "list address"), ("news-bounces@x.org", "list address"),
    ("bounce@x.org", "bounce address"), ("@x.org", "empty"),
    ("anna@x.org", ""), ("noreen@x.org", ""), ("replyto@x.org", ""), ("bouncer@x.org", ""),
    ("postmasters-friend@x.org", ""),
])
def test_forbidden_senders(address: str, kind: str) -> None:
    assert forbidden_sender(address) == kind


# (sent minutes ago, limit, expected wait in minutes or None)
RATE = [
    ([], 2, None),
    ([10], 2, None),
    ([10, 20], 2, 40),  # the older of the two leaves the hour in 40 minutes
    ([5, 10, 30], 2, 50),  # the window's second newest counts: 60 - 10
    ([61, 70], 2, None),  # both outside the hour
    ([1, 2, 3], 0, None),  # 0: no limit
]


@pytest.mark.parametrize(("ago", "limit", "wait"), RATE)
def test_rate_limit(ago: list[int], limit: int, wait: int | None) -> None:
    sent = [NOW - timedelta(minutes=m) for m in ago]
    allowed = next_allowed(sent, limit, NOW)
    assert allowed == (None if wait is None else NOW + timedelta(minutes=wait))


# -- the [dsn] settings -------------------------------------------------------------------------


def load(tmp_path, text: str) -> Settings:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


def problem(tmp_path, text: str) -> str:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def test_dsn_settings_defaults_and_ports(tmp_path) -> None:
    dsn = Settings().dsn
    assert not dsn.enabled and dsn.rate_limit_per_hour == 10 and dsn.delays
    assert (dsn.smtp.host, dsn.smtp.port, dsn.smtp.security) == ("localhost", 25, "none")
    for security, port in (("starttls", 587), ("tls", 465), ("none", 25)):
        assert load(tmp_path, f'[dsn.smtp]\nsecurity = "{security}"\n').dsn.smtp.port == port
    settings = load(tmp_path, '[dsn]\nenabled = true\nsender_domains = ["Example.ORG."]\n'
                              'from_address = "Reports <postmaster@example.org>"\n'
                              '[verp]\nsecret = "0123456789abcdef0123"\n')
    assert settings.dsn.sender_domains == ("example.org",)
    assert settings.dsn.mta_name == "example.org"


@pytest.mark.parametrize(("text", "key"), [
    ("[dsn]\nenabled = true\nsender_domains = ['example.org']\n", "dsn.from_address"),
    ("[dsn]\nenabled = true\nfrom_address = 'p@example.org'\n", "dsn.sender_domains"),
    ("[dsn]\nfrom_address = 'not an address'\n", "dsn.from_address"),
    ("[dsn]\nsender_domains = ['a@b']\n", "dsn.sender_domains[0]"),
    ("[dsn]\nrate_limit_per_hour = -1\n", "dsn.rate_limit_per_hour"),
    ("[dsn]\nrate_limit_per_domain_per_hour = -1\n", "dsn.rate_limit_per_domain_per_hour"),
    ("[dsn]\nrate_limit_global_per_hour = 'many'\n", "dsn.rate_limit_global_per_hour"),
    ("[dsn]\nenabled = true\nsender_domains = ['example.org']\nfrom_address = 'p@example.org'\n",
     "dsn.only_signed"),
    ("[dsn.smtp]\nhost = 'smtp://x'\n", "dsn.smtp.host"),
    ("[dsn.smtp]\nhost = 'smtp.example.org'\nusername = 'u'\npassword = 'p'\n",
     "dsn.smtp.security"),
    ("[dsn.smtp]\npassword = 'p'\n", "dsn.smtp.username"),
])
def test_dsn_settings_mistakes_name_the_key(tmp_path, text: str, key: str) -> None:
    assert problem(tmp_path, text).startswith(key)


def test_smtp_password_from_a_file(tmp_path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret pass\n")
    settings = load(tmp_path, f"[dsn.smtp]\nusername = 'u'\npassword_file = '{secret}'\n")
    assert settings.dsn.smtp.password.get_secret_value() == "s3cret pass"
    assert "s3cret" not in repr(settings)
    both = problem(tmp_path, f"[dsn.smtp]\nusername = 'u'\npassword = 'x'\n"
                             f"password_file = '{secret}'\n")
    assert "not both" in both and "s3cret" not in both
