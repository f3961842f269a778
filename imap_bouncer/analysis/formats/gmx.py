"""GMX, WEB.DE, mail.com and 1&1 / IONOS bounces (United Internet's common mail system).

Exim-like wording, its own layout: "... This is a permanent error. The following address
failed:", the address alone on a line ("addr", "<addr>" or "\"addr\":"), then the cause:
"Reason:" / "For the following reason:" and Exim's words, or "SMTP error from remote server
after RCPT command:", "host: mx.example.jp" and the remote's reply. The original's headers
follow "--- The header of the original message is following. ---". United Internet's
outgoing servers stamp `X-UI-Out-Filterresults` on what they send.
"""

from __future__ import annotations

from ...report import Action, Kind
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text, split_at_original
from ._lib.common import DELAY_WORDS, own_addresses
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of

NAME = "gmx"

SENDER_DOMAIN = re.compile(r"mailer-daemon@(?:[\w-]+\.)*(?:gmx\.\w+|web\.de|kundenserver\.\w+|"
                           r"1and1\.\w+|ionos\.\w+|mail\.com)\b", re.I)
FAILED = re.compile(r"following\s+address(?:es)?\s+(?:failed|has failed)\s*:", re.I)
ADDRESS_LINE = re.compile(r"^[\"<]?([^\s<>@\"]+@[^\s<>\"]+?)[\">]?:?\s*$")
# Lines of the layout, not the server's words.
LABELS = re.compile(r"^(?:Reason|For the following reason|SMTP error from remote server"
                    r"(?: after [A-Z ]+ command)?)\s*:\s*$", re.I)
AFTER_COMMAND = re.compile(r"^SMTP error from remote server after (RCPT|MAIL|DATA|HELO|EHLO)\b",
                           re.I)
HOST_LINE = re.compile(r"^host:\s*(\S+)\s*$", re.I)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("mailer-daemon",))


def analyze(message: Part) -> Findings | None:
    sender = message.get("from")
    if "mailer-daemon" not in sender.lower():
        return None
    if "x-ui-out-filterresults" not in message and not SENDER_DOMAIN.search(sender):
        return None
    notice, _ = split_at_original(notice_text(message))
    start = FAILED.search(notice)
    if start is None:
        return None
    delayed = bool(DELAY_WORDS.search(notice[:start.start()]))
    action = Action.DELAYED if delayed else Action.FAILED
    exclude = own_addresses(message)
    failures: list[Failure] = []
    words: list[str] = []
    for line in notice[start.end():].split("\n"):
        line = line.strip()
        match = ADDRESS_LINE.match(line)
        address = normalize_address(match.group(1)) if match else ""
        if address and address not in exclude:
            _close(failures, words)
            failures.append(Failure(address=address, action=action))
            words = []
            continue
        if not failures or not line:
            continue
        command = AFTER_COMMAND.match(line)
        if command:
            name = command.group(1).upper()
            failures[-1].command = "HELO" if name == "EHLO" else name
        if LABELS.match(line):
            continue
        host = HOST_LINE.match(line)
        if host:
            failures[-1].remote_mta = host.group(1)
            continue
        words.append(line)
    _close(failures, words)
    return findings_of(NAME, "GMX / 1&1 failure notice", failures,
                       message, notice, kind=Kind.DELAY if delayed else Kind.BOUNCE)


def _close(failures: list[Failure], words: list[str]) -> None:
    if failures and words:
        failures[-1].diagnostic = " ".join(words)
