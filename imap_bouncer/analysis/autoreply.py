"""RFC 3834 automatic replies: out-of-office, vacation, ticket and other robots' answers.

Runs after the bounce analyzers (a bounce is automatic too), and claims a message on its
headers (RFC 3834 `Auto-Submitted: auto-replied` from a person's address, the X- headers
that mail programs add), on its subject (a mail program's auto-reply prefix in some forty-five
languages, or out-of-office words with a sign that the message answers one), or on its
words: an absence or a departure stated by the mailbox's owner on a message marked
automatic, a receipt of "your message" (helpdesks, CRMs, role accounts), a
challenge-response system's request that the sender prove itself.
The words are tables per class and language in `autoreply_phrases`; `reply_type` names the
kind of reply for the report (vacation, moved, unmonitored, receipt, challenge).
Never claimed: reports, lists, invitations, and demands about the reader's own account
(phishing that poses as a mail system's verification).
The recipient reported is the one who replied: the mail did reach them.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..report import Action, AutoreplyType, Kind, Reason
from . import autoreply_phrases as words
from . import lazy_re as re
from .addresses import normalize_address
from .findings import Failure, Findings
from .formats._lib.common import BOUNCE_SUBJECTS
from .message import Part
from .origin import (
    MAILER_SENDERS,
    auto_submitted,
    from_list,
    from_mail_system,
    is_reply_or_forward,
    null_return_path,
)
from .text import html_to_text, text_parts

# The tables are in autoreply_phrases; here they become the rules.
AUTOREPLY_HEADERS = words.AUTOREPLY_HEADERS


def _alternation(table: dict[str, tuple[str, ...]]) -> str:
    """A table's fragments as one alternation: those of languages written with spaces start
    at a word boundary, the others anywhere."""
    spaced = [f for lang, frags in table.items() if lang not in words.UNSPACED for f in frags]
    unspaced = [f for lang, frags in table.items() if lang in words.UNSPACED for f in frags]
    branches = [r"(?<!\w)(?:" + "|".join(spaced) + ")"] if spaced else []
    if unspaced:
        branches.append("(?:" + "|".join(unspaced) + ")")
    return "(?:" + "|".join(branches) + ")"


def _compiled(*tables: dict[str, tuple[str, ...]]) -> re.Pattern[str]:
    return re.compile("|".join(_alternation(table) for table in tables), re.I)


_PREFIX_WORDS = _alternation(words.SUBJECT_PREFIXES)
_ABSENCE_WORDS = _alternation(words.ABSENCE_SUBJECT_WORDS)
# Tags a helpdesk or a list puts first ("[example.org #12345] AutoReply: ...").
_TAGS = r"^\s*(?:\[[^\]]{0,80}\]\s*)*"
# As a prefix ("Out of Office: ...", "Abwesenheitsnotiz: ...") or the whole subject; a subject
# that only starts with the words ("Out of office party on Friday") is a topic, not a reply,
# unless the message answers another one (In-Reply-To, References).
_AS_PREFIX = r")(?=\w*\s*(?:[:：]|$))"
PREFIX_SUBJECTS = re.compile(
    _TAGS + r"(?:" + _PREFIX_WORDS + _AS_PREFIX
    + r"|(?<!\w)(?:" + "|".join(f for frags in words.NOTES_SUBJECTS.values() for f in frags)
    + r")\.?\s*$", re.I)
ABSENCE_SUBJECTS = re.compile(_TAGS + r"(?:" + _ABSENCE_WORDS + _AS_PREFIX, re.I)
AUTOREPLY_SUBJECTS = re.compile(PREFIX_SUBJECTS.pattern + "|" + ABSENCE_SUBJECTS.pattern, re.I)
SUBJECT_OF_A_REPLY = re.compile(r"^\s*(?:" + _PREFIX_WORDS + "|" + _ABSENCE_WORDS + ")", re.I)
BARE_ABSENCE = re.compile(
    r"^\s*(?:" + "|".join(words.BARE_ABSENCE_WORDS) + r")\s*[.!]*\s*$", re.I)
TO_THE_SENDER = _compiled(words.TO_THE_SENDER)
FIRST_PERSON = _compiled(words.FIRST_PERSON, words.TO_THE_SENDER)
ABSENCE_PHRASES = _compiled(words.ABSENCE_PHRASES)
DEPARTURE_PHRASES = _compiled(words.DEPARTURE_PHRASES)
UNMONITORED_PHRASES = _compiled(words.UNMONITORED_PHRASES)
RECEIPT_PHRASES = _compiled(words.RECEIPT_PHRASES)
AUTOMATED_PHRASES = re.compile(
    _compiled(words.AUTOMATED_PHRASES).pattern + "|"
    + _alternation(words.TICKET_WORDS) + words.TICKET_NUMBER, re.I)
ROLE_SENDER = re.compile(r"^(?:" + "|".join(words.ROLE_LOCAL_PARTS) + ")@", re.I)
# What a role account may say without a ticket: it received the sender's mail.
RECEIPT_OF_MAIL = re.compile(
    r"\b(?:we|i)(?: have|'ve)? (?:(?:successfully|just|now) )?received your "
    r"(?:message|e-?mail|mail|enquiry|inquiry|letter)\b", re.I)
CHALLENGE_SIGNS = tuple(_compiled(table) for table in (
    words.CHALLENGE_HOLD, words.CHALLENGE_SCREENING, words.CHALLENGE_PROVE,
    words.CHALLENGE_LIST))
ACCOUNT_DEMANDS = _compiled(words.ACCOUNT_DEMANDS)
# Where a reply starts quoting the message it answers (unmarked: a person's reply).
QUOTED_ORIGINAL = re.compile(
    r"^>|^[ \t]*-{2,} ?(?:" + "|".join(words.QUOTE_RULES) + r") ?-{2,}"
    + r"|^\*?(?:" + "|".join(words.QUOTE_FROM) + r")\*? ?[:：]\*? .+\n\*?(?:"
    + "|".join(words.QUOTE_SENT) + r")\*? ?[:：]\*? "
    + "".join(r"|^\s*(?:" + opening + r") .{0,80}(?:" + verb + r"):\s*$"
              for opening, verb in words.QUOTE_ATTRIBUTION)
    + r"|^.{0,80}(?:" + "|".join(words.QUOTE_ATTRIBUTION_CJK) + r")[:：]\s*$", re.I | re.M)
# Notifications (trackers, forums, newsletters) are auto-generated too, and quote people.
BULK_PRECEDENCE = re.compile(r"^\s*(?:bulk|list)\b", re.I)
CALENDAR_TYPES = ("text/calendar", "application/ics")


def analyze(message: Part) -> Findings | None:
    if not _may_be_a_reply(message):
        return None
    subject = message.decoded("subject")
    own = _own_words(message)
    if ACCOUNT_DEMANDS.search(f"{subject} {own}"):
        return None  # phishing or an account notice, whatever its headers claim
    evidence = _header_evidence(message) or _subject_evidence(message) \
        or _body_evidence(message)
    if not evidence:
        return None
    sender = message.get("from")
    address = normalize_address(sender or message.get("reply-to"))
    failures = [Failure(address=address, action=Action.DELIVERED, reason_hint=Reason.VACATION)]
    return Findings(kind=Kind.AUTOREPLY, analyzer="autoreply", evidence=evidence,
                    failures=failures if address else [],
                    autoreply_type=str(reply_type(message, subject, own)))


def _may_be_a_reply(message: Part) -> bool:
    """Delivery systems' messages are reports or notices, never auto-replies: a From that
    names a mail system, a report (a DSN or a read receipt), X-Failed-Recipients, a header
    only a mail system's report carries, a subject that opens with a report's words
    ("Undeliverable: ...": an auto-reply puts its own prefix first)."""
    return not (MAILER_SENDERS.search(message.get("from"))
                or message.content_type == "multipart/report"
                or "x-failed-recipients" in message
                or _header_match(message, words.REPORT_HEADERS)
                or BOUNCE_SUBJECTS.match(message.decoded("subject").strip()))


def reply_type(message: Part, subject: str, own: str) -> AutoreplyType:
    """What kind of automatic reply: its program's headers, else its words, the most
    specific first (a departure notice often adds "this mailbox is no longer monitored")."""
    if _header_match(message, words.CHALLENGE_HEADERS) or _is_challenge(f"{subject}. {own}"):
        return AutoreplyType.CHALLENGE
    if DEPARTURE_PHRASES.search(own):
        return AutoreplyType.MOVED
    if UNMONITORED_PHRASES.search(own):
        return AutoreplyType.UNMONITORED
    if RECEIPT_PHRASES.search(own) or RECEIPT_PHRASES.search(subject):
        return AutoreplyType.RECEIPT
    return AutoreplyType.VACATION


def _is_challenge(text: str) -> bool:
    """Two of the four things a challenge says: your message waits; the owner screens
    senders; prove you are a person; join the list of allowed senders."""
    return sum(1 for sign in CHALLENGE_SIGNS if sign.search(text)) >= 2


def _header_match(message: Part,
                  table: Iterable[tuple[str, re.Pattern[str] | None]]) -> str:
    for name, pattern in table:
        value = message.get(name) if name in message else None
        if value is not None and (pattern is None or pattern.search(value)):
            return f"header {name}: {value[:60]}"
    return ""


def _header_evidence(message: Part) -> str:
    return _header_match(message, AUTOREPLY_HEADERS)


def _subject_evidence(message: Part) -> str:
    """A mail program's prefix, or absence words with a sign the message answers one.

    Never a list's or a bulk sender's message (a newsletter titled "Out of Office: ..."), nor
    an invitation (a calendar entry "Out of office: Anna")."""
    subject = message.decoded("subject")
    if not AUTOREPLY_SUBJECTS.search(subject) and not SUBJECT_OF_A_REPLY.search(subject):
        return ""
    if from_list(message) or _has_calendar(message):
        return ""
    answers = "in-reply-to" in message or "references" in message
    body = _plain_body(message)
    marked = _marked_automatic(message)
    if PREFIX_SUBJECTS.search(subject):
        if answers or marked or FIRST_PERSON.search(body):
            return f"subject {subject[:60]!r}"
    elif ABSENCE_SUBJECTS.search(subject):
        # What a person also writes: it takes the answered message, words to its sender,
        # or a program's mark with the owner's first person.
        if answers or (not BARE_ABSENCE.match(subject) and (
                TO_THE_SENDER.search(body) or (marked and FIRST_PERSON.search(body)))):
            return f"subject {subject[:60]!r}"
    elif answers:  # the words start the subject of a message that answers another
        return f"subject {subject[:60]!r}"
    return ""


def _body_evidence(message: Part) -> str:
    """The words of an automatic reply, on a message no mail system or list sent."""
    if from_list(message) or from_mail_system(message) or _has_calendar(message):
        return ""
    marked = _marked_automatic(message, bulk=False)
    text = _plain_body(message)[:2000]
    if not marked and QUOTED_ORIGINAL.search(text[:600]):
        return ""  # a person's reply, quoting
    # A program's reply may quote the message it answers: only its own words count.
    body = _own_words(message) if marked else " ".join(text.split())
    subject = message.decoded("subject")
    # A challenge answers the sender's message (a person explaining a challenge system to
    # friends speaks of it in general), and is no person's reply unless a program marked it
    # or sent it on the owner's behalf (an administrator answers "your message was held by
    # our filter, we can whitelist you").
    if _is_challenge(f"{subject}. {body}") and TO_THE_SENDER.search(f"{subject}. {body}") \
            and (_marked_automatic(message) or _sent_on_behalf(message)
                 or not is_reply_or_forward(subject)):
        return "a challenge-response system asks the sender to confirm"
    if RECEIPT_PHRASES.search(body) and AUTOMATED_PHRASES.search(f"{subject} {body}"):
        return "an automatic acknowledgement of the sender's message"
    if RECEIPT_OF_MAIL.search(body) and ROLE_SENDER.match(
            normalize_address(message.get("from") or message.get("reply-to"))):
        return "a role account acknowledges the sender's message"
    # An absence in the owner's first person, or the address gone (in the opening: notices
    # end with "this mailbox is no longer monitored" too), on a message marked automatic.
    if (ABSENCE_PHRASES.search(body) or DEPARTURE_PHRASES.search(body[:200])) and marked \
            and not BULK_PRECEDENCE.match(message.get("precedence")):
        return "automatic message announcing an absence or a new address"
    return ""


def _own_words(message: Part) -> str:
    """The reply's own text, white space folded, up to a quoted original if it has one."""
    if "autoreply.own" not in message.derived:
        text = _plain_body(message)[:2000]
        quote = QUOTED_ORIGINAL.search(text)
        message.derived["autoreply.own"] = " ".join(text[:quote.start() if quote else None]
                                                    .split())
    return message.derived["autoreply.own"]  # type: ignore[return-value]


