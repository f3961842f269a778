"""Yahoo! Mail (and AOL since it runs on Yahoo's servers) failure notices.

A qmail descendant: "Sorry, we were unable to deliver your message to the following
address." then per recipient "<address>:" followed by the remote's reply, either
"Remote host said: 550 5.2.2 ... [RCPT_TO]" (the bracket names the SMTP command) or
"550: 5.1.1 ..." (the code, a colon, then the words), and the original below
"--- Below this line is a copy of the message.".
"""

from __future__ import annotations

from ...report import Action, Kind
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part
from ..text import notice_text
from ._lib.common import DELAY_WORDS
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of

NAME = "yahoo"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

OPENING = re.compile(r"^Sorry, we were unable to deliver your message to the following "
                     r"address(?:es)?\.?\s*$", re.I | re.M)
OPENING = prefiltered(OPENING)  # searched only in texts holding its words
COPY_MARKER = re.compile(r"^-+ ?Below this line is a copy of the message\.?", re.I | re.M)
RECIPIENT_LINE = re.compile(r"^<([^\s<>@]+@[^\s<>]+)>:\s*(.*)$")
REMOTE_SAID = re.compile(r"^Remote host said:\s*", re.I)
# The SMTP command the reply answered, in brackets after it, and its RFC 5321 name.
COMMAND_TAG = re.compile(r"\s*\[(RCPT_TO|MAIL_FROM|DATA|BODY|CONNECT|EHLO|HELO)\]\s*$", re.I)
COMMANDS = {"rcpt_to": "RCPT", "mail_from": "MAIL", "data": "DATA", "body": "DATA",
            "connect": "CONN", "ehlo": "HELO", "helo": "HELO"}
# "550: 5.1.1 <a@b>... User Unknown": Yahoo puts a colon after the code.
CODE_COLON = re.compile(r"^([245]\d\d):\s*")
LEADING_CODE = re.compile(r"^([245]\d\d)(?=[\s-]|$)")


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("mailer-daemon",))


def analyze(message: Part) -> Findings | None:
    if "mailer-daemon" not in message.get("from").lower():
        return None
    text = notice_text(message)
    opening = OPENING.search(text[:2000])
    if opening is None:
        return None
    end = COPY_MARKER.search(text, opening.end())
    notice = text[:end.start()] if end else text
    delayed = bool(DELAY_WORDS.search(message.decoded("subject")))
    action = Action.DELAYED if delayed else Action.FAILED
    failures: list[Failure] = []
    current: list[str] | None = None
    for line in notice[opening.end():].split("\n"):
        match = RECIPIENT_LINE.match(line.strip())
        if match:
            current = [match.group(2)]
            failures.append(Failure(address=normalize_address(match.group(1)), action=action))
            _set_words(failures[-1], current)
            continue
        if current is not None and line.strip():
            current.append(line.strip())
            _set_words(failures[-1], current)
    failures = [f for f in failures if f.address]
    return findings_of(NAME, "Yahoo! failure notice", failures,
                       message, notice, kind=Kind.DELAY if delayed else Kind.BOUNCE)


def _set_words(failure: Failure, lines: list[str]) -> None:
    """The remote's reply without Yahoo's wrapping: "Remote host said:", "[RCPT_TO]"."""
    words = REMOTE_SAID.sub("", " ".join(piece for piece in lines if piece))
    tag = COMMAND_TAG.search(words)
    if tag:
        failure.command = COMMANDS[tag.group(1).lower()]
        words = words[:tag.start()]
    words = words.strip()
    code = CODE_COLON.match(words)
    if code:
        words = f"{code.group(1)} {words[code.end():]}"
    code = LEADING_CODE.match(words)
    failure.smtp_code = code.group(1) if code else ""
    failure.diagnostic = words
