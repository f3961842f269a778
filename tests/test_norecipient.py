"""Reports that name no recipient: a mail system refusing the whole message.

The samples in samples/norecipient/ check the formats; these check the rules around them: who
may send such a report, that its verdict never suppresses anything, what a VERP address adds,
and that hostile input stays cheap.
"""

from __future__ import annotations

import time

import pytest

from imap_bouncer.analysis import Options, analyze, phrases
from imap_bouncer.analysis.formats._lib import norecipient
from imap_bouncer.analysis.message import parse_message
from imap_bouncer.report import Action, Kind, Reason

HEADERS = """\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@smtp.example.net>
To: news@example.org
Subject: Mail failure - too many recipients
Auto-Submitted: auto-replied
Date: Tue, 3 Dec 2024 10:00:00 +0000
Message-ID: <refusal-1@smtp.example.net>
"""
BODY = """
A message that you sent contained more recipients than allowed on this
system. It was not delivered to any recipients.
"""


def message(headers: str = HEADERS, body: str = BODY) -> bytes:
    return (headers + body).encode()


def verdicts(raw: bytes, options: Options | None = None) -> tuple[str, list[tuple]]:
    report = analyze(raw, options)
    return str(report.kind), [(r.address, str(r.action), str(r.reason), r.permanent)
                              for r in report.recipients]


def test_a_mail_systems_refusal_is_one_failure_without_address() -> None:
    assert verdicts(message()) == ("bounce", [("", "failed", "toomanyconn", False)])


@pytest.mark.parametrize(("change", "why"), [
    (("Return-Path: <>", "Return-Path: <offers@mailer.example.biz>"), "a real envelope sender"),
    (("Auto-Submitted: auto-replied\n", "Reply-To: help@verify.example.top\n"), "a Reply-To"),
    (("From: Mail Delivery System <MAILER-DAEMON@smtp.example.net>",
      "From: Ann Lee <ann@example.net>"), "a person's From"),
    (("Subject: Mail failure - too many recipients", "Subject: Re: Mail failure"), "a reply"),
    (("Return-Path: <>\n", "Return-Path: <postmaster@smtp.example.net>\n"), "no report marks"),
])
def test_only_a_mail_systems_own_report_is_read(change: tuple[str, str], why: str) -> None:
    headers = HEADERS.replace(*change)
    if why == "no report marks":
        headers = headers.replace("Auto-Submitted: auto-replied\n", "")
    assert headers != HEADERS
    assert analyze(message(headers)).kind is not Kind.BOUNCE, why


def test_words_without_a_failure_are_no_report() -> None:
    """A postmaster's notice about the limits says no message of the reader's failed."""
    body = "\nFrom Monday, at most 100 recipients per message; too many recipients are refused.\n"
    assert norecipient.refused_as_a_whole(parse_message(message(body=body)), body,
                                          "Mail system news") == ""


def test_a_failure_without_a_known_cause_is_left_to_the_other_readers() -> None:
    body = "\nYour message could not be sent. Please try again later.\n"
    raw = message(body=body)
    assert norecipient.refused_as_a_whole(parse_message(raw), body, "Mail failure") == ""


def test_the_cause_names_the_reason_not_the_preamble() -> None:
    """Exim's local_scan notice: the error it gives is the cause, not "local scanning code"."""
    body = ("\nA message that you sent was rejected by the local scanning code that\n"
            "checks incoming messages on this system. The following error was given:\n\n"
            "  This message contains a virus (Eicar-Test-Signature)\n")
    headers = HEADERS.replace("too many recipients", "rejected by local scanning code")
    assert verdicts(message(headers, body)) == ("bounce",
                                                [("", "failed", "virusdetected", False)])


def test_a_status_part_without_recipient_never_suppresses() -> None:
    """A DSN group without Final-Recipient whose words say "user unknown": no address to
    suppress, so not permanent."""
    raw = (
        b"Return-Path: <>\nFrom: MAILER-DAEMON@mx.example.net\nTo: news@example.org\n"
        b"Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        b"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        b"Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\n\n--B--\n"
    )
    assert verdicts(raw) == ("bounce", [("", "failed", "userunknown", False)])