def _marked_automatic(message: Part, bulk: bool = True) -> bool:
    """Headers that say a program sent this message (RFC 3834 section 2, Exchange)."""
    if auto_submitted(message):
        return True
    if "x-auto-response-suppress" in message:
        return True
    precedence = message.get("precedence").strip().lower()
    if precedence.startswith(("junk", "auto")) or (bulk and precedence.startswith("bulk")):
        return True
    return null_return_path(message)


def _sent_on_behalf(message: Part) -> bool:
    """A Sender of another domain than the From: a service wrote for the owner (RFC 5322
    3.6.2), as challenge services (Spam Arrest, Boxbe) do."""
    sender = normalize_address(message.get("sender"))
    author = normalize_address(message.get("from"))
    return bool(sender and author) and sender.rpartition("@")[2] != author.rpartition("@")[2]


def _has_calendar(message: Part) -> bool:
    return any(part.content_type in CALENDAR_TYPES for part in message.walk())


def _plain_body(message: Part) -> str:
    """The opening of the message's own text (not of messages it attaches), where an
    auto-reply speaks to the sender; an HTML-only reply's text without its tags. Read once:
    the subject and the body rules both need it."""
    if "autoreply.body" not in message.derived:
        message.derived["autoreply.body"] = _read_body(message)
    return message.derived["autoreply.body"]  # type: ignore[return-value]


def _read_body(message: Part) -> str:
    texts = []
    for part in text_parts(message):
        text = part.text[:4000]
        texts.append(html_to_text(text) if part.content_type == "text/html" else text)
    return " ".join(texts)[:4000] if message.is_multipart else (
        texts[0][:2000] if texts else "")
