"""The classic Unix MTAs' formats, on hand-written messages in their wording.

Each message imitates one format (qmail, Exim, Sendmail, Postfix, Courier, OpenSMTPD) closely
enough for its module's guard and reader; the expectations are the facts the module must
extract (address, action, status, SMTP code, the server's words, the SMTP command) and the
reason the shared classifier then gives. The last tests check that a person quoting or
discussing a bounce is never claimed.
"""

from __future__ import annotations

import pytest

from imap_bouncer.analysis import analyze
from imap_bouncer.analysis.formats import courier, exim, opensmtpd, postfix, qmail, sendmail
from imap_bouncer.analysis.message import parse_message
from imap_bouncer.report import Action, Kind, Reason

QMAIL = """\
Received: (qmail 4242 invoked for bounce); 2 May 2024 10:00:00 -0000
Date: 2 May 2024 10:00:00 -0000
From: MAILER-DAEMON@mx.example.net
To: news@example.org
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<gone@remote.example.com>:
198.51.100.7 does not like recipient.
Remote host said: 550 5.1.1 <gone@remote.example.com>: Recipient address rejected: User unknown
Giving up on 198.51.100.7.

<sender-refused@remote.example.com>:
Connected to 198.51.100.8 but sender was rejected.
Remote host said: 553 sorry, your envelope sender is not welcome here
Giving up on 198.51.100.8.

<nomx@nowhere.example>:
Sorry, I couldn't find any host named nowhere.example. (#5.1.2)

--- Below this line is a copy of the message.

Return-Path: <news@example.org>
From: news@example.org
To: gone@remote.example.com
Subject: Hello

Hi
"""

EXIM = """\
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: news@example.org
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: gone@remote.example.com, jo@local.example.net
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gone@remote.example.com
    host mx.remote.example.com [198.51.100.7]
    SMTP error from remote mail server after RCPT TO:<gone@remote.example.com>:
    550-5.1.1 The email account that you tried to reach does not exist.
    550 5.1.1 Please try again.
  jo
    (generated from jo@local.example.net)
    SMTP error from remote mail server after MAIL FROM:<news@example.org> SIZE=1234:
    host mx.local.example.net [198.51.100.9]: 550 No such domain example.org

------ This is a copy of the message, including all the headers. ------

From: news@example.org
To: gone@remote.example.com
Subject: Hello
"""

EXIM_DELAY = """\
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: news@example.org
Subject: Warning: message 1abcDE-000123-Xy delayed 24 hours

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.net.

The address to which the message has not yet been delivered is:

  slow@remote.example.com
    host mx.remote.example.com [198.51.100.7]
    Delay reason: SMTP error from remote mail server after RCPT TO:<slow@remote.example.com>:
    452 4.2.2 Mailbox full

No action is required on your part.
"""

SENDMAIL = """\
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>
To: news@example.org
Subject: Returned mail: see transcript for details
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"
MIME-Version: 1.0

--B1

The original message was received at Thu, 2 May 2024 10:00:00 +0000
from localhost [127.0.0.1]

   ----- The following addresses had permanent fatal errors -----
<jo@remote.example.com>
    (reason: 550-5.7.1 This message does not have authentication information or fails to)

   ----- Transcript of session follows -----
... while talking to mx.remote.example.com.:
>>> DATA
<<< 550-5.7.1 This message does not have authentication information or fails to
<<< 550 5.7.1 pass authentication checks.
554 5.0.0 Service unavailable

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: RFC822; jo@remote.example.com
Action: failed
Status: 5.7.1
Remote-MTA: DNS; mx.remote.example.com
Diagnostic-Code: SMTP; 550-5.7.1 This message does not have authentication information or fails to

--B1--
"""

