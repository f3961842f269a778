"""What every fault row shares, in the tests (tests/faults/test_*.py) and in the figures
script (bench/faults.py): the backlog, the real `imap-bouncer` process and what it costs,
the invariants checked after a fault, and the one table.

The invariants, looked at from outside as an operator would (a separate IMAP connection and
the database):
- every message is in exactly one folder (Processed, Unknown, Error, or still INBOX for the
  next pass), none lost, none deleted: each "[test message N]" is found exactly once, but
  those the test itself took away (another client's move or delete: `removed`);
- every message outside INBOX has its row, naming the folder it is in;
- every message is recorded exactly once: one row per message bytes and per UID, and as many
  events as every other copy of the same sample (a copy recorded twice, or its events written
  twice, stands out).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dovecot
from service_support import (
    FOLDERS,
    append,
    clean_env,
    client,
    command,
    numbered,
    rows,
    wait_for,
    write_settings,
)
from support import sample, sample_names

from imap_bouncer.ledger import Ledger

SOURCE = "INBOX"

# The project's own samples, cycled to make a backlog (Dovecot refuses a zero-byte APPEND).
SAMPLE_NAMES = [name for name in sample_names() if name != "empty.eml"]


def backlog(count: int, start: int = 0) -> list[bytes]:
    """`count` distinct messages numbered start..start+count-1, samples in turn."""
    return [numbered(sample(SAMPLE_NAMES[n % len(SAMPLE_NAMES)]), n)
            for n in range(start, start + count)]


def sample_of(number: int) -> str:
    return SAMPLE_NAMES[number % len(SAMPLE_NAMES)]


# -- the service as a real process ------------------------------------------------------------


def settings(path: Path, account: dovecot.Account, database_url: str, *, workers: int = 1,
             port: int | None = None, **imap) -> Path:
    """A settings file for the command; `port` points it at a proxy instead of Dovecot."""
    imap.setdefault("timeout", 5)
    imap.setdefault("batch_size", 20)
    target = account if port is None else _with_port(account, port)
    return write_settings(path, target, database_url, analysis={"workers": workers}, **imap)


def _with_port(account: dovecot.Account, port: int) -> dovecot.Account:
    import dataclasses
    return dataclasses.replace(account, port=port)


def postgres_url_named(url: str, name: str) -> str:
    """The URL with an application_name, so that pg_terminate_backend finds the service's
    own sessions and nobody else's on a shared server."""
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


