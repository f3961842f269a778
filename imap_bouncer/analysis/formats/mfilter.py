"""m-FILTER (Digital Arts) gateway reports, in Japanese, marked `X-Mailer: m-FILTER`.

    以下のメールアドレスへの送信に失敗しました。      (sending to these addresses failed)
    kijitora@example.co.jp

    -------server message
    550 5.1.1 <kijitora@example.co.jp>: Recipient address rejected: User unknown

    -------SMTP command
    DATA

    -------original message                            (or "-------original mail info")
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import find_addresses
from ..findings import Failure, Findings
from ..message import Part, header_block_of
from ..text import notice_text
from ._lib import dsnplus
from ._lib.precheck import Precheck

NAME = "mfilter"

# "-------server message", "-------SMTP command", "-------original message": the sections.
SECTION = re.compile(r"^-{3,}\s*(server message|SMTP command|original (?:message|mail info))"
                     r"\s*$", re.I | re.M)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(headers=frozenset({"x-mailer"}))


def analyze(message: Part) -> Findings | None:
    if not message.get("x-mailer").strip().lower().startswith("m-filter") \
            or not dsnplus.sent_by_mail_system(message):
        return None
    notice = notice_text(message)
    sections = list(SECTION.finditer(notice))
    if not sections:
        return None
    texts: dict[str, str] = {}
    for index, match in enumerate(sections):
        end = sections[index + 1].start() if index + 1 < len(sections) else len(notice)
        first_word = match.group(1).split()[0].lower()  # server, smtp, original
        texts.setdefault(first_word, notice[match.end():end].strip())
    reply = " ".join(texts.get("server", "").split())
    listed = find_addresses(notice[:sections[0].start()])
    failures = [Failure(address=address, action=Action.FAILED, diagnostic=reply)
                for address in listed]
    original = header_block_of(texts.get("original", "")) or None
    return dsnplus.from_text(NAME, "m-FILTER report: server message", failures, notice, original)
