"""The plain-text fallback: a bounce in words, from an MTA no format module names.

Claims a message only when its headers say it is a delivery report (`looks_like_bounce`)
and one of its readers (`READERS`, in order) finds a recipient: `X-Failed-Recipients`, a block
of lines that opens with an address, a line that names one address after "failed to deliver
to" or beside a cause of failure ("User's mailbox is full: <jo@example.com>"), addresses
listed under a failure heading. A mail system's report that the whole message was refused
before it went to anyone (`norecipient`: too big, too many recipients, a sending limit, a
virus) is one failure without an address, read before the thin guesses. The thinnest
evidence (one address and a cause somewhere, or only the returned original's recipient)
counts only on a report from the null return path.
A report that names nobody is still claimed when both its sender and its subject are a mail
system's and its words carry an SMTP reply: it bounced, for whom is then told by the VERP
address it was sent to, if any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..report import Action, Kind
from . import lazy_re as re
from . import phrases
from .addresses import ADDRESS_IN_TEXT, find_addresses, normalize_address
from .findings import Failure, Findings
from .formats._lib import norecipient
from .formats._lib.common import (
    BOUNCE_SUBJECTS,
    DELAY_WORDS,
    is_system_address,
    looks_like_bounce,
    own_addresses,
    recipient_blocks,
)
from .formats._lib.smtp_reply import CODES
from .message import Part
from .origin import (
    auto_submitted,
    from_mail_system,
    is_reply_or_forward,
    null_return_path,
)
from .text import notice_text, original_headers, split_at_original

# A line of a notice that quotes an SMTP reply: a reply code and an enhanced status code.
SMTP_REPLY_LINE = re.compile(r"^.*\b[245]\d\d[ -]#?[245]\.\d{1,3}\.\d{1,3}\b.*$", re.M)

NAME = "plaintext"  # the chain stage, as reports name it


# What a reader finds: (recipient address, the words about it) pairs.
Found = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Notice:
    """A plain-text report as the readers see it."""

    message: Part
    text: str  # the notice, without the returned message
    subject: str
    own: set[str]  # the report's own addresses: never a failed recipient

    @property
    def states_itself(self) -> bool:
        """Sent from the null return path, not by a self-declared auto-responder: what the
        thinnest readers need besides their words (RFC 3834 replies are not reports).

        A message with no Return-Path at all was saved without its envelope (archives and
        backfills of old mailboxes): the delivering MTA always adds one, so a sender cannot
        take it away; then a mail system's From stands for the null return path. So does a
        null path as some MTAs render it ("<MAILER-DAEMON>")."""
        saved_without_envelope = "return-path" not in self.message and from_mail_system(
            self.message)
        return (null_return_path(self.message) or saved_without_envelope
                or _RENDERED_NULL.match(self.message.get("return-path").strip()) is not None) \
            and not auto_submitted(self.message).startswith("auto-replied")


# How some MTAs render the null reverse-path when they deliver a report: "<MAILER-DAEMON>"
# (Sendmail's name for it), maybe with their host. No person's mail has it.
_RENDERED_NULL = re.compile(r"^<\s*mailer-daemon(?:@[^\s<>@]+)?\s*>$", re.I)


def analyze(message: Part) -> Findings | None:
    if not looks_like_bounce(message):
        return None
    text, _ = split_at_original(notice_text(message))
    notice = Notice(message, text, message.decoded("subject"), own_addresses(message))
    delayed = bool(DELAY_WORDS.search(notice.subject) or DELAY_WORDS.search(text[:3000]))
    action = Action.DELAYED if delayed else Action.FAILED
    found, evidence = next(((found, evidence) for read, evidence in READERS
                            if (found := read(notice))), ([], ""))
    if not found:
        return None
    return Findings(
        kind=Kind.DELAY if delayed else Kind.BOUNCE,
        analyzer=NAME,
        evidence=evidence,
        failures=[Failure(address=a, action=action, diagnostic=t) for a, t in found],
        original_headers=original_headers(message),
        notice=text,
    )


def _failed_header(notice: Notice) -> Found:
    """Exim's X-Failed-Recipients, with the words of each recipient's block when there is one."""
    addresses = [normalize_address(piece) for value in notice.message.get_all(
        "x-failed-recipients") for piece in value.split(",")]
    words = dict(_blocks(notice)) if any(addresses) else {}
    return [(address, words.get(address, "")) for address in addresses if address]


def _blocks(notice: Notice) -> Found:
    """Blocks of lines that open with an address and say why it failed.

    A block that says nothing of a failure, nor do the lines after it, is a contact list, a
    signature or a quoted header, not a recipient's report.
    """
    return [(a, t) for a, t in recipient_blocks(notice.text, notice.own)
            if _says_failure(t) or _says_failure(_words_after(notice.text, a))]


# Words before a recipient that say delivery to it failed: CommuniGate Pro "Failed to deliver
# to '<a@b>'", Barracuda "Your message to: a@b", and the like in many small MTAs.
_LEAD_IN = re.compile(
    r"(?:failed to deliver|could not (?:be )?deliver(?:ed)?|(?:was|were|has|have) not (?:been )?"
    r"delivered|unable to deliver|delivery (?:has )?failed|your (?:e-?mail|message) to|"
    r"ihre (?:nachricht|e-?mail|mail) an|votre (?:message|courrier) (?:à|pour)|"  # de, fr
    r"su (?:mensaje|correo) (?:a|para)|il (?:suo|vostro) messaggio (?:a|per)|"  # es, it
    r"sua mensagem para)"  # pt; not French "votre message a": that "a" is "has"
    r"\b[^@\n]{0,30}$", re.I)  # ...then at most a few characters up to the address
_BLOCK_LINES = 5  # lines after the lead-in that can still be its cause


def _lead_in_lines(notice: Notice) -> Found:
    """(address, its words) for each line that names one recipient after a lead-in saying
    its delivery failed; the words are the rest of the line and the lines up to a blank."""
    found: dict[str, str] = {}
    lines = notice.text[:4000].split("\n")
    for number, line in enumerate(lines):
        named = ADDRESS_IN_TEXT.search(line) if "@" in line else None
        if named is None or not _LEAD_IN.search(line[:named.start()]):
            continue
        addresses = _recipients_in(line, notice)
        if len(addresses) != 1:
            continue
        words = [line[named.end():].strip(" '\">")]
        for following in lines[number + 1:number + 1 + _BLOCK_LINES]:
            if not following.strip():
                break
            words.append(following.strip())
        found.setdefault(addresses[0], " ".join(w for w in words if w))
    return list(found.items())


def _says_failure(text: str) -> bool:
    """The words after an address name a failure: an SMTP reply, a status, a known phrase."""
    return bool(CODES.search(text) or phrases.match(text))


_AFTER = 400  # characters after an address alone on its line that can still say why


def _words_after(notice: str, address: str) -> str:
    """The text that follows the address's line ("Technical details:" then the reply)."""
    start = notice.lower().find(address.lower())
    return notice[start + len(address):start + len(address) + _AFTER] if start >= 0 else ""


