"""An unnamed, qmail-derived MTA (old Yahoo! Mail and others).

"Message from example.com.\nUnable to deliver message to the following address(es)." then a
block per recipient: "<a@b>:" and the reason on the next lines (qmail style, "(#4.4.1)"
status notes included), then "--- Original message follows.".
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib.textreport import findings_of, plain_notice, unfold

NAME = "qmail_derived"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_HEADING = re.compile(r"^Unable to deliver message to the following address\(es\)\.?\s*$",
                      re.I | re.M)
_END = re.compile(r"^-+ ?Original message follows", re.I | re.M)
# "<a@b>:" then the reason on the next lines (or, in some versions, on the same line).
_BLOCK = re.compile(r"^<([^\s<>]+@[^\s<>]+)>:[ \t]*(.*?)(?=^<[^\s<>]+@[^\s<>]+>:|\Z)",
                    re.M | re.S)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    heading = _HEADING.search(notice[:5000])
    if heading is None:
        return None
    end = _END.search(notice, heading.end())
    body = notice[heading.end():end.start() if end else len(notice)]
    failures = [Failure(address=normalize_address(m.group(1)), action=Action.FAILED,
                        diagnostic=unfold(m.group(2)))
                for m in _BLOCK.finditer(body)]
    return findings_of(NAME, "unable to deliver to the following address(es)", failures,
                       message, notice)
