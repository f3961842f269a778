"""X.400 gateways' non-delivery notifications rendered as text (RFC 2156 / MIXER gateways of
public administrations, Exchange 5.5 and ISOCOR-style connectors, 1993-2005).

An X.400 non-delivery report states, per recipient, a reason code and a diagnostic code
(ITU-T X.411 NonDeliveryReasonCode and NonDeliveryDiagnosticCode); gateways print them by
name, often with the number: "Reason: unable-to-transfer (1)", "Diagnostic:
unrecognised-OR-name (0)", next to "Recipient:" with the Internet address and the O/R name.
The diagnostic names the cause; the reason alone only says whether the message was
transferred.
"""

from __future__ import annotations

import re

from ...report import Action, Reason
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from . import dsnplus
from .textreport import findings_of, plain_notice

NAME = "x400"

_TITLE = re.compile(r"non-?delivery (?:notification|report|notice)", re.I)
_FIELD = re.compile(r"^[ \t]*(Recipient|Intended recipient|Reason|Diagnostic|"
                    r"Diagnostic code|Supplementary information)[ \t]*:[ \t]*(.*)$", re.I)
# X.411 NonDeliveryDiagnosticCode names (spelt with hyphens, spaces or underscores; British or
# American "unrecognised") -> what each says of the recipient.
_DIAGNOSTICS: tuple[tuple[re.Pattern[str], Reason], ...] = (
    (re.compile(r"unrecogni[sz]ed[- _]?o/?r[- _]?name|ambiguous[- _]o/?r[- _]?name", re.I),
     Reason.USERUNKNOWN),
    (re.compile(r"recipient[- _]unavailable", re.I), Reason.SUSPEND),
    (re.compile(r"mts[- _]congestion", re.I), Reason.SYSTEMFULL),
    (re.compile(r"(?:redirection[- _])?loop[- _]detected", re.I), Reason.NETWORKERROR),
    (re.compile(r"maximum[- _]time[- _]expired|transfer[- _]attempts[- _]limit[- _]reached",
                re.I), Reason.EXPIRED),
    (re.compile(r"content[- _]too[- _]long|size[- _]constraint[- _]violation", re.I),
     Reason.MESGTOOBIG),
    (re.compile(r"encoded[- _]information[- _]types[- _]unsupported|conversion[- _]"
                r"(?:impractical|with[- _]loss[- _]prohibited)|implicit[- _]conversion|"
                r"content[- _](?:syntax[- _]error|type[- _]not[- _]supported)|line[- _]too[- _]"
                r"long", re.I), Reason.CONTENTERROR),
    (re.compile(r"too[- _]many[- _]recipients", re.I), Reason.TOOMANYCONN),
    (re.compile(r"no[- _]bilateral[- _]agreement|no[- _]dl[- _]submit[- _]permission|"
                r"dl[- _]expansion[- _]prohibited|recipient[- _]reassignment[- _]prohibited",
                re.I), Reason.POLICYVIOLATION),
    (re.compile(r"secure[- _]messaging[- _]error", re.I), Reason.SECURITYERROR),
    (re.compile(r"protocol[- _]violation|invalid[- _]arguments", re.I), Reason.SYSTEMERROR),
)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if not _TITLE.search(message.decoded("subject")) and not _TITLE.search(notice[:1500]):
        return None
    if not dsnplus.sent_by_mail_system(message):
        return None
    failures: list[Failure] = []
    current: Failure | None = None
    for line in notice[:20000].split("\n"):
        field = _FIELD.match(line)
        if field is None:
            continue
        name, value = field.group(1).lower(), field.group(2).strip()
        if "recipient" in name:
            address = normalize_address(value)
            current = Failure(address=address, action=Action.FAILED) if address else None
            if current is not None:
                failures.append(current)
        elif current is not None and name.startswith("diagnostic"):
            current.diagnostic = f"{current.diagnostic} {value}".strip()
            current.reason_hint = next(
                (str(reason) for pattern, reason in _DIAGNOSTICS if pattern.search(value)), "")
        elif current is not None:
            current.diagnostic = f"{current.diagnostic} {value}".strip()
    if not any(f.reason_hint for f in failures):
        return None  # no X.411 diagnostic: some other report titled "non-delivery"
    return findings_of(NAME, "X.400 non-delivery notification", failures, message, notice)
