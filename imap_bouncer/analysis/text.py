"""Where a bounce keeps its human-readable notice and its copy of the original message."""

from __future__ import annotations

from functools import lru_cache

from . import lazy_re as re
from .message import Part, header_block_of, parse_header_lines

ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers",
                  "message/rfc822-headers", "text/rfc822-header", "message/global-headers")

# Lines after which a plain-text bounce quotes the original message. Each names its origin.
ORIGINAL_MARKERS = re.compile(
    r"^(?:"
    r"-+ ?Below this line is a copy of the message\.?"  # qmail
    r"|-+ ?This is a copy of the message, including all the headers\. ?-+"  # Exim
    r"|-+ ?This is a copy of the headers that were received before the error"  # Exim: too
    # big, bad headers (the sentence goes on: "was detected.")
    r"|-+ ?The header of the original message is following\. ?-+"  # Exim (Japanese providers)
    r"|-+ ?Original message follows\.? ?-+"  # various
    r"|-+ ?Original message -+"  # various
    r"|-+ ?Returned message -+"  # Sendmail V5
    r"|-+ ?Unsent message below -+"  # Sendmail
    r"|-+ ?Message header follows -+"  # various
    r"|-+ ?The original message (?:headers? )?(?:was|is|are|follows?)?.{0,20}-+"  # various
    r"|-+ ?Original message header:? ?-+"  # various
    r"|-+ ?original message follows ?-+"  # Lotus Notes
    r"|Original message follows\.?"  # Courier
    r"|-+Original Message-+"  # Outlook style
    r"|------ This is a copy of your message, including all the headers\. ------"  # Exim
    r"|The original message was received at .*"  # Sendmail (precedes the recipients)
    r"|The non-delivered message is attached to this message\."  # various
    r"|A copy of the original message (?:is )?below this line:?"  # EarthLink
    r"|Possibly truncated original message follows:"  # Novell GroupWise
    r"|[ \t]*Your message begins as follows:"  # MMDF, indented (\s* ran over blank lines)
    r"|\|-+ ?Message text follows:? ?-+\|"  # smail
    r"|From \S+@\S+ +(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \w{3} +\d+ [\d:]+ \d{4}"  # mbox envelope line
    r")\s*$",
    re.I | re.M,
)
# The characters a marker line can start with (any case): a line that starts with another
# ASCII character cannot hold one, and is passed over without trying the pattern.
_MARKER_STARTS = frozenset("-otapyf| \t")


# Any language: a ruled line with words in it ("------ 元のメッセージのヘッダー ------",
# "------ Dies ist eine Kopie der Kopfzeilen der Nachricht. ------") right above a block of
# the original's header fields. The header block is what makes it a marker.
RULED_HEADERS = re.compile(
    r"^[ \t]*[-=]{2,}[ \t]*[^\s=-][^\n]{0,78}?[ \t]*[-=]{2,}[ \t]*\n(?:[ \t]*\n){0,2}"
    r"(?=(?:Return-Path|Received|From|To|Subject|Date|Message-ID|MIME-Version|"
    r"DKIM-Signature)[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*[!-9;-~]{1,76}[ \t]*:)",
    re.I | re.M)


def text_parts(message: Part) -> list[Part]:
    """The text/plain (else text/html) parts outside any attached original message, in
    order. Found once per message (many guards ask); the list is shared: do not change it."""
    if "text_parts" not in message.derived:
        message.derived["text_parts"] = _text_parts(message)
    return message.derived["text_parts"]  # type: ignore[return-value]


def _text_parts(message: Part) -> list[Part]:
    plain: list[Part] = []
    html: list[Part] = []
    stack = [message]  # depth first: the last part pushed is the next one read
    while stack:
        part = stack.pop()
        ctype = part.content_type
        if ctype.startswith("multipart/"):
            stack.extend(reversed(part.parts))
        elif ctype == "text/plain":
            plain.append(part)
        elif ctype == "text/html":
            html.append(part)
    return plain or html


def notice_text(message: Part) -> str:
    """The bounce's own human-readable text (first text part), HTML reduced to text."""
    if "notice" not in message.derived:
        message.derived["notice"] = _notice_text(message)
    return message.derived["notice"]  # type: ignore[return-value]


