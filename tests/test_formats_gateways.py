"""Microsoft Exchange and mail-gateway formats, on hand-written messages in their wording.

Each message below imitates one format closely enough for its module's guard and reader; the
expectations are the facts the module must extract (address, action, status, reason), and
the last tests check that a person forwarding a report, or an unmarked Exchange-like text,
is never claimed by these modules.
"""

from __future__ import annotations

import pytest

from imap_bouncer.analysis import analyze
from imap_bouncer.analysis.formats import (
    exchange2003,
    exchange2007,
    mailmarshal,
    mcafee,
    mfilter,
    mxlogic,
)
from imap_bouncer.analysis.message import parse_message
from imap_bouncer.report import Action, Kind, Reason

EXCHANGE2003_SMTP_TAIL = """\
From: System Administrator <postmaster@corp.example.net>
To: news@example.org
Subject: Undeliverable: Test
X-MimeOLE: Produced By Microsoft Exchange V6.5
Content-Type: text/plain
MIME-Version: 1.0

Your message did not reach some or all of the intended recipients.

      Subject:	Test
      Sent:	3/27/2024 9:14 AM

The following recipient(s) cannot be reached:

      'a@remote.example.com' on 3/27/2024 9:14 AM
            There was a SMTP communication problem with the recipient's email server.
            <mx.corp.example.net #5.5.0 smtp;550 5.1.1 <a@remote.example.com>... User unknown>

      b@remote.example.com on 3/27/2024 9:14 AM
            The recipient's mailbox is full and can't accept messages now.
            <mx.corp.example.net #5.2.2>
"""

EXCHANGE2007_NO_STATUS_PART = """\
From: postmaster@example.jp
To: sender@example.org
Subject: Undeliverable: hello
Content-Type: multipart/alternative; boundary="b2"
MIME-Version: 1.0

--b2
Content-Type: text/plain; charset="us-ascii"

Delivery has failed to these recipients or distribution lists:

kijitora@example.jp
The e-mail address you entered couldn't be found.

mikeneko@example.jp
The recipient's mailbox is full and can't accept messages now.

_____
Sent by Microsoft Exchange Server 2007

Diagnostic information for administrators:

Generating server: mx.example.jp

kijitora@example.jp
#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##

mikeneko@example.jp
#< #5.2.2 smtp;550 5.2.2 <mikeneko@example.jp>... Mailbox Full> #SMTP#

Original message headers:

Received: from x by y; Mon, 4 Mar 2024 10:00:00 +0100
Message-ID: <orig@example.org>
Subject: hello

--b2--
"""

EXCHANGE2010_GERMAN = """\
From: Microsoft Outlook <postmaster@corp.example.de>
To: <news@example.org>
Date: Mon, 4 Mar 2024 10:00:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"
X-MS-Exchange-Message-Is-Ndr:
Content-Language: de-DE
Subject: Unzustellbar: Angebot
Auto-Submitted: auto-replied

--b1
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

Die Zustellung an folgende Empf=C3=A4nger oder Gruppen ist fehlgeschlagen:

anna@corp.example.de
Das Postfach des Empf=C3=A4ngers ist voll.

Diagnoseinformationen f=C3=BCr Administratoren:

Generierender Server: EX1.corp.example.de

anna@corp.example.de
Der Remoteserver hat '552 5.2.2 Mailbox full' zur=C3=BCckgegeben.

Urspr=C3=BCngliche Nachrichtenkopfzeilen:

From: Shop <news@example.org>
To: anna@corp.example.de
Subject: Angebot
Message-ID: <abc@example.org>

--b1--
"""

