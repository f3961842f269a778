"""Delivery reports to senders, end to end: a bounce is recorded (ledger, both databases), the
outbox job sends the report to a real local SMTP server (aiosmtpd), and our own analyzer
reads what arrived back as a bounce for the right recipient, status and reason."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from imap_bouncer import models, verp
from imap_bouncer.analysis import analyze
from imap_bouncer.handlers import senders
from imap_bouncer.handlers.dsn import (
    DsnPermanentError,
    DsnTemporaryError,
    send_dsn,
)
from imap_bouncer.handlers.outbox import deliver_due
from imap_bouncer.ledger import Ledger, MessageItem
from imap_bouncer.report import Kind
from imap_bouncer.settings import Settings

SENDER = "anna@example.org"
RECIPIENT = "jo@example.net"
DIAGNOSTIC = "550 5.1.1 <jo@example.net>: Recipient address rejected: User unknown"
VERP_SECRET = "test secret, 20+ characters"
VERP_ADDRESS = "bounces+{token}-{local}={domain}@example.org"


def signed_verp(recipient: str) -> str:
    """The envelope sender our sending side used for mail to `recipient` (signed today)."""
    return verp.sign(recipient, VERP_SECRET.encode(), VERP_ADDRESS,
                     verp.day_of(datetime.now().astimezone()))


# -- a real SMTP server -------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    authenticated: bool

    @property
    def headers(self) -> Message:
        return message_from_bytes(self.content)


@dataclass
class Recorder:
    """The aiosmtpd handler: keeps what arrives; `rcpt_answer` makes it refuse recipients."""

    received: list[Received] = field(default_factory=list)
    rcpt_answer: str = ""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.content, bool(session.authenticated)))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield recorder, controller.port
    finally:
        controller.stop()


def settings_for(port: int, **dsn: Any) -> Settings:
    smtp = {"host": "127.0.0.1", "port": port, "timeout": 10, **dsn.pop("smtp", {})}
    values = {"enabled": True, "sender_domains": ["example.org"],
              "from_address": "Mail Delivery System <postmaster@example.org>",
              "reporting_mta": "bounces.example.org", "smtp": smtp, **dsn}
    return Settings(dsn=values, verp={"secret": VERP_SECRET, "address": VERP_ADDRESS})


@pytest.fixture
def ledger_factory(test_db) -> Iterator[Any]:
    opened: list[Ledger] = []

    def make(settings: Settings) -> Ledger:
        ledger = Ledger.open(test_db.url, notifications=settings)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


# -- bounces as an MTA sends them ---------------------------------------------------------------


def original_headers(sender: str = f"Anna Example <{SENDER}>", *extra: str,
                     message_id: str = "<orig.1@mail.example.org>") -> str:
    lines = [f"From: {sender}" if sender is not None else "", f"To: {RECIPIENT}",
             "Subject: Your quote", "Date: Sat, 21 Nov 2026 10:00:00 +0000",
             f"Message-ID: {message_id}", *extra]
    return "\r\n".join(line for line in lines if line) + "\r\n"


def bounce(original: str, *, bounce_id: str = "<bounce.1@mx.example.net>",
           recipient: str = RECIPIENT, diagnostic: str = DIAGNOSTIC,
           status: str = "5.1.1", action: str = "failed", signed: bool = True) -> bytes:
    """An RFC 3464 bounce from a remote MTA, with the original's headers attached; sent to
    the signed VERP address of `recipient` (`signed`), else to the plain bounce address."""
    to = signed_verp(recipient) if signed else "bounces@example.org"
    return (
        f"Delivered-To: {to}\r\n"
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Date: Sat, 21 Nov 2026 10:01:00 +0000\r\n"
        f"Message-ID: {bounce_id}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Remote-MTA: dns; mx.example.net\r\nDiagnostic-Code: smtp; {diagnostic}\r\n"
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{original}"
        "\r\n--B--\r\n"
    ).encode()


class Mailbox:
    """Records messages as the service does: analyzed, then one batch each."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.uid = 0

    def record(self, *raws: bytes) -> None:
        items = []
        for raw in raws:
            self.uid += 1
            report = analyze(raw)
            items.append(MessageItem(mailbox="bounces", uidvalidity=1, uid=self.uid,
                                     target_folder="Processed", raw=raw, report=report,
                                     message_id=report.message_id))
        self.ledger.record_batch(items)


