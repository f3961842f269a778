"""Phrase tables: what remote servers write, and the reason each phrase names.

Data, not code: each entry is (reason, pattern) with a comment saying where the wording comes
from. Patterns are matched case-insensitively against the diagnostic text with runs of white
space folded to one space. The table is checked top to bottom and the first match wins, so
more specific reasons (a blocklist named in a 550 "user unknown"-looking reply) come first.
"""

from __future__ import annotations

import re

from ..report import Reason

# (reason, regular expression). Order matters: first match wins.
PHRASES: list[tuple[Reason, str]] = [
    # --- the sender's IP or host is refused: blocklists, reputation, reverse DNS ------------
    (Reason.REQUIREPTR, r"reverse (?:dns|lookup|hostname)|no ptr record|ptr record"),  # many
    (Reason.REQUIREPTR, r"(?:cannot|can't|could not|unable to) (?:resolve|find) (?:your |the )?"
                        r"(?:host ?name|reverse)"),  # Postfix reject_unknown_client_hostname
    (Reason.REQUIREPTR, r"client host rejected: cannot find your hostname"),  # Postfix
    (Reason.REQUIREPTR, r"\bhostname (?:does not|doesn't) resolve|no rdns|rdns (?:lookup|check)"),
    (Reason.BADREPUTATION, r"\breputation\b|\bpoor (?:sender )?reputation"),  # Gmail, Yahoo
    (Reason.BLOCKED, r"\b(?:spamhaus|spamcop|sorbs|barracudacentral|uceprotect|dnsbl|rbl|"
                     r"blacklist(?:ed)?|blocklist(?:ed)?|block list|black list|denylist)\b"),
    (Reason.BLOCKED, r"\b(?:ip|address|host|client|connection)\b.{0,30}\b(?:blocked|banned|"
                     r"listed|refused|rejected|denied|not allowed)"),  # many MTAs
    (Reason.BLOCKED, r"access denied\b.{0,30}\b(?:ip|banned)|\bbanned sending ip"),  # Outlook
    (Reason.BLOCKED, r"\bblocked using\b|\bblocked by\b|\bhas been blocked\b|is blocked\b"),
    (Reason.BLOCKED, r"\bdynamic (?:ip|address|pool)|\bdial-?up\b|residential ip"),
    # --- authentication: SPF, DKIM, DMARC --------------------------------------------------
    (Reason.AUTHFAILURE, r"\b(?:spf|dkim|dmarc)\b.{0,40}\b(?:fail|failed|failure|check|policy|"
                         r"reject|not pass|did not pass|unauthenticated)"),
    (Reason.AUTHFAILURE, r"\bunauthenticated (?:email|mail|message)|not authenticated"),
    (Reason.AUTHFAILURE, r"sender policy framework|domain-based message authentication"),
    # --- content judged spam or virus ------------------------------------------------------
    (Reason.VIRUSDETECTED, r"\bvirus\b|\bmalware\b|\binfected\b|\btrojan\b|\bworm\b"),
    (Reason.SPAMDETECTED, r"\bspam\b|\bjunk mail|\bunsolicited\b|\bbulk mail\b|"
                          r"content (?:filter|rejected)|message (?:content )?rejected as spam"),
    # --- rate limits and connections -------------------------------------------------------
    (Reason.SPEEDING, r"rate limit|too many (?:messages|mails|emails)|sending rate|"
                      r"exceeded (?:the )?(?:rate|sending limit)|try again later.{0,20}rate"),
    (Reason.TOOMANYCONN, r"too many (?:connections|recipients|concurrent|sessions)|"
                         r"connection limit|recipient limit"),
    # --- the recipient address -------------------------------------------------------------
    (Reason.HASMOVED, r"\bhas moved\b|\bno longer (?:at|with)\b|address (?:has )?changed|"
                      r"moved to\b.{0,40}@"),
    (Reason.HOSTUNKNOWN, r"host (?:or domain name )?not found|unknown host|no such domain|"
                         r"domain (?:not found|does not exist|doesn't exist|unknown|name not found)|"
                         r"name or service not known|unrouteable (?:mail )?domain|"
                         r"nxdomain|unroutable address|no mx (?:record|host)|"
                         r"host ?name lookup failed|domain lookup failed|"
                         r"recipient address rejected: domain not found|no route to domain"),
    (Reason.NOTACCEPT, r"does not accept (?:e-?)?mail|not accept(?:ing)? (?:any )?(?:e-?)?mail|"
                       r"null mx|accepts no mail"),
    (Reason.SUSPEND, r"\b(?:account|mailbox|user|address|recipient)\b.{0,30}\b(?:disabled|"
                     r"suspended|deactivated|inactive|locked|blocked|expired|frozen|closed)\b"),
    (Reason.SUSPEND, r"\bdisabled (?:account|mailbox|user)|\binactive (?:account|mailbox|user)"),
    (Reason.MAILBOXFULL, r"mailbox (?:is )?full|over ?quota|quota (?:exceeded|full)|"
                         r"exceed(?:ed|s)? (?:the |his |her |their )?(?:storage|quota|mailbox)|"
                         r"insufficient (?:disk )?space|mailbox size limit|storage (?:limit|full)|"
                         r"too much mail|full mailbox|user(?:'s)? (?:disk )?quota|is full\b"),
    (Reason.EXCEEDLIMIT, r"exceeds? (?:the )?(?:recipient's|user's|mailbox) size limit"),
    (Reason.MESGTOOBIG, r"message (?:is )?too (?:big|large)|message size exceeds|"
                        r"(?:size|length) (?:limit )?exceeded|exceeds (?:the )?(?:maximum|max)"
                        r" (?:message )?size|message exceeds|mail too large|size limit"),
    (Reason.USERUNKNOWN, r"user(?:name)? (?:unknown|not found|does not exist|doesn't exist)|"
                         r"unknown (?:user|recipient|mailbox|local[- ]part|address)|"
                         r"no such (?:user|mailbox|recipient|address|account|person)|"
                         r"(?:mailbox|recipient|address|account|user) (?:is )?(?:unknown|unavailable|"
                         r"not found|does not exist|doesn't exist|not exist|invalid)|"
                         r"invalid (?:recipient|mailbox|address|user)|"
                         r"(?:recipient|address) rejected: (?:user unknown|undeliverable address)|"
                         r"not a valid (?:user|mailbox|recipient)|no mailbox|"
                         r"user (?:is )?not (?:local|here)|unknown or illegal alias|"
                         r"bad destination mailbox|nosuchuser|user_unknown|"
                         r"recipient not (?:found|recognized)|mailbox unavailable"),
    # --- the sender -------------------------------------------------------------------------
    (Reason.NORELAYING, r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|"
                        r"prohibited)|not permitted to relay|unable to relay|we do not relay"),
    (Reason.REJECTED, r"sender (?:address )?(?:rejected|denied|refused|blocked|unknown|invalid)|"
                      r"(?:domain|address) of sender|mail from .{0,40}rejected|"
                      r"invalid sender|sender verify failed|bad sender"),
    # --- policy, security and syntax --------------------------------------------------------
    (Reason.SECURITYERROR, r"\btls\b.{0,30}\brequired|starttls|encryption required|"
                           r"certificate|authentication required"),
    (Reason.NOTCOMPLIANTRFC, r"\brfc ?(?:822|2822|5322)\b|not (?:rfc[- ]?)?compliant|"
                             r"duplicate header|header .{0,20}(?:missing|malformed)"),
    (Reason.POLICYVIOLATION, r"\bpolicy\b|\bprohibited\b|not allowed|not authori[sz]ed"),
    (Reason.FILTERED, r"\bfiltered\b|\bfilter\b"),
    (Reason.SYNTAXERROR, r"syntax error|command unrecognized|bad sequence of commands"),
    # --- the receiving system ---------------------------------------------------------------
    (Reason.SYSTEMFULL, r"(?:system|disk|storage) (?:is )?full|insufficient system storage"),
    (Reason.NETWORKERROR, r"mail (?:for .{0,40})?loops? back|routing loop|too many hops|"
                          r"connection (?:timed out|refused|reset)|timed? ?out|"
                          r"temporary (?:dns|lookup) failure|network (?:is )?unreachable"),
    (Reason.EXPIRED, r"retry timeout exceeded|message expired|could not be delivered within|"
                     r"delivery time expired|too long in queue|gave up|giving up|"
                     r"delivery attempts will continue|has been delayed"),
    (Reason.MAILERERROR, r"command (?:died|failed|not found|output)|mailer error|"
                         r"pipe to .{0,40} failed|unknown mailer error|\bprocmail\b"),
    (Reason.SYSTEMERROR, r"internal (?:server )?error|system (?:error|failure)|"
                         r"local error|temporary failure|service unavailable"),
]

_COMPILED = [(reason, re.compile(pattern, re.I)) for reason, pattern in PHRASES]
_SPACES = re.compile(r"\s+")


def match(text: str) -> tuple[Reason, str] | None:
    """The first table entry that matches the text: (reason, the words that matched)."""
    if not text:
        return None
    text = _SPACES.sub(" ", text)
    for reason, pattern in _COMPILED:
        found = pattern.search(text)
        if found:
            return reason, f"phrase {found.group(0)!r}"
    return None
