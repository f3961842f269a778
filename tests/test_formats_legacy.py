"""The formats of 1995-2008 on hand-written messages in their wording: the facts each module
must extract (who, with which words, what happened) where the format names its recipients in
its own way (AOL screen names, CompuServe user IDs, GroupWise user IDs, X.400 O/R addresses,
MDaemon's session log), and the look-alikes a module must leave alone.
"""

from __future__ import annotations

import pytest

from imap_bouncer.analysis import analyze, formats
from imap_bouncer.analysis.formats import (
    aol,
    compuserve,
    groupwise,
    mdaemon,
    mmdf,
    mssmtpsvc,
    postoffice,
    smail,
    x400,
)
from imap_bouncer.analysis.message import parse_message
from imap_bouncer.report import Action, Kind, Reason

NULL_SENDER = "Return-Path: <>\n"


def message(headers: str, body: str) -> bytes:
    fields = "\n".join(line for line in headers.splitlines() if line.strip())
    return f"{fields}\n\n{body.lstrip()}".encode("latin-1")


def facts(module, raw: bytes) -> list[tuple[str, Action, str]]:
    findings = module.analyze(parse_message(raw))
    assert findings is not None
    return [(f.address, f.action, f.diagnostic) for f in findings.failures]


AOL_UK = message(NULL_SENDER + """
From: Mail Delivery Subsystem <MAILER-DAEMON@rly-ma01.mx.aol.co.uk>
To: news@example.org
Subject: Returned mail: User unknown
""", """
Your mail to the following recipients could not be delivered because they are not
accepting mail from news@example.org:
\tTeaTime42
\tfriend@example.net (Mail Controls)

   ----- Unsent message follows -----
""")


def test_aol_screen_names_are_mailboxes_of_the_member_domain() -> None:
    cause = "they are not accepting mail from news@example.org"
    assert facts(aol, AOL_UK) == [
        ("teatime42@aol.co.uk", Action.FAILED, cause),
        ("friend@example.net", Action.FAILED, f"Mail Controls {cause}"),
    ]
    report = analyze(AOL_UK)
    assert [(r.reason, r.permanent) for r in report.recipients] == [
        (Reason.FILTERED, False), (Reason.FILTERED, False)]


COMPUSERVE = message(NULL_SENDER + """
From: CompuServe Postmaster <postmaster@compuserve.com>
To: editor@example.org
Subject: Undeliverable Message
""", """
To:       >INTERNET:70001.23@compuserve.com
Sender:   INTERNET:editor@example.org

Receiver not found: 70001,23
Receiver not found: MBAKER

Your message could not be delivered as addressed.
""")


def test_compuserve_user_ids_and_aliases_become_addresses() -> None:
    assert facts(compuserve, COMPUSERVE) == [
        ("70001.23@compuserve.com", Action.FAILED, "Receiver not found"),
        ("mbaker@compuserve.com", Action.FAILED, "Receiver not found"),
    ]
    assert {r.reason for r in analyze(COMPUSERVE).recipients} == {Reason.USERUNKNOWN}


SMTP_SERVICE = message(NULL_SENDER + """
From: postmaster@mail.example.net
To: orders@example.org
Subject: Delivery Status Notification (Failure)
""", """
This is an automatically generated Delivery Status Notification.

Delivery to the following recipients was successful.

       pat@example.net

Delivery to the following recipients has been delayed.

       lee@example.net

Unable to deliver message to the following recipients, because the message was forwarded
more than the maximum allowed times. This could indicate a mail loop.

       kim@example.net
""")


def test_smtp_service_groups_keep_their_outcome_and_cause() -> None:
    found = facts(mssmtpsvc, SMTP_SERVICE)
    assert [(address, action) for address, action, _ in found] == [
        ("pat@example.net", Action.DELIVERED), ("lee@example.net", Action.DELAYED),
        ("kim@example.net", Action.FAILED)]
    assert found[2][2].endswith("This could indicate a mail loop.")
    report = analyze(SMTP_SERVICE)
    assert report.kind is Kind.BOUNCE
    assert report.recipients[2].reason is Reason.NETWORKERROR