def dsn_rows(ledger: Ledger) -> list[Any]:
    return [row for row in ledger.outbox.list() if row.channel == "dsn"]


def deliver(ledger: Ledger, settings: Settings, now: datetime | None = None) -> Any:
    return deliver_due(ledger, senders(settings), now, settings=settings.outbox)


# -- the report ---------------------------------------------------------------------------------


def test_report_reaches_the_sender_and_reads_back_as_the_bounce(smtp, ledger_factory) -> None:
    recorder, port = smtp
    settings = settings_for(port)
    ledger = ledger_factory(settings)
    Mailbox(ledger).record(bounce(original_headers()))

    [row] = dsn_rows(ledger)
    assert (row.target, row.event_type, row.status) == (SENDER, "dsn.failed", "pending")
    assert deliver(ledger, settings).delivered == 1
    [got] = recorder.received
    assert got.mail_from == "<>"  # MAIL FROM:<> (aiosmtpd keeps the brackets of the null path)
    assert got.rcpt_tos == [SENDER]
    headers = got.headers
    assert headers["To"] == f"Anna Example <{SENDER}>"
    assert headers["Auto-Submitted"] == "auto-replied"
    assert headers["X-Imap-Bouncer-DSN"]
    assert headers["In-Reply-To"] == "<orig.1@mail.example.org>"
    assert headers.get_content_type() == "multipart/report"
    assert headers.get_param("report-type") == "delivery-status"
    assert [part.get_content_type() for part in headers.get_payload()] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]

    report = analyze(got.content)  # our own analyzer reads it as any bounce
    assert report.kind is Kind.BOUNCE and report.analyzer == "dsn"
    [recipient] = report.recipients
    assert recipient.address == RECIPIENT
    assert (recipient.status, recipient.smtp_code) == ("5.1.1", "550")
    assert recipient.reason == "userunknown" and recipient.permanent
    assert recipient.diagnostic == DIAGNOSTIC
    assert recipient.remote_mta == "mx.example.net"
    assert report.original.message_id == "<orig.1@mail.example.org>"
    assert report.original.subject == "Your quote"
    assert report.original.from_ == f"Anna Example <{SENDER}>"
    text = headers.get_payload()[0].get_payload(decode=True).decode()
    assert RECIPIENT in text and "does not exist" in text and DIAGNOSTIC in text
    assert [item.status for item in dsn_rows(ledger)] == ["delivered"]


def test_a_delay_is_reported_as_delayed(smtp, ledger_factory) -> None:
    recorder, port = smtp
    settings = settings_for(port)
    ledger = ledger_factory(settings)
    Mailbox(ledger).record(bounce(original_headers(), action="delayed", status="4.4.1",
                                  diagnostic="421 4.4.1 mx.example.net: connection timed out"))
    deliver(ledger, settings)
    [got] = recorder.received
    report = analyze(got.content)
    assert report.kind is Kind.DELAY
    assert [(r.address, r.action, r.status) for r in report.recipients] == [
        (RECIPIENT, "delayed", "4.4.1")]


def test_the_same_bounce_twice_makes_one_report(smtp, ledger_factory) -> None:
    recorder, port = smtp
    settings = settings_for(port)
    ledger = ledger_factory(settings)
    mailbox = Mailbox(ledger)
    raw = bounce(original_headers())
    mailbox.record(raw)
    mailbox.record(raw)  # moved back to the inbox: recorded again under a new UID
    mailbox.record(bounce(original_headers(), bounce_id="<bounce.2@mx2.example.net>"))
    deliver(ledger, settings)
    mailbox.record(raw, raw)  # after the delivery too
    deliver(ledger, settings)
    assert len(recorder.received) == 1
    assert len(dsn_rows(ledger)) == 1


