"""Amazon SES: JSON notifications (bounce, complaint, delivery) and SES's own DSNs.

1. Notifications published to an SNS topic with an e-mail subscription arrive from
   no-reply@sns.amazonaws.com as JSON: either the SNS envelope whose "Message" field holds
   the SES notification as a JSON string, or the SES notification itself ("raw message
   delivery"). `notificationType` (or `eventType` for configuration-set events) says what it
   is: Bounce (bounceType / bounceSubType, bouncedRecipients), Complaint
   (complainedRecipients) or Delivery (recipients, smtpResponse). Long lines may arrive
   folded, which breaks the JSON, so a folded body is unfolded before parsing.
2. Some of SES's RFC 3464 reports wrap the remote's reply in its own words:
   "5.1.0 - Unknown address error 550-'5.2.2 <a@b>... Mailbox Full' (delivery attempts: 0)".
   The remote's reply inside the quotes is what names the cause, so it replaces the wrapper.
"""

from __future__ import annotations

import json
from typing import Any

from ...report import Action, Kind, Reason
from .. import dsn
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..reasons import find_status
from ._lib.precheck import Precheck

NAME = "amazonses"

SNS_SENDER = re.compile(r"@sns\.amazonaws\.com\b", re.I)
SES_DAEMON = re.compile(r"mailer-daemon@(?:[\w-]+\.)*amazonses\.com", re.I)
NOTIFICATION_KEYS = ('"notificationType"', '"eventType"', '\\"notificationType\\"',
                     '\\"eventType\\"')
# SES's wrapper around the remote's reply in Diagnostic-Code.
SES_WRAPPER = re.compile(
    r"^\s*\d\.\d{1,3}\.\d{1,3} - [^']*?\b([245]\d\d)[- ]'(?P<reply>.*)'\s*"
    r"(?:\(delivery attempts: \d+\))?\s*$", re.S)

LEADING_CODE = re.compile(r"^\s*([245]\d\d)(?=[\s-]|$)")
# bounceSubType -> the cause SES states (docs: "Amazon SES notification contents").
SUBTYPE_REASONS: dict[str, Reason] = {
    "noemail": Reason.USERUNKNOWN,  # the address does not exist
    "suppressed": Reason.USERUNKNOWN,  # on SES's suppression list after hard bounces
    "mailboxfull": Reason.MAILBOXFULL,
    "messagetoolarge": Reason.MESGTOOBIG,
    "contentrejected": Reason.CONTENTERROR,
    "attachmentrejected": Reason.CONTENTERROR,
}


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("@sns.amazonaws.com", "amazonses.com"),
                    headers=frozenset({"x-amz-sns-message-id"}))


def analyze(message: Part) -> Findings | None:
    if SNS_SENDER.search(message.get("from")) or "x-amz-sns-message-id" in message:
        return _notification(message)
    if SES_DAEMON.search(message.get("from")) and "workmail" not in message.get("x-mailer").lower():
        return _report(message)
    return None


# --- JSON notifications ---------------------------------------------------------------------
def _notification(message: Part) -> Findings | None:
    text = message.text if not message.is_multipart else ""
    if not text:
        part = message.find("text/plain")
        text = part.text if part is not None else ""
    if not any(key in text for key in NOTIFICATION_KEYS):
        return None
    data = _load(text)
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        data = _load(data["Message"])
    if not isinstance(data, dict):
        return None
    kind = str(data.get("notificationType") or data.get("eventType") or "").lower()
    headers = _mail_headers(data.get("mail"))
    if kind == "bounce":
        return _bounce(_dict(data.get("bounce")), headers)
    if kind == "complaint":
        return _complaint(_dict(data.get("complaint")), headers)
    if kind == "delivery":
        return _delivery(_dict(data.get("delivery")), headers)
    if kind == "deliverydelay":
        return _delay(_dict(data.get("deliveryDelay")), headers)
    return None


def _load(text: str) -> Any:
    """The first JSON value in a text; folded lines ("\\n " inserted) are unfolded."""
    start = text.find("{")
    if start < 0:
        return None
    decoder = json.JSONDecoder()
    for candidate in (text[start:], re.sub(r"\n[ \t]", "", text[start:])):
        try:
            return decoder.raw_decode(candidate)[0]
        except ValueError:
            continue
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mail_headers(mail: Any) -> list[tuple[str, str]] | None:
    """The original message's headers as SES lists them in the `mail` object."""
    headers = [(str(h.get("name", "")).lower(), str(h.get("value", "")))
               for h in _list(_dict(mail).get("headers")) if isinstance(h, dict)]
    if not any(name == "message-id" for name, _ in headers):
        message_id = _dict(mail).get("messageId")
        if message_id:
            headers.append(("message-id", f"<{message_id}>"))
    return headers or None


