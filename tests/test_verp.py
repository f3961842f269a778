"""Signed VERP and X-Imap-Bouncer-Id (imap_bouncer/verp.py): pure, no I/O.

The test vectors are computed here from the written spec with hmac/hashlib/base64 directly,
so that the format a PHP or Go sender implements is pinned, not just round-tripped."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from imap_bouncer import verp

KEY = b"0123456789abcdef0123"
PATTERN = "bounces+{token}-{local}={domain}@bounce.example.org"
DAY = 20795  # 2026-12-08
AT = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)


def spec_mac(label: str, *fields: str) -> str:
    data = "\n".join((label, *fields)).encode()
    return base64.b32encode(hmac.new(KEY, data, hashlib.sha256).digest()[:10]).decode().lower()


def test_day_is_days_since_the_epoch_in_utc() -> None:
    assert verp.day_of(AT) == DAY == int(AT.timestamp()) // 86400
    assert verp.day_of(datetime(1970, 1, 1, 23, 59, tzinfo=UTC)) == 0


def test_sign_follows_the_written_spec() -> None:
    signed = verp.sign("jo@example.net", KEY, PATTERN, DAY)
    mac = spec_mac("imap-bouncer verp 1", "20795", "jo@example.net")
    assert signed == f"bounces+20795{mac}-jo=example.net@bounce.example.org"
    assert len(mac) == 16 and set(mac) <= set("abcdefghijklmnopqrstuvwxyz234567")


def test_the_id_follows_the_written_spec() -> None:
    value = verp.correlation_id(KEY, "Anna@Example.ORG", " <m1@example.org> ",
                                "Jo@example.net", DAY)
    mac = spec_mac("imap-bouncer id 1", "20795", "anna@example.org", "<m1@example.org>",
                   "jo@example.net")
    assert value == f"1.20795.{mac}"
    several = verp.correlation_id(KEY, "anna@example.org", "<m1@example.org>", "", DAY)
    assert several == "1.20795." + spec_mac("imap-bouncer id 1", "20795", "anna@example.org",
                                            "<m1@example.org>", "")


def test_a_signed_address_verifies_and_names_its_recipient() -> None:
    signed = verp.sign("jo@example.net", KEY, PATTERN, DAY)
    assert verp.verify_verp(signed, KEY, PATTERN) == ("jo@example.net", DAY)


def test_case_changed_on_the_way_still_verifies() -> None:
    """Mail systems upper- or lower-case envelope addresses; ASCII case never matters."""
    signed = verp.sign("Jo.Smith@Example.NET", KEY, PATTERN, DAY)
    for seen in (signed, signed.upper(), signed.lower()):
        assert verp.verify_verp(seen, KEY, PATTERN) == ("jo.smith@example.net", DAY)


def test_local_parts_with_separators_round_trip() -> None:
    for address in ("a-b=c+d@example.net", "x@sub.example.co.uk", "ü@example.net"):
        signed = verp.sign(address, KEY, PATTERN, DAY)
        assert verp.verify_verp(signed, KEY, PATTERN) == (verp.fold_case(address), DAY)


@pytest.mark.parametrize("tamper", [
    lambda s: s.replace("-jo=", "-eve="),  # another recipient, same token
    lambda s: s.replace("=example.net", "=example.com"),  # another domain
    lambda s: s.replace("+20795", "+20796"),  # another day
    lambda s: s[:13] + ("a" if s[13] != "a" else "b") + s[14:],  # one character of the mac
])
def test_tampering_fails(tamper) -> None:
    signed = verp.sign("jo@example.net", KEY, PATTERN, DAY)
    assert verp.verify_verp(tamper(signed), KEY, PATTERN) is None


def test_another_key_or_shape_fails() -> None:
    signed = verp.sign("jo@example.net", KEY, PATTERN, DAY)
    assert verp.verify_verp(signed, b"another key, 20 chars", PATTERN) is None
    assert verp.verify_verp("bounces+jo=example.net@bounce.example.org", KEY, PATTERN) is None
    assert verp.verify_verp(signed.replace("@bounce.", "@elsewhere."), KEY, PATTERN) is None
    assert verp.verify_verp("x" * 10_000, KEY, PATTERN) is None


def test_comparisons_are_constant_time(monkeypatch) -> None:
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(verp.hmac, "compare_digest", spy)
    signed = verp.sign("jo@example.net", KEY, PATTERN, DAY)
    assert verp.verify_verp(signed, KEY, PATTERN)
    assert not verp.verify_verp(signed.replace("-jo=", "-eve="), KEY, PATTERN)
    value = verp.correlation_id(KEY, "anna@example.org", "<m1@x>", "jo@example.net", DAY)
    assert verp.verify_id(value, KEY, "anna@example.org", "<m1@x>", "jo@example.net")
    assert len(calls) >= 3


def test_the_id_proves_recipient_or_only_the_message() -> None:
    one = verp.correlation_id(KEY, "anna@example.org", "<m1@x>", "jo@example.net", DAY)
    several = verp.correlation_id(KEY, "anna@example.org", "<m1@x>", "", DAY)
    assert verp.verify_id(one, KEY, "anna@example.org", "<m1@x>", "jo@example.net") == (
        verp.ID, DAY)
    assert verp.verify_id(one, KEY, "anna@example.org", "<m1@x>", "eve@example.net") is None
    assert verp.verify_id(several, KEY, "ANNA@example.org", "<m1@x>", "eve@example.net") == (
        verp.ID_MESSAGE, DAY)
    # A forged From (the DSN would go there) or another Message-ID: nothing.
    assert verp.verify_id(several, KEY, "ceo@example.org", "<m1@x>", "") is None
    assert verp.verify_id(several, KEY, "anna@example.org", "<m2@x>", "") is None


def test_prove_names_where_the_proof_was_and_why_not() -> None:
    signed = verp.sign("jo@example.net", KEY, PATTERN, DAY)
    envelope = [("Delivered-To", signed), ("To", "bounces@bounce.example.org")]

    def proof(address, envelope=envelope, correlation="", key=KEY):
        return verp.prove(address, envelope=envelope, correlation=correlation,
                          sender="anna@example.org", message_id="<m1@x>", key=key,
                          pattern=PATTERN)

    assert proof("JO@example.net") == verp.Proof(verp.VERP, DAY,
                                                 "signed VERP address in Delivered-To")
    other = proof("eve@example.net")
    assert other.kind == verp.UNSIGNED and "another recipient" in other.note
    forged = proof("jo@example.net", envelope=[("Delivered-To", signed[:14] + "x" +
                                                signed[15:])])
    assert forged.kind == verp.UNSIGNED and "bad VERP signature in Delivered-To" in forged.note
    bare = proof("jo@example.net", envelope=[])
    assert bare.note.startswith("unsigned: no signed VERP address") and "no X-Imap" in bare.note
    assert proof("jo@example.net", key=b"").note == "not checked: no [verp] secret"
    several = verp.correlation_id(KEY, "anna@example.org", "<m1@x>", "", DAY)
    assert proof("eve@example.net", envelope=[], correlation=several).kind == verp.ID_MESSAGE


def test_expiry_and_the_gate() -> None:
    assert verp.age_problem(DAY, AT, 60) == ""
    assert verp.age_problem(DAY - 60, AT, 60) == ""
    assert "61 days" in verp.age_problem(DAY - 61, AT, 60)
    assert verp.age_problem(DAY + 1, AT, 60) == ""  # a clock a few hours ahead
    assert "future" in verp.age_problem(DAY + 2, AT, 60)
    assert verp.hold_reason(verp.VERP, DAY, "", AT, 60) == ""
    assert verp.hold_reason(verp.ID, DAY, "", AT + timedelta(days=90), 60).startswith(
        "require_signed: signed 90 days")
    assert "not proven for this address (unsigned: x)" in verp.hold_reason("", 0,
                                                                             "unsigned: x",
                                                                             AT, 60)
    assert "proves the message, not this recipient" in verp.hold_reason(verp.ID_MESSAGE, DAY,
                                                                        "", AT, 60)


@pytest.mark.parametrize(("pattern", "problem"), [
    ("bounces+{local}={domain}@x.org", "{token}"),
    ("bounces+{token}-{token}-{local}={domain}@x.org", "{token}"),
    ("bounces+{token}-{local}={domain}", "must end in @"),
    ("bounces +{token}-{local}={domain}@x.org", "must end in @"),
])
def test_bad_patterns_are_refused(pattern: str, problem: str) -> None:
    with pytest.raises(verp.VerpError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        verp.sign("jo@example.net", KEY, pattern, DAY)


def test_bad_addresses_are_refused() -> None:
    for bad in ("jo", "@example.net", "jo@", "jo smith@example.net", "<jo@example.net>"):
        with pytest.raises(verp.VerpError):
            verp.sign(bad, KEY, PATTERN, DAY)


# -- the [verp] settings -------------------------------------------------------------------------


def load_text(tmp_path, text: str):
    from imap_bouncer.settings import load_settings

    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


def test_verp_settings_defaults_and_secret_file(tmp_path) -> None:
    from imap_bouncer.settings import Settings

    defaults = Settings().verp
    assert (defaults.secret, defaults.require_signed, defaults.max_age_days) == (None, False, 60)
    assert defaults.key == b""
    secret = tmp_path / "verp-secret"
    secret.write_text("a secret of 20 chars\n")
    settings = load_text(tmp_path, f"[verp]\nsecret_file = '{secret}'\nrequire_signed = true\n"
                                   f"address = '{PATTERN}'\n")
    assert settings.verp.key == b"a secret of 20 chars"
    assert "a secret" not in repr(settings)
    assert settings.verp_patterns == (PATTERN,)


@pytest.mark.parametrize(("text", "key", "words"), [
    ("[verp]\nsecret = 'short'\n", "verp.secret", "at least 16"),
    ("[verp]\nrequire_signed = true\n", "verp.secret", "required when require_signed"),
    (f"[verp]\naddress = '{PATTERN}'\n", "verp.secret", "required with address"),
    ("[verp]\nsecret = '0123456789abcdef'\naddress = 'bounces+{local}={domain}@x.org'\n",
     "verp.address", "{token}"),
    ("[verp]\nmax_age_days = 0\n", "verp.max_age_days", ""),
    ("[verp]\nrequire_signed = 'yes please'\n", "verp.require_signed", ""),
])
def test_verp_settings_mistakes_name_the_key(tmp_path, text: str, key: str, words: str) -> None:
    from imap_bouncer.settings import SettingsError

    with pytest.raises(SettingsError) as caught:
        load_text(tmp_path, text)
    message = str(caught.value)
    assert message.startswith(key) and words in message
    assert "0123456789abcdef" not in message


def test_the_vectors_in_docs_security_md_hold() -> None:
    """docs/security.md gives senders in other languages vectors to check against."""
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "security.md").read_text(encoding="utf-8")
    key, day = b"correct horse battery staple", 20795
    pattern = "bounces+{token}-{local}={domain}@bounce.example.org"
    computed = [
        verp.mac(key, "imap-bouncer verp 1", ["20795", "jo.smith@example.net"]),
        verp.sign("Jo.Smith@Example.NET", key, pattern, day),
        verp.correlation_id(key, "anna@example.org", "<20261208.4711@mail.example.org>",
                            "jo.smith@example.net", day),
        verp.correlation_id(key, "anna@example.org", "<20261208.4711@mail.example.org>", "",
                            day),
    ]
    for value in computed:
        assert f"`{value}`" in doc


def test_a_previous_secret_is_still_accepted_while_replaced(tmp_path) -> None:
    old = verp.sign("jo@example.net", b"the old secret, 20 chars", PATTERN, DAY)
    new_key = b"the new secret, 20 chars"
    envelope = [("Delivered-To", old)]

    def proof(old_keys=()):
        return verp.prove("jo@example.net", envelope=envelope, correlation="",
                          sender="", message_id="", key=new_key, pattern=PATTERN,
                          old_keys=old_keys)

    assert proof().kind == verp.UNSIGNED
    assert proof((b"the old secret, 20 chars",)).kind == verp.VERP
    settings = load_text(tmp_path, "[verp]\nsecret = 'the new secret, 20 chars'\n"
                                   "previous_secret = 'the old secret, 20 chars'\n")
    assert settings.verp.old_keys == (b"the old secret, 20 chars",)
    assert settings.verp.key == new_key


def test_a_previous_secret_needs_a_new_one(tmp_path) -> None:
    from imap_bouncer.settings import SettingsError

    with pytest.raises(SettingsError, match=r"^verp\.secret: required with previous_secret"):
        load_text(tmp_path, "[verp]\nprevious_secret = 'the old secret, 20 chars'\n")