def test_each_message_gets_one_report_covering_its_recipients(smtp, ledger_factory) -> None:
    recorder, port = smtp
    settings = settings_for(port)
    ledger = ledger_factory(settings)
    mailbox = Mailbox(ledger)
    mailbox.record(
        bounce(original_headers()),
        bounce(original_headers(), recipient="kim@example.net", bounce_id="<b2@mx>"),
        bounce(original_headers(message_id="<orig.2@mail.example.org>"), bounce_id="<b3@mx>"))
    # A later bounce about the same message and action: no second report.
    mailbox.record(bounce(original_headers(), recipient="lee@example.net", bounce_id="<b4@mx>"))
    deliver(ledger, settings)
    reported = sorted((analyze(got.content).original.message_id,
                       tuple(sorted(r.address for r in analyze(got.content).recipients)))
                      for got in recorder.received)
    assert reported == [("<orig.1@mail.example.org>", ("jo@example.net", "kim@example.net")),
                        ("<orig.2@mail.example.org>", ("jo@example.net",))]


# -- never a loop, never to a machine ------------------------------------------------------------


@pytest.mark.parametrize("extra", [
    "Auto-Submitted: auto-generated",
    "Auto-Submitted: auto-replied",
    "Precedence: bulk",
    "Precedence: list",
    "Return-Path: <>",
    "List-Id: Our news <news.example.org>",
    "X-Imap-Bouncer-DSN: 0123",
    "X-Auto-Response-Suppress: DR, OOF",
])
def test_automatic_originals_get_no_report(smtp, ledger_factory, extra: str) -> None:
    recorder, port = smtp
    settings = settings_for(port)
    ledger = ledger_factory(settings)
    Mailbox(ledger).record(bounce(original_headers(f"Anna <{SENDER}>", extra)))
    deliver(ledger, settings)
    assert dsn_rows(ledger) == [] and recorder.received == []


def test_auto_submitted_no_is_a_person(smtp, ledger_factory) -> None:
    recorder, port = smtp
    settings = settings_for(port)
    ledger = ledger_factory(settings)
    Mailbox(ledger).record(bounce(original_headers(f"Anna <{SENDER}>", "Auto-Submitted: no")))
    deliver(ledger, settings)
    assert len(recorder.received) == 1


def test_our_own_report_coming_back_makes_no_other(smtp, ledger_factory) -> None:
    """Our report bounced back (an MTA that ignores the null sender), or delivered into the
    bounce mailbox itself: neither starts a second report, let alone a loop."""
    recorder, port = smtp
    settings = settings_for(port)
    ledger = ledger_factory(settings)
    mailbox = Mailbox(ledger)
    mailbox.record(bounce(original_headers()))
    deliver(ledger, settings)
    [ours] = recorder.received
    our_headers = ours.content.split(b"\r\n\r\n", 1)[0].decode() + "\r\n"
    bounced_back = bounce(our_headers, recipient=SENDER, bounce_id="<b9@mx.example.org>")
    assert analyze(bounced_back).original.automatic.startswith("Auto-Submitted: auto-replied")
    mailbox.record(bounced_back)
    mailbox.record(ours.content)  # the report itself, analyzed as a bounce
    deliver(ledger, settings)
    assert len(recorder.received) == 1
    assert len(dsn_rows(ledger)) == 1


@pytest.mark.parametrize("sender", [
    None,  # no From at all
    "<>",
    "MAILER-DAEMON@example.org",
    "Mail System <postmaster@example.org>",
    "Shop <no-reply@example.org>",
    "noreply@example.org",
    "someone@elsewhere.example",  # not one of sender_domains
])
def test_forbidden_senders_get_no_report(smtp, ledger_factory, sender: str | None) -> None:
    recorder, port = smtp
    settings = settings_for(port)
    ledger = ledger_factory(settings)
    Mailbox(ledger).record(bounce(original_headers(sender)))
    deliver(ledger, settings)
    assert dsn_rows(ledger) == [] and recorder.received == []


