"""Helpers for the formats of less common MTAs that report a bounce in their own words.

Those formats differ in wording, not in shape: a notice that names each failed recipient
with the reason, then a copy of the message. These helpers build the findings once the
format module has read its recipients, so each module holds only its own wording.
"""

from __future__ import annotations

from ...findings import Failure, Findings, kind_of
from ...message import Part
from ...text import original_headers, text_parts


def findings_of(name: str, evidence: str, failures: list[Failure], message: Part,
                notice: str) -> Findings | None:
    """Findings for a format's own reading; None when it found no recipient."""
    failures = [f for f in failures if f.address]
    if not failures:
        return None
    return Findings(kind=kind_of(failures), analyzer=f"formats.{name}", evidence=evidence,
                    failures=failures, original_headers=original_headers(message),
                    notice=notice)


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
