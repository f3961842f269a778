"""RFC 3464 / RFC 6522 delivery status notifications (and RFC 6533 global ones).

Lenient on purpose: real MTAs send reports with the wrong top-level type, indented fields,
`Final-Recipient` missing (only `Original-Recipient`), or the status part as text/plain. The
claim is made only when a delivery-status body with at least one per-recipient group exists.
"""

from __future__ import annotations

import re

from ..report import Action, Kind
from .addresses import normalize_address
from .findings import Failure, Findings
from .message import Part, parse_field_groups
from .text import notice_text, original_headers

STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ACTIONS = {a.value: a for a in Action}
_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})")
# Some reports put the status part under a text type; recognise it by its fields.
_LOOKS_LIKE_STATUS = re.compile(r"^(?:Reporting-MTA|Final-Recipient|Original-Recipient)\s*:",
                                re.I | re.M)


def status_part(message: Part) -> Part | None:
    """The part holding the per-recipient fields, if the message has one."""
    part = message.find(*STATUS_TYPES)
    if part is not None:
        return part
    if message.content_type == "multipart/report":
        for child in message.parts:
            if child.content_type.startswith("text/") and child is not message.parts[0] \
                    and _LOOKS_LIKE_STATUS.search(child.text[:2000]):
                return child
    return None


def analyze(message: Part) -> Findings | None:
    part = status_part(message)
    if part is None:
        return None
    failures = [f for group in parse_field_groups(part.text)[1:] + _lone_group(part)
                if (f := _failure(group)) is not None]
    if not failures:
        return None
    actions = {f.action for f in failures}
    if Action.FAILED in actions:
        kind = Kind.BOUNCE
    elif Action.DELAYED in actions:
        kind = Kind.DELAY
    else:
        kind = Kind.DELIVERED
    return Findings(
        kind=kind,
        analyzer="dsn",
        evidence=f"{part.content_type} part with {len(failures)} recipient group(s)",
        failures=failures,
        original_headers=original_headers(message),
        notice=notice_text(message),
    )


def _lone_group(part: Part) -> list[list[tuple[str, str]]]:
    """Reports that put the recipient fields in the first (per-message) group too."""
    groups = parse_field_groups(part.text)
    if groups and any(name in ("final-recipient", "original-recipient") for name, _ in groups[0]):
        return [groups[0]]
    return []


def _failure(fields: list[tuple[str, str]]) -> Failure | None:
    values: dict[str, str] = {}
    for name, value in fields:
        values.setdefault(name, value)
    recipient = values.get("final-recipient") or values.get("original-recipient") or ""
    address = normalize_address(recipient)
    if not address and "x-actual-recipient" in values:
        address = normalize_address(values["x-actual-recipient"])
    action_word = values.get("action", "").strip().lower().split(" ")[0].rstrip(";,.")
    if not address and not action_word:
        return None
    status_match = _STATUS.match(values.get("status", ""))
    status = ".".join(status_match.groups()) if status_match else ""
    action = _ACTIONS.get(action_word)
    if action is None:
        action = _action_from_status(status)
    diagnostic = values.get("diagnostic-code", "")
    diag_type, sep, diag_text = diagnostic.partition(";")
    if sep and " " not in diag_type.strip():
        diagnostic = diag_text
    diagnostic = diagnostic.strip()
    smtp_code = ""
    if diag_type.strip().lower() == "smtp" or not sep:
        code = re.match(r"([245]\d\d)\b", diagnostic)
        smtp_code = code.group(1) if code else ""
    remote = values.get("remote-mta", "")
    remote = remote.partition(";")[2].strip() if ";" in remote else remote.strip()
    return Failure(
        address=address,
        action=action,
        status=status,
        smtp_code=smtp_code,
        diagnostic=diagnostic,
        remote_mta=remote,
    )


def _action_from_status(status: str) -> Action:
    """A report without a usable Action field: the status class says it."""
    if status.startswith("2"):
        return Action.DELIVERED
    if status.startswith("4"):
        return Action.DELAYED
    return Action.FAILED
