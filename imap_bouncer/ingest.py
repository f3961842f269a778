"""One message piped in by the MTA (`imap-bouncer ingest -`), recorded exactly as a message
from a mailbox is: the same analysis, the same `Ledger.record_batch` (events, send states,
notifications, in one transaction).

Where it is recorded: the mailbox name `[ingest] mailbox` ("pipe"), UIDVALIDITY 0 (never an
IMAP server's: RFC 3501 makes UIDVALIDITY non-zero) and a UID taken from the sha256 of the
message. The MTA retries a delivery whose command failed or timed out, with the same bytes: the
retry finds its row and records nothing twice. A leading mbox "From " line is not part of the
message and is left out of both the hash and the record: Postfix writes the time of the
delivery attempt there, which would make every retry look like a new message.

When it happened: an event's time is its bounce's arrival (the policy counts soft bounces per
day), here the date of the topmost Received header, which the MTA wrote when the bounce came
in; a delivery retried after a day of database trouble is still counted on the day it came.

Exit codes, for the MTA (sysexits(3)), are decided by the command (cli.py); this module raises
`EmptyInput` for nothing to record and `LedgerError` when the database fails.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, BinaryIO

from . import analysis
from .report import Report

if TYPE_CHECKING:  # the command reads the message before it loads the database layer
    from .ledger import Ledger, Recorded

log = logging.getLogger(__name__)

# sysexits(3): what the MTA makes of the command's exit status. Postfix and Exim (its default
# temp_errors) defer on EX_TEMPFAIL and keep the message; the others bounce it.
EX_OK = 0
EX_NOINPUT = 66  # no message at all
EX_TEMPFAIL = 75  # not recorded now: the MTA keeps the message and tries again
EX_CONFIG = 78  # bad settings

UIDVALIDITY = 0
_READ = 1 << 16
_UID_MASK = (1 << 63) - 1  # UIDs are stored as signed 64-bit integers
_PROBES = 8  # UIDs tried when another message's digest gave the same UID (never seen)


class EmptyInput(Exception):
    """Nothing to record: no bytes, or only blank lines."""


@dataclass(frozen=True, slots=True)
class Piped:
    """A message as read from the pipe: at most `max_size` bytes of it to analyze, and the
    sha256 and size of all of it."""

    raw: bytes
    sha256: str
    size: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class Ingested:
    recorded: Recorded  # created False: an earlier delivery of the same message recorded it
    report: Report


def read_message(stream: BinaryIO, max_size: int) -> Piped:
    """Read the stream to its end in pieces: all of it is hashed, at most `max_size` bytes
    are kept. A leading mbox "From " line is dropped. EmptyInput when nothing is left."""
    head = stream.read(_READ) or b""
    if head.startswith(b"From "):
        while b"\n" not in head:
            more = stream.read(_READ)
            if not more:
                break
            head += more
        head = head.partition(b"\n")[2]
    digest = hashlib.sha256()
    kept: list[bytes] = []
    size, room = 0, max_size
    piece = head
    while piece:
        digest.update(piece)
        size += len(piece)
        if room > 0:
            kept.append(piece[:room])
            room -= len(kept[-1])
        piece = stream.read(_READ)
    raw = b"".join(kept)
    if not raw.strip():
        raise EmptyInput("no message: the input is empty")
    return Piped(raw=raw, sha256=digest.hexdigest(), size=size, truncated=size > len(raw))


def uid_for(sha256: str, probe: int = 0) -> int:
    """The UID of a piped-in message: its digest's first 63 bits (then the next ones up,
    should another message's digest have taken that UID)."""
    return (int(sha256[:16], 16) + probe) & _UID_MASK


def arrival(raw: bytes) -> datetime | None:
    """When the MTA received the message: the date of the topmost Received header; None when
    there is none or it cannot be read."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        received = headers.get_all("Received") or []
        if not received:
            return None
        when = parsedate_to_datetime(str(received[0]).rpartition(";")[2].strip())
    except (ValueError, TypeError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": a time in UTC from an unknown zone (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return when


def ingest(piped: Piped, ledger: Ledger, options: analysis.Options, mailbox: str,
           now: datetime | None = None) -> Ingested:
    """Analyze and record one piped-in message; LedgerError when the database fails."""
    from .ledger import LedgerError, MessageItem  # loaded already: `ledger` is open

    now = now or datetime.now(UTC)
    report = analysis.analyze(piped.raw, options)
    errors = []
    if piped.truncated:
        errors.append(f"larger than max_message_size: analyzed from the first "
                      f"{len(piped.raw)} of {piped.size} bytes")
    arrived = arrival(piped.raw)
    for probe in range(_PROBES):
        item = MessageItem(
            mailbox=mailbox, uidvalidity=UIDVALIDITY, uid=uid_for(piped.sha256, probe),
            target_folder="", raw=piped.raw, report=report, errors=tuple(errors),
            message_id=report.message_id, internal_date=min(arrived, now) if arrived else now,
            received_at=now, analyzer_version=analysis.ANALYZER_VERSION,
            sha256=piped.sha256, size=piped.size)
        [recorded] = ledger.record_batch([item])
        if recorded.sha256 in (None, piped.sha256):
            _log(recorded, report, mailbox)
            return Ingested(recorded, report)
        log.warning("%s UID %s already holds another message (sha256 %s): trying the next UID",
                    mailbox, item.uid, recorded.sha256)
    raise LedgerError(f"no free UID for sha256 {piped.sha256} after {_PROBES} tries")


def _log(recorded: Recorded, report: Report, mailbox: str) -> None:
    message_id = report.message_id or "(no Message-ID)"
    if not recorded.created:
        log.info("%s %s: already recorded (message %s): nothing recorded again", mailbox,
                 message_id, recorded.id)
    elif report.kind == "unknown":
        log.info("%s %s: not recognised, recorded as unknown (message %s)", mailbox,
                 message_id, recorded.id)
    else:
        log.info("%s %s: %s, %d recipient(s), recorded (message %s)", mailbox, message_id,
                 report.kind, len(report.recipients), recorded.id)


__all__ = ["EX_CONFIG", "EX_NOINPUT", "EX_OK", "EX_TEMPFAIL", "EmptyInput", "Ingested", "Piped",
           "arrival", "ingest", "read_message", "uid_for"]
