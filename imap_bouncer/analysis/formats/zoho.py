"""Zoho Mail bounces: one line per recipient with Zoho's summary and the remote's reply.

"This message was created automatically by mail delivery software. A message that you sent
could not be delivered to one or more of its recipients. This is a permanent error." then
"a@b Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <a@b>... User Unknown" or
"a@b Error, ERROR_CODE :421, ERROR_CODE :, Host not reachable." (the SMTP code, then the
rest of the reply). A temporary (4xx) code in a notice that calls the error permanent means
Zoho stopped retrying: the message expired.
"""

from __future__ import annotations

from ...report import Action, Kind, Reason
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part, header_block_of
from ..text import notice_text, original_headers
from ._lib.precheck import Precheck

NAME = "zoho"

SENDER = re.compile(r"mailer-daemon@(?:[\w-]+\.)*zoho(?:mail)?\.\w+", re.I)
RECIPIENT_LINE = re.compile(
    r"^\s*<?([^\s<>@]+@[^\s<>]+?)>?\s+(?P<summary>[^\n]*?),\s*ERROR_CODE\s*:\s*(?P<code>\d{3})?"
    r"\s*,\s*ERROR_CODE\s*:\s*(?P<words>.*)$", re.M)
PERMANENT = re.compile(r"this is a permanent error", re.I)
TEMPORARY = re.compile(r"this is a temporary error|will (?:be retried|keep trying)", re.I)
LEADING_PUNCTUATION = re.compile(r"^[\s,:;]+")


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("mailer-daemon",))


def analyze(message: Part) -> Findings | None:
    sender = message.get("from")
    if "mailer-daemon" not in sender.lower() or (
            not SENDER.search(sender) and "x-zohomail" not in message):
        return None
    text = notice_text(message)
    if "ERROR_CODE" not in text:
        return None
    matches = list(RECIPIENT_LINE.finditer(text))
    if not matches:
        return None
    head = text[:matches[0].start()]
    delayed = bool(TEMPORARY.search(head)) and not PERMANENT.search(head)
    action = Action.DELAYED if delayed else Action.FAILED
    failures = []
    for match in matches:
        address = normalize_address(match.group(1))
        if not address:
            continue
        code = match.group("code") or ""
        words = LEADING_PUNCTUATION.sub("", match.group("words")).strip()
        diagnostic = f"{code} {words}".strip()
        hint = ""
        if code.startswith("4") and not delayed and PERMANENT.search(head):
            hint = Reason.EXPIRED
        failures.append(Failure(address=address, action=action, smtp_code=code,
                                diagnostic=diagnostic, reason_hint=hint))
    if not failures:
        return None
    return Findings(
        kind=Kind.DELAY if delayed else Kind.BOUNCE,
        analyzer=f"formats.{NAME}",
        evidence="Zoho Mail failure notice",
        failures=failures,
        # Zoho quotes the original's headers right after the recipient lines.
        original_headers=original_headers(message) or header_block_of(
            text[matches[-1].end():]) or None,
        notice=head,
    )
