"""MailMarshal SMTP (Marshal, later Trustwave SEG) gateway reports.

    Your message:
       From:    sironeko@example.com
       Subject: Nyaan

    Could not be delivered because of

    550 5.1.1 User unknown

    The following recipients were affected:
        kijitora@example.com

    Additional Information
    ======================
    Remote-MTA:         <192.0.2.2>

One reason for all the recipients listed after it.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import find_addresses
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part
from ..text import notice_text, original_headers
from ._lib import dsnplus
from ._lib.common import DELAY_WORDS

NAME = "mailmarshal"

# MailMarshal's own relay names itself in its Received line and subject.
GUARD_SUBJECT = re.compile(r"^\s*Undeliverable Mail\b", re.I)
GUARD_SUBJECT = prefiltered(GUARD_SUBJECT)  # searched only in texts holding its words
REASON_START = re.compile(r"^\s*Could not be delivered because of\s*$", re.I | re.M)
AFFECTED = re.compile(r"^\s*The following recipients were affected:?\s*$", re.I | re.M)
SECTION_END = re.compile(r"^\s*(?:Additional Information|=+)\s*$", re.I | re.M)
REMOTE_MTA = re.compile(r"^\s*Remote-MTA:\s*<?([^>\s]+)>?", re.I | re.M)


def analyze(message: Part) -> Findings | None:
    if not (GUARD_SUBJECT.search(message.decoded("subject"))
            or any("MailMarshal" in value for value in message.get_all("received")[:3])) \
            or not dsnplus.sent_by_mail_system(message):
        return None
    notice = notice_text(message)
    start, affected = REASON_START.search(notice), AFFECTED.search(notice)
    if start is None or affected is None or affected.start() < start.end():
        return None
    diagnostic = " ".join(notice[start.end():affected.start()].split())
    end = SECTION_END.search(notice, affected.end())
    listed = notice[affected.end():end.start() if end else len(notice)]
    remote = REMOTE_MTA.search(notice)
    delayed = bool(DELAY_WORDS.search(diagnostic))
    failures = [Failure(address=address, action=Action.DELAYED if delayed else Action.FAILED,
                        diagnostic=diagnostic, remote_mta=remote.group(1) if remote else "")
                for address in find_addresses(listed)]
    return dsnplus.from_text(NAME, "MailMarshal report: recipients affected", failures, notice,
                             original_headers(message))