def test_nothing_is_planned_when_disabled(smtp, ledger_factory) -> None:
    _, port = smtp
    settings = settings_for(port, enabled=False)
    ledger = ledger_factory(settings)
    Mailbox(ledger).record(bounce(original_headers()))
    assert dsn_rows(ledger) == [] and "dsn" not in senders(settings)


# -- the rate limit -------------------------------------------------------------------------------


def test_rate_limit_per_sender_defers_the_excess(smtp, ledger_factory) -> None:
    recorder, port = smtp
    settings = settings_for(port, rate_limit_per_hour=2)
    ledger = ledger_factory(settings)
    Mailbox(ledger).record(*[
        bounce(original_headers(message_id=f"<orig.{n}@mail.example.org>"),
               bounce_id=f"<b{n}@mx>") for n in range(3)],
        bounce(original_headers("bob@example.org", message_id="<bob.1@mail.example.org>"),
               bounce_id="<b9@mx>"))
    report = deliver(ledger, settings)
    assert (report.delivered, report.retrying, report.failed) == (3, 1, 0)
    assert sorted(got.rcpt_tos[0] for got in recorder.received) == [
        SENDER, SENDER, "bob@example.org"]
    [waiting] = [row for row in dsn_rows(ledger) if row.status == "pending"]
    assert waiting.target == SENDER
    assert waiting.attempts == 0  # waiting is not failing: no attempt is used up
    assert "rate_limit_per_hour" in waiting.last_error
    first = min(row.delivered_at for row in dsn_rows(ledger)
                if row.status == "delivered" and row.target == SENDER)
    assert waiting.next_attempt_at == first + timedelta(hours=1)

    # Not before its time, even when asked...
    assert deliver(ledger, settings).attempted == 0
    # ...and when the hour has passed (moved back: no clock games), it goes.
    for row in models.Outbox.select().where(models.Outbox.status == "delivered"):
        row.delivered_at -= timedelta(minutes=61)
        row.save()
    later = waiting.next_attempt_at + timedelta(seconds=1)
    assert deliver(ledger, settings, later).delivered == 1
    assert len(recorder.received) == 4


@pytest.mark.parametrize(("limits", "name"), [
    ({"rate_limit_per_domain_per_hour": 2}, "rate_limit_per_domain_per_hour"),
    ({"rate_limit_global_per_hour": 2}, "rate_limit_global_per_hour"),
])
def test_new_local_parts_do_not_defeat_the_domain_and_global_limits(
        smtp, ledger_factory, limits: dict[str, int], name: str) -> None:
    """A forger inventing senders (anna1@, anna2@, ...) meets the per-domain limit, and
    everything together the global one; what is over waits, nothing is dropped."""
    recorder, port = smtp
    settings = settings_for(port, **limits)
    ledger = ledger_factory(settings)
    Mailbox(ledger).record(*[
        bounce(original_headers(f"anna{n}@example.org",
                                message_id=f"<orig.{n}@mail.example.org>"),
               bounce_id=f"<b{n}@mx>") for n in range(3)])
    report = deliver(ledger, settings)
    assert (report.delivered, report.retrying, report.failed) == (2, 1, 0)
    assert len(recorder.received) == 2
    [waiting] = [row for row in dsn_rows(ledger) if row.status == "pending"]
    assert name in waiting.last_error and waiting.attempts == 0


# -- SMTP failures ------------------------------------------------------------------------------


def payload() -> dict[str, Any]:
    return {"version": 1, "id": "0" * 32, "to": SENDER, "action": "failed",
            "recipient": {"address": RECIPIENT, "status": "5.1.1", "smtp_code": "550",
                          "diagnostic": DIAGNOSTIC, "remote_mta": "mx.example.net",
                          "reason": "userunknown", "permanent": True},
            "original": {"message_id": "<orig.1@mail.example.org>", "from": SENDER,
                         "subject": "Your quote", "date": ""},
            "reported_at": "2026-11-21T10:01:00Z"}


