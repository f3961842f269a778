"""Mail.Ru (mail.ru, inbox.ru, list.ru, bk.ru) bounces: Exim underneath, in two languages.

A Russian notice ("Это письмо создано автоматически сервером Mail.Ru ...", where the
recipient is sometimes given without its domain), then "**********************" and Exim's
English text: "The following address(es) failed:", each address indented two spaces and the
reason below it, indented further ("SMTP error from remote mail server after RCPT TO:<a@b>:
host mx.example.jp [192.0.2.1]: 550 5.1.1 ..." or Exim's own words such as
"retry timeout exceeded"). Delays say "has not yet been delivered".
"""

from __future__ import annotations

from ...report import Action, Kind
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text, split_at_original
from ._lib.common import own_addresses
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of

NAME = "mailru"

SENDER = re.compile(r"mailer-daemon@(?:[\w-]+\.)*(?:mail|inbox|list|bk|internet)\.ru\b", re.I)
# Exim's line before the failed or delayed addresses.
ADDRESSES_FOLLOW = re.compile(
    r"(?:The following address(?:\(es\)|es)? failed:|address(?:\(es\)|es)? to which the "
    r"message has not yet been delivered (?:is|are):)\s*$", re.I | re.M)
DELAYED = re.compile(r"has not yet been delivered", re.I)
ADDRESS_LINE = re.compile(r"^ {1,3}<?([^\s<>@]+@[^\s<>]+?)>?:?\s*$")
# Exim's report of the remote's reply: "host NAME [IP]: 550 ...".
REMOTE_REPLY = re.compile(r"\bhost (\S+) \[[0-9A-Fa-f:.]+\](?::\d+)?:\s*(.*)$", re.S)
# "SMTP error from remote mail server after RCPT TO:<a@b>:": the command the reply answered.
AFTER_COMMAND = re.compile(r"error from remote mail server after (RCPT TO|MAIL FROM|end of data|"
                           r"DATA|initial connection|HELO|EHLO)", re.I)
COMMANDS = {"rcpt to": "RCPT", "mail from": "MAIL", "end of data": "EOD", "data": "DATA",
            "initial connection": "CONN", "helo": "HELO", "ehlo": "HELO"}
LEADING_CODE = re.compile(r"^([245]\d\d)(?=[\s-]|$)")


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("mailer-daemon@",))


def analyze(message: Part) -> Findings | None:
    if not SENDER.search(message.get("from")):
        return None
    notice, _ = split_at_original(notice_text(message))
    starts = list(ADDRESSES_FOLLOW.finditer(notice))
    if not starts:
        return None
    delayed = bool(DELAYED.search(notice))
    action = Action.DELAYED if delayed else Action.FAILED
    failures = parse_exim_blocks(notice[starts[-1].end():], action, own_addresses(message))
    return findings_of(NAME, "Mail.Ru (Exim) notice", failures,
                       message, notice, kind=Kind.DELAY if delayed else Kind.BOUNCE)


def parse_exim_blocks(text: str, action: Action, exclude: set[str]) -> list[Failure]:
    """Exim's per-address blocks: the address indented, its reason indented deeper."""
    failures: list[Failure] = []
    lines: list[str] = []
    for line in [*text.split("\n"), ""]:
        match = ADDRESS_LINE.match(line)
        if match:
            _close(failures, lines)
            address = normalize_address(match.group(1))
            if address and address not in exclude:
                failures.append(Failure(address=address, action=action))
                lines = []
            continue
        if failures and line.startswith("    ") and line.strip():
            lines.append(line.strip())
        elif failures and line.strip() and not line.startswith(" "):
            break  # unindented text: the end of the list
    _close(failures, lines)
    return failures


def _close(failures: list[Failure], lines: list[str]) -> None:
    if not failures or failures[-1].diagnostic or not lines:
        return
    words = " ".join(lines)
    remote = REMOTE_REPLY.search(words)
    failure = failures[-1]
    command = AFTER_COMMAND.search(words)
    if command:
        failure.command = COMMANDS[command.group(1).lower()]
    if remote:
        failure.remote_mta = remote.group(1)
        words = remote.group(2).strip()
    code = LEADING_CODE.match(words)
    failure.smtp_code = code.group(1) if code else ""
    failure.diagnostic = words
    lines.clear()