@pytest.mark.parametrize(("field", "address"), [
    ("/C=AT/ADMD=ADA/PRMD=X/S=Gruber/DDA:RFC-822=f.gruber(a)example.at/", "f.gruber@example.at"),
    ("c=US;a= ;p=Acme;dda:SMTP=jo@example.com;", "jo@example.com"),
    ("hans.meier@example.de", "hans.meier@example.de"),
])
def test_x400_internet_address_inside_an_or_address(field: str, address: str) -> None:
    assert x400.internet_address(field) == address


X400 = message(NULL_SENDER + """
From: X.400 Gateway <postmaster@gw.example.de>
To: sales@example.org
Subject: Non-delivery notification: Angebot
""", """
Your message was not delivered to the following recipient(s):

  Recipient:   a.berg@example.de
  Reason:      unable-to-transfer (1)
  Diagnostic:  ambiguous-OR-name (1)
""")


def test_x400_diagnostic_names_the_cause() -> None:
    assert facts(x400, X400) == [
        ("a.berg@example.de", Action.FAILED, "unable-to-transfer (1) ambiguous-OR-name (1)")]
    assert [(r.reason, r.permanent) for r in analyze(X400).recipients] == [
        (Reason.USERUNKNOWN, True)]


def test_x400_without_a_diagnostic_is_not_claimed() -> None:
    raw = X400.replace(b"Diagnostic:  ambiguous-OR-name (1)", b"Note: see your administrator")
    assert x400.analyze(parse_message(raw)) is None


MDAEMON = message(NULL_SENDER + """
From: MDaemon@mail.example.net
To: trade@example.org
Subject: Permanent Delivery Failure
X-MDaemon-Deliver-To: trade@example.org
""", """
The attached message had PERMANENT fatal delivery errors!

--- Session Transcript ---
 Tue 2004-11-09 11:02:22: *  To: ok@example.com
 Tue 2004-11-09 11:02:22: *  To: gone@example.com
 Tue 2004-11-09 11:02:22: *  To: big@example.com
 Tue 2004-11-09 11:02:22: --> RCPT To:<ok@example.com>
 Tue 2004-11-09 11:02:22: <-- 250 ok
 Tue 2004-11-09 11:02:22: --> RCPT To:<gone@example.com>
 Tue 2004-11-09 11:02:22: <-- 550 5.1.1 no such user
 Tue 2004-11-09 11:02:22: --> RCPT To:<big@example.com>
 Tue 2004-11-09 11:02:22: <-- 250 ok
 Tue 2004-11-09 11:02:23: --> DATA
 Tue 2004-11-09 11:02:23: <-- 552 5.3.4 message too big
--- End Transcript ---
""")


def test_mdaemon_each_recipient_gets_the_reply_that_refused_it() -> None:
    assert facts(mdaemon, MDAEMON) == [
        ("ok@example.com", Action.FAILED, "552 5.3.4 message too big"),
        ("gone@example.com", Action.FAILED, "550 5.1.1 no such user"),
        ("big@example.com", Action.FAILED, "552 5.3.4 message too big"),
    ]


POST_OFFICE = message(NULL_SENDER + """
From: Postmaster@mail.example.net
To: csa@example.org
Subject: Mail System Error - Returned Mail
""", """
This Message was undeliverable due to the following reason:

The following destination addresses were unknown (please check
the addresses and re-mail the message):

<a@example.net>
<b@example.net>

Please reply to Postmaster@mail.example.net
if you feel this message to be in error.
""")


def test_post_office_listed_recipients_take_the_paragraph_as_cause() -> None:
    found = facts(postoffice, POST_OFFICE)
    assert [address for address, _, _ in found] == ["a@example.net", "b@example.net"]
    assert found[0][2].startswith("The following destination addresses were unknown")
    assert {r.reason for r in analyze(POST_OFFICE).recipients} == {Reason.USERUNKNOWN}


SMAIL = message(NULL_SENDER + """
From: MAILER-DAEMON@relay.example.net (Mail Delivery Subsystem)
To: clerk@example.org
Subject: mail failed, returning to sender
""", """
|------------------------- Failed addresses follow: ---------------------|
 <p@example.net> ... unknown user
 q@example.com ... transport smtp: 550 <q@example.com>... Mailbox full
|------------------------- Message text follows: ------------------------|
From: clerk@example.org
To: p@example.net, q@example.com
Subject: rota
""")


def test_smail_lines_and_the_returned_headers() -> None:
    assert facts(smail, SMAIL) == [
        ("p@example.net", Action.FAILED, "unknown user"),
        ("q@example.com", Action.FAILED, "transport smtp: 550 <q@example.com>... Mailbox full"),
    ]
    assert analyze(SMAIL).original.subject == "rota"


