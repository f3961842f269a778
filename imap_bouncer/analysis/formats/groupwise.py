"""Novell GroupWise (its Internet Agent, GWIA, 4.1-7, 1994-2008) "Message status -
undeliverable" notices.

"The message that you sent was undeliverable to the following:" then one indented line per
recipient with GroupWise's cause, or the remote server's reply, in parentheses:

    The message that you sent was undeliverable to the following:
        kbrandt@mapleton-schools.example (user not found)
        acquisitions@county-libary.example (host not found)

    Possibly truncated original message follows:

A recipient of the same GroupWise system may be named by its user ID alone ("KBRANDT (user
not found)"); it is taken only when the returned message names that mailbox.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import find_addresses, normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import original_headers
from ._lib import dsnplus
from ._lib.textreport import findings_of, plain_notice

NAME = "groupwise"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_HEADING = re.compile(r"^[ \t]*The message that you sent was (?:undeliverable|not delivered) "
                      r"to the following:?[ \t]*$", re.I | re.M)
# A recipient line, indented (some relays strip the tab), the cause in parentheses.
_LINE = re.compile(r"^[ \t]*<?(?P<who>[^\s()<>]{1,256}?)>?[ \t]*(?:\((?P<why>[^\n]{0,500})\))?"
                   r"[ \t]*$")
_MAX_LINES = 500


def analyze(message: Part) -> Findings | None:
    if not _groupwise(message) or not dsnplus.sent_by_mail_system(message):
        return None
    notice = plain_notice(message)
    heading = _HEADING.search(notice[:5000])
    if heading is None:
        return None
    findings = dsnplus.standard_report(message, NAME, "GroupWise notice")
    facts = _recipients(notice[heading.end():], _returned_recipients(message))
    if findings is not None:
        return dsnplus.complete(findings, facts)
    return findings_of(NAME, "GroupWise notice: undeliverable to the following", facts,
                       message, notice)


def _groupwise(message: Part) -> bool:
    """GroupWise's own stamp: its X-Mailer, or its Received line (as GroupWise writes them)."""
    if "GroupWise" in message.get("x-mailer"):
        return True
    return any("Novell_GroupWise" in value for value in message.get_all("received"))


def _recipients(text: str, returned: dict[str, str]) -> list[Failure]:
    failures: list[Failure] = []
    for line in text.lstrip("\r\n").split("\n")[:_MAX_LINES]:
        found = _LINE.match(line)
        if found is None:
            break
        who = found.group("who")
        if not line[:1].isspace() and not found.group("why"):
            break  # an unindented word without a cause is the notice's own text
        address = normalize_address(who) if "@" in who else returned.get(who.lower(), "")
        if address:
            failures.append(Failure(address=address, action=Action.FAILED,
                                    diagnostic=(found.group("why") or "").strip()))
    return failures


def _returned_recipients(message: Part) -> dict[str, str]:
    """The returned message's recipients by local part, to resolve GroupWise user IDs."""
    headers = original_headers(message) or []
    return {address.partition("@")[0].lower(): address for name, value in headers
            if name in ("to", "cc") for address in find_addresses(value)}
