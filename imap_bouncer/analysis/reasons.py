"""One classifier for every format: status, SMTP code and the server's words -> reason.

Analyzers only extract facts; this module gives them meaning, so a blocklist rejection is
called `blocked` whether Postfix, Exchange or Gmail reported it. The order of decision:

1. a complaint or auto-reply the format states, a success: that, whatever the words say;
2. the server's own words (the diagnostic), matched against the phrase tables of
   `phrases`, most specific reasons first: the words name the cause more precisely than any
   code (a "550 5.1.1" whose words name a blocklist is `blocked`);
3. a reason the format states outright (a provider's bounce type, a fixed phrase);
4. a specific enhanced status code (RFC 3463), e.g. 5.2.2 -> `mailboxfull`;
5. the notice's words about this recipient (when the diagnostic said nothing useful);
6. an "other or undefined" status (x.y.0), then the basic SMTP reply code (RFC 5321);
   a bare 4xx on a delay says no more than the delay itself.
The words are read with the addresses in them masked: a local part ("spam@", "nosuchuser@")
is a name, not the server's words.
Then the verdict is checked against the rest of the evidence (`_reconcile`, `_command`):
X.3.2 ("system not accepting network messages") is the receiving system, except with RFC
7504's 521 or 556, where the host or domain takes no mail at all (`notaccept`);
a name that did not resolve under a transient (4.x.x) status is a `networkerror`; address
words under a sender status (5.1.7, 5.1.8) are about the sender (`rejected`); a reply to
MAIL FROM or to the greeting judged the sender or the client, not the recipient's address,
and one to DATA the content, unless its words say outright that the mailbox does not exist
("User unknown", "No such user": the address is bad at any stage and under any subclass,
5.7.1 included, unless they also speak of a filter, spam, a blocklist or a policy). RFC
5321's stock "mailbox unavailable" names no cause: it counts only where nothing says more.
Last, words that only say delivery stopped being retried, or a delay with no cause, make
`expired`; server's words that name no known cause make `onhold` (the
cause is stated but could not be told); no words at all, `undefined`.

`permanent` (suppress the address) is true only for reasons that say the address is bad:
userunknown, hostunknown, hasmoved, and notaccept with a permanent (5.x.x) class. A refused
message (blocklist, policy, spam, authentication, rate limit) never is, whatever its code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from ..report import ADDRESS_REASONS, Action, Reason
from . import lazy_re as re
from . import phrases
from .literals import prefiltered

STATUS_IN_TEXT = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
# A reply code: "550 ", "550-", but not one number among others ("550 1234", "10.550.2").
SMTP_CODE_IN_TEXT = re.compile(r"(?<![\d.#-])([245][0-5]\d)(?=[ -]|$)(?![ -]\d+(?![.\d]))")


@dataclass(slots=True, frozen=True)
class Classification:
    """One recipient's reason as `classify` names it (not review.Verdict, a person's call)."""

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
    "2.1": Reason.SUSPEND,  # mailbox disabled, not accepting messages
    "2.2": Reason.MAILBOXFULL,  # mailbox full
    "2.3": Reason.EXCEEDLIMIT,  # message length exceeds administrative limit
    "2.4": Reason.MAILERERROR,  # mailing list expansion problem
    "3.0": Reason.SYSTEMERROR,  # other or undefined mail system status
    "3.1": Reason.SYSTEMFULL,  # mail system full
    "3.2": Reason.SYSTEMERROR,  # system not accepting network messages (shutdown, load,
    # maintenance: RFC 3463 X.3.2; a domain that takes no mail at all says 1.10 or 521/556)
    "3.3": Reason.SYSTEMERROR,  # system not capable of selected features
    "3.4": Reason.MESGTOOBIG,  # message too big for system
    "3.5": Reason.SYSTEMERROR,  # system incorrectly configured
    "4.0": Reason.NETWORKERROR,  # other or undefined network or routing status
    "4.1": Reason.NETWORKERROR,  # no answer from host
    "4.2": Reason.NETWORKERROR,  # bad connection
    "4.3": Reason.SYSTEMERROR,  # directory server failure
    "4.4": Reason.NETWORKERROR,  # unable to route (transient; see PERMANENT_STATUS_REASONS)
    "4.5": Reason.SYSTEMERROR,  # mail system congestion (busy, not out of storage: that is 3.1)
    "4.6": Reason.NETWORKERROR,  # routing loop detected
    "4.7": Reason.EXPIRED,  # delivery time expired
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
    "7.10": Reason.SECURITYERROR,  # encryption needed (RFC 5248 registry)
    "7.11": Reason.SECURITYERROR,  # encryption required for the mechanism (RFC 4954)
    "7.12": Reason.SECURITYERROR,  # a password transition is needed (RFC 4954)
    "7.13": Reason.SUSPEND,  # user account disabled (RFC 5248 registry)
    "7.16": Reason.MESGTOOBIG,  # message is too big for the specified priority (RFC 6710)
    "7.17": Reason.SUSPEND,  # mailbox owner has changed (RFC 7293)
    "7.18": Reason.SUSPEND,  # domain owner has changed (RFC 7293)
    "7.20": Reason.AUTHFAILURE,  # no passing DKIM signature found (RFC 7372)
    "7.21": Reason.AUTHFAILURE,  # no acceptable DKIM signature
    "7.22": Reason.AUTHFAILURE,  # no valid author-matched DKIM signature
    "7.23": Reason.AUTHFAILURE,  # SPF validation failed
    "7.24": Reason.AUTHFAILURE,  # SPF validation error
    "7.25": Reason.REQUIREPTR,  # reverse DNS validation failed
    "7.26": Reason.AUTHFAILURE,  # multiple authentication checks failed
    "7.27": Reason.REJECTED,  # SENDER address has null MX (RFC 7505): the sender, never the
    # recipient's address
    "7.28": Reason.SPEEDING,  # mail flood detected (RFC 5248 registry)
    "7.29": Reason.AUTHFAILURE,  # ARC validation failure (RFC 8617)
    "7.30": Reason.SECURITYERROR,  # REQUIRETLS support required (RFC 8689)
}

# Codes whose meaning depends on the class: a permanent "unable to route" (5.4.4) is what a
# sender sees when the domain has no MX and no address record (RFC 3463 gives that example).
PERMANENT_STATUS_REASONS: dict[str, Reason] = {
    "4.4": Reason.HOSTUNKNOWN,
}

# An unknown detail within a known subject (vendor codes like 5.7.509, 5.6.9): the subject.
SUBJECT_REASONS: dict[str, Reason] = {
    "3": Reason.SYSTEMERROR,  # mail system status
    "4": Reason.NETWORKERROR,  # network and routing status
    "6": Reason.CONTENTERROR,  # message content or media status
    "7": Reason.POLICYVIOLATION,  # security or policy status: refused by the receiver's rules
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
    "525": Reason.SUSPEND,  # user account disabled (RFC 7372, with 5.7.13)
    "530": Reason.SECURITYERROR,  # authentication required (RFC 4954)
    "534": Reason.SECURITYERROR,  # authentication mechanism is too weak (RFC 4954)
    "535": Reason.SECURITYERROR,  # authentication credentials invalid (RFC 4954)
    "538": Reason.SECURITYERROR,  # encryption required for the mechanism (RFC 4954)
}

# The SMTP command a reply answered says whom it judged (RFC 5321 section 3.3): at the
# greeting only the client is known, at MAIL FROM the sender, and after DATA the recipients
# were already accepted, so only the content is left. Words or codes that seem to name a bad
# recipient address there are about the sender or a filter; a bare code names the party.
STAGE_REASONS: dict[str, Reason] = {
    "CONN": Reason.BLOCKED,  # refused at the greeting: the client's IP or host
    "HELO": Reason.BLOCKED,  # refused at HELO/EHLO: the client's name
    "MAIL": Reason.REJECTED,  # refused at MAIL FROM: the envelope sender
    "DATA": Reason.FILTERED,  # refused after DATA: the content (only address reasons move)
    # The reply to the end of the content ("." ; Postfix "in reply to end of DATA command", Exim
    # "after end of data"): unlike a reply printed under the DATA command of a pipelined
    # transcript, it cannot be a late RCPT reply, so an address status moves too.
    "EOD": Reason.FILTERED,
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


def reply_code_in(diagnostic: str, action: Action) -> str:
    """The reply code in a recipient's words; a success code is none when the recipient
    failed or was delayed ("exceeded the max emails per hour (250/250)": a count)."""
    code = find_smtp_code(diagnostic)
    failed = action in (Action.FAILED, Action.DELAYED)
    return "" if failed and code.startswith("2") else code


def _by_status(status: str) -> Reason | None:
    """What an RFC 3463 code names by itself; None for "other or undefined" (x.y.0) codes."""
    parts = status.split(".")
    if len(parts) != 3 or parts[0] not in "45":
        return None
    if parts[2].startswith("9") and len(parts[2]) == 3:
        return None  # x.0.9xx pseudo codes of other tools say nothing standard
    key = f"{parts[1]}.{parts[2]}"
    if key == "0.0":
        return None
    if parts[0] == "5" and key in PERMANENT_STATUS_REASONS:
        return PERMANENT_STATUS_REASONS[key]
    return STATUS_REASONS.get(key) or SUBJECT_REASONS.get(parts[1])


def _is_generic(status: str) -> bool:
    """x.y.0 codes are "other or undefined" within their subject (RFC 3463 section 3)."""
    return status.endswith(".0")


def classify(
    status: str = "",
    smtp_code: str = "",
    diagnostic: str = "",
    hint: str = "",
    action: Action = Action.FAILED,
    notice: str = "",
    command: str = "",
    address: str = "",
) -> Classification:
    """Name the reason for one recipient, decide `permanent`, and fill in a missing status."""
    status = status.strip()
    if not status or status.count(".") != 2:
        status = find_status(diagnostic) or status
    if not smtp_code:
        smtp_code = reply_code_in(diagnostic, action)

    if hint in (Reason.FEEDBACK, Reason.VACATION):
        return Classification(Reason(hint), False, status or "2.0.0", "stated by the format")
    if action in (Action.DELIVERED, Action.RELAYED, Action.EXPANDED):
        return Classification(Reason.DELIVERED, False, status or "2.0.0", f"action {action}")

    about = _about_recipient(notice, address)
    status_class = _status_class(status, smtp_code, action)
    reason, evidence, from_words = _first_cause(status, smtp_code, diagnostic, hint, about)
    if action is Action.DELAYED and evidence.startswith("SMTP code"):
        reason, evidence = None, ""  # a bare 4xx says no more than "delayed" itself
    if evidence != STATED:
        reason, evidence = _reconcile(reason, evidence, from_words, status, status_class,
                                      diagnostic, smtp_code)
        stage = _command(command, diagnostic, notice, about, address)
        moved = STAGE_REASONS.get(stage)
        pipelined = stage == "DATA" and _by_status(status) in ADDRESS_REASONS
        if moved is Reason.FILTERED and (pipelined or _says_mailbox_missing(diagnostic)):
            moved = None  # "5.1.1" under DATA: a pipelined RCPT reply; "no such user": explicit
        if moved is not None and (reason in ADDRESS_REASONS or (
                moved is not Reason.FILTERED and not from_words)):
            said_to = "end of DATA" if stage == "EOD" else stage
            reason, evidence = moved, f"{evidence or 'no cause'}, in reply to {said_to}"
    if reason is None:
        gave_up = phrases.gave_up(diagnostic) or phrases.gave_up(about)
        if gave_up:
            reason, evidence = gave_up
        elif action is Action.DELAYED:
            reason, evidence = Reason.EXPIRED, "delayed, no cause stated"
        elif _names_something(diagnostic):
            # The server gave words, none of which names a cause we know: told, not yet read.
            reason, evidence = Reason.ONHOLD, "the server's words name no known cause"
        else:
            reason, evidence = Reason.UNDEFINED, "no cause found"

    if not status or status.count(".") != 2:
        status = f"{status_class}.{REASON_STATUS.get(reason, '0.0')}"
    permanent = reason in ADDRESS_REASONS and (
        reason is not Reason.NOTACCEPT or status_class == "5")
    return Classification(reason, permanent, status, evidence)


STATED = "stated by the format"


def _says_mailbox_missing(diagnostic: str) -> bool:
    """Explicit words that the mailbox does not exist, and none about a filter or a policy."""
    words = _mask_addresses(diagnostic)  # "<filtered@example.org>" names no filter
    return bool(phrases.MAILBOX_MISSING.search(words)) and not phrases.FILTER_WORDS.search(words)

# What is left of a reply once its codes, addresses and RFC 5321's stock texts are gone: the
# server's own words, if it gave any.
_NOT_WORDS = re.compile(
    r"\b[245]\d\d\b|#?\b[245]\.\d{1,3}\.\d{1,3}\b|<[^>]*>|\S+@\S+|"
    r"transaction failed|requested action (?:not taken|aborted)|service (?:not )?available|"
    r"\b(?:smtp|error|failed|failure|permanent|temporary|delivery|remote|server)\b",
    re.I)


def _names_something(diagnostic: str) -> bool:
    return any(c.isalpha() for c in _NOT_WORDS.sub("", diagnostic))


def _first_cause(
    status: str, smtp_code: str, diagnostic: str, hint: str, about: str
) -> tuple[Reason | None, str, bool]:
    """Steps 2-6 of the module docstring: (reason or None, evidence, whether words said it)."""
    match = phrases.match(_mask_addresses(diagnostic))
    if match:
        return match[0], match[1], True
    if hint and hint != Reason.UNDEFINED:
        return Reason(hint), STATED, True
    by_status = _by_status(status) if status else None
    if by_status is not None and not _is_generic(status):
        return by_status, f"status {status}", False
    match = phrases.match(_mask_addresses(about)) if about else None
    if match:
        return match[0], f"notice text: {match[1]}", True
    if by_status is not None:
        return by_status, f"status {status}", False
    match = phrases.stock(diagnostic)
    if match:
        return match[0], f"RFC 5321 stock text {match[1][7:]}", True
    by_code = SMTP_CODE_REASONS.get(smtp_code)
    if by_code is not None and by_code is not Reason.UNDEFINED:
        return by_code, f"SMTP code {smtp_code}", False
    return None, "", False


def _mask_addresses(text: str) -> str:
    """An address's local part is a name, not the server's words: "<spam@example.org>: User
    unknown" is not spam, "<nosuchuser@example.org>: refused by policy" no missing mailbox."""
    return _replace_addresses(text, "x@x.x") if "@" in text else text


