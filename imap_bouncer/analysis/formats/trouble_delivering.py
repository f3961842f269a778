"""An unnamed MTA that writes "We had trouble delivering your message. Full details follow:".

Each error is one sentence: "The following recipients returned permanent errors: a@b, c@d.
Reason: SMTP Server <ip> refused to accept your message (DATA), with the following error
message: [554 5.4.6 ...]". The original headers come as a text attachment.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import find_addresses
from ..findings import Failure, Findings
from ..message import Part
from ._lib.textreport import findings_of, plain_notice, unfold

NAME = "trouble_delivering"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_GUARD = "We had trouble delivering your message"
_ERROR = re.compile(r"The following recipients returned (permanent|temporary|transient) errors?:"
                    r"\s*(.*?)\.\s+Reason:\s*(.*?)(?:\n[ \t]*\n|\Z)", re.I | re.S)
_COMMAND = re.compile(r"\((HELO|EHLO|MAIL|RCPT|DATA)[^)]*\)", re.I)
_BRACKETED = re.compile(r"\[([245]\d\d[^\]]*)\]")


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if _GUARD not in notice[:2000]:
        return None
    failures: list[Failure] = []
    for error in _ERROR.finditer(notice):
        action = Action.FAILED if error.group(1).lower() == "permanent" else Action.DELAYED
        reason = unfold(error.group(3))
        reply = _BRACKETED.search(reason)
        command = _COMMAND.search(reason)
        for address in find_addresses(error.group(2)):
            failures.append(Failure(address=address, action=action,
                                    diagnostic=reply.group(1) if reply else reason,
                                    command=command.group(1).upper() if command else ""))
    return findings_of(NAME, "trouble delivering your message: recipients and reason",
                       failures, message, notice)