POSTFIX = """\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: news@example.org
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary="P1"
MIME-Version: 1.0

--P1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<jo@remote.example.com>: host mx.remote.example.com[198.51.100.7] said: 550
    5.7.1 Access denied (in reply to MAIL FROM command)

<al@remote.example.com> (expanded from <team@example.org>): host
    mx.remote.example.com[198.51.100.7] said: 550 5.1.1 <al@remote.example.com>:
    Recipient address rejected: User unknown in virtual mailbox table (in reply
    to RCPT TO command)

--P1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4ABCD12345
X-Postfix-Sender: rfc822; news@example.org

Final-Recipient: rfc822; jo@remote.example.com
Action: failed
Status: 5.7.1
Remote-MTA: dns; mx.remote.example.com
Diagnostic-Code: smtp; 550 5.7.1 Access denied

Final-Recipient: rfc822; al@remote.example.com
Original-Recipient: rfc822;team@example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.remote.example.com
Diagnostic-Code: smtp; 550 5.1.1 <al@remote.example.com>: Recipient address
    rejected: User unknown in virtual mailbox table

--P1--
"""

POSTFIX_PLAIN = """\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: news@example.org
Subject: Undelivered Mail Returned to Sender

This is the Postfix program at host mx.example.net.

I'm sorry to have to inform you that the message returned
below could not be delivered to one or more destinations.

                        The Postfix program

<jo@remote.example.com>: Name service error for name=remote.example.com type=MX:
    Host not found, try again
"""

COURIER = """\
From: Courier mail server at mx.example.net <@>
To: news@example.org
Subject: NOTICE: mail delivery status.
Content-Type: multipart/report; report-type=delivery-status; boundary="=_courier_0"
MIME-Version: 1.0

--=_courier_0
Content-Type: text/plain; charset=us-ascii

This is a delivery status notification from mx.example.net,
running the Courier mail server, version 1.1.

Your message to the following recipients cannot be delivered:

<jo@remote.example.com>:
    mx.remote.example.com [198.51.100.7]:
>>> DATA
<<< 550 5.0.0 User unknown

--=_courier_0
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; jo@remote.example.com
Action: failed
Status: 5.0.0
Diagnostic-Code: smtp; 550 5.0.0 User unknown

--=_courier_0--
"""

OPENSMTPD = """\
Received: from mx.example.net (localhost [local]) by mx.example.net (OpenSMTPD) with ESMTPA id 1
From: Mailer Daemon <MAILER-DAEMON@mx.example.net>
To: news@example.org
Subject: Delivery status notification: error

    Hi!

    This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail.

    An error has occurred while attempting to deliver a message for
    the following list of recipients:

full@remote.example.com: 552 5.2.2 <full@remote.example.com>: Mailbox full
old@remote.example.com: Envelope expired

    Below is a copy of the original message:

From: news@example.org
"""


def _recipients(text: str):
    report = analyze(text.encode())
    return report, {r.address: r for r in report.recipients}


def test_qmail_paragraphs_words_and_stage():
    report, got = _recipients(QMAIL)
    assert report.analyzer == "formats.qmail" and report.kind is Kind.BOUNCE
    gone = got["gone@remote.example.com"]
    assert gone.smtp_code == "550" and gone.status == "5.1.1"
    assert gone.diagnostic.startswith("550 5.1.1 <gone@remote.example.com>: Recipient")
    assert gone.reason is Reason.USERUNKNOWN and gone.permanent
    assert got["sender-refused@remote.example.com"].reason is Reason.REJECTED
    nomx = got["nomx@nowhere.example"]
    assert nomx.status == "5.1.2" and nomx.reason is Reason.HOSTUNKNOWN
    assert report.original.subject == "Hello"


def test_exim_blocks_with_header_and_stage():
    report, got = _recipients(EXIM)
    assert report.analyzer == "formats.exim"
    gone = got["gone@remote.example.com"]
    assert gone.diagnostic == ("550-5.1.1 The email account that you tried to reach does not "
                               "exist. 550 5.1.1 Please try again.")
    assert gone.remote_mta == "mx.remote.example.com" and gone.reason is Reason.USERUNKNOWN
    # "jo" is only a local part in the block: X-Failed-Recipients names it in full, and the
    # reply came to MAIL FROM, so "No such domain" is about the sender.
    jo = got["jo@local.example.net"]
    assert jo.diagnostic == "550 No such domain example.org"
    assert jo.reason is Reason.REJECTED and not jo.permanent


def test_exim_delay_warning():
    report, got = _recipients(EXIM_DELAY)
    assert report.kind is Kind.DELAY
    slow = got["slow@remote.example.com"]
    assert slow.action is Action.DELAYED and slow.reason is Reason.MAILBOXFULL
    assert slow.diagnostic == "452 4.2.2 Mailbox full"