def _reconcile(
    reason: Reason | None, evidence: str, from_words: bool, status: str, status_class: str,
    diagnostic: str, smtp_code: str = "",
) -> tuple[Reason | None, str]:
    """Where the words and the status code disagree, the more precise of the two wins."""
    detail = status.split(".", 1)[1] if status.count(".") == 2 else ""
    if reason is Reason.SYSTEMERROR and detail == "3.2" and smtp_code in ("521", "556"):
        # RFC 7504 pairs its "does not accept mail" replies 521 and 556 with X.3.2: the host or
        # domain takes no mail at all, where X.3.2 alone is a system briefly unavailable.
        return Reason.NOTACCEPT, f"{evidence} with SMTP code {smtp_code} (RFC 7504)"
    if reason is None or not from_words:
        return reason, evidence
    if reason is Reason.HOSTUNKNOWN and status_class == "4":
        # A name that did not resolve, reported as transient: the lookup may work next time.
        return Reason.NETWORKERROR, f"{evidence} with transient status"
    if reason in ADDRESS_REASONS and detail in ("1.7", "1.8"):
        # "No such domain" answered with "bad sender's address": it is the sender's domain.
        return Reason.REJECTED, f"{evidence} with sender status {status}"
    if reason is Reason.SUSPEND and detail == "1.1":
        # "Inactive address" with "bad destination mailbox" (iCloud): the server calls it gone.
        return Reason.USERUNKNOWN, f"{evidence} with status {status}"
    if reason is Reason.USERUNKNOWN and detail == "2.2":
        return Reason.MAILBOXFULL, f"{evidence} with status {status}"
    if reason is Reason.USERUNKNOWN and phrases.FILTER_WORDS.search(_mask_addresses(diagnostic)):
        # "User unknown" beside a filter, spam, a blocklist or a policy: a filter's disguise.
        return Reason.FILTERED, f"{evidence} beside a filter's words"
    return reason, evidence


