"""DragonFly Mail Agent (dma), the small MTA of DragonFly BSD and others.

"This is the DragonFly Mail Agent v0.13 at host." then "There was an error delivering your
mail to <a@b>." and the reason: the remote reply after "host [ip] did not like our RCPT TO:",
or dma's own words ("DNS lookup failure: host x not found", "Could not deliver for the last
N seconds. Giving up."), up to "Message headers follow." or "Original message follows.".
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib.textreport import findings_of, hint_for, plain_notice, unfold

NAME = "dragonfly"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_GUARD = re.compile(r"^This is the DragonFly Mail Agent\b", re.M)
_ERROR = re.compile(r"^There was an error delivering your mail to <([^<>\s]+)>\.?\s*\n(.*?)"
                    r"(?:^(?:Message headers follow|Original message follows)\.?\s*$|\Z)",
                    re.M | re.S)
_COMMAND = re.compile(r"did not like our (?:final )?(MAIL FROM|RCPT TO|DATA|EHLO|HELO)", re.I)
_REMOTE = re.compile(r"^(\S+) \[[^\]]*\] did not like our", re.M)
# dma's own words, which say the reason outright.
_HINTS = (
    (Reason.HOSTUNKNOWN, re.compile(r"DNS lookup failure: host \S+ not found", re.I)),
    (Reason.EXPIRED, re.compile(r"Could not deliver for the last \d+ seconds", re.I)),
)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if not _GUARD.search(notice[:500]):
        return None
    failures: list[Failure] = []
    for error in _ERROR.finditer(notice):
        text = error.group(2)
        command = _COMMAND.search(text)
        remote = _REMOTE.search(text)
        reply = re.split(r"did not like our [^:\n]*:\s*", text, maxsplit=1)[-1]
        failures.append(Failure(
            address=normalize_address(error.group(1)), action=Action.FAILED,
            diagnostic=unfold(reply), remote_mta=remote.group(1) if remote else "",
            command=command.group(1).split(" ")[0].upper() if command else "",
            reason_hint=hint_for(text, _HINTS),
        ))
    return findings_of(NAME, "DragonFly Mail Agent notice", failures, message, notice)
