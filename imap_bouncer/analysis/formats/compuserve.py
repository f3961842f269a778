"""CompuServe Information Service "Undeliverable Message" notices (1990s).

CompuServe names its members by user ID ("74431,2203": the comma is written as a dot in an
Internet address, 74431.2203@compuserve.com) or by an alias. The notice repeats the
envelope ("To: >INTERNET:...", "Sender: ...") and states one line per recipient,
"Receiver not found: 74431,2203", then "Your message could not be delivered as addressed."
and the returned message.
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import ADDRESS_IN_TEXT, normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import split_at_original
from ._lib import dsnplus
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of, hint_for, plain_notice

NAME = "compuserve"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_AS_ADDRESSED = re.compile(r"could not be delivered as addressed", re.I)
# "<cause>: <receiver>", the receiver a user ID, an alias or an address.
_RECEIVER = re.compile(
    r"^[ \t]*(?P<cause>Receiver not found|Receiver's mailbox (?:is )?full|[A-Z][A-Za-z' ]{3,40}?)"
    r":[ \t]+(?:INTERNET:)?(?P<who>\d{4,7},\d{1,5}|" + ADDRESS_IN_TEXT.pattern +
    r"|[A-Za-z][A-Za-z0-9_.-]{1,30})[ \t]*$", re.M)
# The envelope lines of the notice, not causes.
_ENVELOPE = frozenset({"to", "from", "sender", "subject", "date", "cc", "bcc", "reply-to"})
_USER_ID = re.compile(r"^(\d{4,7}),(\d{1,5})$")
_HINTS = ((Reason.USERUNKNOWN, re.compile(r"receiver not found|user id \S+ does not exist",
                                          re.I)),)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("compuserve",))


def analyze(message: Part) -> Findings | None:
    if "compuserve" not in message.get("from").lower() \
            or not dsnplus.sent_by_mail_system(message):
        return None
    notice, _ = split_at_original(plain_notice(message))
    if not _AS_ADDRESSED.search(notice[:5000]):
        return None
    failures: list[Failure] = []
    for line in _RECEIVER.finditer(notice[:5000]):
        cause = line.group("cause").strip()
        if cause.lower() in _ENVELOPE:
            continue
        address = _address_of(line.group("who"))
        if address:
            failures.append(Failure(address=address, action=Action.FAILED, diagnostic=cause,
                                    reason_hint=hint_for(cause, _HINTS)))
    return findings_of(NAME, "CompuServe notice: receiver lines", failures, message, notice)


def _address_of(who: str) -> str:
    """A CompuServe receiver as an Internet address (user IDs take a dot for the comma)."""
    user_id = _USER_ID.match(who)
    if user_id:
        return f"{user_id.group(1)}.{user_id.group(2)}@compuserve.com"
    if "@" in who:
        return normalize_address(who)
    return normalize_address(f"{who}@compuserve.com")
