"""Courier mail server: RFC 3464 reports whose notice quotes the SMTP exchange.

"This is a delivery status notification from HOST, running the Courier mail server", then
per recipient: "<address>:", the remote host ("    mx.example [192.0.2.1]:"), the command
sent (">>> RCPT TO:<a@b>") and the reply ("<<< 550 ..."), or only "<<< " with Courier's own
words. The report part gives the last reply line and no command; the notice gives both.
"""

from __future__ import annotations

from .. import dsn
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Findings
from ..message import Part
from ..text import notice_text
from ._lib.smtp_reply import command_of, smtp_code_of, unfold_reply

NAME = "courier"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_GREETING = re.compile(r"running the Courier mail server", re.I)
_BLOCK_HEAD = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:\s*$")
_HOST = re.compile(r"^\s+(\S+) \[[0-9A-Fa-f.:]+\]:\s*$")


def analyze(message: Part) -> Findings | None:
    if dsn.status_part(message) is None:
        return None
    notice = notice_text(message)
    if "Courier mail server" not in notice[:1500] or not _GREETING.search(notice[:1500]):
        return None
    findings = dsn.analyze(message)
    if findings is None:
        return None
    exchanges = _exchanges(notice)
    for failure in findings.failures:
        found = exchanges.get(failure.address)
        if found is None:
            continue
        command, reply, host = found
        if reply and (not smtp_code_of(failure.diagnostic)
                      or smtp_code_of(reply) == smtp_code_of(failure.diagnostic)):
            failure.diagnostic = reply
        failure.command = failure.command or command
        failure.remote_mta = failure.remote_mta or host
        failure.smtp_code = failure.smtp_code or smtp_code_of(failure.diagnostic)
    findings.analyzer = f"formats.{NAME}"
    findings.evidence = f"Courier notice with {len(findings.failures)} recipient(s)"
    return findings


def _exchanges(notice: str) -> dict[str, tuple[str, str, str]]:
    """address -> (command, reply, remote host) from the notice's recipient blocks."""
    found: dict[str, tuple[str, str, str]] = {}
    address, command, host = "", "", ""
    reply: list[str] = []
    for line in [*notice.split("\n"), ""]:
        head = _BLOCK_HEAD.match(line)
        if head or not line.strip():
            if address and reply:
                found.setdefault(address, (command, unfold_reply(" ".join(reply)), host))
            if head:
                address = normalize_address(head.group(1))
                command, host, reply = "", "", []
            elif not line.strip() and reply:
                address = ""
            continue
        if line.startswith(">>>"):
            command = command_of(line[3:].split(":", 1)[0]) or command
        elif line.startswith("<<<"):
            reply.append(line[3:].strip())
        elif (match := _HOST.match(line)) is not None:
            host = match.group(1)
    return found
