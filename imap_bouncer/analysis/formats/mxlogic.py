"""MX Logic (McAfee SaaS Email Protection) gateway reports.

An Exim-like text, marked by the gateway's own headers (X-MX-Bounce, X-MXL-NoteHash):

    A message that you have sent could not be delivered to one or more
    recipients.  This is a permanent error.  The following address failed:

      <kijitora@example.jp>: 550 5.1.1 <kijitora@example.jp>: Recipient address rejected

    Included is a copy of the message header:
    -----------------------------------------

The address may also stand alone with the reply on the indented lines after it.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text
from ._lib import dsnplus

NAME = "mxlogic"

GUARD_HEADERS = ("x-mx-bounce", "x-mxl-notehash", "x-mxl-hash")
FAILED_INTRO = re.compile(r"following address(?:es)? failed:?\s*$|could not be delivered to "
                          r"one or more\s+recipients", re.I | re.M)
TEMPORARY = re.compile(r"This is a temporary error|has not yet been delivered|delayed", re.I)
HEADER_COPY = re.compile(r"^\s*Included is a copy of the message header:?\s*\n-*\s*$",
                         re.I | re.M)
# "  <a@b>: reply" or "  a@b" (the reply then on the following indented lines).
ADDRESS_LINE = re.compile(r"^\s+<?([^\s<>@]+@[^\s<>:]+?)>?(?::\s*(.*))?$")


def analyze(message: Part) -> Findings | None:
    if not any(name in message for name in GUARD_HEADERS) \
            and "(mxl_mta" not in message.get("received"):
        return None
    if not dsnplus.sent_by_mail_system(message):
        return None
    notice = notice_text(message)
    copy = HEADER_COPY.search(notice)
    body = notice[:copy.start()] if copy else notice
    intro = FAILED_INTRO.search(body)
    if intro is None:
        return None
    action = Action.DELAYED if TEMPORARY.search(body[:intro.end() + 200]) else Action.FAILED
    failures: list[Failure] = []
    current: Failure | None = None
    for line in body[intro.end():].split("\n"):
        match = ADDRESS_LINE.match(line)
        address = normalize_address(match.group(1)) if match else ""
        if match and address:
            current = Failure(address=address, action=action, diagnostic=match.group(2) or "")
            failures.append(current)
        elif current is not None and line.strip() and line[:1].isspace():
            current.diagnostic = f"{current.diagnostic} {line.strip()}".strip()
        elif not line.strip():
            current = None
    original = dsnplus.headers_after(notice, HEADER_COPY) if copy else None
    return dsnplus.from_text(NAME, "MX Logic report: address failed", failures, notice, original)
