"""An unnamed MTA whose report starts "This is an automatically generated Delivery Status
Notification" and lists recipients as "  * a@b" under "Delivery to the following recipients
failed permanently:" (or "... was aborted after 5.0 hour(s):", misspelt "Delevery" by some
versions), with the reason under "Technical details:".
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib.textreport import findings_of, hint_for, plain_notice, unfold

NAME = "technical_details"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_HEADING = re.compile(r"^\s*Del[ei]very to the following recipients? (failed permanently|"
                      r"was aborted after [^\n:]*|failed temporarily|[^\n:]{0,40}):\s*$",
                      re.I | re.M)
_RECIPIENT = re.compile(r"^[ \t]+\*[ \t]+<?([^\s<>]+@[^\s<>]+?)>?[ \t]*$", re.M)
_DETAILS = re.compile(r"^\s*Technical details:?\s*\n(.*?)(?:\n[ \t]*={5,}|\Z)", re.I | re.M | re.S)
# Fixed phrases of this format that say the reason outright.
_HINTS = (
    (Reason.EXPIRED, re.compile(r"was aborted after [\d.]+ (?:hour|day|minute)", re.I)),
)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if "automatically generated Delivery Status Notification" not in notice[:3000]:
        return None
    heading = _HEADING.search(notice)
    if heading is None:
        return None
    details = _DETAILS.search(notice, heading.end())
    words = unfold(details.group(1)) if details else ""
    delayed = "temporarily" in heading.group(1).lower()
    hint = hint_for(heading.group(0), _HINTS)
    failures = [Failure(address=normalize_address(m.group(1)),
                        action=Action.DELAYED if delayed else Action.FAILED,
                        diagnostic=words, reason_hint=hint)
                for m in _RECIPIENT.finditer(notice, heading.end())]
    return findings_of(NAME, "automatically generated notification with * recipient lines",
                       failures, message, notice)