def _cause_lines(notice: Notice) -> Found:
    """(address, line) for each line that names exactly one recipient and a cause of failure
    the phrase tables know, as one-line notices do."""
    found: dict[str, str] = {}
    for line in notice.text[:4000].split("\n"):
        if "@" not in line or line.lstrip().startswith(">"):
            continue  # a quoted line is someone else's words
        addresses = _recipients_in(line, notice)
        if len(addresses) == 1 and phrases.match(line):
            found.setdefault(addresses[0], line.strip())
    return list(found.items())


def _reply_of_anonymous_report(notice: Notice) -> Found:
    """The SMTP reply quoted by a report that names no recipient, if it surely is one; the
    recipient is then unknown ("")."""
    message, subject = notice.message, notice.subject
    if not from_mail_system(message) or not BOUNCE_SUBJECTS.search(subject) \
            or is_reply_or_forward(subject):
        return []
    if not norecipient.trusted_sender(message):
        return []  # a spoofed "Mail Delivery System" From: phishing
    found = SMTP_REPLY_LINE.search(notice.text[:4000])
    return [("", found.group(0).strip())] if found else []


# A heading over a list of recipients that says they failed (Post.Office "The following
# recipients did not receive this message:", many "could not be delivered to the following").
_LIST_HEADING = re.compile(
    r"(?:following|these) (?:recipients?|addresses?|users?)\b.{0,40}$|"
    r"(?:did not|could not|cannot|was not) (?:receive|reach|be delivered)\b.{0,40}:\s*$", re.I)


