"""What analysis returns: plain, immutable-by-convention data with a JSON form.

This module is the public interface between the analyzer and everything that consumes it
(the ledger, the CLI, webhooks); docs/report.md documents the JSON form. It imports nothing
of the project's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """What a message is, as a whole."""

    BOUNCE = "bounce"  # at least one recipient failed
    DELAY = "delay"  # recipients were only delayed
    COMPLAINT = "complaint"  # an abuse or feedback report (ARF)
    AUTOREPLY = "autoreply"  # out-of-office, vacation, ticket or other automatic reply
    DELIVERED = "delivered"  # a success notification
    UNKNOWN = "unknown"  # anything else: a person's reply, spam, a newsletter


class AutoreplyType(StrEnum):
    """What an automatic reply (kind autoreply) is; "" on every other kind of message."""

    VACATION = "vacation"  # out of office, on leave, travelling: any reply of a person's program
    MOVED = "moved"  # the address changed, or its owner left the company
    UNMONITORED = "unmonitored"  # nobody reads the mailbox that answered
    RECEIPT = "receipt"  # a shop's, helpdesk's or CRM's acknowledgement, often with a ticket
    CHALLENGE = "challenge"  # a challenge-response system asks the sender to prove itself


class Action(StrEnum):
    """RFC 3464 section 2.3.3 actions."""

    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"
    EXPANDED = "expanded"


class Reason(StrEnum):
    """Why delivery to one recipient did not happen (see ../shared/corpus/README.md)."""

    USERUNKNOWN = "userunknown"
    HOSTUNKNOWN = "hostunknown"
    HASMOVED = "hasmoved"
    NOTACCEPT = "notaccept"
    MAILBOXFULL = "mailboxfull"
    EXCEEDLIMIT = "exceedlimit"
    MESGTOOBIG = "mesgtoobig"
    SYSTEMFULL = "systemfull"
    SUSPEND = "suspend"
    EXPIRED = "expired"
    NETWORKERROR = "networkerror"
    TOOMANYCONN = "toomanyconn"
    SPEEDING = "speeding"
    BLOCKED = "blocked"
    BADREPUTATION = "badreputation"
    REQUIREPTR = "requireptr"
    AUTHFAILURE = "authfailure"
    REJECTED = "rejected"
    NORELAYING = "norelaying"
    SPAMDETECTED = "spamdetected"
    VIRUSDETECTED = "virusdetected"
    CONTENTERROR = "contenterror"
    NOTCOMPLIANTRFC = "notcompliantrfc"
    POLICYVIOLATION = "policyviolation"
    FILTERED = "filtered"
    SECURITYERROR = "securityerror"
    SYNTAXERROR = "syntaxerror"
    SYSTEMERROR = "systemerror"
    MAILERERROR = "mailererror"
    ONHOLD = "onhold"
    UNDEFINED = "undefined"
    DELIVERED = "delivered"
    FEEDBACK = "feedback"
    VACATION = "vacation"


# Reasons that say the address itself is bad. Only these may ever be permanent; a refused
# message (blocklist, spam filter, policy, authentication) never is, whatever its code.
ADDRESS_REASONS = frozenset(
    {Reason.USERUNKNOWN, Reason.HOSTUNKNOWN, Reason.HASMOVED, Reason.NOTACCEPT}
)


# How people are shown a recipient without an address: a report that names no recipient (a
# local MTA refusing the whole message). JSON keeps the address "".
NO_RECIPIENT = "(no recipient named)"


def shown_address(address: str) -> str:
    """A recipient's address as the command line and the logs print it."""
    return address or NO_RECIPIENT


@dataclass(slots=True)
class Recipient:
    """One recipient of the original message and what happened to it."""

    address: str
    action: Action = Action.FAILED
    status: str = ""  # RFC 3463 enhanced status code, e.g. "5.1.1"
    smtp_code: str = ""  # e.g. "550"
    diagnostic: str = ""  # the remote server's words, unfolded
    remote_mta: str = ""
    reason: Reason = Reason.UNDEFINED
    permanent: bool = False  # True only when the address itself is bad
    evidence: str = ""  # why the reason was chosen

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "address": self.address,
            "action": str(self.action),
            "status": self.status,
            "smtp_code": self.smtp_code,
            "diagnostic": self.diagnostic,
            "remote_mta": self.remote_mta,
            "reason": str(self.reason),
            "permanent": self.permanent,
        }
        if explain:
            data["evidence"] = self.evidence
        return data


@dataclass(slots=True)
class Original:
    """What can be recovered of the message that bounced, and of the bounce's envelope."""

    message_id: str = ""
    from_: str = ""
    to: str = ""
    subject: str = ""
    date: str = ""
    list_id: str = ""
    verp_recipient: str = ""  # decoded from the VERP address the bounce was sent to
    envelope_recipient: str = ""  # the bounce's own envelope recipient (Delivered-To & co.)
    # The original's own header that marks it as automatic (e.g. "Auto-Submitted:
    # auto-generated", "Precedence: bulk"), "" when none does: nothing is ever sent about it.
    automatic: str = ""
    # Where a signed VERP address may stand, (header, address): the bounce's envelope headers
    # and To, the original's Return-Path; and the original's X-Imap-Bouncer-Id. Gathered by
    # the analysis, checked against the secret by verp.prove when events are recorded.
    signed_addresses: list[tuple[str, str]] = field(default_factory=list)
    correlation_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "from": self.from_,
            "to": self.to,
            "subject": self.subject,
            "date": self.date,
            "list_id": self.list_id,
            "verp_recipient": self.verp_recipient,
            "envelope_recipient": self.envelope_recipient,
            "automatic": self.automatic,
            "signed_addresses": [list(pair) for pair in self.signed_addresses],
            "correlation_id": self.correlation_id,
        }


@dataclass(slots=True)
class Report:
    """Everything the analyzer found in one message."""

    kind: Kind = Kind.UNKNOWN
    message_id: str = ""  # the analyzed message's own Message-ID
    recipients: list[Recipient] = field(default_factory=list)
    original: Original = field(default_factory=Original)
    feedback_type: str = ""  # complaints: abuse, fraud, opt-out, ...
    user_agent: str = ""  # complaints: the reporting software
    # Auto-replies: vacation, moved, unmonitored, receipt or challenge (AutoreplyType); "" else.
    autoreply_type: str = ""
    analyzer: str = ""  # the analyzer that decided, e.g. "dsn" or "formats.qmail"
    evidence: str = ""  # a short human-readable why
    errors: list[str] = field(default_factory=list)
    # Recipients the message names may be missing (a cap reached, an address refused, a status
    # part cut; `errors` says which): understood, but not fully, so it is filed in Error.
    partial: bool = False

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": str(self.kind),
            "message_id": self.message_id,
            "recipients": [r.to_dict(explain) for r in self.recipients],
            "original": self.original.to_dict(),
            "feedback_type": self.feedback_type,
            "user_agent": self.user_agent,
            "autoreply_type": self.autoreply_type,
            "analyzer": self.analyzer,
            "errors": list(self.errors),
        }
        if self.partial:
            data["partial"] = True
        if explain:
            data["evidence"] = self.evidence
        return data
