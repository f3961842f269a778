"""Text from hostile mail made safe to print: no character a terminal or a reader acts on.

Anyone can write to the bounce mailbox, and what the analyzer reads from it (addresses, the
server's words, Message-IDs, subjects) is printed by `analyze`, `explain`, `events`,
`addresses` and the service commands. An ESC starts a terminal command (clear the screen, set
the title, on some terminals write to files); BS and CR overwrite what was printed; a line
feed forges an output line; bidirectional overrides make a text read differently than it
is. Each of these is shown as an escape (`\\x1b`, `\\u202e`) instead.

`shown` is for one value (a line feed is escaped too), `safe` for a whole block of lines
(line feeds kept), `json_safe` for JSON text (escapes JSON itself leaves raw, as JSON ones).
"""

from __future__ import annotations

# C0 controls, DEL and C1 controls (CSI U+009B is ESC [ to terminals that read 8-bit C1).
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
# Unicode format characters that reorder or hide text: bidirectional embeddings, overrides
# and isolates, marks, the line and paragraph separators, the zero-width space and BOM. The
# zero-width (non-)joiners stay: Persian, Indic scripts and emoji need them.
_INVISIBLE = [0x061C, 0x200B, 0x200E, 0x200F, *range(0x202A, 0x202F),
              *range(0x2066, 0x206A), 0x2028, 0x2029, 0xFEFF]


def _escape(point: int) -> str:
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}"


_VALUE_TABLE = {point: _escape(point) for point in (*_CONTROLS, *_INVISIBLE)}
_VALUE_TABLE.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
_BLOCK_TABLE = {point: _escape(point) for point in (*_CONTROLS, *_INVISIBLE)
                if point not in (0x09, 0x0A)}
_BLOCK_TABLE[0x0D] = "\\r"
_JSON_TABLE = {point: f"\\u{point:04x}" for point in (*range(0x7F, 0xA0), *_INVISIBLE)}


def shown(value: object) -> str:
    """One value as printed: every control escaped, a line feed and a tab too."""
    text = str(value)
    return text.translate(_VALUE_TABLE) if _needs_escape(text) else text


def safe(text: str) -> str:
    """Lines of output with every control but the line feed and the tab escaped."""
    return text.translate(_BLOCK_TABLE) if _needs_escape(text) else text


def json_safe(text: str) -> str:
    """JSON text with DEL, C1 and invisible format characters written as \\u escapes (JSON
    escapes C0 controls itself but passes these raw); the value it encodes is the same."""
    return text.translate(_JSON_TABLE) if not text.isascii() or "\x7f" in text else text


def _needs_escape(text: str) -> bool:
    """A fast test for the common case, plain printable ASCII (DEL is not printable)."""
    return not (text.isascii() and text.isprintable())
