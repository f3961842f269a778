"""Where `analyze` reads messages from: files, Maildirs, directories, mbox files, stdin.

Yields one message at a time, so a large mbox never sits in memory whole: `iter_inputs` names
a directory's files without reading them (whoever analyzes a file reads it), `iter_messages`
reads each. Unreadable paths raise `SourceError` naming the path; the caller reports it and
goes on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


class SourceError(Exception):
    """A path that cannot be read as messages."""


class Input(NamedTuple):
    """One message to analyze: its bytes, or (`raw` None) the file `source` that holds them,
    read where it is analyzed (a worker process reads its own files)."""

    source: str
    raw: bytes | None = None

    def read(self) -> bytes:
        if self.raw is not None:
            return self.raw
        try:
            with open(self.source, "rb", buffering=0) as handle:
                return handle.readall()
        except OSError as err:
            raise SourceError(f"{self.source}: {err.strerror or err}") from err


def iter_messages(path: str) -> Iterator[tuple[str, bytes]]:
    for item in iter_inputs(path):
        yield item.source, item.read()


def iter_inputs(path: str) -> Iterator[Input]:
    """The messages of one path: stdin, a file, an mbox file, a Maildir or a directory. The
    files of a directory are named, not read; SourceError for a path that cannot be read."""
    if path == "-":
        yield Input("-", sys.stdin.buffer.read())
        return
    target = Path(path)
    if not target.exists():
        raise SourceError(f"{path}: no such file or directory")
    if target.is_dir():
        yield from _iter_directory(target)
        return
    try:
        with target.open("rb") as handle:
            head = handle.read(5)
            handle.seek(0)
            if head == b"From ":
                yield from _iter_mbox(path, handle)
            else:
                yield Input(path, handle.read())
    except OSError as err:
        raise SourceError(f"{path}: {err.strerror or err}") from err


def _iter_directory(directory: Path) -> Iterator[Input]:
    """A Maildir (cur/ and new/) or a plain directory of message files, in name order."""
    subdirs = [directory / "cur", directory / "new"]
    folders = subdirs if all(d.is_dir() for d in subdirs) else [directory]
    try:
        entries = sorted(
            entry.path for folder in folders for entry in os.scandir(folder)
            if entry.is_file() and not entry.name.startswith(".")
        )
    except OSError as err:
        raise SourceError(f"{directory}: {err.strerror or err}") from err
    for name in entries:
        yield Input(name)


def _iter_mbox(path: str, handle) -> Iterator[Input]:
    """mboxrd/mboxo: messages start at "From " lines; ">From " quoting is undone."""
    lines: list[bytes] = []
    index = 0
    previous_blank = True
    for line in handle:
        if line.startswith(b"From ") and previous_blank:
            if lines:
                index += 1
                yield Input(f"{path}#{index}", _mbox_message(lines))
            lines = []
        else:
            lines.append(line)
        previous_blank = line in (b"\n", b"\r\n")
    if lines:
        index += 1
        yield Input(f"{path}#{index}", _mbox_message(lines))


def _mbox_message(lines: list[bytes]) -> bytes:
    unquoted = [line[1:] if line.startswith(b">") and line.lstrip(b">").startswith(b"From ")
                else line for line in lines]
    return b"".join(unquoted)