class Watched:
    """The command in the background, in a session of its own, with its process tree sampled
    every `interval` seconds: the peak RSS of the whole tree (the command and its analysis
    worker), the processes of its session (to find orphans once it is killed)."""

    def __init__(self, args: list[str], cwd: Path, log: Path, interval: float = 0.1) -> None:
        self.log = log
        with log.open("ab") as err:
            self.process = subprocess.Popen(
                [*command(), *args], cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL,
                stdout=err, stderr=err, start_new_session=True)
        self.pid = self.process.pid
        self.peak_rss_mib = 0.0
        self.seen: set[int] = {self.pid}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._sampler.start()

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(interval)

    def sample(self) -> None:
        tree = session_processes(self.pid)
        self.seen.update(tree)
        total = 0.0
        for pid in tree:
            rss, hwm = _memory_kib(pid)
            total += rss
            self.peak_rss_mib = max(self.peak_rss_mib, hwm / 1024)
        self.peak_rss_mib = max(self.peak_rss_mib, total / 1024)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._stop.set()

    def sigterm(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def sigkill(self, grace: float = 5.0) -> list[int]:
        """SIGKILL the command itself (not its group: that is what a crash or the OOM killer
        does), then give its children `grace` seconds to notice. Returns the orphans: the
        processes of its session still alive then, which this method then kills by id so
        that nothing is left running."""
        self.sample()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._stop.set()
        orphans = wait_orphans(self.pid, self.seen, grace)
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return orphans

    def ensure_stopped(self) -> None:
        self._stop.set()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def run_command(args: list[str], cwd: Path, log: Path, timeout: float = 120) -> Watched:
    """Run the command to its end, watched; fails the caller if it hangs."""
    watched = Watched(args, cwd, log)
    try:
        watched.wait(timeout)
    except subprocess.TimeoutExpired:
        watched.ensure_stopped()
        raise AssertionError(f"{' '.join(args)} did not finish in {timeout} s\n"
                             f"{watched.log_text()[-3000:]}") from None
    return watched


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def session_processes(session: int) -> set[int]:
    """Live (non-zombie) processes whose session is `session` or whose parent chain leads to
    it (a child that made a session of its own is still found through its parent)."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z":
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if int(fields[3]) == session:
            found.add(pid)
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if pid not in found and (parent in found or parent == session):
                found.add(pid)
                changed = True
    return found


def wait_orphans(killed: int, seen: Iterable[int], grace: float) -> list[int]:
    """What of the killed process's tree is still alive after `grace` seconds."""
    deadline = time.monotonic() + grace
    while True:
        alive = sorted((session_processes(killed) | {p for p in seen if _alive(p)}) - {killed})
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _memory_kib(pid: int) -> tuple[float, float]:
    rss = hwm = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = float(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = float(line.split()[1])
    except OSError:
        pass
    return rss, hwm


# -- the invariants -----------------------------------------------------------------------------


@dataclass
class Tally:
    """What the invariants found; all zero but `messages` and `in_source` when they hold."""

    messages: int = 0  # the messages the row put into the mailbox
    lost: int = 0  # found in no folder (and not taken away by the test)
    unrecorded: int = 0  # moved out of the source folder without a row
    misfiled: int = 0  # in a folder other than the one its row names
    in_two_places: int = 0  # found more than once across the folders
    recorded_twice: int = 0  # more than one row, or more events than its sample's other copies
    in_source: int = 0  # still in INBOX (fine between passes, not after the clean run)
    stale_moved: int = 0  # rows of messages out of INBOX whose moved flag is still 0
    problems: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not (self.lost or self.unrecorded or self.misfiled or self.in_two_places
                    or self.recorded_twice)


def folder_numbers(account: dovecot.Account, folders: Iterable[str]
                   ) -> dict[str, list[tuple[int, str]]]:
    """Per folder: (test number, sha256 of the bytes) of each message, read with BODY.PEEK."""
    found: dict[str, list[tuple[int, str]]] = {}
    with client(account) as c:
        for folder in folders:
            found[folder] = []
            if not c.folder_exists(folder):
                continue
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            for start in range(0, len(uids), 500):
                for data in c.fetch(uids[start:start + 500], ["BODY.PEEK[]"]).values():
                    raw = data[b"BODY[]"]
                    numbers = re.findall(rb"\[test message (\d+)\]", raw)
                    number = int(numbers[-1]) if numbers else -1
                    found[folder].append((number, hashlib.sha256(raw).hexdigest()))
            c.close_folder()
    return found


def check(account: dovecot.Account, database_url: str, total: int, *,
          removed: Iterable[int] = (), extra_folders: Iterable[str] = (),
          settled: bool = True, source: str = SOURCE,
          group: Callable[[int], str] = sample_of) -> Tally:
    """The invariants over messages 0..total-1; `removed`: taken away by the test itself
    (they may be anywhere or nowhere). settled: a clean run came last, so nothing may be
    left in INBOX and every row of a filed message must say it was moved. `group`: which
    messages analyze alike (same events), by number."""
    removed = set(removed)
    extra = list(extra_folders)
    places = folder_numbers(account, [source, *FOLDERS, *extra])
    tally = Tally(messages=total)
    where: dict[int, list[str]] = {}
    sha_of: dict[str, int] = {}
    for folder, found in places.items():
        for number, digest in found:
            where.setdefault(number, []).append(folder)
            sha_of[digest] = number
    ledger = Ledger.open(database_url, upgrade=False)
    try:
        recorded = rows(ledger)
    finally:
        ledger.close()
    rows_of: dict[int, list] = {}
    for row in recorded:
        number = sha_of.get(row.sha256)
        if number is not None:
            rows_of.setdefault(number, []).append(row)
    events_of: dict[str, Counter[int]] = {}
    for number, its_rows in rows_of.items():
        events_of.setdefault(group(number), Counter())[its_rows[0].events] += 1
    for number in range(total):
        folders = where.get(number, [])
        if number in removed:
            continue
        if not folders:
            tally.lost += 1
            tally.problems.append(f"message {number} ({sample_of(number)}) is in no folder")
            continue
        if len(folders) > 1:
            tally.in_two_places += 1
            tally.problems.append(f"message {number} is in {folders}")
        folder = folders[0]
        its_rows = rows_of.get(number, [])
        if len(its_rows) > 1:
            tally.recorded_twice += 1
            tally.problems.append(f"message {number} has {len(its_rows)} rows")
        if folder in extra:
            continue
        if folder == source:
            tally.in_source += 1
            continue
        if not its_rows:
            tally.unrecorded += 1
            tally.problems.append(f"message {number} is in {folder} without a row")
            continue
        row = its_rows[0]
        if row.target_folder != folder:
            tally.misfiled += 1
            tally.problems.append(f"message {number} is in {folder}, its row says "
                                  f"{row.target_folder}")
        usual = events_of[group(number)].most_common(1)[0][0]
        if row.events > usual:
            tally.recorded_twice += 1
            tally.problems.append(f"message {number} has {row.events} events, its sample "
                                  f"{group(number)} usually {usual}")
        if not row.moved:
            tally.stale_moved += 1
    if settled and tally.in_source:
        tally.problems.append(f"{tally.in_source} message(s) still in {source} after the "
                              "clean run")
    if settled and tally.stale_moved:
        tally.problems.append(f"{tally.stale_moved} row(s) of filed messages still say "
                              "moved = 0")
    return tally


def assert_holds(tally: Tally, *, settled: bool = True, moved_flags: bool = True) -> None:
    problems = "\n".join(tally.problems[:30])
    assert tally.holds, problems
    if settled:
        assert tally.in_source == 0, problems
        if moved_flags:
            assert tally.stale_moved == 0, problems


def wait_filed(account: dovecot.Account, total: int, timeout: float, watched: Watched,
               removed: int = 0, source: str = SOURCE) -> None:
    """Until INBOX is empty and the target folders hold `total - removed` messages."""
    def done() -> bool:
        with client(account) as c:
            numbers = {f: c.folder_status(f, [b"MESSAGES"])[b"MESSAGES"]
                       if c.folder_exists(f) else 0 for f in (source, *FOLDERS)}
        return numbers[source] == 0 and sum(numbers.values()) >= total - removed
    wait_for(done, timeout, "every message filed", interval=0.2, log=watched.log)


# -- the table ------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a fault kind and what came of it."""

    kind: str
    injected: int = 0
    messages: int = 0
    lost: int = 0
    twice: int = 0
    forged: str = "-"  # states changed by forged bounces with require_signed on (their row)
    genuine_changes: int | None = None  # states changed by the signed bounce beside them
    longest_analysis: float | None = None  # seconds, of one message
    peak_rss_mib: float = 0.0  # of the service's process tree
    orphans: int = 0
    notes: list[str] = field(default_factory=list)
    tally: Tally | None = None  # the invariants' last look, for the tests' assertions
    silent_cuts: int = 0  # recipients dropped with no error recorded (content rows)

    def add(self, tally: Tally) -> None:
        self.tally = tally
        self.messages = max(self.messages, tally.messages)
        self.lost += tally.lost + tally.unrecorded
        self.twice += tally.recorded_twice + tally.in_two_places
        if tally.misfiled:
            self.notes.append(f"{tally.misfiled} misfiled")
        if tally.stale_moved:
            self.notes.append(f"{tally.stale_moved} stale moved flag(s)")
        if tally.in_source:
            self.notes.append(f"{tally.in_source} left in INBOX")

    def watched(self, *processes: Watched) -> None:
        for process in processes:
            self.peak_rss_mib = max(self.peak_rss_mib, process.peak_rss_mib)


HEADERS = ("fault kind", "injected", "messages", "lost", "recorded twice",
           "forged -> state", "longest analysis", "peak RSS", "orphans")


def table(rows_: Iterable[Row]) -> str:
    lines = []
    for row in rows_:
        longest = "-" if row.longest_analysis is None else f"{row.longest_analysis:.2f} s"
        lines.append((row.kind, str(row.injected), str(row.messages), str(row.lost),
                      str(row.twice), row.forged, longest, f"{row.peak_rss_mib:.0f} MB",
                      str(row.orphans)))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(HEADERS)]
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in lines]
    notes = [f"  {row.kind}: {'; '.join(row.notes)}" for row in rows_ if row.notes]
    return "\n".join(out + (["notes:", *notes] if notes else []))


def fill(account: dovecot.Account, count: int, start: int = 0) -> None:
    append(account, backlog(count, start))
