"""The state-change gate ([verp] require_signed) in the ledger, on both databases: the real
analyzer on messages as they arrive, recorded by `Ledger.record_batch`.

A complaint proves its recipient by the X-Imap-Bouncer-Id in its original; a bounce naming no
recipient by the signed VERP address it came to; a signature for one recipient proves nothing
about another in the same bounce; an old signature stops counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import sample

from imap_bouncer import verp
from imap_bouncer.analysis import Options, analyze
from imap_bouncer.ledger import Ledger, MessageItem
from imap_bouncer.models import AddressState, Event
from imap_bouncer.settings import Settings

SECRET = "gate tests: a secret of 30 chars"
PATTERN = "bounces+{token}-{local}={domain}@lists.example.org"
NOW = datetime.now(UTC)


def settings(**verp_values) -> Settings:
    return Settings(verp={"secret": SECRET, "address": PATTERN, "require_signed": True,
                          **verp_values})


@pytest.fixture
def ledger(test_db):
    opened = Ledger.open(test_db.url, notifications=settings())
    yield opened
    opened.close()


def record(ledger: Ledger, *raws: bytes, arrived: datetime = NOW) -> None:
    options = Options(verp_patterns=settings().verp_patterns)
    items = [MessageItem(mailbox="bounces", uidvalidity=1, uid=uid, target_folder="Processed",
                         raw=raw, report=analyze(raw, options), internal_date=arrived)
             for uid, raw in enumerate(raws, start=Event.select().count() + 1)]
    ledger.record_batch(items)


def states() -> dict[str, str]:
    return {row.address: row.state for row in AddressState.select()}


def held() -> dict[str, str]:
    return {row.address: row.held for row in Event.select()}


def complaint(header: str = "") -> bytes:
    raw = sample("arf-abuse.eml")
    extra = f"X-Imap-Bouncer-Id: {header}\n".encode() if header else b""
    return raw.replace(b"Message-ID: <order-summary", extra + b"Message-ID: <order-summary")


def complaint_id(recipient: str = "robin@isp.example.net", day: int | None = None) -> str:
    return verp.correlation_id(SECRET.encode(), "news@example.org",
                               "<order-summary-20240318-0042@example.org>", recipient,
                               verp.day_of(NOW) if day is None else day)


def test_a_complaint_signed_for_its_recipient_counts(ledger) -> None:
    record(ledger, complaint(complaint_id()))
    assert states() == {"robin@isp.example.net": "complained"}
    assert held() == {"robin@isp.example.net": ""}


@pytest.mark.parametrize(("header", "why"), [
    ("", "unsigned"),
    (complaint_id("someone@else.example"), "does not match"),
    (complaint_id(""), "proves the message, not this recipient"),
    (complaint_id(day=verp.day_of(NOW) - 61), "61 days"),
])
def test_an_unproven_complaint_is_recorded_and_changes_nothing(ledger, header, why) -> None:
    record(ledger, complaint(header))
    assert states() == {}
    [(address, reason)] = held().items()
    assert address == "robin@isp.example.net" and reason.startswith("require_signed: ")
    assert why in reason


def test_the_verp_address_names_and_proves_the_recipient(ledger) -> None:
    signed = verp.sign("jo@example.net", SECRET.encode(), PATTERN, verp.day_of(NOW))
    raw = sample("verp.eml").replace(b"bounces+jo=example.net@lists.example.org",
                                     signed.encode())
    record(ledger, raw)
    [event] = Event.select()
    assert (event.address, event.signed, event.held) == ("jo@example.net", "verp", "")
    assert states() == {"jo@example.net": "soft_bouncing"}  # 5.2.1, disabled: soft


def test_a_signature_for_one_recipient_proves_nothing_about_another(ledger) -> None:
    signed = verp.sign("jo@example.com", SECRET.encode(), PATTERN, verp.day_of(NOW))
    record(ledger, b"Delivered-To: " + signed.encode() + b"\n" + sample("dsn-failed-multi.eml"))
    proofs = {row.address: (row.signed, row.held[:40]) for row in Event.select()}
    assert proofs == {
        "jo@example.com": ("verp", ""),
        "ann@nowhere.example.net": ("", "require_signed: not proven for this addr")}
    assert "another recipient" in Event.get(Event.address == "ann@nowhere.example.net").held
    assert set(states()) == {"jo@example.com"}


def test_a_signature_is_judged_at_the_bounce_s_arrival(ledger) -> None:
    """A backlog recorded late still counts if it arrived in time; one signed long before
    it arrived does not."""
    old_day = verp.day_of(NOW - timedelta(days=90))
    record(ledger, complaint(complaint_id(day=old_day)), arrived=NOW - timedelta(days=85))
    assert states() == {"robin@isp.example.net": "complained"}


def test_require_signed_off_records_proofs_and_holds_nothing(test_db) -> None:
    ledger = Ledger.open(test_db.url, notifications=settings(require_signed=False))
    try:
        record(ledger, complaint())
        assert states() == {"robin@isp.example.net": "complained"}
        [event] = Event.select()
        assert (event.signed, event.held) == ("", "")
        assert event.proof_note.startswith("unsigned: ")
    finally:
        ledger.close()