MMDF_WAITING = message(NULL_SENDER + """
From: MMDF Mail System <mmdf@mail.example.ac.uk>
To: conf@example.org
Subject: Waiting mail  (was: Deadline)
""", """
    After 3 days (72 hours), your message has not yet been
    fully delivered.  Attempts to deliver the message will continue
    for 4 more days.  No further action is required by you.

    Delivery attempts are still pending for the following address(es):

        j.white@stats.example.ac.uk (host: stats.example.ac.uk) (queue: smtp)

    Problems usually are due to service interruptions at the receiving
    machine.  Less often, they are caused by the communication system.
""")


def test_mmdf_pending_addresses_are_delayed() -> None:
    found = facts(mmdf, MMDF_WAITING)
    assert [(a, action) for a, action, _ in found] == [
        ("j.white@stats.example.ac.uk", Action.DELAYED)]
    failed = MMDF_WAITING.replace(b"Delivery attempts are still pending for",
                                  b"It failed to be received by")
    assert [r.reason for r in analyze(failed).recipients] == [Reason.EXPIRED]


GROUPWISE = message(NULL_SENDER + """
From: Mail Delivery System <postmaster@example.net>
To: sales@example.org
Subject: Message status - undeliverable
X-Mailer: Novell GroupWise Internet Agent 6.0.1
""", """
The message that you sent was undeliverable to the following:
\tJDOE (user not found)
\tNOBODY (user not found)

Possibly truncated original message follows:

From: sales@example.org
To: jdoe@example.net
Subject: price list
""")


def test_groupwise_user_ids_resolve_only_through_the_returned_message() -> None:
    assert facts(groupwise, GROUPWISE) == [("jdoe@example.net", Action.FAILED, "user not found")]


# A person who pastes, quotes or discusses a format's notice writes none of its reports.
PERSON = "Return-Path: <ann@example.org>\nFrom: Ann <ann@example.org>\nTo: help@example.net\n"


@pytest.mark.parametrize(("module", "raw"), [
    (aol, AOL_UK), (compuserve, COMPUSERVE), (mssmtpsvc, SMTP_SERVICE), (x400, X400),
    (mdaemon, MDAEMON), (postoffice, POST_OFFICE), (smail, SMAIL), (mmdf, MMDF_WAITING),
    (groupwise, GROUPWISE),
])
def test_a_persons_copy_is_not_claimed(module, raw: bytes) -> None:
    assert module.analyze(parse_message(raw)) is not None  # the report itself is claimed
    headers, _, body = raw.partition(b"\n\n")
    subject = next(line for line in headers.split(b"\n") if line.startswith(b"Subject:"))
    pasted = PERSON.encode() + subject.replace(b"Subject: ", b"Subject: Fwd: ") + b"\n\n" + body
    assert formats.analyze_known(parse_message(pasted)) is None
    report = analyze(pasted)
    assert [r for r in report.recipients if r.action in (Action.FAILED, Action.DELAYED)] == []


ONE_PARAGRAPH = """\
From: Mail Delivery System <MAILER-DAEMON@mail.example.edu>
To: orders@example.org
Subject: Returned mail

Mail for joe@example.edu was returned.
This account is no longer in use.
"""


def test_a_copy_saved_without_its_envelope_stands_for_the_null_sender() -> None:
    """Archives lose the Return-Path the delivering MTA adds; a real envelope sender that is
    not a mail system's still keeps the thinnest readers away (a forged notice)."""
    saved = analyze(ONE_PARAGRAPH.encode())
    assert [(r.address, r.reason) for r in saved.recipients] == [
        ("joe@example.edu", Reason.USERUNKNOWN)]
    forged = analyze(("Return-Path: <promo@example.net>\n" + ONE_PARAGRAPH).encode())
    assert forged.recipients == []


@pytest.mark.parametrize("return_path", ["<MAILER-DAEMON>", "<mailer-daemon@mx.example.edu>"])
def test_the_null_sender_as_some_mtas_render_it(return_path: str) -> None:
    report = analyze((f"Return-Path: {return_path}\n" + ONE_PARAGRAPH).encode())
    assert [r.address for r in report.recipients] == ["joe@example.edu"]
