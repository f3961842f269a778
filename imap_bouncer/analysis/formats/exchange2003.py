"""Microsoft Exchange 5.5, 2000 and 2003 (and the Internet Mail Service / Connector).

Their non-delivery reports are plain text, sometimes next to an RFC 3464 status part:

    Your message did not reach some or all of the intended recipients.
          Subject:  Nyaan
          Sent:     4/29/2008 1:23 PM
    The following recipient(s) cannot be reached:
          kijitora@example.com on 4/29/2008 1:23 PM
                The e-mail account does not exist at the organization this message was
                sent to. ...
                <mail.example.com #5.1.1 smtp;550 5.1.1 User unknown>

Exchange 5.5 writes "did not reach the following recipient(s):", then per recipient an
explanation, the MTS-ID and an "MSEXCH:IMS:... (000C05A6) Unknown Recipient" line. The
`<host #x.y.z smtp;reply>` tail, when present, holds the status and the remote reply.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..reasons import find_status
from ..text import notice_text, original_headers
from ._lib import dsnplus

NAME = "exchange2003"

# Headers that only Exchange and its Internet Mail Service/Connector write.
EXCHANGE_HEADERS: tuple[tuple[str, re.Pattern[str] | None], ...] = (
    ("x-ms-embedded-report", None),  # Exchange 5.5 / 2000
    ("x-mailer", re.compile(r"Internet Mail Service|Microsoft Exchange", re.I)),
    ("x-mimeole", re.compile(r"Produced By Microsoft Exchange", re.I)),
    ("x-dsncontext", None),  # the SMTP service's report sink (Exchange 2000 / 2003)
)
# The sentences that open the report (Exchange 5.5 / 2000 / 2003).
OPENING = re.compile(
    r"did not reach (?:some or all of the intended recipients|the following recipient)"
    r"|following recipient\(s\) (?:could not|cannot) be reached"
    r"|hat einige oder alle Empfänger nicht erreicht"  # German
    r"|Empfänger konnte\(n\) nicht erreicht werden",  # German
    re.I,
)
# "kijitora@example.com on 4/29/2008 1:23 PM" (the address may be quoted; "am" in German).
# Exchange 5.5 writes a one-off recipient as its X.400 address, the Internet address in the
# domain-defined attribute: "c=US;a= ;p=Acme;o=Site;dda:SMTP=jo@example.com; on ...".
RECIPIENT_LINE = re.compile(
    r"^\s*(?:[^\n]{0,200}?\b(?:dda:)?(?:SMTP|RFC-822)=)?['\"<]?(?:SMTP:)?"
    r"(?P<address>[^\s'\"<>;]+@[^\s'\"<>;]+?)['\">]?;?\s+(?:on|am)\s+\S",
    re.I)
# The MTS-ID lines say nothing about the failure.
MTS_ID = re.compile(r"^\s*(?:The MTS-ID of the original message is:|;l=)", re.I)
# "<mail.example.com #5.1.1 smtp;550 5.1.1 User unknown>" or "<mail.example.com #5.0.0>".
STATUS_TAIL = re.compile(
    r"<(?P<host>[^\s<>#]*)\s*#(?P<status>[245]\.\d{1,3}\.\d{1,3})"
    r"(?:\s+(?:smtp|x-[\w-]+)\s*;\s*(?P<reply>[^>]*(?:>[^>]*)*?))?>\s*$",
    re.I,
)

# Exchange's fixed explanations: each names one cause whatever the status beside it.
EXPLANATIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"e-?mail account does not exist at the organization", re.I), "userunknown"),
    (re.compile(r"recipient name is not recognized", re.I), "userunknown"),
    (re.compile(r"destination server for this recipient could not be found in Domain Name "
                r"Service", re.I), "hostunknown"),
    (re.compile(r"recipient's mailbox is full", re.I), "mailboxfull"),
    (re.compile(r"message was too large|message exceeds the maximum size", re.I), "mesgtoobig"),
    (re.compile(r"could not deliver the message in the time limit", re.I), "expired"),
    (re.compile(r"message to bounce between two servers", re.I), "networkerror"),
    (re.compile(r"do not have permission to send to this recipient", re.I), "securityerror"),
)


def analyze(message: Part) -> Findings | None:
    if not _from_exchange(message) \
            or not dsnplus.sent_by_mail_system(message, "system administrator"):
        return None
    notice = notice_text(message)
    opening = OPENING.search(notice[:4000])
    if opening is None:
        return None
    facts = _recipients(notice[opening.end():])
    findings = dsnplus.standard_report(message, NAME, "Exchange 2003 report")
    if findings is not None:
        return dsnplus.complete(findings, facts)
    return dsnplus.from_text(NAME, "Exchange 2003 report: recipients that could not be reached",
                             facts, notice, original_headers(message))


def _from_exchange(message: Part) -> bool:
    for name, pattern in EXCHANGE_HEADERS:
        if name in message and (pattern is None or pattern.search(message.get(name))):
            return True
    return any("Internet Mail Service" in value or "Microsoft Exchange" in value
               or "Microsoft SMTPSVC" in value  # the SMTP service of Exchange 2000/2003
               for value in message.get_all("received")[:3])


def _recipients(text: str) -> list[Failure]:
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in text.split("\n"):
        match = RECIPIENT_LINE.match(line)
        address = normalize_address(match.group("address")) if match else ""
        if address:
            current = []
            blocks.append((address, current))
        elif not line.strip():
            if current:
                current = None
        elif current is not None and not MTS_ID.match(line):
            current.append(line.strip())
    return [_failure(address, lines) for address, lines in blocks]


def _failure(address: str, lines: list[str]) -> Failure:
    text = " ".join(lines)
    failure = Failure(address=address, action=Action.FAILED, diagnostic=text)
    tail = STATUS_TAIL.search(text)
    if tail:
        failure.status = tail.group("status")
        failure.remote_mta = tail.group("host") or ""
        reply = (tail.group("reply") or "").strip()
        if reply:
            failure.diagnostic = reply
            failure.status = find_status(reply) or failure.status
        else:
            failure.diagnostic = text[:tail.start()].strip()
    for pattern, reason in EXPLANATIONS:
        if pattern.search(text):
            failure.reason_hint = reason
            break
    return failure
