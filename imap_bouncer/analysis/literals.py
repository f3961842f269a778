"""Literal words that every match of a regular expression holds, to skip searches cheaply.

Python's regex engine tries a pattern at every position of a text; a substring test (`in`)
is many times faster. A pattern whose every match holds one of a few literal words cannot
match a text that holds none of them, so the search can be skipped, with the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, cast

from . import pattern_store

# The stdlib's own pattern parser: private, so every use has a fallback.
_parser = re._parser  # type: ignore[attr-defined]
_constants = re._constants  # type: ignore[attr-defined]


def required_words(pattern: str) -> tuple[str, ...] | None:
    """Literal strings one of which every match of the pattern contains, or None.

    Read from the pattern's parse tree: a run of literal characters is required; so is one of
    the words of each alternative of a group; the longest such requirement is kept. Parsing
    is slow, so the answer is kept in the pattern store beside the compiled pattern.
    """
    return pattern_store.fact("required_words", pattern, lambda: _required_words(pattern))


def _required_words(pattern: str) -> tuple[str, ...] | None:
    try:
        tree = _parser.parse(pattern)  # the stdlib's own pattern parser
    except Exception:  # a parser change in a later Python: fall back to always searching
        return None
    words = _required(list(tree))
    return tuple(sorted(words)) if words else None


def alternatives_words(pattern: str, pieces: list[str]) -> list[tuple[str, ...] | None]:
    """`required_words` of each of the pattern's top-level alternatives (`pieces`), from one
    parse of the whole pattern when its tree shows the same alternatives, else piece by piece.
    """
    return list(pattern_store.fact("alternatives_words", pattern,
                                   lambda: _alternatives_words(pattern, pieces)))


def _alternatives_words(pattern: str, pieces: list[str]) -> list[tuple[str, ...] | None]:
    if len(pieces) > 1:
        try:
            tree = list(_parser.parse(pattern))
        except Exception:
            tree = []
        if len(tree) == 1 and tree[0][0] is _constants.BRANCH \
                and len(tree[0][1][1]) == len(pieces):
            found = [_required(list(branch)) for branch in tree[0][1][1]]
            return [tuple(sorted(words)) if words else None for words in found]
    return [required_words(piece) for piece in pieces]


def _required(items: list[Any]) -> set[str] | None:
    constants = _constants
    candidates: list[set[str]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            candidates.append({"".join(run)})
            run.clear()

    for op, arg in items:
        if op is constants.LITERAL:
            run.append(chr(arg))
            continue
        if op is constants.AT:
            continue  # zero-width (\b, ^, $): the literal run goes on
        flush()
        if op is constants.SUBPATTERN:
            inner = _required(list(arg[-1]))
        elif op is constants.BRANCH:
            branches = [_required(list(branch)) for branch in arg[1]]
            inner = set().union(*(b for b in branches if b)) if all(branches) else None
        elif op in (constants.MAX_REPEAT, constants.MIN_REPEAT) and arg[0] >= 1:
            inner = _required(list(arg[2]))
        else:
            inner = None
        if inner:
            candidates.append(inner)
    flush()
    if not candidates:
        return None
    return max(candidates, key=lambda words: min(len(word) for word in words))


def top_level_alternatives(pattern: str) -> list[str]:
    """The pattern split at its top-level `|` (outside groups and classes), or [pattern]
    when it has none or cannot be split safely (global inline flags, group references)."""
    return list(pattern_store.fact("top_level_alternatives", pattern,
                                   lambda: _top_level_alternatives(pattern)))


def _top_level_alternatives(pattern: str) -> list[str]:
    pieces: list[str] = []
    depth, start, index, in_class = 0, 0, 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            index += 1
            if pattern.startswith("^", index):
                index += 1
            if pattern.startswith("]", index):  # a "]" first in a class is a member
                index += 1
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            pieces.append(pattern[start:index])
            start = index + 1
        index += 1
    pieces.append(pattern[start:])
    if len(pieces) == 1 or re.match(r"\(\?[aiLmsux]+\)", pattern) \
            or re.search(r"\\[1-9]|\(\?P=|\(\?\(", pattern):
        return [pattern]
    return pieces


def trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching the longest of `words` that starts at a position.

    Shaped as a trie (one branch per next character, a word's end an optional group), so the
    engine tries at most one branch per character and never backtracks further than a word.
    """
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # the end of a word

    escaped: dict[str, str] = {}

    def pattern_of(node: dict) -> str:
        branches = []
        for char, child in sorted(node.items()):
            if char:
                if char not in escaped:
                    escaped[char] = re.escape(char)
                branches.append(escaped[char] + pattern_of(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return f"(?:{body})?" if "" in node else body

    return pattern_of(trie)


def _matches_ascii(char: str) -> bool:
    """Whether a non-ASCII pattern character can match an ASCII one under re.I (the Kelvin
    sign matches "k", the long s "s")."""
    return any(re.fullmatch(re.escape(char), chr(code), re.I) for code in range(128))


def prefiltered(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """`pattern` behind a `Prefiltered`, typed as the pattern it stands in for (it answers
    `search` and `finditer` itself and passes the rest on)."""
    return cast("re.Pattern[str]", Prefiltered(pattern))


class Prefiltered:
    """A case-insensitive pattern that first looks, in ASCII text, for one of the literal
    words every match of it holds: most texts hold none, and a substring test is far cheaper
    than the search. (On ASCII text re.I is plain ASCII case folding, so the test is exact;
    other text is always searched.) Has `search` and `finditer`; the rest is the pattern's.
    The words are found on first use: parsing the pattern at import would cost every process
    that never reads a text with it (an MTA pipe analyzing one message).
    """

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._words: tuple[str, ...] | bool | None = False  # False: not looked for yet

    @property
    def words(self) -> tuple[str, ...] | None:
        """The lower-case words one of which an ASCII text must hold; None: no filter."""
        if self._words is False:
            self._words = self._find_words()
        return self._words  # type: ignore[return-value]

    def _find_words(self) -> tuple[str, ...] | None:
        pattern = self.pattern
        words = required_words(pattern.pattern) if not pattern.flags & re.X else None
        if words is None:
            return None
        kept = set()
        for word in words:
            if word.isascii():
                kept.add(word.lower())
            elif any(not char.isascii() and _matches_ascii(char) for char in word):
                return None  # a word ASCII text may match without holding it: no filter
            # else: a word no ASCII text can match; an ASCII text cannot hold it
        return tuple(sorted(kept))

    def _cannot_match(self, text: str) -> bool:
        words = self._words
        if words is False or words is True:
            words = self.words
        if words is None or not text.isascii():
            return False
        lowered = text.lower()
        for word in words:  # noqa: SIM110 - a loop, not any(): runs often per message
            if word in lowered:
                return False
        return True

    def search(self, text: str, *args: int) -> re.Match[str] | None:
        return None if self._cannot_match(text) else self.pattern.search(text, *args)

    def finditer(self, text: str, *args: int) -> Iterator[re.Match[str]]:
        return iter(()) if self._cannot_match(text) else self.pattern.finditer(text, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pattern, name)
