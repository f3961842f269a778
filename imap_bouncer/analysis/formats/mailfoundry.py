"""MailFoundry, a mail filtering gateway.

"Unable to deliver message to: <a@b>\nDelivery failed for the following reason:\nServer
host[ip] failed with: 550 ..." and "This has been a permanent failure." (or a note that
delivery will be retried), then the message as message/rfc822.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib.textreport import findings_of, plain_notice, unfold

NAME = "mailfoundry"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_BLOCK = re.compile(r"^Unable to deliver message to: <?([^\s<>]+@[^\s<>]+?)>?\s*\n"
                    r"Delivery failed for the following reason:\s*\n(.*?)(?:\n[ \t]*\n|\Z)",
                    re.I | re.M | re.S)
_FAILED_WITH = re.compile(r"^Server (\S+?)(?:\[[^\]]*\])? failed with:\s*", re.I)
_TEMPORARY = re.compile(r"will (?:be retried|continue|retry)|temporary failure", re.I)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if "Delivery failed for the following reason:" not in notice[:3000]:
        return None
    action = Action.DELAYED if _TEMPORARY.search(notice[:3000]) else Action.FAILED
    failures: list[Failure] = []
    for block in _BLOCK.finditer(notice):
        words = unfold(block.group(2))
        server = _FAILED_WITH.match(words)
        failures.append(Failure(address=normalize_address(block.group(1)), action=action,
                                diagnostic=words[server.end():] if server else words,
                                remote_mta=server.group(1) if server else ""))
    return findings_of(NAME, "MailFoundry notice", failures, message, notice)
