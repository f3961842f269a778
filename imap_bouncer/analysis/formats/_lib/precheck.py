"""A format's cheapest necessary condition, declared as data: checked for every format of the
chain on one lower-cased From header, where calling each format's guard costs a call each.

A format module may set `PRECHECK = Precheck(...)`. It must state only what its `analyze`
tests first, before it reads any part (reading notes errors in the report, so a format passed
over must not be one that would have read something): a message the pre-check rejects is one
that `analyze` returns None for at once. tests/test_precheck.py runs every sample and corpus
message through both to prove it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...message import Part


@dataclass(frozen=True, slots=True)
class Precheck:
    """Admits a message whose From header holds one of `from_words` (lower-case), or that
    has one of `headers` (lower-case names). Without either, the message is not the format's.
    """

    from_words: tuple[str, ...] = ()
    headers: frozenset[str] = frozenset()

    def admits(self, message: Part, sender: str | None) -> bool:
        """`sender`: the message's From, lower-cased; None when it is not ASCII (case-
        insensitive patterns fold some non-ASCII letters to ASCII ones: always admitted)."""
        if sender is None:
            return True
        for word in self.from_words:
            if word in sender:
                return True
        return bool(self.headers) and message.has_any(self.headers)


def lowered_sender(message: Part) -> str | None:
    """The From header as `Precheck.admits` reads it."""
    sender = message.get("from")
    return sender.lower() if sender.isascii() else None
