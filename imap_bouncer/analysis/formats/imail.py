"""Ipswitch IMail Server (its SMTP32 mailer) "Undeliverable Mail" notices.

Plain text: one line per recipient, "<reason>: a@b" ("Unknown user: ...", "User mailbox
exceeds allowed size: ...", "Delivery failed 20 attempts: ..."), sometimes followed by the
remote server's reply, then "Original message follows.". Everything between one recipient's
line and the next is taken as its words. IMail marks its messages with
`X-Mailer: <SMTP32 vN>`.
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import split_at_original
from ._lib.common import looks_like_bounce
from ._lib.textreport import findings_of, hint_for, plain_notice, unfold

NAME = "imail"

_RECIPIENT = re.compile(r"^(\S[^\n]*?):\s*<?([^\s<>:]+@[^\s<>]+?)>?\s*$")
# IMail's own words, which say the reason outright.
_HINTS = (
    (Reason.MAILBOXFULL, re.compile(r"mailbox exceeds allowed size", re.I)),
    (Reason.EXPIRED, re.compile(r"delivery failed \d+ attempts", re.I)),
    (Reason.HOSTUNKNOWN, re.compile(r"^host unknown", re.I)),
    # The local delivery found no such account ("final delivery" is IMail's own mailbox).
    (Reason.USERUNKNOWN, re.compile(r"^invalid final delivery userid", re.I)),
)


def analyze(message: Part) -> Findings | None:
    mailer = message.get("x-mailer").lstrip()
    stamped = any("(SMTPD32-" in value for value in message.get_all("received"))
    if not (mailer.startswith(("<SMTP32", "<IMail")) or stamped) or not looks_like_bounce(message):
        return None  # IMail's X-Mailer is on its users' mail too: only its postmaster's count
    notice, _ = split_at_original(plain_notice(message))
    failures: list[Failure] = []
    current: Failure | None = None
    for line in notice.split("\n"):
        found = _RECIPIENT.match(line)
        address = normalize_address(found.group(2)) if found else ""
        if found and address:
            current = Failure(address=address, action=Action.FAILED,
                              diagnostic=found.group(1).strip())
            current.reason_hint = hint_for(current.diagnostic, _HINTS)
            failures.append(current)
        elif current is not None and line.strip():
            # The remote reply ("Body of message generated response:" and the SMTP lines)
            # follows the recipient's line, sometimes after a blank line.
            current.diagnostic = unfold(f"{current.diagnostic} {line}")
    return findings_of(NAME, "IMail (SMTP32) notice", failures, message, notice)
