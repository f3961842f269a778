"""Mimecast gateway alerts ("[Postmaster] Email Delivery Failure"), one per recipient.

    An email that you attempted to send to the following address could not be delivered:
    -- sabineko@example.org

    The problem appears to be :
    -- Recipient email address is possibly incorrect

    Additional information follows :
    -- 5.4.1 Recipient address rejected: Access denied. [...]

"Additional information" is the remote server's reply; "the problem appears to be" is
Mimecast's summary, used when there is no reply.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import find_addresses
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text
from ._lib import dsnplus
from ._lib.common import DELAY_WORDS, looks_like_bounce

NAME = "mimecast"

OPENING = re.compile(r"An email that you attempted to send to the following address(?:es)?\s+"
                     r"(?:could not be|has not yet been|was not) delivered", re.I)
PROBLEM = re.compile(r"^\s*The problem appears to be\s*:\s*\n\s*--\s*(.+)$", re.I | re.M)
ADDITIONAL = re.compile(r"^\s*Additional information follows\s*:\s*\n\s*--\s*(.+)$",
                        re.I | re.M)
SECTION_END = re.compile(r"^\s*The problem appears to be", re.I | re.M)


def analyze(message: Part) -> Findings | None:
    if not message.has_name_starting("x-mimecast", "x-mc-") \
            or not looks_like_bounce(message) or not dsnplus.sent_by_mail_system(message):
        return None
    notice = notice_text(message)
    opening = OPENING.search(notice[:3000])
    if opening is None:
        return None
    end = SECTION_END.search(notice, opening.end())
    listed = find_addresses(notice[opening.end():end.start() if end else opening.end() + 500])
    additional, problem = ADDITIONAL.search(notice), PROBLEM.search(notice)
    stated = additional or problem
    diagnostic = stated.group(1).strip() if stated else ""
    delayed = "not yet been" in opening.group(0) or bool(DELAY_WORDS.search(
        message.decoded("subject")))
    failures = [Failure(address=address, action=Action.DELAYED if delayed else Action.FAILED,
                        diagnostic=diagnostic) for address in listed]
    result = dsnplus.from_text(NAME, "Mimecast delivery alert", failures, notice, None)
    if result is not None and problem and additional:
        result.notice = problem.group(1)
    return result