def _notice_text(message: Part) -> str:
    parts = text_parts(message)
    if not parts:
        return ""
    part = parts[0]
    text = part.text
    if part.content_type == "text/html":
        text = html_to_text(text)
    return text


_TAG = re.compile(r"<(?:br|p|div|tr|li|h\d)\b[^>]*>", re.I)
_CELL = re.compile(r"</?t[dh]\b[^>]*>", re.I)  # table cells stay apart
_ANY_TAG = re.compile(r"<[^>]*>", re.S)
_ENTITIES = {"&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}


def html_to_text(html: str) -> str:
    """Just enough HTML-to-text for reading a provider's bounce page."""
    html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.I | re.S)
    text = _ANY_TAG.sub("", _CELL.sub(" ", _TAG.sub("\n", html)))
    for entity, char in _ENTITIES.items():
        text = text.replace(entity, char)
    return re.sub(r"[ \t]+", " ", text)


@lru_cache(maxsize=32)
def split_at_original(text: str) -> tuple[str, str]:
    """(the notice, the quoted original) of a plain-text bounce; the second may be empty.

    Cached: many format guards ask this of the same notice text.
    """
    match = _at_a_line_start(ORIGINAL_MARKERS, text, _MARKER_STARTS)
    if not match:
        match = _ruled_headers(text)
    if not match or match.group(0).lower().startswith("the original message was received"):
        return text, ""
    return text[:match.start()], text[match.end():]


# Lines tried one by one before a search takes over: few notices have more, and a hostile
# text of empty lines costs the engine's own scan, not a call per line.
_LINES_TRIED = 200


def _at_a_line_start(pattern: re.Pattern[str], text: str,
                     starts: frozenset[str] | None = None) -> re.Match[str] | None:
    """`pattern.search(text)` for a pattern that starts with "^" (re.M): tried at each line
    start in order, where the engine would try every character of every line. `starts`, when
    given, holds every lower-case ASCII character a match can begin with: a line that begins
    with another ASCII character (or is empty) is not tried; a non-ASCII one always is."""
    position = 0
    for _ in range(_LINES_TRIED):
        first = text[position:position + 1]
        if starts is None or first.lower() in starts or not first.isascii():
            found = pattern.match(text, position)
            if found is not None:
                return found
        newline = text.find("\n", position)
        if newline < 0:
            return None
        position = newline + 1
    return pattern.search(text, position)


# The start of a line that can open RULED_HEADERS: white space, then two rule characters.
_RULE_START = re.compile(r"\n[ \t]*[-=]{2}")


def _ruled_headers(text: str) -> re.Match[str] | None:
    """`RULED_HEADERS.search(text)`, tried only at the starts of lines that begin a rule: the
    pattern starts with "^", and the engine would try it at every character instead."""
    found = RULED_HEADERS.match(text)
    if found is not None:
        return found
    for tried, line in enumerate(_RULE_START.finditer(text)):
        if tried == _LINES_TRIED:
            return RULED_HEADERS.search(text, line.start() + 1)
        found = RULED_HEADERS.match(text, line.start() + 1)
        if found is not None:
            return found
    return None


def original_headers(message: Part) -> list[tuple[str, str]] | None:
    """Headers of the message that bounced: from an attached part, else an inline copy."""
    if "original" not in message.derived:
        message.derived["original"] = _original_headers(message)
    return message.derived["original"]  # type: ignore[return-value]


def _original_headers(message: Part) -> list[tuple[str, str]] | None:
    for part in message.walk():
        if part is message:
            continue
        ctype = part.content_type
        if ctype in ("message/rfc822", "message/global"):
            inner = part.parts
            if inner and inner[0].headers:
                return inner[0].headers
        elif ctype in ORIGINAL_TYPES:
            return parse_header_lines(part.text.strip("\n").split("\n\n", 1)[0])
    notice = notice_text(message)
    _, quoted = split_at_original(notice)
    if quoted:
        headers = header_block_of(quoted.lstrip())
        if headers:
            return headers
    return None
