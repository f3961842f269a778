"""Compiled regular expressions kept on disk between processes, as .pyc files keep bytecode.

Why: the analyzers use about a thousand patterns, and Python's `re` compiles each in Python
code (a parser, then a compiler) before the C engine takes the result. For a process that
reads a folder that is some 175 ms; the engine itself accepts the compiled form in well under
5 ms for all of them. `analyze` and `ingest -` start a process per call, so the compiled
forms are stored once (`imap-bouncer prepare`, run by the setup
scripts and the Dockerfile, or by any process that can write the store) and read at start.

The store is keyed by the interpreter's version and the engine's magic number: another
Python, or a changed pattern, simply compiles again the usual way. Anything unexpected (no
store, a damaged one, an engine that refuses a code) falls back to `re.compile`, so the store
can only make start-up faster, never change what a pattern matches.
"""

from __future__ import annotations

import array
import atexit
import marshal
import os
import re
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

try:  # the engine's own entry points: private, so every use below has a fallback
    import _sre
    from re import _compiler, _parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - another Python implementation
    _sre = None  # type: ignore[assignment,unused-ignore]

_FORMAT = 1
_MAGIC = b"IBps"  # the file's first bytes; then a CRC-32 of the rest, then the marshal data
# What makes a stored code valid: this interpreter and this engine.
_KEY = (_FORMAT, sys.implementation.cache_tag, tuple(sys.version_info[:3]),
        getattr(_sre, "MAGIC", 0), getattr(_sre, "CODESIZE", 0))
_CODE_TYPE = next((t for t in "IL" if array.array(t).itemsize == getattr(_sre, "CODESIZE", 4)),
                  "I")
T = TypeVar("T")
_NAME = f"patterns.{sys.implementation.cache_tag}.bin"

# (pattern, flags) -> (flags with the pattern's inline ones, code as bytes, groups,
# groupindex, indexgroup): the arguments of `_sre.compile`. Facts about a pattern (`fact`)
# share the dict under (kind, pattern, "fact").
Entry = tuple[int, bytes, int, dict[str, int], tuple[str | None, ...]]

_entries: dict[tuple[Any, ...], Any] | None = None  # Entry, or a fact's value
_added = 0  # entries compiled by this process that the store lacked
_used: set[tuple[Any, ...]] = set()  # what this process asked for


def locations() -> list[Path]:
    """Where the store may be: beside the package (written at install), else the user's cache
    (`$IMAP_BOUNCER_CACHE_DIR`, `$XDG_CACHE_HOME/imap-bouncer`, `~/.cache/imap-bouncer`)."""
    found = [Path(__file__).resolve().parent / "__pycache__" / _NAME]
    configured = os.environ.get("IMAP_BOUNCER_CACHE_DIR")
    if configured:
        found.append(Path(configured) / _NAME)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        found.append(Path(base) / "imap-bouncer" / _NAME)
    return found


def compile(pattern: str | bytes, flags: int) -> re.Pattern[Any]:
    """`re.compile(pattern, flags)`, from the store when it holds the pattern."""
    flags = int(flags)
    entries = _loaded()
    _used.add((pattern, flags))
    entry = entries.get((pattern, flags))
    if entry is not None:
        try:
            return _sre.compile(pattern, entry[0], array.array(_CODE_TYPE, entry[1]).tolist(),
                                entry[2], entry[3], entry[4])
        except Exception:  # a damaged entry: compile as usual below
            del entries[(pattern, flags)]
    return _compile_and_keep(pattern, flags, entries)


def fact(kind: str, pattern: str, compute: Callable[[], T]) -> T:
    """What `compute()` finds about a pattern (its required words, say), remembered in the
    store like the compiled pattern: it depends on the pattern's text alone. The value must
    be marshallable (str, int, None, tuples, lists, dicts of them)."""
    entries = _loaded()
    key = (kind, pattern, "fact")
    _used.add(key)
    if key in entries:
        return entries[key]  # type: ignore[no-any-return,unused-ignore]
    value = compute()
    entries[key] = value
    _note_added()
    return value