def test_sendmail_full_reply_from_transcript():
    report, got = _recipients(SENDMAIL)
    assert report.analyzer == "formats.sendmail"
    jo = got["jo@remote.example.com"]
    assert jo.diagnostic.endswith("fails to pass authentication checks.")
    assert jo.remote_mta == "mx.remote.example.com"
    assert jo.reason is Reason.AUTHFAILURE


def test_sendmail_top_content_type_lost():
    text = SENDMAIL.replace(
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\n', "")
    text = text.replace("\n\n--B1\n\nThe original", "\n\nThis is a MIME-encapsulated message\n\n"
                        "--B1\n\nThe original", 1)
    report, got = _recipients(text)
    assert report.analyzer == "formats.sendmail"
    assert got["jo@remote.example.com"].reason is Reason.AUTHFAILURE


def test_postfix_words_and_command_from_notice():
    report, got = _recipients(POSTFIX)
    assert report.analyzer == "formats.postfix"
    jo = got["jo@remote.example.com"]
    assert jo.diagnostic == "550 5.7.1 Access denied"
    assert jo.reason is Reason.REJECTED  # refused at MAIL FROM: the sender
    al = got["al@remote.example.com"]
    assert al.diagnostic.endswith("User unknown in virtual mailbox table")
    assert al.reason is Reason.USERUNKNOWN and al.permanent


def test_postfix_without_report():
    report, got = _recipients(POSTFIX_PLAIN)
    assert report.analyzer == "formats.postfix"
    jo = got["jo@remote.example.com"]
    assert jo.action is Action.FAILED and jo.reason is Reason.NETWORKERROR


def test_courier_exchange_gives_the_command():
    report, got = _recipients(COURIER)
    assert report.analyzer == "formats.courier"
    jo = got["jo@remote.example.com"]
    assert jo.remote_mta == "mx.remote.example.com"
    assert jo.reason is Reason.USERUNKNOWN  # "user unknown" after DATA: explicit words win


def test_opensmtpd_lines_and_expired_envelope():
    report, got = _recipients(OPENSMTPD)
    assert report.analyzer == "formats.opensmtpd"
    assert got["full@remote.example.com"].reason is Reason.MAILBOXFULL
    old = got["old@remote.example.com"]
    assert old.action is Action.FAILED and old.reason is Reason.EXPIRED


PERSON_QUOTING = """\
From: Jo Example <jo@example.com>
To: help@example.org
Subject: Re: failure notice

Why did this bounce?

> Hi. This is the qmail-send program at mx.example.net.
> I'm afraid I wasn't able to deliver your message to the following addresses.
>
> <gone@remote.example.com>:
> 198.51.100.7 does not like recipient.
>
> This message was created automatically by mail delivery software.
> The following address(es) failed:
>
>   gone@remote.example.com
>     SMTP error from remote mail server after RCPT TO:<gone@remote.example.com>:
>
>    ----- The following addresses had permanent fatal errors -----
> <gone@remote.example.com>
"""

NEWSLETTER = """\
From: Example News <news@example.com>
To: jo@example.org
Subject: This week: delivery tips

This is the mail system at host news.example.com speaking about delivery.

<jo@example.org>: thanks for subscribing!

Hi! This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail is a funny line.
"""


@pytest.mark.parametrize("module", [qmail, exim, sendmail, postfix, courier, opensmtpd])
@pytest.mark.parametrize("text", [PERSON_QUOTING, NEWSLETTER])
def test_not_claimed(module, text):
    assert module.analyze(parse_message(text.encode())) is None


def test_opensmtpd_success_notice():
    text = OPENSMTPD.replace("Delivery status notification: error",
                             "Delivery status notification: success").replace(
        "    An error has occurred while attempting to deliver a message for\n"
        "    the following list of recipients:\n",
        "    Your message was successfully delivered to these recipients.\n").replace(
        ": 552 5.2.2 <full@remote.example.com>: Mailbox full", ": delivered").replace(
        "old@remote.example.com: Envelope expired\n", "")
    report, got = _recipients(text)
    assert report.kind is Kind.DELIVERED
    assert got["full@remote.example.com"].action is Action.DELIVERED