def _bounce(bounce: dict[str, Any], headers: list[tuple[str, str]] | None) -> Findings | None:
    bounce_type = str(bounce.get("bounceType", ""))
    subtype = str(bounce.get("bounceSubType", ""))
    hint = SUBTYPE_REASONS.get(subtype.lower(), "")
    failures = []
    for item in _list(bounce.get("bouncedRecipients")):
        item = _dict(item)
        address = normalize_address(str(item.get("emailAddress", "")))
        if not address:
            continue
        diagnostic = _words(str(item.get("diagnosticCode", "")))
        status = str(item.get("status", "")) or find_status(diagnostic)
        failures.append(Failure(
            address=address, action=Action.FAILED, status=status,
            smtp_code=_smtp_code(diagnostic), diagnostic=diagnostic,
            remote_mta=str(bounce.get("remoteMtaIp", "")), reason_hint=hint,
        ))
    if not failures:
        return None
    return Findings(kind=Kind.BOUNCE, analyzer=f"formats.{NAME}",
                    evidence=f"SES bounce notification ({bounce_type}/{subtype})",
                    failures=failures, original_headers=headers)


def _complaint(complaint: dict[str, Any], headers: list[tuple[str, str]] | None) -> Findings | None:
    addresses = [normalize_address(str(_dict(item).get("emailAddress", "")))
                 for item in _list(complaint.get("complainedRecipients"))]
    failures = [Failure(address=a, action=Action.DELIVERED, reason_hint=Reason.FEEDBACK)
                for a in dict.fromkeys(addresses) if a]
    return Findings(kind=Kind.COMPLAINT, analyzer=f"formats.{NAME}",
                    evidence="SES complaint notification", failures=failures,
                    feedback_type=str(complaint.get("complaintFeedbackType") or "abuse").lower(),
                    user_agent=str(complaint.get("userAgent", "")), original_headers=headers)


def _delivery(delivery: dict[str, Any], headers: list[tuple[str, str]] | None) -> Findings | None:
    response = str(delivery.get("smtpResponse", ""))
    failures = [Failure(address=a, action=Action.DELIVERED, status=find_status(response),
                        smtp_code=_smtp_code(response), diagnostic=response,
                        remote_mta=str(delivery.get("remoteMtaIp", "")))
                for item in _list(delivery.get("recipients"))
                if (a := normalize_address(str(item)))]
    return Findings(kind=Kind.DELIVERED, analyzer=f"formats.{NAME}",
                    evidence="SES delivery notification", failures=failures,
                    original_headers=headers)


def _delay(delay: dict[str, Any], headers: list[tuple[str, str]] | None) -> Findings | None:
    failures = []
    for item in _list(delay.get("delayedRecipients")):
        item = _dict(item)
        address = normalize_address(str(item.get("emailAddress", "")))
        diagnostic = _words(str(item.get("diagnosticCode", "")))
        if address:
            failures.append(Failure(address=address, action=Action.DELAYED,
                                    status=str(item.get("status", "")) or find_status(diagnostic),
                                    smtp_code=_smtp_code(diagnostic), diagnostic=diagnostic))
    if not failures:
        return None
    return Findings(kind=Kind.DELAY, analyzer=f"formats.{NAME}",
                    evidence=f"SES delivery delay notification ({delay.get('delayType', '')})",
                    failures=failures, original_headers=headers)


# --- SES's own delivery status notifications ------------------------------------------------
def _report(message: Part) -> Findings | None:
    """Only reports with SES's wrapper are claimed; plain ones read as well as any DSN."""
    findings = dsn.analyze(message)
    if findings is None:
        return None
    unwrapped = 0
    for failure in findings.failures:
        wrapped = SES_WRAPPER.match(failure.diagnostic)
        if not wrapped:
            continue
        unwrapped += 1
        reply = " ".join(wrapped.group("reply").split())
        code = wrapped.group(1)
        failure.diagnostic = f"{code} {reply}"
        failure.smtp_code = code
        failure.status = find_status(reply) or failure.status
    if not unwrapped:
        return None
    findings.analyzer = f"formats.{NAME}"
    findings.evidence = f"Amazon SES report; {findings.evidence}"
    return findings


def _words(diagnostic: str) -> str:
    """A diagnosticCode without its type ("smtp; 550 ..." -> "550 ...")."""
    kind, sep, words = diagnostic.partition(";")
    return words.strip() if sep and " " not in kind.strip() else diagnostic.strip()


def _smtp_code(reply: str) -> str:
    """The reply code a remote reply starts with ("550 5.1.1 user unknown" -> "550")."""
    code = LEADING_CODE.match(reply)
    return code.group(1) if code else ""
