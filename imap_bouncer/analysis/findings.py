"""What an analyzer extracts from a message, before one classifier gives it meaning.

Analyzers state facts (who, status, code, the server's words); `reasons.classify` turns those
facts into a reason and the permanent flag, so every format is judged by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..report import Action, Kind


@dataclass(slots=True)
class Failure:
    """One recipient as a report states it."""

    address: str
    action: Action = Action.FAILED
    status: str = ""
    smtp_code: str = ""
    diagnostic: str = ""
    remote_mta: str = ""
    # A reason the format itself states outright (a provider's bounce type, a fixed phrase
    # that only means one thing in that format); the classifier still checks it.
    reason_hint: str = ""
    hint_evidence: str = ""
    # The SMTP command the remote reply answered, when the report says (CONN for the
    # greeting, HELO, MAIL, RCPT, DATA): a "no such user" to MAIL FROM is about the sender.
    command: str = ""


@dataclass(slots=True)
class Findings:
    """An analyzer's claim on a message."""

    kind: Kind
    analyzer: str
    evidence: str
    failures: list[Failure] = field(default_factory=list)
    feedback_type: str = ""
    user_agent: str = ""
    autoreply_type: str = ""  # auto-replies: a report.AutoreplyType
    # Headers of the original message when the analyzer found them (rfc822 part, inline copy).
    original_headers: list[tuple[str, str]] | None = None
    # The human-readable notice, for the classifier when a recipient's own words say little.
    notice: str = ""
    # What the analyzer could not read of the recipients (a status part cut short): the
    # report is partial, and says so in its errors.
    cuts: list[str] = field(default_factory=list)
    # What the analyzer did not do in full that loses no recipient (words not looked for).
    notes: list[str] = field(default_factory=list)


def kind_of(failures: list[Failure]) -> Kind:
    """Bounce when anything failed, else delay when anything was delayed, else delivered."""
    actions = {f.action for f in failures}
    if Action.FAILED in actions:
        return Kind.BOUNCE
    if Action.DELAYED in actions:
        return Kind.DELAY
    return Kind.DELIVERED
