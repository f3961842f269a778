"""Sun/Oracle Communications Messaging Server (and PMDF, its ancestor).

A multipart/report whose text part starts "This report relates to a message you sent with
the following header fields:" and lists, per recipient, "Recipient address:", "Reason:",
"Diagnostic code:" and "Remote system:". Some versions declare a boundary and never use it,
so the parts run together; the RFC 3464 reader copes with that, and the notice fills in what
the status fields leave out.
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib.dsnplus import standard_report
from ._lib.textreport import findings_of, hint_for, plain_notice, unfold

NAME = "messagingserver"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_GUARD = "This report relates to a message you sent with the following header fields"
_FIELD = re.compile(r"^[ \t]*(Recipient address|Original address|Reason|Diagnostic code|"
                    r"Remote system):\s*(.*)$", re.I)
# The sentences that open a group of recipients, and what happened to them; a notice may
# hold several groups ("cannot be delivered" and "successfully delivered" side by side).
_SECTIONS: tuple[tuple[re.Pattern[str], Action], ...] = (
    (re.compile(r"has been enqueued and undeliverable|delivery has been delayed|"
                r"has not yet been delivered", re.I), Action.DELAYED),
    (re.compile(r"successfully delivered to the following recipients|"
                r"has been (?:successfully )?relayed", re.I), Action.DELIVERED),
    (re.compile(r"cannot be delivered to the following recipients|could not be delivered",
                re.I), Action.FAILED),
)
# The server's own reason lines that say the reason outright.
_HINTS = (
    (Reason.HOSTUNKNOWN, re.compile(r"illegal host/domain name found", re.I)),
)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if not notice and message.is_multipart and not message.parts:
        notice = message.text  # a boundary declared and never used: one run of text
    if _GUARD not in notice[:1500]:
        return None
    facts = _notice_facts(notice)
    findings = standard_report(message, NAME, "Messaging Server report")
    if findings is None:
        return findings_of(NAME, "Messaging Server notice", list(facts.values()), message, notice)
    for failure in findings.failures:
        fact = facts.get(failure.address)
        if fact is None:
            continue
        failure.diagnostic = failure.diagnostic or fact.diagnostic
        failure.reason_hint = failure.reason_hint or fact.reason_hint
    return findings


def _notice_facts(notice: str) -> dict[str, Failure]:
    """Recipient blocks of the notice: address, reason and the remote server's words."""
    action = Action.FAILED
    facts: dict[str, Failure] = {}
    current: Failure | None = None
    reason = ""
    for line in notice[:50000].split("\n"):
        field = _FIELD.match(line)
        if field is None:
            section = next((a for pattern, a in _SECTIONS if pattern.search(line)), None)
            if section is not None:
                action, current = section, None
            continue
        name, value = field.group(1).lower(), field.group(2).strip()
        if name in ("recipient address", "original address"):
            address = normalize_address(value)
            if address and (current is None or name == "recipient address"):
                current = facts.setdefault(address, Failure(address=address, action=action))
                reason = ""
        elif current is None:
            continue
        elif name == "reason":
            reason = value
            current.diagnostic = current.diagnostic or value
            current.reason_hint = hint_for(value, _HINTS)
        elif name == "diagnostic code":
            current.diagnostic = unfold(value.partition(";")[2] or value) or reason
        elif name == "remote system":
            hosts = value.partition(";")[2].split()
            current.remote_mta = hosts[0] if hosts else ""
    return facts
