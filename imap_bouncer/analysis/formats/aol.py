"""America Online's own returned-mail notices (1996-2004), before AOL sent RFC 3464 reports.

One paragraph per cause: "Your mail to the following recipients could not be delivered
because <cause>:" then one recipient per line, indented, often a bare screen name
("SkiBum1969") that stands for the screen name at the reporting domain. The causes AOL wrote:
the member's Mail Controls refuse the sender ("they are not accepting mail from a@b"), the
screen name does not exist ("they are not AOL members/users"), the mailbox is full.
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import ADDRESS_IN_TEXT, normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib import dsnplus
from ._lib.textreport import findings_of, hint_for, plain_notice, unfold

NAME = "aol"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

# "Your mail to the following recipients could not be delivered[ because <cause>]:", the
# cause wrapped over a second line by some versions.
_HEADING = re.compile(r"^[ \t]*Your mail to the following recipients? could not be delivered"
                      r"(?:\s+because\s+(?P<cause>[^\n:]{0,300}(?:\n[^\n:]{1,300})?))?"
                      r"[ \t]*:[ \t]*$", re.I | re.M)
# A recipient line: an address or a screen name (letters, digits, a few marks), maybe with
# the reason in parentheses or after a dash.
_SCREEN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{1,30}$")
_RECIPIENT_LINE = re.compile(r"^[ \t]*(?P<who>[^\s()]+)(?:[ \t]+(?:-[ \t]*|\()"
                             r"(?P<why>[^)\n]*)\)?)?[ \t]*$")
_MAX_LINES = 200  # recipients listed under one heading
# AOL's fixed causes, each meaning one reason.
_HINTS = (
    (Reason.FILTERED, re.compile(r"not accepting (?:e-?)?mail from", re.I)),  # Mail Controls
    # "they are not AOL members" (CompuServe 2000 and Netscape.net ran on the same system).
    (Reason.USERUNKNOWN, re.compile(r"\bnot (?:valid |registered )?(?:AOL |America Online |"
                                    r"CompuServe(?: 2000)? |Netscape )?(?:members|users|"
                                    r"screen ?names)\b", re.I)),
)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if "the following recipient" not in notice[:20000] \
            or not dsnplus.sent_by_mail_system(message):
        return None  # the heading's fixed words, as AOL writes them
    headings = list(_HEADING.finditer(notice[:20000]))
    if not headings:
        return None
    domain = _member_domain(message)
    failures: list[Failure] = []
    for heading in headings:
        cause = unfold(heading.group("cause") or "")
        for who, why in _recipients_under(notice, heading.end()):
            address = _address_of(who, domain)
            if not address:
                continue
            words = unfold(f"{why} {cause}") if why else cause
            failures.append(Failure(address=address, action=Action.FAILED, diagnostic=words,
                                    reason_hint=hint_for(words, _HINTS)))
    return findings_of(NAME, "AOL notice: your mail to the following recipients could not be "
                       "delivered", failures, message, notice)


def _recipients_under(notice: str, start: int) -> list[tuple[str, str]]:
    """(screen name or address, its own words) for the indented lines after a heading."""
    found: list[tuple[str, str]] = []
    for line in notice[start:].lstrip("\r\n").split("\n")[:_MAX_LINES]:
        match = _RECIPIENT_LINE.match(line)
        if match is None:
            break
        found.append((match.group("who"), (match.group("why") or "").strip()))
    return found


def _address_of(who: str, domain: str) -> str:
    """A listed recipient as an address: a screen name is a mailbox at the member domain."""
    who = who.strip("<>,;")
    if "@" in who:
        return normalize_address(who) if ADDRESS_IN_TEXT.fullmatch(who) else ""
    if domain and _SCREEN_NAME.match(who):
        return normalize_address(f"{who}@{domain}")
    return ""


def _member_domain(message: Part) -> str:
    """The domain whose members the notice lists: the reporting address's, without the host
    (MAILER-DAEMON@rly-za02.mx.aol.com reports for aol.com)."""
    found = ADDRESS_IN_TEXT.search(message.get("from"))
    if found is None:
        return ""
    labels = found.group(0).rpartition("@")[2].lower().rstrip(".>").split(".")
    # A country's second level ("aol.co.uk") keeps one label more.
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:]) if len(labels) >= 2 else ""


_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ne", "or", "ac", "gov"})
