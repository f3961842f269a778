"""Verizon Wireless MMS/SMS gateway (vzwpix.com, vtext.com) undeliverable notices.

"Message could not be delivered to mobile." and "Error: <cause>", then "Original Message:"
with the original's From / To / Subject / Date lines: the recipient is in that To line.
"""

from __future__ import annotations

from ...report import Action, Kind, Reason
from .. import lazy_re as re
from ..addresses import find_addresses
from ..findings import Failure, Findings
from ..message import Part, header_block_of
from ..text import notice_text
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of

NAME = "verizon"

SENDER = re.compile(r"@(?:[\w-]+\.)*(?:vzwpix\.com|vtext\.com)\b", re.I)
OPENING = re.compile(r"^Message could not be delivered to mobile\.?\s*$", re.I | re.M)
ERROR_LINE = re.compile(r"^Error:\s*(.+?)\s*$", re.I | re.M)
ORIGINAL = re.compile(r"^Original Message:\s*$", re.I | re.M)
# The gateway's fixed error texts and the cause each names.
FIXED_ERRORS: tuple[tuple[re.Pattern[str], Reason], ...] = (
    (re.compile(r"no valid recipients", re.I), Reason.USERUNKNOWN),
)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("vzwpix.com", "vtext.com"))


def analyze(message: Part) -> Findings | None:
    if not SENDER.search(message.get("from")):
        return None
    text = notice_text(message)
    opening = OPENING.search(text)
    original = ORIGINAL.search(text)
    if opening is None or original is None:
        return None
    error = ERROR_LINE.search(text, opening.end(), original.start())
    diagnostic = error.group(1) if error else ""
    hint = next((reason for pattern, reason in FIXED_ERRORS if pattern.search(diagnostic)), "")
    headers = header_block_of(text[original.end():])
    addresses = [a for name, value in headers if name == "to" for a in find_addresses(value)]
    failures = [Failure(address=a, action=Action.FAILED, diagnostic=diagnostic, reason_hint=hint)
                for a in addresses]
    return findings_of(NAME, "Verizon Wireless gateway notice", failures,
                       message, text[:original.start()], kind=Kind.BOUNCE, original=headers or None)
