"""Where `analyze` reads messages from: files, Maildirs, directories, mbox files, stdin.

Yields (source name, raw bytes) one message at a time, so a large mbox never sits in memory
whole. Unreadable paths raise `SourceError` naming the path; the caller reports it and goes on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path


class SourceError(Exception):
    """A path that cannot be read as messages."""


def iter_messages(path: str) -> Iterator[tuple[str, bytes]]:
    if path == "-":
        yield "-", sys.stdin.buffer.read()
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
                yield path, handle.read()
    except OSError as err:
        raise SourceError(f"{path}: {err.strerror or err}") from err


def _iter_directory(directory: Path) -> Iterator[tuple[str, bytes]]:
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
        try:
            with open(name, "rb") as handle:
                data = handle.read()
        except OSError as err:
            raise SourceError(f"{name}: {err.strerror or err}") from err
        yield name, data


def _iter_mbox(path: str, handle) -> Iterator[tuple[str, bytes]]:
    """mboxrd/mboxo: messages start at "From " lines; ">From " quoting is undone."""
    lines: list[bytes] = []
    index = 0
    previous_blank = True
    for line in handle:
        if line.startswith(b"From ") and previous_blank:
            if lines:
                index += 1
                yield f"{path}#{index}", _mbox_message(lines)
            lines = []
        else:
            lines.append(line)
        previous_blank = line in (b"\n", b"\r\n")
    if lines:
        index += 1
        yield f"{path}#{index}", _mbox_message(lines)


def _mbox_message(lines: list[bytes]) -> bytes:
    unquoted = [line[1:] if line.startswith(b">") and line.lstrip(b">").startswith(b"From ")
                else line for line in lines]
    return b"".join(unquoted)
