"""RFC 5965 abuse feedback reports (ARF), and the provider variants seen in the wild.

Claims a message when it carries a `message/feedback-report` part (whatever the top-level
type says), or when it is a Microsoft JMRP/SNDS-style complaint: a forwarded original whose
headers carry `X-HmXmrOriginalRecipient`.
"""

from __future__ import annotations

from ..report import Action, Kind, Reason
from .addresses import normalize_address
from .findings import Failure, Findings
from .message import Part, parse_field_groups
from .origin import machine_sent
from .text import original_headers

# Fields of the feedback report that name the complained-about recipient (RFC 5965 3.2 and
# the variants providers use instead).
RECIPIENT_FIELDS = ("original-rcpt-to", "removal-recipient")
# A header of a forwarded original that names the recipient (Microsoft JMRP, Hotmail/Outlook).
MICROSOFT_RECIPIENT = "x-hmxmroriginalrecipient"


def analyze(message: Part) -> Findings | None:
    # A complaint forwarded by a person to a colleague is not a new complaint.
    report = message.find("message/feedback-report") if machine_sent(message) \
        else message.find_outside_attached("message/feedback-report")
    if report is not None:
        fields = [f for group in parse_field_groups(report.text) for f in group]
        values: dict[str, list[str]] = {}
        for name, value in fields:
            values.setdefault(name, []).append(value)
        headers = original_headers(message)
        addresses = [normalize_address(value) for name in RECIPIENT_FIELDS
                     for value in values.get(name, [])]
        if not any(addresses) and headers:
            addresses = [normalize_address(v) for n, v in headers if n == "to"]
        feedback_type = (values.get("feedback-type", [""])[0]).strip().lower()
        return _complaint(
            addresses, feedback_type or "abuse", values.get("user-agent", [""])[0].strip(),
            "message/feedback-report part", headers,
        )
    headers = original_headers(message)
    if headers:
        marked = [v for n, v in headers if n == MICROSOFT_RECIPIENT]
        if marked:
            return _complaint([normalize_address(v) for v in marked], "abuse", "",
                              "forwarded original with X-HmXmrOriginalRecipient (Microsoft JMRP)",
                              headers)
    return None


def _complaint(addresses, feedback_type, user_agent, evidence, headers) -> Findings:
    unique = list(dict.fromkeys(a for a in addresses if a))
    return Findings(
        kind=Kind.COMPLAINT,
        analyzer="arf",
        evidence=evidence,
        failures=[Failure(address=a, action=Action.DELIVERED, reason_hint=Reason.FEEDBACK)
                  for a in unique],
        feedback_type=feedback_type,
        user_agent=user_agent,
        original_headers=headers,
    )
