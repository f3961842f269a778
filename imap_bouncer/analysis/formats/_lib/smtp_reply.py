"""Helpers for the Unix MTA formats: a remote SMTP reply as the notices quote it.

Not a format: no NAME, not in KNOWN. The notices of Postfix, Sendmail and Courier quote a
multi-line reply ("550-5.7.1 first line", "550 5.7.1 last line", RFC 5321 section 4.2.1)
joined into one text; the repeated code prefixes then break the words apart.
"""

from __future__ import annotations

from ... import lazy_re as re

# A reply code or an enhanced status code anywhere in a text.
CODES = re.compile(r"\b[245]\d\d\b|\b[245]\.\d{1,3}\.\d{1,3}\b")
_FIRST = re.compile(r"\s*([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3})\s)?")
_LEADING = re.compile(r"([245]\d\d)\b")
# The words of a transcript or paragraph -> the SMTP command they name.
COMMANDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bRCPT\b", re.I), "RCPT"),
    (re.compile(r"\bMAIL\b", re.I), "MAIL"),
    (re.compile(r"\bend of DATA\b", re.I), "EOD"),  # the reply to the content's final "."
    (re.compile(r"\bDATA\b", re.I), "DATA"),
    (re.compile(r"\b(?:EHLO|HELO|LHLO|STARTTLS)\b", re.I), "HELO"),
)


def command_of(words: str) -> str:
    """CONN/HELO/MAIL/RCPT/DATA/EOD for a quoted command line, "" when it names none of them."""
    return next((name for pattern, name in COMMANDS if pattern.search(words)), "")


def smtp_code_of(text: str) -> str:
    """The reply code a quoted reply starts with."""
    match = _FIRST.match(text)
    return match.group(1) if match else ""


def leading_code(text: str) -> str:
    """The reply code a text starts with as a word ("550 ...", "550: ...", "550."), or ""."""
    match = _LEADING.match(text)
    return match.group(1) if match else ""


def unfold_reply(text: str) -> str:
    """One line of words: the continuation prefixes ("550-5.7.1 ", "550 5.7.1 ") dropped."""
    text = " ".join(text.split())
    first = _FIRST.match(text)
    if not first:
        return text
    code, status = first.group(1), first.group(2)
    tail = text[first.end():]
    repeated = rf"(?:(?<=\s)|^){code}(?:-|\s(?={re.escape(status)}\s))" if status else \
        rf"(?:(?<=\s)|^){code}-"
    if status:
        repeated += rf"(?:{re.escape(status)}\s)?"
    tail = re.sub(repeated, "", tail)
    return (text[:first.end()] + " ".join(tail.split())).strip()