def test_a_verp_address_names_the_recipient() -> None:
    """Sent back to a VERP address, the refusal is about the recipient that address encodes."""
    headers = HEADERS.replace("To: news@example.org",
                              "To: bounces+jo=example.net@lists.example.org")
    options = Options(verp_patterns=("bounces+{local}={domain}@lists.example.org",))
    kind, found = verdicts(message(headers), options)
    assert (kind, found) == ("bounce", [("jo@example.net", "failed", "toomanyconn", False)])


def test_a_success_code_in_the_words_is_no_reply_code() -> None:
    """cPanel counts messages ("250/250"): a failure's words hold no 2xx reply."""
    body = ("\nYour message could not be sent:\n\n  Domain example.org has exceeded the max "
            "emails per hour (250/250 (100%)) allowed.  Message discarded.\n")
    report = analyze(message(body=body))
    [recipient] = report.recipients
    assert (recipient.reason, recipient.smtp_code, recipient.status[:1]) == (
        Reason.SPEEDING, "", "5")
    assert recipient.action is Action.FAILED


def test_hostile_text_stays_cheap() -> None:
    """Long runs of the words the causes and the failure test look for, without a match."""
    body = "\n" + ("your message " * 20000) + ("daily " * 20000) + ("a " * 50000) + "\n"
    started = time.perf_counter()
    analyze(message(body=body))
    assert time.perf_counter() - started < 2.0


# Wordings of each cause, as mail systems write them: the detection table must find each, and
# the one classifier must name the same reason (else a report is claimed for one cause and
# recorded under another).
CAUSE_WORDINGS = {
    Reason.VIRUSDETECTED: ["This message contains a virus (Eicar)", "found virus: Eicar-Sig",
                           "invoice.js was infected by Js.Trojan", "malware detected"],
    Reason.CONTENTERROR: ["found banned name: .exe,x.pdf.exe", "unacceptable attachments",
                          "Message contains a prohibited attachment type",
                          "Executable screensaver files (.scr) are not allowed in e-mail"],
    Reason.REJECTED: ["you weren't recognized as a valid sender", "bad outbound sender",
                      "Sender address rejected: not owned by the authenticated user",
                      "Email address is not verified.", "no longer allowed to send"],
    Reason.NORELAYING: ["554 5.7.1 Relay access denied", "the relay refused to relay it"],
    Reason.SECURITYERROR: ["530 5.7.0 Must issue a STARTTLS command first",
                           "the server requires an encrypted connection"],
    Reason.MESGTOOBIG: ["was longer than the maximum size allowed", "message too big",
                        "it exceeds the maximum size allowed", "exceeds my databytes limit",
                        "Die Nachricht ist zu groß", "supera el tamaño máximo permitido",
                        "le message dépasse la taille maximale autorisée"],
    Reason.SPEEDING: ["you've exceeded your sending limit", "reached a limit for sending mail",
                      "Daily user sending quota exceeded", "max emails per hour (250/250)",
                      "reached your daily limit for message recipients", "Versandlimit",
                      "Message submission quota exceeded", "Maximum sending rate exceeded",
                      "you have sent more messages today than your account allows",
                      "Vous avez atteint la limite d'envoi", "superó el límite de envío"],
    Reason.TOOMANYCONN: ["too many recipients", "contained more recipients than allowed",
                         "RESOLVER.ADR.RecipLimit", "at most 50 recipients per message",
                         "da sie zu viele Empfänger hat", "trop de destinataires",
                         "demasiados destinatarios"],
    Reason.SPAMDETECTED: ["scored 11.3 spam points", "unsolicited bulk e-mail (UBE)"],
    Reason.POLICYVIOLATION: ["rejected by the local scanning code", "rejected by the local ACL",
                             "violates a content compliance rule",
                             "violates the outbound data classification policy"],
}


@pytest.mark.parametrize(("reason", "words"), [
    (reason, words) for reason, wordings in CAUSE_WORDINGS.items() for words in wordings])
def test_detection_and_classifier_agree(reason: Reason, words: str) -> None:
    causes = dict(norecipient.CAUSES)
    assert causes[reason].search(words), "the detection table misses it"
    found = phrases.match(words)
    assert found is not None and found[0] is reason, found


def test_every_cause_has_wordings() -> None:
    assert [reason for reason, _ in norecipient.CAUSES] == list(CAUSE_WORDINGS)