OFFICE365_DELAY = """\
From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.com>
To: <sender@example.org>
Subject: Delivery delayed:hello
X-MS-Exchange-Message-Is-Ndr:
Content-Type: text/plain; charset="us-ascii"
MIME-Version: 1.0

Delivery is delayed to these recipients or groups:

bob@remote.example.net

Subject: hello

This message hasn't been delivered yet. Delivery will continue to be attempted.

The server will keep trying to deliver this message for the next 1 days.

Diagnostic information for administrators:

Generating server: AM0PR01MB1234.eurprd01.prod.exchangelabs.com
Receiving server: mx.remote.example.net (192.0.2.77)

bob@remote.example.net
Remote Server at mx.remote.example.net (192.0.2.77) returned '451 4.4.0 Connection timed out'
4/5/2024 9:00 AM - Remote Server at mx.remote.example.net (192.0.2.77) returned '451 4.4.0'

Original message headers:

Message-ID: <m1@example.org>
Subject: hello
"""

OFFICE365_HTML = """\
From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com>
To: <sender@example.org>
Subject: Undeliverable: hello
X-MS-Exchange-Message-Is-Ndr:
Content-Type: multipart/alternative; boundary="b3"
MIME-Version: 1.0

--b3
Content-Type: text/html; charset="us-ascii"

<html><body>
<p>Your message to <a href="mailto:carl@contoso.com">carl@contoso.com</a>
couldn't be delivered.</p>
<p>carl wasn't found at contoso.com.</p>
<p><b>Diagnostic information for administrators:</b></p>
<p>Generating server: DM6PR.namprd.prod.outlook.com<br>
<br>
carl@contoso.com<br>
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found'<br>
<br>
Original message headers:</p>
<pre>Message-ID: &lt;x@example.org&gt;
Subject: hello
</pre></body></html>
--b3--
"""

MCAFEE_NO_STATUS_PART = """\
From: <MAILER-DAEMON@gw.example.net>
To: <sender@example.org>
Subject: Delivery Status
X-NAI-Header: Modified by McAfee Email Gateway
Content-Type: text/plain

    --- The following addresses had delivery problems ---

<a@example.net>   (User unknown)
<b@example.net>   (552 5.2.2 Mailbox full)
"""

MAILMARSHAL = """\
From: postmaster@gw.example.com
To: sender@example.org
Subject: Undeliverable Mail: "Hello"
Content-Type: text/plain

Your message:
   From:    sender@example.org
   Subject: Hello

Could not be delivered because of

554 5.7.1 Message rejected as spam by Content Filtering

The following recipients were affected:
    x@example.com
    y@example.com

Additional Information
======================
Remote-MTA:			<203.0.113.2>
"""

MFILTER = """\
From: POSTMASTER <postmaster@example.co.jp>
To: s@example.jp
X-Mailer: m-FILTER
Subject: failure notice
Content-Type: text/plain; charset=utf-8

このメールは「m-FILTER」が自動的に生成して送信しています。

以下のメールアドレスへの送信に失敗しました。
a@example.co.jp
b@example.co.jp


-------server message
552 5.2.2 Mailbox full

-------SMTP command
RCPT

-------original message
To: a@example.co.jp
Subject: x
"""

MXLOGIC = """\
From: Mail Delivery System <MAILER-DAEMON@mxl8.example.net>
To: s@example.or.jp
Subject: Mail delivery failed
X-MX-Bounce: mta/src/queue/bounce
Content-Type: text/plain

This message was created automatically by mail delivery software.

A message that you have sent could not be delivered to one or more
recipients.  This is a permanent error.  The following addresses failed:

  kijitora@example.jp
    SMTP error from remote mail server after RCPT TO:<kijitora@example.jp>:
    host mx.example.jp [192.0.2.1]: 550 5.1.1 User unknown
  mikeneko@example.jp: 552 5.2.2 Mailbox full

Included is a copy of the message header:
-----------------------------------------
To: kijitora@example.jp
Subject: hi
"""

FORWARDED_NDR = """\
From: Sam Archer <sam@example.org>
To: Lee <lee@example.net>
Subject: Fw: Undeliverable: Contract draft
Content-Type: text/plain

FYI

Delivery has failed to these recipients or groups:

jo@example.net
The email address you entered couldn't be found.

Diagnostic information for administrators:

Generating server: ex.example.net

jo@example.net
#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##
"""


