"""The Microsoft SMTP Service (IIS SMTP, the transport of Exchange 2000/2003, and Hotmail and
MSN of 1998-2004): "This is an automatically generated Delivery Status Notification."

The text part names the outcome in one fixed sentence per group of recipients, each followed
by the recipients indented on their own lines:

    Delivery to the following recipients failed.
    Delivery to the following recipients has been delayed.
    Delivery to the following recipients was successful.
    Unable to deliver message to the following recipients, because the message was
    forwarded more than the maximum allowed times. This could indicate a mail loop.

A message/delivery-status part usually follows (its Status is the only cause given); copies
passed on by relays or saved as text often lose it, and then the sentence is all there is.
"""

from __future__ import annotations

import re

from ...report import Action, Reason
from ..addresses import ADDRESS_IN_TEXT, normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import original_headers
from . import dsnplus
from .textreport import plain_notice, unfold

NAME = "mssmtpsvc"

_OPENING = "This is an automatically generated Delivery Status Notification"
# The group sentences and what each says happened.
_GROUP = re.compile(
    r"^[ \t]*(?:Delivery to the following recipients? (?P<outcome>failed|has been delayed|"
    r"was successful)\.|Unable to deliver (?:the )?message to the following recipients?, "
    r"because (?P<cause>[^\n]{0,400}))[ \t]*$", re.I | re.M)
_OUTCOMES = {"failed": Action.FAILED, "has been delayed": Action.DELAYED,
             "was successful": Action.DELIVERED}
_RECIPIENT = re.compile(r"^[ \t]+<?(" + ADDRESS_IN_TEXT.pattern + r")>?[ \t]*$")
_MAX_LINES = 500
# The service's fixed causes.
_HINTS = ((re.compile(r"forwarded more than the maximum allowed times|mail loop", re.I),
           Reason.NETWORKERROR),)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if _OPENING not in notice[:1000] or not dsnplus.sent_by_mail_system(message):
        return None
    facts = _groups(notice)
    if not facts:
        return None
    findings = dsnplus.standard_report(message, NAME, "Microsoft SMTP Service notification")
    if findings is not None:
        return dsnplus.complete(findings, facts)
    return dsnplus.from_text(NAME, "Microsoft SMTP Service notification, text only", facts,
                             notice, original_headers(message))


def _groups(notice: str) -> list[Failure]:
    """Every recipient under each group sentence, with that sentence's outcome and cause."""
    failures: list[Failure] = []
    for group in _GROUP.finditer(notice[:20000]):
        outcome = (group.group("outcome") or "").lower()
        action = _OUTCOMES.get(outcome, Action.FAILED)
        rest = notice[group.end():group.end() + 40000]
        cause = ""
        if group.group("cause"):
            # The cause runs on to the blank line before the recipients.
            more, _, rest = rest.partition("\n\n")
            cause = unfold(f"{group.group('cause')} {more}")
        hint = next((str(reason) for pattern, reason in _HINTS if pattern.search(cause)), "")
        started = False
        for line in rest.split("\n")[:_MAX_LINES]:
            if not line.strip():
                if started:
                    break
                continue
            found = _RECIPIENT.match(line)
            if found is None:
                break
            started = True
            address = normalize_address(found.group(1))
            if address:
                failures.append(Failure(address=address, action=action, diagnostic=cause,
                                        reason_hint=hint))
    return failures
