"""Forged bounces, end to end: mail in a real Dovecot, the real `imap-bouncer once` command,
the test database (both backends) and, for reports to senders, a real SMTP server
(aiosmtpd, as in test_dsn_sender.py).

The bounce mailbox is writable by anyone: a hand-written DSN must not suppress an address
when [verp] require_signed is on, nor make us mail a sender in sender_domains (backscatter),
nor smuggle fields into the report we send."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from service_support import append, counts, run_cli, write_settings
from test_dsn_sender import Recorder, free_port, smtp  # noqa: F401 - smtp is a fixture

from imap_bouncer import verp
from imap_bouncer.ledger import Ledger
from imap_bouncer.models import AddressState, Outbox, Transition

pytestmark = pytest.mark.dovecot

SECRET = "forged-bounce tests: 32 characters"
ADDRESS = "bounces+{token}-{local}={domain}@example.org"
SENDER = "anna@example.org"


def signed_verp(recipient: str) -> str:
    return verp.sign(recipient, SECRET.encode(), ADDRESS, verp.day_of(datetime.now(UTC)))


def settings(tmp_path: Path, account: Any, test_db: Any, *, smtp_port: int = 0,
             require_signed: bool = True, dsn: bool = False) -> Path:
    path = write_settings(tmp_path / "settings.toml", account, test_db.url,
                          analysis={"workers": 0})
    lines = ["[verp]", f'secret = "{SECRET}"', f'address = "{ADDRESS}"',
             f"require_signed = {'true' if require_signed else 'false'}"]
    if dsn:
        lines += ["[dsn]", "enabled = true", 'sender_domains = ["example.org"]',
                  'from_address = "Mail Delivery System <postmaster@example.org>"',
                  'reporting_mta = "bounces.example.org"',
                  "[dsn.smtp]", 'host = "127.0.0.1"', f"port = {smtp_port}", "timeout = 10"]
    with path.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return path


def dsn_bounce(recipients: list[str], *, delivered_to: str = "bounces@example.org",
               bounce_id: str, diagnostic: str = "550 5.1.1 user unknown",
               original_extra: str = "", subject: str = "Your quote",
               message_id: str = "<orig.1@mail.example.org>") -> bytes:
    groups = "".join(
        f"\r\nFinal-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n" for r in recipients)
    return (
        f"Delivered-To: {delivered_to}\r\n"
        "From: MAILER-DAEMON@mx.attacker.example (Mail Delivery System)\r\n"
        f"To: {delivered_to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Date: Tue, 08 Dec 2026 10:01:00 +0000\r\n"
        f"Message-ID: {bounce_id}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.attacker.example\r\n{groups}"
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: Anna <{SENDER}>\r\nTo: {recipients[0]}\r\nSubject: {subject}\r\n"
        f"Date: Tue, 08 Dec 2026 10:00:00 +0000\r\nMessage-ID: {message_id}\r\n"
        f"{original_extra}"
        "\r\n--B--\r\n"
    ).encode()


def once(config: Path, tmp_path: Path) -> None:
    done = run_cli("once", "-c", str(config), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def explain(config: Path, tmp_path: Path, ident: str) -> str:
    done = run_cli("explain", ident, "-c", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def ledger(test_db):
    opened: list[Ledger] = []

    def open_ledger() -> Ledger:
        opened.append(Ledger.open(test_db.url))
        return opened[-1]

    yield open_ledger
    for one in opened:
        one.close()


def states() -> dict[str, str]:
    return {row.address: row.state for row in AddressState.select()}


def test_require_signed_forged_changes_nothing_signed_does(imap_server, test_db, ledger,
                                                           tmp_path) -> None:
    config = settings(tmp_path, imap_server, test_db)
    notice = (  # a plain-text notice from an attacker's "MAILER-DAEMON"
        b"From: MAILER-DAEMON@attacker.example\r\nTo: bounces@example.org\r\n"
        b"Subject: Delivery Status Notification (Failure)\r\n"
        b"Message-ID: <notice.1@attacker.example>\r\n\r\n"
        b"Delivery to the following recipient failed permanently:\r\n\r\n"
        b"     lee@example.net\r\n\r\n"
        b"Technical details of permanent failure:\r\n"
        b"550 5.1.1 The email account that you tried to reach does not exist.\r\n")
    forged_with_a_real_token = dsn_bounce(  # kim's token, moved onto jo
        ["jo@example.net"], bounce_id="<forged.2@attacker.example>",
        delivered_to=signed_verp("kim@example.net").replace("-kim=", "-jo="))
    append(imap_server, [
        dsn_bounce(["jo@example.net"], bounce_id="<forged.1@attacker.example>"),
        forged_with_a_real_token, notice,
        dsn_bounce(["kim@example.net"], bounce_id="<signed.1@mx.example.net>",
                   delivered_to=signed_verp("kim@example.net"))])

    checked = run_cli("check", "-c", str(config), cwd=tmp_path)
    assert "bounces: require_signed: only signed bounces change send states" in checked.stdout
    once(config, tmp_path)

    assert counts(imap_server)["Processed"] == 4  # every one recorded and filed
    ledger()
    assert states() == {"kim@example.net": "invalid"}
    assert [(t.address, t.to_state) for t in Transition.select()] == [
        ("kim@example.net", "invalid")]
    forged = explain(config, tmp_path, "<forged.1@attacker.example>")
    assert "no state change: require_signed: not proven for this address (unsigned: no " \
           "signed VERP address" in forged
    assert "bad VERP signature in Delivered-To" in explain(config, tmp_path,
                                                           "<forged.2@attacker.example>")
    notice_explained = explain(config, tmp_path, "<notice.1@attacker.example>")
    assert "lee@example.net" in notice_explained and "no state change" in notice_explained
    signed = explain(config, tmp_path, "<signed.1@mx.example.net>")
    assert "signed: verp: signed VERP address in Delivered-To" in signed
    assert "changed kim@example.net: active -> invalid" in signed
    assert "no state change" not in signed


def test_without_require_signed_a_forged_bounce_still_counts(imap_server, test_db, ledger,
                                                             tmp_path) -> None:
    """The default (require_signed = false) keeps today's behaviour, and says what it saw."""
    config = settings(tmp_path, imap_server, test_db, require_signed=False)
    checked = run_cli("check", "-c", str(config), cwd=tmp_path)
    assert "require_signed = false: an unsigned, forged bounce still changes" in checked.stdout
    append(imap_server, [dsn_bounce(["jo@example.net"], bounce_id="<forged.1@attacker.example>")])
    once(config, tmp_path)
    ledger()
    assert states() == {"jo@example.net": "invalid"}
    assert "signed: no: unsigned" in explain(config, tmp_path, "<forged.1@attacker.example>")


