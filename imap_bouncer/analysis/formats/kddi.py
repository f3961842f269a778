"""au one net (KDDI's ISP mail: dion.ne.jp, auone-net.jp) error notices.

From no-reply@<host>.dion.ne.jp, subject "メールエラー通知" (mail error notice) or just
"Mail": an optional Japanese sentence naming the cause, then the server's English text
"Your mail sent on: <date>" / "Could not be delivered to: <a@b>" / "As their mailbox is full."
The "As ..." line is the cause in the server's words.
"""

from __future__ import annotations

from ...report import Action, Kind, Reason
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part
from ..text import notice_text
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of

NAME = "kddi"

SENDER = re.compile(r"(?:no-?reply|postmaster|mailer-daemon)@(?:[\w-]+\.)*"
                    r"(?:dion\.ne\.jp|auone-net\.jp)\b", re.I)
SENDER = prefiltered(SENDER)  # searched only in texts holding its words
DELIVERED_TO = re.compile(r"^\s*Could not be delivered to:\s*<?([^\s<>@]+@[^\s<>]+?)>?\s*$",
                          re.I | re.M)
CAUSE_LINE = re.compile(r"^\s*(As .*?)\s*$", re.M)
# The Japanese sentence above the server's text, when the English one is missing.
JAPANESE_CAUSES: tuple[tuple[str, Reason], ...] = (
    ("メールボックスが一杯", Reason.MAILBOXFULL),  # "the recipient's mailbox is full"
)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("dion.ne.jp", "auone-net.jp"))


def analyze(message: Part) -> Findings | None:
    if not SENDER.search(message.get("from")):
        return None
    text = notice_text(message)
    matches = list(DELIVERED_TO.finditer(text))
    if not matches:
        return None
    hint = next((reason for words, reason in JAPANESE_CAUSES if words in text), "")
    failures = []
    for index, match in enumerate(matches):
        address = normalize_address(match.group(1))
        if not address:
            continue
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        cause = CAUSE_LINE.search(text, match.end(), end)
        failures.append(Failure(address=address, action=Action.FAILED,
                                diagnostic=cause.group(1) if cause else "", reason_hint=hint))
    return findings_of(NAME, "au one net error notice", failures, message, text, kind=Kind.BOUNCE)
