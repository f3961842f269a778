"""X.400 gateways' non-delivery notifications rendered as text (RFC 1327/2156 gateways of
public administrations and universities, the ISODE PP MTA, Exchange and other connectors,
1990-2005).

An X.400 non-delivery report states, per recipient, a reason code and a diagnostic code
(ITU-T X.411 NonDeliveryReasonCode and NonDeliveryDiagnosticCode); the diagnostic names the
cause, and `phrases` knows the names. Gateways print them two ways:

    Recipient:   hans.meier@bamt.bund-muster.example
    Reason:      unable-to-transfer (1)
    Diagnostic:  unrecognised-OR-name (0)

or, as PP does, "Your message was not delivered to: <recipient> for the following reason:
Diagnostic was Unable to transfer, Unrecognised ORName". A recipient may be written as an
O/R address that carries the Internet address in a domain-defined attribute
("/DDA:RFC-822=hans.meier(a)example.de/", "dda:SMTP=hans.meier@example.de"), with X.400's
"(a)" for "@".
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from .. import phrases
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part
from ._lib import dsnplus
from ._lib.textreport import findings_of, plain_notice, unfold

NAME = "x400"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_TITLE = re.compile(r"non-?delivery (?:notification|report|notice)|"
                    r"This report relates to your message", re.I)
_TITLE = prefiltered(_TITLE)  # searched only in texts holding its words
_FIELD = re.compile(r"^[ \t]*(Recipient|Intended recipient|Reason|Diagnostic|"
                    r"Diagnostic code|Supplementary information)[ \t]*:[ \t]*(.*)$", re.I)
# PP: "Your message was not delivered to:" <recipients> "for the following reason:" <why>.
_PP = re.compile(r"^[ \t]*Your message was not delivered to:[ \t]*\n(?P<who>(?:[ \t]+\S[^\n]*\n)"
                 r"{1,50})[ \t]*for the following reason:[ \t]*\n(?P<why>(?:[ \t]+\S[^\n]*\n?)"
                 r"{1,20})", re.I | re.M)
# The Internet address inside an O/R address: RFC-822 or SMTP domain-defined attribute.
_DDA = re.compile(r"dda[:.]\s*(?:rfc-?822|smtp)\s*=\s*([^/;\s]+)", re.I)
_X400_SPECIALS = (("(a)", "@"), ("(p)", "%"), ("(b)", "!"), ("(q)", '"'), ("(u)", "_"),
                  ("(l)", "("), ("(r)", ")"))


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if "iagnostic" not in notice[:20000]:
        return None  # every rendering names the X.411 diagnostic
    if not _TITLE.search(message.decoded("subject")) and not _TITLE.search(notice[:1500]):
        return None
    if not dsnplus.sent_by_mail_system(message):
        return None
    failures = _fields(notice[:20000]) or _pp(notice[:20000])
    if not any(phrases.match(f.diagnostic) for f in failures):
        return None  # no X.411 cause: some other report that calls itself a non-delivery
    findings = dsnplus.standard_report(message, NAME, "X.400 gateway report")
    if findings is not None:
        return dsnplus.complete(findings, failures)
    return findings_of(NAME, "X.400 non-delivery notification", failures, message, notice)


def internet_address(text: str) -> str:
    """The Internet address a recipient field holds, plain or inside an O/R address."""
    dda = _DDA.search(text)
    if dda is None:
        return normalize_address(text)
    value = dda.group(1)
    for special, char in _X400_SPECIALS:
        value = value.replace(special, char).replace(special.upper(), char)
    return normalize_address(value)


def _fields(notice: str) -> list[Failure]:
    """"Recipient:" opens a recipient; "Reason:" and "Diagnostic:" lines are its cause."""
    failures: list[Failure] = []
    current: Failure | None = None
    for line in notice.split("\n"):
        field = _FIELD.match(line)
        if field is None:
            continue
        name, value = field.group(1).lower(), field.group(2).strip()
        if "recipient" in name:
            address = internet_address(value)
            current = Failure(address=address, action=Action.FAILED) if address else None
            if current is not None:
                failures.append(current)
        elif current is not None:
            current.diagnostic = f"{current.diagnostic} {value}".strip()
    return failures


def _pp(notice: str) -> list[Failure]:
    """PP's paragraphs: the recipients, then the reason they share."""
    return [Failure(address=address, action=Action.FAILED, diagnostic=unfold(found.group("why")))
            for found in _PP.finditer(notice)
            for line in found.group("who").split("\n")
            for address in (internet_address(line.strip()),) if address]
