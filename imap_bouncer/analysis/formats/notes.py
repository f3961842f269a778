"""Lotus Notes' SMTP MTA (before Domino): plain-text "Undeliverable message" notices.

"------- Failure Reasons  --------" then, per recipient, the reason and the address on the
next line, then "------- Returned Message --------" and the message.
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import ADDRESS_IN_TEXT, normalize_address
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part
from ._lib.textreport import findings_of, hint_for, plain_notice, unfold

NAME = "notes"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_SECTION = re.compile(r"^-+ *Failure Reasons *-+\s*\n(.*?)(?:^-+ *Returned Message *-+|\Z)",
                      re.I | re.M | re.S)
_SECTION = prefiltered(_SECTION)  # searched only in texts holding its words
_ADDRESS_LINE = re.compile(r"^\s*<?(" + ADDRESS_IN_TEXT.pattern + r")>?\s*$")
# The Notes MTA's own words for a recipient its directory does not know.
_HINTS = (
    (Reason.USERUNKNOWN, re.compile(r"not listed in (?:the )?(?:public Name (?:&|and) Address "
                                    r"Book|Domino Directory)", re.I)),
)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    section = _SECTION.search(notice[:10000])
    if section is None:
        return None
    failures: list[Failure] = []
    reason_lines: list[str] = []
    for line in section.group(1).split("\n"):
        address_line = _ADDRESS_LINE.match(line)
        if address_line is None:
            if line.strip():
                reason_lines.append(line.strip())
            continue
        reason = unfold(" ".join(reason_lines))
        failures.append(Failure(address=normalize_address(address_line.group(1)),
                                action=Action.FAILED, diagnostic=reason,
                                reason_hint=hint_for(reason, _HINTS)))
        reason_lines = []
    return findings_of(NAME, "Notes failure reasons section", failures, message, notice)
