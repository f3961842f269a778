"""The standard `re`, except that `compile` defers the work to a pattern's first use.

The analyzers keep about a thousand patterns as module constants (the formats' marks, the
phrase tables), and one message needs a small part of them. Compiling them all at import was
most of a process's start-up, which an MTA pipe pays per message (`ingest -`, `analyze`).
A `LazyPattern` knows its `pattern` and `flags` at once; the first call of one of its methods
compiles it and puts the compiled pattern's own bound methods in place, so later calls cost
what a compiled pattern's cost. Modules write `from . import lazy_re as re` and use it as `re`.
The compiling itself goes through `pattern_store`, which keeps compiled forms on disk.
"""

from __future__ import annotations

import re as _re
import weakref

# The module stands in for `re`: its flags, escape, error and types as they are.
from re import (  # noqa: F401
    ASCII,
    DOTALL,
    IGNORECASE,
    MULTILINE,
    UNICODE,
    VERBOSE,
    A,
    I,
    M,
    Match,
    Pattern,
    RegexFlag,
    S,
    U,
    X,
    error,
    escape,
)
from typing import Any, cast, overload

from . import pattern_store

_METHODS = ("search", "match", "fullmatch", "finditer", "findall", "sub", "subn", "split")


class LazyPattern:
    """A regular expression compiled when it is first used."""

    __slots__ = ("__weakref__", "_compiled", "findall", "finditer", "flags", "fullmatch",
                 "match", "pattern", "search", "split", "sub", "subn")

    def __init__(self, pattern: str, flags: int) -> None:
        self.pattern = pattern
        # As a compiled pattern reports them: str patterns are Unicode unless told ASCII.
        if isinstance(pattern, str) and not flags & _re.ASCII:
            flags |= _re.UNICODE
        self.flags = int(flags)
        self._compiled: _re.Pattern[str] | None = None
        _EVERY.add(self)

    def compiled(self) -> _re.Pattern[str]:
        if self._compiled is None:
            compiled = pattern_store.compile(self.pattern, self.flags)
            for name in _METHODS:
                setattr(self, name, getattr(compiled, name))
            self._compiled = compiled
        return self._compiled

    def __getattr__(self, name: str) -> Any:
        # Only reached for what is not set yet: a method before the first use, or an
        # attribute of the compiled pattern (groups, groupindex).
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.compiled(), name)

    def __repr__(self) -> str:
        return f"lazy_re.compile({self.pattern!r}, {self.flags!r})"


# Every pattern alive, for `pattern_store.build`: the analyzers make theirs at import, once;
# a pattern made and dropped (a test's, a setting's) leaves with its last reference.
_EVERY: weakref.WeakSet[LazyPattern] = weakref.WeakSet()


def every_pattern() -> list[LazyPattern]:
    return list(_EVERY)


@overload
def compile(pattern: str | Pattern[str], flags: int = 0) -> Pattern[str]: ...
@overload
def compile(pattern: bytes | Pattern[bytes], flags: int = 0) -> Pattern[bytes]: ...
def compile(pattern: Any, flags: int = 0) -> Pattern[Any]:
    """A `LazyPattern`, typed as the compiled pattern it stands in for."""
    if isinstance(pattern, LazyPattern):
        return cast("Pattern[Any]", pattern)
    if isinstance(pattern, _re.Pattern):
        pattern, flags = pattern.pattern, pattern.flags | flags
    return cast("Pattern[Any]", LazyPattern(pattern, int(flags)))


def _real(pattern: Any) -> Any:
    return pattern.compiled() if isinstance(pattern, LazyPattern) else pattern


# The module-level functions take a pattern object as well as a string.
def search(pattern: Any, string: Any, flags: int = 0) -> Any:
    return _re.search(_real(pattern), string, flags)


def match(pattern: Any, string: Any, flags: int = 0) -> Any:
    return _re.match(_real(pattern), string, flags)


def fullmatch(pattern: Any, string: Any, flags: int = 0) -> Any:
    return _re.fullmatch(_real(pattern), string, flags)


def finditer(pattern: Any, string: Any, flags: int = 0) -> Any:
    return _re.finditer(_real(pattern), string, flags)


def findall(pattern: Any, string: Any, flags: int = 0) -> list[Any]:
    return _re.findall(_real(pattern), string, flags)


def sub(pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0) -> str:
    return _re.sub(_real(pattern), repl, string, count=count, flags=flags)


def subn(pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0) -> tuple[str, int]:
    return _re.subn(_real(pattern), repl, string, count=count, flags=flags)


def split(pattern: Any, string: Any, maxsplit: int = 0, flags: int = 0) -> list[Any]:
    return _re.split(_real(pattern), string, maxsplit=maxsplit, flags=flags)
