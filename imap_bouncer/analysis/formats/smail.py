"""smail 3 (Unix MTA of the 1990s, Debian's default until 1998): "mail failed, returning to
sender".

The failed addresses sit between two ruled lines, one per line with smail's reason after
"...": " <a@b> ... unknown user", " a@b ... transport smtp: 550 <a@b>... User unknown";
the returned message follows the second rule:

    |------------------------- Failed addresses follow: ---------------------|
     <a@b> ... unknown user
    |------------------------- Message text follows: ------------------------|
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part, header_block_of
from ..text import notice_text
from ._lib.textreport import findings_of

NAME = "smail"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_FAILED = re.compile(r"^\|?-{5,} ?Failed addresses follow:? ?-{5,}\|?[ \t]*$", re.I | re.M)
_TEXT = re.compile(r"^\|?-{5,} ?Message text follows:? ?-{5,}\|?[ \t]*$", re.I | re.M)
_LINE = re.compile(r"^[ \t]*<?(?P<address>[^\s<>@]+@[^\s<>@]+?)>?[ \t]+\.\.\.[ \t]*(?P<why>.*)$")


def analyze(message: Part) -> Findings | None:
    notice = notice_text(message)
    if "ailed addresses follow" not in notice[:10000]:
        return None
    heading = _FAILED.search(notice[:10000])
    if heading is None:
        return None
    end = _TEXT.search(notice, heading.end())
    section = notice[heading.end():end.start() if end else heading.end() + 10000]
    failures: list[Failure] = []
    for line in section.split("\n")[:500]:
        found = _LINE.match(line)
        if found is not None:
            address = normalize_address(found.group("address"))
            if address:
                failures.append(Failure(address=address, action=Action.FAILED,
                                        diagnostic=found.group("why").strip()))
        elif line.strip() and failures:
            failures[-1].diagnostic = f"{failures[-1].diagnostic} {line.strip()}"
    findings = findings_of(NAME, "smail failed addresses", failures, message, notice)
    if findings is not None and not findings.original_headers and end is not None:
        findings.original_headers = header_block_of(notice[end.end():].lstrip("\n")) or None
    return findings
