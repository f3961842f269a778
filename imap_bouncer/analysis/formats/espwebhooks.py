"""Sending services' event webhooks passed on as mail (SendGrid, Mailgun, Postmark).

Some senders relay their ESP's webhook POSTs to a mailbox: the JSON event is the body (after a
line or two of preamble) or an application/json attachment. Only a message written by a
program is read: marked Auto-Submitted, or a body that is nothing but the JSON; never a
person's reply or forward, never a list's post.

Events: SendGrid `"event": "spamreport"` (`email`), Mailgun `"event": "complained"`
(`recipient`, inside `event-data` in the current API), Postmark `"RecordType":
"SpamComplaint"` (`Email`).
"""

from __future__ import annotations

import json
from typing import Any

from ...report import Action, Kind, Reason
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..origin import auto_submitted, passed_on_or_listed

NAME = "espwebhooks"

_EVENT_KEYS = re.compile(r'"(?:event|RecordType)"\s*:\s*"(?:spamreport|complained|SpamComplaint)"')


def analyze(message: Part) -> Findings | None:
    if passed_on_or_listed(message):
        return None
    automatic = bool(auto_submitted(message))
    for part in message.walk():
        if part.content_type not in ("text/plain", "application/json"):
            continue
        text = part.text[:200000]
        # Every match starts with one of the two keys: substring tests spare the search.
        if ('"event"' not in text and '"RecordType"' not in text) \
                or not _EVENT_KEYS.search(text):
            continue
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        if start < 0:
            continue
        quoted = text[:start].strip() or (part.content_type != "application/json"
                                          and part is not message)
        if not automatic and quoted:
            continue  # a person quoting a payload, not a program relaying it
        try:
            data = json.JSONDecoder().raw_decode(text[start:])[0]
        except ValueError:
            continue
        addresses = [a for event in (data if isinstance(data, list) else [data])
                     if (a := _complained(event))]
        if addresses:
            return Findings(
                kind=Kind.COMPLAINT, analyzer=f"formats.{NAME}",
                evidence="ESP spam-complaint webhook event (JSON)",
                failures=[Failure(address=a, action=Action.DELIVERED,
                                  reason_hint=Reason.FEEDBACK)
                          for a in dict.fromkeys(addresses)],
                feedback_type="abuse",
            )
    return None


def _complained(event: Any) -> str:
    if not isinstance(event, dict):
        return ""
    if isinstance(event.get("event-data"), dict):  # Mailgun webhooks API v3
        event = event["event-data"]
    if event.get("event") == "spamreport":  # SendGrid
        return normalize_address(str(event.get("email", "")))
    if event.get("event") == "complained":  # Mailgun
        return normalize_address(str(event.get("recipient", "")))
    if event.get("RecordType") == "SpamComplaint":  # Postmark
        return normalize_address(str(event.get("Email", "")))
    return ""