def test_a_5xx_answer_is_permanent_and_a_4xx_temporary(smtp) -> None:
    recorder, port = smtp
    settings = settings_for(port)
    recorder.rcpt_answer = "550 5.1.1 no such user here"
    with pytest.raises(DsnPermanentError, match="550") as caught:
        send_dsn(payload(), settings)
    assert caught.value.permanent
    recorder.rcpt_answer = "451 4.3.0 try again later"
    with pytest.raises(DsnTemporaryError, match="451") as caught:
        send_dsn(payload(), settings)
    assert not caught.value.permanent
    assert recorder.received == []


def test_no_server_is_temporary() -> None:
    settings = settings_for(free_port())
    with pytest.raises(DsnTemporaryError):
        send_dsn(payload(), settings)


def test_refusals_in_the_outbox(smtp, ledger_factory) -> None:
    recorder, port = smtp
    settings = settings_for(port)
    ledger = ledger_factory(settings)
    recorder.rcpt_answer = "451 4.7.1 greylisted"
    Mailbox(ledger).record(bounce(original_headers()))
    deliver(ledger, settings)
    [row] = dsn_rows(ledger)
    assert (row.status, row.attempts) == ("pending", 1) and "451" in row.last_error
    recorder.rcpt_answer = "550 5.7.1 relaying denied"
    deliver(ledger, settings, row.next_attempt_at + timedelta(seconds=1))
    [row] = dsn_rows(ledger)
    assert (row.status, row.attempts) == ("failed", 2) and "550" in row.last_error


# -- STARTTLS and AUTH ----------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)], capture_output=True, check=True)
    return cert, key


def test_starttls_and_login(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            logins.append((auth_data.login, auth_data.password))
            ok = (auth_data.login, auth_data.password) == (b"reports", b"s3cret pass")
            return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535
        return AuthResult(success=False, handled=False)

    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(),
                            tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_required=True,
                            auth_require_tls=True)
    controller.start()
    try:
        password_file = tmp_path / "smtp-password"
        password_file.write_text("s3cret pass\n")
        settings = settings_for(controller.port, smtp={
            "security": "starttls", "ca_file": str(cert), "username": "reports",
            "password_file": str(password_file)})
        send_dsn(payload(), settings)
        assert len(recorder.received) == 1 and recorder.received[0].authenticated
        assert logins == [(b"reports", b"s3cret pass")]
        logins.clear()

        wrong = settings_for(controller.port, smtp={
            "security": "starttls", "ca_file": str(cert), "username": "reports",
            "password": "wrong"})
        with pytest.raises(DsnPermanentError, match="535"):
            send_dsn(payload(), wrong)
        untrusted = settings_for(controller.port, smtp={"security": "starttls"})
        with pytest.raises(DsnTemporaryError, match=r"SSL|certificate"):
            send_dsn(payload(), untrusted)
    finally:
        controller.stop()
    assert len(recorder.received) == 1


def test_the_password_never_shows(tmp_path: Path) -> None:
    settings = settings_for(25, smtp={"username": "reports", "password": "s3cret pass"})
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.dsn)


def test_a_report_to_an_internationalised_sender_with_a_name_is_built() -> None:
    """formataddr refuses a non-ASCII address: such a sender gets the report, without the
    display name, instead of an exception in the outbox."""
    from imap_bouncer.handlers.dsn import build_dsn

    report = build_dsn({**payload(), "to": "änna@example.org",
                        "original": {"from": "Änna <änna@example.org>"}},
                       settings_for(25).dsn, datetime(2026, 11, 21, 10, 0).astimezone())
    assert report["To"] == "änna@example.org"
    assert b"\xc3\xa4nna@example.org" in report.as_bytes()


def test_long_remote_words_are_folded_within_the_line_limit() -> None:
    from imap_bouncer.handlers.dsn import build_dsn

    long = {**payload()["recipient"], "diagnostic": "550 " + "x" * 400 + " end"}
    raw = build_dsn({**payload(), "recipient": long}, settings_for(25).dsn,
                    datetime(2026, 11, 21, 10, 0).astimezone()).as_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    back = message_from_bytes(raw)
    [status] = [p for p in back.walk() if p.get_content_type() == "message/delivery-status"]
    [_, fields] = status.get_payload()
    assert "".join(fields["Diagnostic-Code"].split()).endswith("x" * 10 + "end")