# Where a report says which SMTP command a reply answered. Markers that follow the reply
# (Postfix's "(in reply to RCPT TO command)", qmail's sentence) or precede it on the line
# after the address (Exim's "SMTP error from remote mail server after RCPT TO:").
_COMMAND_MARKER = re.compile(
    r"in reply to (?P<postfix>end of data|data|mail from|rcpt to|helo|ehlo|starttls)\b"  # Postfix
    r"|smtp error from remote mail server after (?P<exim>end of data|data|mail from|rcpt to|"
    r"initial connection|helo|ehlo)"  # Exim
    r"|(?P<qmail_mail>but sender was rejected)|(?P<qmail_rcpt>does not like recipient)"  # qmail
    r"|(?P<qmail_data>failed after I sent the message|failed on DATA command)"  # qmail
    r"|(?P<qmail_conn>but greeting failed)|(?P<qmail_helo>but my name was rejected)"  # qmail
    r"|(?P<postfix_conn>refused to talk to me)",  # Postfix: the greeting was a refusal
    re.I)
_COMMAND_MARKER_QUICK = prefiltered(_COMMAND_MARKER)
# Sendmail's (and Courier's) session transcript: a ">>> COMMAND" line, then "<<< reply" lines.
_TRANSCRIPT_LINE = re.compile(r"^[ \t]*(>>>|<<<)[ \t]?(.*)$", re.M)
_TRANSCRIPT_COMMAND = re.compile(r"(data|mail from|rcpt to|helo|ehlo)\b", re.I)
# With PIPELINING, Sendmail prints the RCPT TO replies under ">>> DATA"; DATA itself then
# fails for want of recipients (RFC 2920 section 3.1).
_PIPELINED_RCPT = re.compile(r"\b503\b|need rcpt|no valid recipients", re.I)
_COMMAND_NAMES = {
    "data": "DATA", "end of data": "EOD", "mail from": "MAIL", "rcpt to": "RCPT",
    "helo": "HELO", "ehlo": "HELO", "starttls": "HELO", "initial connection": "CONN",
    "qmail_mail": "MAIL", "qmail_rcpt": "RCPT", "qmail_data": "DATA", "qmail_conn": "CONN",
    "qmail_helo": "HELO", "postfix_conn": "CONN",
}