def _listed_under_heading(notice: Notice) -> Found:
    """Recipients alone on their lines under a failure heading; the cause is the notice's
    words before the heading (Post.Office states the reason first, then lists the addresses)."""
    lines = notice.text[:6000].split("\n")
    found: dict[str, str] = {}
    for number, line in enumerate(lines):
        if not _LIST_HEADING.search(line):
            continue
        before = "\n".join(lines[:number])[-1500:]
        if not _says_failure(before) and not phrases.gave_up(before):
            continue
        for following in lines[number + 1:number + 30]:
            if not following.strip():
                if found:
                    break
                continue
            addresses = _recipients_in(following, notice)
            if len(addresses) != 1 or len(following.strip()) > len(addresses[0]) + 6:
                break
            found.setdefault(addresses[0], " ".join(before.split()))
        if found:
            break
    return list(found.items())


def _refused_as_a_whole(notice: Notice) -> Found:
    """A mail system refused the message before it went to anyone (too big, too many
    recipients, a sending limit, a virus...): one failure without an address."""
    words = norecipient.refused_as_a_whole(notice.message, notice.text, notice.subject)
    return [("", words)] if words else []


def _recipients_in(text: str, notice: Notice) -> list[str]:
    """The addresses in a text that can be a failed recipient: not the report's own, not a
    mail system's, with a dotted domain (a virus name like "W32.Netsky.P@mm" is none)."""
    return [a for a in find_addresses(text) if a not in notice.own and not is_system_address(a)
            and "." in a.rpartition("@")[2]]


def _sole_address_with_cause(notice: Notice) -> Found:
    """A report that names exactly one other address and, in the lines from it on, a cause."""
    head = notice.text[:4000]
    addresses = set(_recipients_in(head, notice))
    if len(addresses) != 1 or not notice.states_itself:
        return []
    address = addresses.pop()
    words = head[head.lower().find(address):][:800]
    return [(address, " ".join(words.split()))] if phrases.match(words) else []


def _original_sole_recipient(notice: Notice) -> Found:
    """A report that states a cause but names the recipient only by name (cc:Mail "VNM3043:
    Wheeler, Gordon", CompuServe user ids): the one recipient of the returned original."""
    head = notice.text[:3000]
    if not notice.states_itself or not phrases.match(head):
        return []
    headers = original_headers(notice.message) or []
    recipients = list(dict.fromkeys(a for name, value in headers if name in ("to", "cc")
                                    for a in find_addresses(value)))
    return [(recipients[0], " ".join(head.split())[:1000])] if len(recipients) == 1 else []


# The readers, in order of trial: the first that finds a recipient decides. Structure first
# (a header, blocks, lines), then the thinner evidence, last a report that names nobody.
READERS: tuple[tuple[Callable[[Notice], Found], str], ...] = (
    (_failed_header, "X-Failed-Recipients header"),
    (_blocks, "recipient blocks in a bounce notice"),
    (_lead_in_lines, "lines that say delivery to a recipient failed"),
    (_cause_lines, "lines naming a recipient and a cause of failure"),
    (_listed_under_heading, "recipients listed under a heading, the cause stated above it"),
    (_refused_as_a_whole,
     "a mail system's report that the whole message was refused, naming no recipient"),
    (_sole_address_with_cause, "the one recipient the notice names, and a cause of failure"),
    (_original_sole_recipient,
     "a cause of failure in the notice; the recipient from the returned original"),
    (_reply_of_anonymous_report,
     "a mail system's report quoting an SMTP reply, naming no recipient"),
)
