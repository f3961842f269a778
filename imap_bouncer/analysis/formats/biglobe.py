"""BIGLOBE (biglobe.ne.jp) returned mail.

From postmaster@biglobe.ne.jp: "----- The following addresses had delivery problems -----",
the addresses, then "----- Non-delivered information -----" and a fixed English sentence
(sometimes Japanese) that names the cause; the original follows as message/rfc822.
"""

from __future__ import annotations

from ...report import Action, Kind, Reason
from .. import lazy_re as re
from ..addresses import find_addresses
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text
from ._lib.common import own_addresses
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of

NAME = "biglobe"

SENDER = re.compile(r"postmaster@(?:[\w-]+\.)*biglobe\.ne\.jp\b", re.I)
ADDRESSES_START = re.compile(r"^\s*-+ ?The following addresses had delivery problems ?-+\s*$",
                             re.I | re.M)
INFORMATION_START = re.compile(r"^\s*-+ ?Non-delivered information ?-+\s*$", re.I | re.M)
# BIGLOBE's fixed sentences and the cause each names, for when the general phrases miss.
FIXED_SENTENCES: tuple[tuple[re.Pattern[str], Reason], ...] = (
    (re.compile(r"number of messages in recipient's mailbox exceeded", re.I),
     Reason.MAILBOXFULL),
    (re.compile(r"mailbox is full|over quota", re.I), Reason.MAILBOXFULL),
)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("biglobe.ne.jp",))


def analyze(message: Part) -> Findings | None:
    if not SENDER.search(message.get("from")):
        return None
    text = notice_text(message)
    start = ADDRESSES_START.search(text)
    if start is None:
        return None
    information = INFORMATION_START.search(text, start.end())
    listing = text[start.end():information.start() if information else len(text)]
    words = " ".join(text[information.end():].split()) if information else ""
    hint = next((reason for pattern, reason in FIXED_SENTENCES if pattern.search(words)), "")
    exclude = own_addresses(message)
    addresses = [a for a in find_addresses(listing) if a not in exclude]
    failures = [Failure(address=a, action=Action.FAILED, diagnostic=words, reason_hint=hint)
                for a in addresses]
    return findings_of(NAME, "BIGLOBE returned mail", failures, message, text, kind=Kind.BOUNCE)