def _compile_and_keep(pattern: str | bytes, flags: int,
                      entries: dict[tuple[Any, ...], Any]) -> re.Pattern[Any]:
    if _sre is None or not isinstance(pattern, str | bytes) or flags & re.DEBUG:
        return re.compile(pattern, flags)
    try:
        parsed = _parser.parse(pattern, flags)
        code = [int(op) for op in _compiler._code(parsed, flags)]
        groupindex = dict(parsed.state.groupdict)
        indexgroup: list[str | None] = [None] * parsed.state.groups
        for name, index in groupindex.items():
            indexgroup[index] = name
        entry: Entry = (int(flags | parsed.state.flags), array.array(_CODE_TYPE, code).tobytes(),
                        parsed.state.groups - 1, groupindex, tuple(indexgroup))
        compiled = _sre.compile(pattern, entry[0], code, entry[2], entry[3], entry[4])
    except re.error:
        raise
    except Exception:  # the engine's internals changed: the public way
        return re.compile(pattern, flags)
    entries[(pattern, flags)] = entry
    _note_added()
    return compiled


def _note_added() -> None:
    """One more entry the store lacked: written when this process exits."""
    global _added
    _added += 1
    if _added == 1:
        atexit.register(save)


def _loaded() -> dict[tuple[Any, ...], Any]:
    global _entries
    if _entries is None:
        _entries = {}
        for path in reversed(locations()):  # the package's store wins where both hold one
            _entries.update(_read(path))
    return _entries


def _read(path: Path) -> dict[tuple[Any, ...], Any]:
    """A store's entries; none when it is missing, damaged (its checksum) or another's.

    The checksum matters: the engine accepts many a wrong code without complaint, and a
    pattern that silently matches something else would change verdicts."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    if data[:4] != _MAGIC or int.from_bytes(data[4:8], "big") != zlib.crc32(data[8:]):
        return {}
    try:
        key, entries = marshal.loads(data[8:])
    except (EOFError, ValueError, TypeError):
        return {}
    if key != _KEY or not isinstance(entries, dict):
        return {}
    return entries


def save() -> Path | None:
    """Write what this process compiled into the first store it may write; the path, or None
    when none is writable (a read-only install with no cache directory: nothing is lost but
    the next process's head start)."""
    global _added
    if not _added or _entries is None:
        return None
    for path in locations():
        if _write(path, {**_read(path), **_entries}):
            _added = 0
            return path
    return None


def _write(path: Path, entries: dict[tuple[Any, ...], Any]) -> bool:
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".patterns-")
        payload = marshal.dumps((_KEY, entries))
        with os.fdopen(handle, "wb") as out:
            out.write(_MAGIC + zlib.crc32(payload).to_bytes(4, "big") + payload)
        os.chmod(temporary, 0o644)  # read by every user that runs the command
        os.replace(temporary, path)  # readers see the old store or the new, never half
    except OSError:
        return False
    return True


def build(patterns: Sequence[Any]) -> tuple[int, int, Path | None]:
    """Compile `patterns` (objects with `pattern` and `flags`: every LazyPattern of the
    analyzers) and store exactly what this process used (patterns changed since go): (how
    many, how many the store lacked, where it was written: None when it was up to date, or
    when nowhere could be written and the second figure is not 0)."""
    for pattern in patterns:  # through the store, compiled in this process already or not
        try:
            compile(pattern.pattern, pattern.flags)
        except re.error:
            continue  # fails where it is used, as it would without a store
    # All this process asked for: also patterns made at import and replaced by what they
    # built (a pre-filter keeps the compiled pattern, not the lazy one).
    current = {key: _loaded()[key] for key in _used if key in _loaded()}
    for path in locations():
        held = _read(path)
        # Up to date when it holds all of it. (It may hold more that this run did not ask:
        # facts found on the way to a stored one; they go when something new is written.)
        if all(key in held and held[key] == value for key, value in current.items()):
            return len(patterns), 0, None
        if _write(path, current):
            return len(patterns), len(current.keys() - held.keys()), path
    return len(patterns), len(current), None
