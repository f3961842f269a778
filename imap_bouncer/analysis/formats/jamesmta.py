"""Apache James, the Java mail server: the notices of its bounce mailet.

"Error: <summary>\n\nError message below:\n550 - Requested action not taken: ...\n\n
Message details:\n  Subject: ...\n  MAIL FROM: ...\n  RCPT TO: a@b\n ...".
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import find_addresses
from ..findings import Failure, Findings
from ..message import Part
from ._lib.textreport import findings_of, plain_notice, unfold

NAME = "jamesmta"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_ERROR = re.compile(r"^Error message below:\s*\n(.*?)(?:\n[ \t]*\n|\Z)", re.I | re.M | re.S)
_SUMMARY = re.compile(r"^Error:\s*(.+)$", re.M)
_RCPT = re.compile(r"^\s*RCPT TO:\s*(.+)$", re.I | re.M)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    error = _ERROR.search(notice[:5000])
    if error is None or "Message details:" not in notice:
        return None
    details = notice[notice.find("Message details:"):]
    words = unfold(error.group(1))
    summary = _SUMMARY.search(notice[:error.start()])
    if summary and not words:
        words = summary.group(1).strip()
    addresses = [a for line in _RCPT.finditer(details) for a in find_addresses(line.group(1))]
    failures = [Failure(address=a, action=Action.FAILED, diagnostic=words) for a in addresses]
    return findings_of(NAME, "Apache James bounce notice", failures, message, notice)
