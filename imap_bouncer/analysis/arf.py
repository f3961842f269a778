"""RFC 5965 abuse feedback reports (ARF), and the provider variants seen in the wild.

Claims a message when it carries a `message/feedback-report` part (whatever the top-level
type says), or when it is one of the variants:

- a Microsoft JMRP/SNDS-style complaint: a forwarded original whose headers carry
  `X-HmXmrOriginalRecipient`;
- a pre-ARF feedback loop: a provider's feedback-loop sender (AOL's "Client TOS
  Notification" from scomp@aol.net, ...) with the complained-about message attached;
- an X-ARF report (`X-ARF: yes`, a YAML report part with `Report-Type:`), about mail;
- a SpamCop report ("[SpamCop (...) id:NNN]" from reports.spamcop.net).

The complained-about recipient is the report's own field when it has one, else the header the
receiving provider wrote into the original (X-HmXmrOriginalRecipient, X-Original-To,
Delivered-To: the envelope recipient, right even for Bcc and list mail), else the original's To.
"""

from __future__ import annotations

from ..report import Action, Kind, Reason
from . import lazy_re as re
from .addresses import normalize_address
from .findings import Failure, Findings
from .literals import prefiltered
from .message import Part, header_block_of, parse_field_groups
from .origin import machine_sent, passed_on_by_person, passed_on_or_listed
from .text import ORIGINAL_TYPES, original_headers

# Fields of the feedback report that name the complained-about recipient (RFC 5965 3.2 and
# the variants providers use instead).
RECIPIENT_FIELDS = ("original-rcpt-to", "removal-recipient")
# A header of a forwarded original that names the recipient (Microsoft JMRP, Hotmail/Outlook).
MICROSOFT_RECIPIENT = "x-hmxmroriginalrecipient"
# Headers the receiving side wrote into the original that name its envelope recipient, most
# specific first; the original's To only after them (Bcc, lists, "undisclosed-recipients").
ORIGINAL_RECIPIENT_HEADERS = (MICROSOFT_RECIPIENT, "x-original-to", "delivered-to")
# Feedback-loop senders that send (or sent, before ARF) the complained-about message attached
# with no feedback-report part: AOL's "Client TOS Notification" (until 2008), Hotmail JMRP.
LEGACY_FBL_SENDERS = re.compile(r"\bscomp@aol\.net\b|\bstaff@hotmail\.com\b", re.I)
LEGACY_FBL_SENDERS = prefiltered(LEGACY_FBL_SENDERS)  # searched only in texts holding its words
# X-ARF (http://www.x-arf.org, versions 0.1 and 0.2): a YAML report part.
XARF_REPORT = re.compile(r"^Report-Type:[ \t]*(\S+)", re.I | re.M)
XARF_REPORT = prefiltered(XARF_REPORT)  # searched only in texts holding its words
XARF_MARK = re.compile(r"^(?:Schema-URL|Reported-From|Category):", re.I | re.M)
# X-ARF report types -> RFC 5965 feedback types.
XARF_TYPES = {"spam": "abuse", "phishing": "fraud", "fraud": "fraud", "malware": "virus",
              "virus": "virus"}
# SpamCop: "[SpamCop (http://spamvertised.example/) id:7012345678]Original subject".
SPAMCOP_SUBJECT = re.compile(r"\[SpamCop \(.*?\) id:\d+\]", re.I)
SPAMCOP_SENDER = re.compile(r"@reports\.spamcop\.net\b", re.I)
SPAMCOP_ORIGINAL = re.compile(r"^\[ Offending message \]\s*$", re.M)


def feedback_part(message: Part) -> Part | None:
    """The message's own message/feedback-report part: anywhere in a mail system's message,
    outside attached messages otherwise, never in a person's reply or forward (a complaint
    forwarded to a colleague is not a new complaint)."""
    if machine_sent(message):
        return message.find("message/feedback-report")
    if passed_on_by_person(message):
        return None
    return message.find_outside_attached("message/feedback-report")


def analyze(message: Part) -> Findings | None:
    if passed_on_by_person(message):
        return None
    report = feedback_part(message)
    if report is not None:
        fields = [f for group in parse_field_groups(report.text) for f in group]
        values: dict[str, list[str]] = {}
        for name, value in fields:
            values.setdefault(name, []).append(value)
        headers = original_headers(message)
        addresses = [normalize_address(value) for name in RECIPIENT_FIELDS
                     for value in values.get(name, [])]
        if not any(addresses):
            addresses = _original_recipients(headers)
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
    return _legacy_fbl(message) or _xarf(message) or _spamcop(message)


def _original_recipients(headers: list[tuple[str, str]] | None) -> list[str]:
    """The complained-about recipient as the attached original names it."""
    for wanted in (*ORIGINAL_RECIPIENT_HEADERS, "to"):
        found = [normalize_address(v) for n, v in headers or [] if n == wanted]
        if any(found):
            return found
    return []


def _attached_original(message: Part) -> bool:
    return any(part is not message and part.content_type in ORIGINAL_TYPES
               for part in message.walk())


def _legacy_fbl(message: Part) -> Findings | None:
    """A feedback loop's complaint before ARF: the provider's FBL sender, the original attached."""
    if not LEGACY_FBL_SENDERS.search(message.get("from")) or passed_on_or_listed(message) \
            or not _attached_original(message):
        return None
    headers = original_headers(message)
    return _complaint(_original_recipients(headers), "abuse", "",
                      "feedback-loop sender with the original attached (pre-ARF format)",
                      headers)


def _xarf(message: Part) -> Findings | None:
    """X-ARF: a YAML report part; only reports about mail (an original attached, or spam)."""
    marked = message.get("x-arf").strip().lower() in ("yes", "true")
    if not (marked or machine_sent(message)) or passed_on_or_listed(message):
        return None
    for part in message.walk():
        if part is message or part.content_type not in ("text/plain", "text/yaml",
                                                         "application/yaml"):
            continue
        text = part.text[:20000]
        found = XARF_REPORT.search(text)
        if found is None or not XARF_MARK.search(text):
            continue
        report_type = found.group(1).strip().lower()
        headers = original_headers(message)
        if report_type not in XARF_TYPES and not _attached_original(message):
            return None  # network abuse (login attacks, scans): not about a mail recipient
        user_agent = re.search(r"^User-Agent:[ \t]*(.+)$", text, re.I | re.M)
        return _complaint(_original_recipients(headers) if _attached_original(message) else [],
                          XARF_TYPES.get(report_type, "other"),
                          user_agent.group(1).strip() if user_agent else "",
                          f"X-ARF report (Report-Type: {report_type})", headers)
    return None


def _spamcop(message: Part) -> Findings | None:
    """SpamCop's report to an abuse desk; SpamCop munges the reporter's address ("x")."""
    if not SPAMCOP_SUBJECT.search(message.decoded("subject")) \
            or not SPAMCOP_SENDER.search(message.get("from")):
        return None
    headers = original_headers(message)
    if not headers:
        part = message.find_outside_attached("text/plain")
        inline = SPAMCOP_ORIGINAL.search(part.text) if part is not None else None
        if part is not None and inline:
            headers = header_block_of(part.text[inline.end():].lstrip("\n")) or None
    return _complaint(_original_recipients(headers), "abuse", "",
                      "SpamCop report ([SpamCop (...) id:...])", headers)


def _complaint(addresses: list[str], feedback_type: str, user_agent: str, evidence: str,
               headers: list[tuple[str, str]] | None) -> Findings:
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