def _command(stated: str, diagnostic: str, notice: str, about: str, address: str) -> str:
    """The SMTP command the reply answered: as the format stated it, else as the text says."""
    if stated.strip():
        return stated.strip().upper()
    for text in (diagnostic, about):
        found = _COMMAND_MARKER_QUICK.search(text)
        if found:
            name = found.lastgroup or ""
            word = name if "_" in name else found.group(name).lower()
            return _COMMAND_NAMES.get(word, "")
    return _transcript_command(notice, address, diagnostic) if ">>>" in notice else ""


def _transcript_command(notice: str, address: str, diagnostic: str) -> str:
    """The last command in a transcript whose exchange names the recipient or repeats its words."""
    wanted = [w for w in (address.lower(), phrases.fold_spaces(diagnostic).lower()[:30]) if w]
    exchanges: list[tuple[str, list[str]]] = []
    for line in _TRANSCRIPT_LINE.finditer(notice):
        said = phrases.fold_spaces(line.group(2)).lower()
        if line.group(1) == ">>>":
            found = _TRANSCRIPT_COMMAND.match(said)
            exchanges.append((_COMMAND_NAMES[found.group(1)] if found else "", [said]))
        elif exchanges:
            exchanges[-1][1].append(said)
    command = ""
    for name, lines in exchanges:
        said = " ".join(lines)
        if name and any(w in said for w in wanted):
            command = "RCPT" if name == "DATA" and _PIPELINED_RCPT.search(said) else name
    return command