CASES = [
    # (message, analyzer, [(address, action, status, reason or None: not this module's call)])
    (EXCHANGE2003_SMTP_TAIL, "formats.exchange2003", [
        ("a@remote.example.com", Action.FAILED, "5.1.1", Reason.USERUNKNOWN),
        ("b@remote.example.com", Action.FAILED, "5.2.2", Reason.MAILBOXFULL)]),
    (EXCHANGE2007_NO_STATUS_PART, "formats.exchange2007", [
        ("kijitora@example.jp", Action.FAILED, "5.1.1", Reason.USERUNKNOWN),
        ("mikeneko@example.jp", Action.FAILED, "5.2.2", Reason.MAILBOXFULL)]),
    (EXCHANGE2010_GERMAN, "formats.exchange2007", [
        ("anna@corp.example.de", Action.FAILED, "5.2.2", Reason.MAILBOXFULL)]),
    (OFFICE365_DELAY, "formats.exchange2007", [
        ("bob@remote.example.net", Action.DELAYED, "4.4.0", None)]),  # reason: the classifier's
    (OFFICE365_HTML, "formats.exchange2007", [
        ("carl@contoso.com", Action.FAILED, "5.1.10", Reason.USERUNKNOWN)]),
    (MCAFEE_NO_STATUS_PART, "formats.mcafee", [
        ("a@example.net", Action.FAILED, "5.1.1", Reason.USERUNKNOWN),
        ("b@example.net", Action.FAILED, "5.2.2", Reason.MAILBOXFULL)]),
    (MAILMARSHAL, "formats.mailmarshal", [
        ("x@example.com", Action.FAILED, "5.7.1", Reason.SPAMDETECTED),
        ("y@example.com", Action.FAILED, "5.7.1", Reason.SPAMDETECTED)]),
    (MFILTER, "formats.mfilter", [
        ("a@example.co.jp", Action.FAILED, "5.2.2", Reason.MAILBOXFULL),
        ("b@example.co.jp", Action.FAILED, "5.2.2", Reason.MAILBOXFULL)]),
    (MXLOGIC, "formats.mxlogic", [
        ("kijitora@example.jp", Action.FAILED, "5.1.1", Reason.USERUNKNOWN),
        ("mikeneko@example.jp", Action.FAILED, "5.2.2", Reason.MAILBOXFULL)]),
]


@pytest.mark.parametrize(("text", "analyzer", "expected"), CASES,
                         ids=[analyzer + str(i) for i, (_, analyzer, _) in enumerate(CASES)])
def test_format_reads_recipients(text: str, analyzer: str, expected: list) -> None:
    report = analyze(text.encode())
    assert report.analyzer == analyzer
    assert report.kind in (Kind.BOUNCE, Kind.DELAY)
    got = [(r.address, r.action, r.status, r.reason if reason else None)
           for r, (_, _, _, reason) in zip(report.recipients, expected, strict=False)]
    assert len(report.recipients) == len(expected)
    assert got == expected


def test_smtp_code_comes_from_the_remote_reply() -> None:
    report = analyze(MXLOGIC.encode())
    assert [r.smtp_code for r in report.recipients] == ["550", "552"]


@pytest.mark.parametrize("module", [exchange2003, exchange2007, mailmarshal, mcafee, mfilter,
                                    mxlogic])
def test_a_person_forwarding_a_report_is_not_claimed(module) -> None:
    assert module.analyze(parse_message(FORWARDED_NDR.encode())) is None


def test_exchange_delivery_receipt_is_not_a_bounce() -> None:
    receipt = OFFICE365_HTML.replace("couldn't be delivered", "was delivered").replace(
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not "
        "found'", "Remote Server returned '250 2.6.0 Queued mail'")
    receipt = receipt.replace("X-MS-Exchange-Message-Is-Ndr:\n", "")
    findings = exchange2007.analyze(parse_message(receipt.encode()))
    assert findings is None or not findings.failures
