"""One classifier for every format: status, SMTP code and the server's words -> reason.

Analyzers only extract facts; this module gives them meaning, so a blocklist rejection is
called `blocked` whether Postfix, Exchange or Gmail reported it. The order of decision:

1. a success or a delay is that, whatever the words say;
2. the server's own words (diagnostic text), matched against the phrase tables below, most
   specific reasons first: the words name the cause more precisely than any code;
3. a reason the format states outright (a provider's bounce type);
4. the enhanced status code (RFC 3463), most specific first;
5. the basic SMTP reply code (RFC 5321);
6. otherwise `undefined` (or `expired` for a delay that turned into a failure).

`permanent` (suppress the address) is true only for reasons that say the address is bad.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..report import ADDRESS_REASONS, Action, Reason
from . import phrases

STATUS_IN_TEXT = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
SMTP_CODE_IN_TEXT = re.compile(r"(?<![\d.#-])([245][0-5]\d)(?:[ -]|$)(?!\d)")


@dataclass(slots=True, frozen=True)
class Verdict:
    reason: Reason
    permanent: bool
    status: str
    evidence: str


# RFC 3463 enhanced status codes -> reason, for when the words say nothing more precise.
# Keys are "subject.detail"; the class digit is judged separately.
STATUS_REASONS: dict[str, Reason] = {
    "1.1": Reason.USERUNKNOWN,  # bad destination mailbox address
    "1.0": Reason.USERUNKNOWN,  # other address status (used for unknown users by some MTAs)
    "1.2": Reason.HOSTUNKNOWN,  # bad destination system address
    "1.3": Reason.USERUNKNOWN,  # bad destination mailbox address syntax
    "1.4": Reason.USERUNKNOWN,  # destination mailbox address ambiguous
    "1.5": Reason.DELIVERED,  # destination address valid (only with class 2)
    "1.6": Reason.HASMOVED,  # mailbox has moved, no forwarding address
    "1.7": Reason.REJECTED,  # bad sender's mailbox address syntax
    "1.8": Reason.REJECTED,  # bad sender's system address
    "1.10": Reason.NOTACCEPT,  # RFC 7505: recipient address has null MX
    "2.0": Reason.SUSPEND,  # other or undefined mailbox status
    "2.1": Reason.SUSPEND,  # mailbox disabled, not accepting messages
    "2.2": Reason.MAILBOXFULL,  # mailbox full
    "2.3": Reason.EXCEEDLIMIT,  # message length exceeds administrative limit
    "2.4": Reason.MAILERERROR,  # mailing list expansion problem
    "3.0": Reason.SYSTEMERROR,  # other or undefined mail system status
    "3.1": Reason.SYSTEMFULL,  # mail system full
    "3.2": Reason.NOTACCEPT,  # system not accepting network messages
    "3.3": Reason.SYSTEMERROR,  # system not capable of selected features
    "3.4": Reason.MESGTOOBIG,  # message too big for system
    "3.5": Reason.SYSTEMERROR,  # system incorrectly configured
    "4.0": Reason.NETWORKERROR,  # other or undefined network or routing status
    "4.1": Reason.NETWORKERROR,  # no answer from host
    "4.2": Reason.NETWORKERROR,  # bad connection
    "4.3": Reason.SYSTEMERROR,  # directory server failure
    "4.4": Reason.NETWORKERROR,  # unable to route
    "4.5": Reason.SYSTEMFULL,  # mail system congestion
    "4.6": Reason.NETWORKERROR,  # routing loop detected
    "4.7": Reason.EXPIRED,  # delivery time expired
    "5.0": Reason.SYNTAXERROR,  # other or undefined protocol status
    "5.1": Reason.SYNTAXERROR,  # invalid command
    "5.2": Reason.SYNTAXERROR,  # syntax error
    "5.3": Reason.TOOMANYCONN,  # too many recipients
    "5.4": Reason.SYNTAXERROR,  # invalid command arguments
    "5.5": Reason.SYNTAXERROR,  # wrong protocol version
    "6.0": Reason.CONTENTERROR,  # other or undefined media error
    "6.1": Reason.CONTENTERROR,  # media not supported
    "6.2": Reason.CONTENTERROR,  # conversion required and prohibited
    "6.3": Reason.CONTENTERROR,  # conversion required but not supported
    "6.4": Reason.CONTENTERROR,  # conversion with loss performed
    "6.5": Reason.CONTENTERROR,  # conversion failed
    "7.0": Reason.SECURITYERROR,  # other or undefined security status
    "7.1": Reason.POLICYVIOLATION,  # delivery not authorized, message refused
    "7.2": Reason.POLICYVIOLATION,  # mailing list expansion prohibited
    "7.3": Reason.SECURITYERROR,  # security conversion required but not possible
    "7.4": Reason.SECURITYERROR,  # security features not supported
    "7.5": Reason.SECURITYERROR,  # cryptographic failure
    "7.6": Reason.SECURITYERROR,  # cryptographic algorithm not supported
    "7.7": Reason.SECURITYERROR,  # message integrity failure
    "7.8": Reason.SECURITYERROR,  # authentication credentials invalid (RFC 4954)
    "7.9": Reason.SECURITYERROR,  # authentication mechanism too weak
    "7.13": Reason.SUSPEND,  # user account disabled (RFC 7372)
    "7.17": Reason.SUSPEND,  # mailbox owner has changed (RFC 7372)
    "7.18": Reason.SUSPEND,  # domain owner has changed
    "7.20": Reason.AUTHFAILURE,  # no passing DKIM signature found (RFC 7372)
    "7.21": Reason.AUTHFAILURE,  # no acceptable DKIM signature
    "7.22": Reason.AUTHFAILURE,  # no valid author-matched DKIM signature
    "7.23": Reason.AUTHFAILURE,  # SPF validation failed
    "7.24": Reason.AUTHFAILURE,  # SPF validation error
    "7.25": Reason.REQUIREPTR,  # reverse DNS validation failed
    "7.26": Reason.AUTHFAILURE,  # multiple authentication checks failed
    "7.27": Reason.NOTACCEPT,  # sender address has null MX
}

# Basic SMTP reply codes (RFC 5321 section 4.2.3) that name a cause by themselves.
SMTP_CODE_REASONS: dict[str, Reason] = {
    "421": Reason.NETWORKERROR,  # service not available, closing channel
    "450": Reason.ONHOLD,  # mailbox unavailable (busy or blocked for policy reasons)
    "451": Reason.SYSTEMERROR,  # local error in processing
    "452": Reason.SYSTEMFULL,  # insufficient system storage
    "500": Reason.SYNTAXERROR,  # syntax error, command unrecognized
    "501": Reason.SYNTAXERROR,  # syntax error in parameters
    "502": Reason.SYNTAXERROR,  # command not implemented
    "503": Reason.SYNTAXERROR,  # bad sequence of commands
    "504": Reason.SYNTAXERROR,  # parameter not implemented
    "521": Reason.NOTACCEPT,  # host does not accept mail (RFC 7504)
    "550": Reason.USERUNKNOWN,  # mailbox unavailable (overwhelmingly: no such user)
    "551": Reason.USERUNKNOWN,  # user not local
    "552": Reason.MAILBOXFULL,  # exceeded storage allocation
    "553": Reason.USERUNKNOWN,  # mailbox name not allowed
    "554": Reason.UNDEFINED,  # transaction failed: says nothing by itself
    "556": Reason.NOTACCEPT,  # domain does not accept mail (RFC 7504)
}

# Pseudo statuses for reports that give none: what the reason implies (class digit decided
# by the action or the SMTP code).
REASON_STATUS: dict[Reason, str] = {
    Reason.USERUNKNOWN: "1.1", Reason.HOSTUNKNOWN: "1.2", Reason.HASMOVED: "1.6",
    Reason.NOTACCEPT: "1.10", Reason.MAILBOXFULL: "2.2", Reason.EXCEEDLIMIT: "2.3",
    Reason.MESGTOOBIG: "3.4", Reason.SYSTEMFULL: "3.1", Reason.SUSPEND: "2.1",
    Reason.EXPIRED: "4.7", Reason.NETWORKERROR: "4.0", Reason.TOOMANYCONN: "5.3",
    Reason.SPEEDING: "7.1", Reason.BLOCKED: "7.1", Reason.BADREPUTATION: "7.1",
    Reason.REQUIREPTR: "7.25", Reason.AUTHFAILURE: "7.26", Reason.REJECTED: "1.8",
    Reason.NORELAYING: "7.1", Reason.SPAMDETECTED: "7.1", Reason.VIRUSDETECTED: "7.1",
    Reason.CONTENTERROR: "6.0", Reason.NOTCOMPLIANTRFC: "6.0", Reason.POLICYVIOLATION: "7.1",
    Reason.FILTERED: "7.1", Reason.SECURITYERROR: "7.0", Reason.SYNTAXERROR: "5.2",
    Reason.SYSTEMERROR: "3.0", Reason.MAILERERROR: "0.0", Reason.ONHOLD: "0.0",
    Reason.UNDEFINED: "0.0",
}


def find_status(text: str) -> str:
    """The first RFC 3463 status code written in a text ("#5.1.1", "550 5.7.1 ...")."""
    match = STATUS_IN_TEXT.search(text)
    if not match:
        return ""
    return ".".join(match.groups())


def find_smtp_code(text: str) -> str:
    """The first SMTP reply code written in a text ("550 No such user", "550-5.1.1 ...")."""
    match = SMTP_CODE_IN_TEXT.search(text)
    return match.group(1) if match else ""


def _by_status(status: str) -> Reason | None:
    parts = status.split(".")
    if len(parts) != 3 or parts[0] not in "45":
        return None
    if parts[2].startswith("9") and len(parts[2]) == 3:
        return None  # x.0.9xx pseudo codes of other tools say nothing standard
    key = f"{parts[1]}.{parts[2]}"
    if key == "0.0":
        return None
    return STATUS_REASONS.get(key)


def classify(
    status: str = "",
    smtp_code: str = "",
    diagnostic: str = "",
    hint: str = "",
    action: Action = Action.FAILED,
    notice: str = "",
) -> Verdict:
    """Name the reason for one recipient, decide `permanent`, and fill in a missing status."""
    status = status.strip()
    if not status or status.count(".") != 2:
        status = find_status(diagnostic) or status
    if not smtp_code:
        smtp_code = find_smtp_code(diagnostic)

    if action in (Action.DELIVERED, Action.RELAYED, Action.EXPANDED):
        return Verdict(Reason.DELIVERED, False, status or "2.0.0", f"action {action}")

    reason, evidence = None, ""
    match = phrases.match(diagnostic)
    if match:
        reason, evidence = match
    if reason is None and hint:
        reason, evidence = Reason(hint), "stated by the format"
    if reason is None and status:
        reason = _by_status(status)
        evidence = f"status {status}" if reason else ""
    if reason is None and smtp_code:
        reason = SMTP_CODE_REASONS.get(smtp_code)
        evidence = f"SMTP code {smtp_code}" if reason else ""
    if reason is None and notice:
        match = phrases.match(notice)
        if match:
            reason, evidence = match[0], f"notice text: {match[1]}"
    if reason is None or reason is Reason.UNDEFINED:
        reason, evidence = Reason.UNDEFINED, "no cause found"
        if action is Action.DELAYED:
            reason, evidence = Reason.EXPIRED if status.startswith("4.4.7") else reason, evidence

    status_class = _status_class(status, smtp_code, action)
    if not status or status.count(".") != 2:
        status = f"{status_class}.{REASON_STATUS.get(reason, '0.0')}"
    permanent = reason in ADDRESS_REASONS and (reason is not Reason.NOTACCEPT or status_class == "5")
    return Verdict(reason, permanent, status, evidence)


def _status_class(status: str, smtp_code: str, action: Action) -> str:
    if status[:1] in ("2", "4", "5"):
        return status[:1]
    if smtp_code[:1] in ("2", "4", "5"):
        return smtp_code[:1]
    return "4" if action is Action.DELAYED else "5"
