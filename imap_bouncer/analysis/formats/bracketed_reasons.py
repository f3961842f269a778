"""An unnamed MTA (Japanese ISPs' relays) that lists "address [reason]" lines.

"---The following addresses had delivery errors---" then one line per recipient:
"kijitora@example.co.jp [User unknown]".
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib.textreport import findings_of, plain_notice

NAME = "bracketed_reasons"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_HEADING = re.compile(r"^-{2,} ?The following addresses had delivery errors ?-{2,}\s*$",
                      re.I | re.M)
_RECIPIENT = re.compile(r"^\s*<?([^\s<>\[\]]+@[^\s<>\[\]]+?)>?\s+\[([^\]]*)\]\s*$", re.M)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    heading = _HEADING.search(notice[:5000])
    if heading is None:
        return None
    failures = [Failure(address=normalize_address(m.group(1)), action=Action.FAILED,
                        diagnostic=m.group(2).strip())
                for m in _RECIPIENT.finditer(notice, heading.end())]
    return findings_of(NAME, "delivery errors list of address [reason] lines", failures,
                       message, notice)