def test_a_forged_bounce_about_our_sender_plans_no_report(imap_server, test_db, ledger,
                                                          tmp_path, smtp) -> None:  # noqa: F811
    recorder, port = smtp
    config = settings(tmp_path, imap_server, test_db, smtp_port=port, dsn=True)
    phishing = "550 5.1.1 mailbox full, log in at https://phish.attacker.example/ to fix"
    append(imap_server, [dsn_bounce(["jo@example.net"], bounce_id="<forged.1@attacker.example>",
                                    diagnostic=phishing)])
    once(config, tmp_path)
    ledger()
    assert Outbox.select().where(Outbox.channel == "dsn").count() == 0
    assert recorder.received == []


def test_a_thousand_recipients_of_one_original_make_one_report(imap_server, test_db, ledger,
                                                               tmp_path, smtp) -> None:  # noqa: F811
    recorder, port = smtp
    config = settings(tmp_path, imap_server, test_db, smtp_port=port, dsn=True,
                      require_signed=False)
    message_id = "<orig.many@mail.example.org>"
    day = verp.day_of(datetime.now(UTC))
    header = verp.correlation_id(SECRET.encode(), SENDER, message_id, "", day)
    recipients = [f"user{n}@example.net" for n in range(1000)]
    append(imap_server, [dsn_bounce(recipients, bounce_id="<many.1@mx.example.net>",
                                    message_id=message_id,
                                    original_extra=f"X-Imap-Bouncer-Id: {header}\r\n")])
    once(config, tmp_path)
    ledger()
    [row] = list(Outbox.select().where(Outbox.channel == "dsn"))
    assert row.status == "delivered" and row.payload["recipients_total"] == 1000
    [got] = recorder.received
    assert got.rcpt_tos == [SENDER]
    report = message_from_bytes(got.content, policy=email_policy.default)
    [status] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    groups = status.get_payload()
    assert len(groups) == 1 + 100  # per-message fields, then the first 100 recipients
    text = report.get_payload()[0].get_content()
    assert "1000 recipients" in text and "980 more recipients" in text


def test_remote_words_cannot_forge_fields_in_our_report(imap_server, test_db, ledger, tmp_path,
                                                        smtp) -> None:  # noqa: F811
    recorder, port = smtp
    config = settings(tmp_path, imap_server, test_db, smtp_port=port, dsn=True,
                      require_signed=False)
    injected = ("=?utf-8?q?x=0D=0ABcc:_victim@example.com=0D=0A=0D=0A"
                "Final-Recipient:_rfc822;_extra@example.com=0D=0AAction:_failed?=")
    diagnostic = ("550 5.1.1 user unknown " + injected + " " + "padding " * 12
                  + "\x1b[2J\x07 done")
    subject = "=?utf-8?q?Your_quote_=1B]0;owned=07_now?="  # decodes to ESC and BEL
    append(imap_server, [dsn_bounce(["jo@example.net"], bounce_id="<inject.1@mx.example.net>",
                                    delivered_to=signed_verp("jo@example.net"),
                                    diagnostic=diagnostic, subject=subject)])
    once(config, tmp_path)
    [got] = recorder.received
    assert got.rcpt_tos == [SENDER]  # the only envelope recipient: no Bcc
    report = message_from_bytes(got.content, policy=email_policy.default)
    assert report["Bcc"] is None
    for name in ("Subject", "To", "From"):
        assert not any(c in str(report[name]) for c in "\x1b\x07\r\n"), name
    [status] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    _per_message, *per_recipient = status.get_payload()
    assert len(per_recipient) == 1
    [fields] = per_recipient
    assert set(fields.keys()) <= {"Final-Recipient", "Action", "Status", "Remote-MTA",
                                  "Diagnostic-Code", "Last-Attempt-Date"}
    assert fields.get_all("Final-Recipient") == ["rfc822; jo@example.net"]
    # The encoded word stays the characters it is: never decoded into the field (a reader
    # may decode it for display, inside the one field, as policy.default just did).
    assert b"=?utf-8?q?x=0D=0ABcc:" in b" ".join(got.content.split())
    assert b"\r\nBcc:" not in got.content and b"\nFinal-Recipient: rfc822; extra" not in \
        got.content
    for part in report.walk():
        if part.get_content_maintype() == "multipart":
            continue
        body = part.as_bytes()
        if part.get("Content-Transfer-Encoding", "7bit").lower() == "7bit":
            assert b"\x1b" not in body and b"\x07" not in body, part.get_content_type()
    assert b"\x1b" not in got.content and b"\x07" not in got.content
