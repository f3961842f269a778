"""Helpers for the formats of less common MTAs that report a bounce in their own words.

Those formats differ in wording, not in shape: a notice that names each failed recipient
with the reason, then a copy of the message. These helpers build the findings once the
format module has read its recipients, so each module holds only its own wording.
"""

from __future__ import annotations

from ....report import Kind
from ...findings import Failure, Findings, kind_of
from ...message import Part
from ...text import original_headers, text_parts

_FROM_MESSAGE: list[tuple[str, str]] = []  # `original`'s default: read from the message


def findings_of(name: str, evidence: str, failures: list[Failure], message: Part,
                notice: str, *, kind: Kind | None = None,
                original: list[tuple[str, str]] | None = _FROM_MESSAGE) -> Findings | None:
    """Findings for a format's own reading; None when it found no recipient. The kind follows
    the recipients' actions unless the format knows better (a delay notice's heading); the
    original's headers are the message's attached copy unless the format found them."""
    failures = [f for f in failures if f.address]
    if not failures:
        return None
    return Findings(kind=kind or kind_of(failures), analyzer=f"formats.{name}",
                    evidence=evidence, failures=failures,
                    original_headers=original_headers(message) if original is _FROM_MESSAGE
                    else original, notice=notice)


def hint_for(text: str, hints: tuple) -> str:
    """The reason of the first of a format's fixed phrases found in a text, or ""."""
    for reason, pattern in hints:
        if pattern.search(text):
            return str(reason)
    return ""


def unfold(text: str) -> str:
    return " ".join(text.split())


def plain_notice(message: Part) -> str:
    """The first text/plain part outside attached messages, or "" when there is none.

    These formats are all plain text; an HTML-only message is none of theirs, and skipping
    the HTML-to-text conversion keeps their guards cheap on ordinary mail. Kept on the
    message: most format guards ask for it.
    """
    if "plain_notice" not in message.derived:
        parts = text_parts(message)
        plain = parts and parts[0].content_type == "text/plain"
        message.derived["plain_notice"] = parts[0].text if plain else ""
    return message.derived["plain_notice"]  # type: ignore[return-value]
