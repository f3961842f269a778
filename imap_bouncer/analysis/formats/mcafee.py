"""McAfee Email and Web Security Appliance / Email Gateway reports (X-NAI-Header).

A text part, then usually an RFC 3464 status part:

        --- The following addresses had delivery problems ---

    <kijitora@example.co.jp>   (Unknown user kijitora@example.co.jp)

The words in parentheses are the remote reply, or McAfee's own summary ("Unrecoverable
error") when the status part holds the reply.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text, original_headers
from ._lib import dsnplus
from ._lib.common import DELAY_WORDS
from ._lib.precheck import Precheck

NAME = "mcafee"

GUARD_HEADER = "x-nai-header"
HEADING = re.compile(r"-+\s*The following addresses had delivery problems\s*-+", re.I)
# "<a@b>   (the reply)"
PROBLEM_LINE = re.compile(r"^\s*<([^\s<>]+@[^\s<>]+)>\s*(?:\((.*)\))?\s*$", re.M)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(headers=frozenset({GUARD_HEADER}))


def analyze(message: Part) -> Findings | None:
    if GUARD_HEADER not in message or not dsnplus.sent_by_mail_system(message):
        return None
    notice = notice_text(message)
    heading = HEADING.search(notice)
    if heading is None:
        return None
    action = Action.DELAYED if DELAY_WORDS.search(message.decoded("subject")) else Action.FAILED
    facts = []
    for line in PROBLEM_LINE.finditer(notice, heading.end()):
        address = normalize_address(line.group(1))
        if address:
            facts.append(Failure(address=address, action=action,
                                 diagnostic=(line.group(2) or "").strip()))
    findings = dsnplus.standard_report(message, NAME, "McAfee report")
    if findings is not None:
        return dsnplus.complete(findings, facts)
    return dsnplus.from_text(NAME, "McAfee report: addresses had delivery problems", facts,
                             notice, original_headers(message))