_ADDRESS = re.compile(r"[\w.+=-]+@[\w-]+(?:\.[\w-]+)+")
_SENDER_CONTEXT = re.compile(r"from:? ?<?$", re.I)
_WINDOW = 400  # characters after the address that can still be about it
_WHOLE_NOTICE = 2000  # a notice that does not name the address: its opening says why


@lru_cache(maxsize=8)
def _folded(notice: str) -> tuple[str, str]:
    """The notice with white space folded, and lower-cased (shared by its recipients)."""
    text = phrases.fold_spaces(notice)
    return text, text.lower()


def _about_recipient(notice: str, address: str) -> str:
    """The words about one recipient in a notice that may list several.

    From each mention of the address up to the next other recipient's address; the whole
    notice when the address is not in it (a single-recipient notice names it otherwise).
    """
    if not notice:
        return ""
    text, lowered = _folded(notice)
    wanted = address.lower()
    start = lowered.find(wanted) if wanted else -1
    if start < 0:
        return text[:_WHOLE_NOTICE]
    pieces: list[str] = []
    while start >= 0 and len(pieces) < 4:
        end = min(len(text), start + len(wanted) + _WINDOW)
        after = start + len(wanted)
        others = _addresses(text, after, end) if text.find("@", after, end) >= 0 else ()
        for other in others:
            if other.group(0).lower() != wanted and not _SENDER_CONTEXT.search(
                    text[max(0, other.start() - 7):other.start()]):
                end = other.start()
                break
        pieces.append(text[start:end])
        start = lowered.find(wanted, end)
    return " ".join(pieces)


