"""The plain-text fallback: a bounce in words, from an MTA no format module names.

Claims a message only when its headers say it is a delivery report (`looks_like_bounce`)
and its notice names at least one recipient, by `X-Failed-Recipients`, by a block of lines
that opens with an address, or by a line that names one address and a cause of failure
("User's mailbox is full: <jo@example.com>"). A report that names nobody is still claimed
when both its sender and its subject are a mail system's and its words carry an SMTP reply:
it bounced, for whom is then told by the VERP address it was sent to, if any.
"""

from __future__ import annotations

import re

from ...report import Action, Kind
from .. import phrases
from ..addresses import ADDRESS_IN_TEXT, find_addresses, normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..origin import MAILER_SENDERS, NULL_PATHS, from_mail_system, is_reply_or_forward
from ..text import notice_text, original_headers, split_at_original
from .common import (
    BOUNCE_SUBJECTS,
    DELAY_WORDS,
    is_system_address,
    looks_like_bounce,
    own_addresses,
    recipient_blocks,
)

# A line of a notice that quotes an SMTP reply: a reply code and an enhanced status code.
SMTP_REPLY_LINE = re.compile(r"^.*\b[245]\d\d[ -]#?[245]\.\d{1,3}\.\d{1,3}\b.*$", re.M)

NAME = "generic"


def analyze(message: Part) -> Findings | None:
    if not looks_like_bounce(message):
        return None
    notice, _ = split_at_original(notice_text(message))
    subject = message.decoded("subject")
    delayed = bool(DELAY_WORDS.search(subject) or DELAY_WORDS.search(notice[:3000]))
    action = Action.DELAYED if delayed else Action.FAILED
    # A block that opens with an address but says nothing of a failure, nor do the lines
    # after it, is a contact list, a signature or a quoted header, not a recipient's report.
    blocks = [(a, t) for a, t in recipient_blocks(notice, own_addresses(message))
              if _says_failure(t) or _says_failure(_words_after(notice, a))]
    failed_header = [normalize_address(piece) for value in message.get_all("x-failed-recipients")
                     for piece in value.split(",")]
    failed_header = [address for address in failed_header if address]
    if failed_header:
        words = dict(blocks)
        failures = [Failure(address=address, action=action, diagnostic=words.get(address, ""))
                    for address in failed_header]
        evidence = "X-Failed-Recipients header"
    elif blocks:
        failures = [Failure(address=a, action=action, diagnostic=t) for a, t in blocks]
        evidence = "recipient blocks in a bounce notice"
    elif (lines := _lead_in_lines(notice, own_addresses(message))):
        failures = [Failure(address=a, action=action, diagnostic=t) for a, t in lines]
        evidence = "lines that say delivery to a recipient failed"
    elif (lines := _cause_lines(notice, own_addresses(message))):
        failures = [Failure(address=a, action=action, diagnostic=t) for a, t in lines]
        evidence = "lines naming a recipient and a cause of failure"
    elif (reply := _reply_of_anonymous_report(message, subject, notice)):
        failures = [Failure(address="", action=action, diagnostic=reply)]
        evidence = "a mail system's report quoting an SMTP reply, naming no recipient"
    else:
        return None
    return Findings(
        kind=Kind.DELAY if delayed else Kind.BOUNCE,
        analyzer="plaintext",
        evidence=evidence,
        failures=failures,
        original_headers=original_headers(message),
        notice=notice,
    )


# Words before a recipient that say delivery to it failed: CommuniGate Pro "Failed to deliver
# to '<a@b>'", Barracuda "Your message to: a@b", and the like in many small MTAs.
_LEAD_IN = re.compile(
    r"(?:failed to deliver|could not (?:be )?deliver(?:ed)?|(?:was|were|has|have) not (?:been )?"
    r"delivered|unable to deliver|delivery (?:has )?failed|your (?:e-?mail|message) to)"
    r"\b[^@\n]{0,30}$", re.I)  # ...then at most a few characters up to the address
_BLOCK_LINES = 5  # lines after the lead-in that can still be its cause


def _lead_in_lines(notice: str, exclude: set[str]) -> list[tuple[str, str]]:
    """(address, its words) for each line that names one recipient after a lead-in saying
    its delivery failed; the words are the rest of the line and the lines up to a blank."""
    found: dict[str, str] = {}
    lines = notice[:4000].split("\n")
    for number, line in enumerate(lines):
        named = ADDRESS_IN_TEXT.search(line) if "@" in line else None
        if named is None or not _LEAD_IN.search(line[:named.start()]):
            continue
        addresses = [a for a in find_addresses(line) if a not in exclude
                     and not is_system_address(a)]
        if len(addresses) != 1:
            continue
        words = [line[named.end():].strip(" '\">")]
        for following in lines[number + 1:number + 1 + _BLOCK_LINES]:
            if not following.strip():
                break
            words.append(following.strip())
        found.setdefault(addresses[0], " ".join(w for w in words if w))
    return list(found.items())


_FAILURE_EVIDENCE = re.compile(r"\b[245]\d\d\b|\b[245]\.\d{1,3}\.\d{1,3}\b")


def _says_failure(text: str) -> bool:
    """The words after an address name a failure: an SMTP reply, a status, a known phrase."""
    return bool(_FAILURE_EVIDENCE.search(text) or phrases.match(text))


_AFTER = 400  # characters after an address alone on its line that can still say why


def _words_after(notice: str, address: str) -> str:
    """The text that follows the address's line ("Technical details:" then the reply)."""
    start = notice.lower().find(address.lower())
    return notice[start + len(address):start + len(address) + _AFTER] if start >= 0 else ""


def _cause_lines(notice: str, exclude: set[str]) -> list[tuple[str, str]]:
    """(address, line) for each line that names exactly one recipient and a cause of failure
    the phrase tables know, as one-line notices do."""
    found: dict[str, str] = {}
    for line in notice[:4000].split("\n"):
        if "@" not in line or line.lstrip().startswith(">"):
            continue  # a quoted line is someone else's words
        addresses = [a for a in find_addresses(line) if a not in exclude
                     and not is_system_address(a)]
        if len(addresses) == 1 and phrases.match(line):
            found.setdefault(addresses[0], line.strip())
    return list(found.items())


def _reply_of_anonymous_report(message: Part, subject: str, notice: str) -> str:
    """The SMTP reply quoted by a report that names no recipient, if it surely is one."""
    if not from_mail_system(message) or not BOUNCE_SUBJECTS.search(subject) \
            or is_reply_or_forward(subject):
        return ""
    # A report that names nobody must at least have come back on the null sender
    # (RFC 5321 4.5.5) and not ask for answers elsewhere: a spoofed "Mail Delivery System"
    # From with a real envelope sender or a Reply-To is phishing.
    return_path = message.get("return-path").strip()
    spoofed = return_path and return_path not in NULL_PATHS \
        and not MAILER_SENDERS.search(return_path)
    if spoofed or "reply-to" in message:
        return ""
    found = SMTP_REPLY_LINE.search(notice[:4000])
    return found.group(0).strip() if found else ""
