"""Trend Micro InterScan Messaging Security Suite (InterScan MSS, IMSS) reports.

Recognised by the MIME boundary InterScan writes ("InterScan_NT_MIME_Boundary") or its
sender name. Two wordings of the notice:

    Sent <<< RCPT TO:<kijitora@example.co.jp>
    Received >>> 550 5.1.1 <kijitora@example.co.jp>... user unknown

    The following mail could not be delivered.
    Reason:  Unable to deliver message to <kijitora@example.jp> (and other recipients ...).
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text, original_headers
from ._lib import dsnplus

NAME = "trendmicro"

# A transcript: the command sent, then the server's reply to it.
SENT_RCPT = re.compile(r"^\s*Sent\s*(?:<<<|>>>)\s*RCPT TO:\s*<?([^\s<>]+@[^\s<>]+)>?", re.I | re.M)
RECEIVED = re.compile(r"^\s*Received\s*(?:<<<|>>>)\s*(.+)$", re.I | re.M)
# "Unable to deliver message to <a@b> (and other recipients in the same domain)."
UNABLE = re.compile(r"^\s*(?:Reason:\s*)?(Unable to deliver (?:the )?message to\s*"
                    r"<?([^\s<>]+@[^\s<>]*[^\s<>.])>?[ .(].*)$", re.I | re.M)
# A Sendmail-style transcript line in a returned message: ">>> RCPT To:<a@b>", "<<< 550 ...".
TRANSCRIPT_RCPT = re.compile(r"^\s*>>>\s*RCPT TO:\s*<?([^\s<>]+@[^\s<>]+?)>?\s*$", re.I | re.M)
TRANSCRIPT_REPLY = re.compile(r"^\s*<<<\s*([245]\d\d[ -].+)$", re.M)
DELAYED = re.compile(r"will (?:retry|try again)|has been delayed|not yet been delivered", re.I)


def analyze(message: Part) -> Findings | None:
    boundary = message.params.get("boundary", "") if message.is_multipart else ""
    if "InterScan" not in boundary and "InterScan" not in message.get("from"):
        return None
    if not dsnplus.sent_by_mail_system(message):
        return None
    notice = notice_text(message)
    action = Action.DELAYED if DELAYED.search(notice[:3000]) else Action.FAILED
    failures: dict[str, Failure] = {}
    sents = list(SENT_RCPT.finditer(notice))
    for index, sent in enumerate(sents):
        address = normalize_address(sent.group(1))
        end = sents[index + 1].start() if index + 1 < len(sents) else len(notice)
        reply = RECEIVED.search(notice, sent.end(), end)
        if address and address not in failures:
            failures[address] = Failure(address=address, action=action,
                                        diagnostic=reply.group(1).strip() if reply else "")
    unable_to = [(normalize_address(u.group(2)), u.group(1).strip())
                 for u in UNABLE.finditer(notice)]
    replies = _returned_replies(message) if unable_to else {}
    for address, words in unable_to:
        if address and address not in failures:
            failures[address] = Failure(address=address, action=action,
                                        diagnostic=replies.get(address, words))
    return dsnplus.from_text(NAME, "InterScan MSS report", list(failures.values()), notice,
                             original_headers(message))


def _returned_replies(message: Part) -> dict[str, str]:
    """Replies per recipient in a returned message that is itself an MTA's transcript.

    "Unable to deliver message to <a@b>" names no cause. When InterScan relays a downstream
    report (the returned message carries its SMTP transcript), that transcript does.
    """
    replies: dict[str, str] = {}
    for part in message.walk():
        if part.content_type not in ("message/rfc822", "message/global") or not part.parts:
            continue
        text = notice_text(part.parts[0])
        for rcpt in TRANSCRIPT_RCPT.finditer(text):
            reply = TRANSCRIPT_REPLY.search(text, rcpt.end(), rcpt.end() + 1000)
            address = normalize_address(rcpt.group(1))
            if reply and address:
                replies.setdefault(address, reply.group(1).strip())
    return replies