def _addresses(text: str, position: int, end: int) -> Iterator[re.Match[str]]:
    """`_ADDRESS.finditer(text, position, end)`, faster: an address holds one "@", and the
    match that holds a given "@" starts where the run of local-part characters before it
    starts (from any later start the rest matches alike). So each "@" is found with a
    substring search, its local part read back, and the pattern tried once, there."""
    while (at := text.find("@", position, end)) >= 0:
        start = at
        while start > position and (text[start - 1].isalnum() or text[start - 1] in "_.+=-"):
            start -= 1
        found = _ADDRESS.match(text, start, end) if start < at else None
        if found is None:
            position = at + 1
            continue
        yield found
        position = found.end()


def _replace_addresses(text: str, replacement: str) -> str:
    """`_ADDRESS.sub(replacement, text)` (a replacement without backslashes), faster."""
    if "@" not in text:
        return text
    pieces: list[str] = []
    position = 0
    for found in _addresses(text, 0, len(text)):
        pieces += (text[position:found.start()], replacement)
        position = found.end()
    pieces.append(text[position:])
    return "".join(pieces)


def _status_class(status: str, smtp_code: str, action: Action) -> str:
    if status[:1] in ("2", "4", "5"):
        return status[:1]
    if smtp_code[:1] in ("2", "4", "5"):
        return smtp_code[:1]
    return "4" if action is Action.DELAYED else "5"
