"""au by KDDI (EZweb, ezweb.ne.jp / au.com) mobile mail system errors.

"Mail System Error - Returned Mail" from Postmaster@ezweb.ne.jp, a Japanese paragraph and an
English one. The SMTP variant lists "Recipient: <a@b>", the command (">>> RCPT TO:<a@b>")
and the remote's reply ("<<< 550 <a@b>: User unknown"); other variants give
"<a@b>: reason" lines under a fixed English sentence that names the cause. The RFC 3464
variant (multipart/report) is read by the DSN analyzer; when its notice carries one of au's
fixed sentences, that sentence comes first in the diagnostic, because au knows the account's
state better than its SMTP reply says ("The user(s) account is disabled." above a
"550 user unknown").
"""

from __future__ import annotations

from ...report import Kind, Reason
from .. import dsn
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text, split_at_original
from ._lib.common import own_addresses
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of

NAME = "ezweb"

SENDER = re.compile(r"postmaster@(?:[\w-]+\.)*(?:ezweb\.ne\.jp|au\.com)\b", re.I)
RECIPIENT = re.compile(r"^\s*Recipient:\s*<?([^\s<>@]+@[^\s<>]+?)>?\s*$", re.I)
COMMAND = re.compile(r"^\s*>>>\s*(.*)$")
REPLY = re.compile(r"^\s*<<<\s*(.*)$")
ADDRESS_WITH_WORDS = re.compile(r"^\s*<([^\s<>@]+@[^\s<>]+)>:?\s*(.*)$")
# The fixed English sentences of the notice and the cause each names.
FIXED_SENTENCES: tuple[tuple[re.Pattern[str], Reason], ...] = (
    (re.compile(r"The user\(s\) account is disabled", re.I), Reason.SUSPEND),
    (re.compile(r"The user\(s\) account is temporarily (?:over quota|full)", re.I),
     Reason.MAILBOXFULL),
)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("ezweb.ne.jp", "au.com"))


def analyze(message: Part) -> Findings | None:
    if not SENDER.search(message.get("from")):
        return None
    notice, _ = split_at_original(notice_text(message))
    sentence, hint = "", ""
    for pattern, reason in FIXED_SENTENCES:
        found = pattern.search(notice)
        if found:
            sentence, hint = found.group(0), reason
            break
    if message.content_type == "multipart/report":
        return _report(message, sentence) if sentence else None
    exclude = own_addresses(message)
    failures: list[Failure] = []
    for line in notice.split("\n"):
        recipient = RECIPIENT.match(line)
        if recipient:
            address = normalize_address(recipient.group(1))
            if address and address not in exclude:
                failures.append(Failure(address=address, reason_hint=hint))
            continue
        reply = REPLY.match(line)
        if reply and failures:
            failures[-1].diagnostic = f"{failures[-1].diagnostic} {reply.group(1)}".strip()
            continue
        command = COMMAND.match(line)
        if command:
            if failures:
                failures[-1].command = _command(command.group(1))
            continue
        words = ADDRESS_WITH_WORDS.match(line)
        if words:
            address = normalize_address(words.group(1))
            if address and address not in exclude:
                failures.append(Failure(address=address, diagnostic=words.group(2).strip(),
                                        reason_hint=hint))
    if sentence:  # au's own word on the account comes first, as in the RFC 3464 variant
        for failure in failures:
            failure.diagnostic = f"{sentence}. {failure.diagnostic}".strip()
    return findings_of(NAME, "au (EZweb) mail system error", failures,
                       message, notice, kind=Kind.BOUNCE)


def _command(line: str) -> str:
    """">>> RCPT TO:<a@b>" -> "RCPT" (the names the classifier knows)."""
    word = line.split(":")[0].split(" ")[0].upper()
    return {"EHLO": "HELO", "RSET": ""}.get(word, word)


def _report(message: Part, sentence: str) -> Findings | None:
    findings = dsn.analyze(message)
    if findings is None:
        return None
    for failure in findings.failures:
        failure.diagnostic = f"{sentence}. {failure.diagnostic}".strip()
    findings.analyzer = f"formats.{NAME}"
    findings.evidence = f"au (EZweb) report: {sentence!r}; {findings.evidence}"
    return findings
