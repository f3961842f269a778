"""Active!hunter (TransWARE), a Japanese mail gateway.

A multipart/report without a status part: the text part says, Sendmail-like,
"----- The following addresses had permanent fatal errors -----" then one line per recipient
(">>> a@b <a@b>"), and "----- Transcript of session follows -----" with the remote reply.
The gateway marks its messages with an `X-AHMAILID` header.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of, plain_notice, unfold

NAME = "activehunter"

_RECIPIENT = re.compile(r"^\s*>>>\s*(\S+@\S+)", re.M)
_TRANSCRIPT = re.compile(r"^[ \t]*-+ ?Transcript of session follows ?-+[ \t]*\n(.*?)"
                         r"(?:\n[ \t]*-{3,}|\Z)", re.I | re.M | re.S)
_HEADING = re.compile(r"^\s*-+ ?The following addresses had ", re.I | re.M)
_DELAYED = re.compile(r"-+ ?The following addresses had (?:transient|temporary)", re.I)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(headers=frozenset({"x-ahmailid"}))


def analyze(message: Part) -> Findings | None:
    if "x-ahmailid" not in message:
        return None
    notice = plain_notice(message)
    if not _HEADING.search(notice[:3000]):
        return None  # a message the gateway merely relayed
    transcript = _TRANSCRIPT.search(notice)
    words = unfold(transcript.group(1)) if transcript else ""
    action = Action.DELAYED if _DELAYED.search(notice) else Action.FAILED
    addresses = dict.fromkeys(normalize_address(m.group(1)) for m in _RECIPIENT.finditer(notice))
    failures = [Failure(address=a, action=action, diagnostic=words) for a in addresses if a]
    return findings_of(NAME, "Active!hunter notice", failures, message, notice)
