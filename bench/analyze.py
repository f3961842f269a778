"""Benchmark: messages/s and peak memory of the analyzer over a folder of messages.

Prints, in one run and over the same messages held in memory, the analyzer's rate and the
stdlib parser's (the floor: what parsing alone costs with `email.message_from_bytes`, both
with compat32 and with policy.default), each on one core, plus the analyzer's peak Python
memory (tracemalloc), the process's peak RSS, and the time and memory of a hostile message
(100,000 MIME parts). Exits 1 when the analyzer's rate is below the target.

    python bench/analyze.py [FOLDER] [--rounds N] [--min-seconds S] [--target N]

FOLDER defaults to ../shared/corpus/messages beside the repository, else tests/samples.

How the figure is made trustworthy:
- the process is pinned to one CPU (the target is "on one core");
- every round starts with the analyzer's caches emptied (functools caches of the analysis
  modules), so no round is served answers remembered from an earlier pass over the same
  messages: each round reads the folder as a mailbox of messages seen for the first time;
- each round is timed twice, by the wall clock and by the process's CPU time; the median of
  the rounds is reported, with the spread. The verdict uses the CPU-time median: on a machine
  shared with other work the wall clock also counts the time the core was given to others
  (the load average is printed; on an idle machine the two agree);
- the floors are measured the same way in the same run, so the ratio analyzer/floor is
  comparable between machines.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import gc
import importlib
import os
import pkgutil
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from folders import default_folder, message_files  # noqa: E402  (bench/folders.py)

import imap_bouncer.analysis as analysis  # noqa: E402
from imap_bouncer.analysis import analyze  # noqa: E402

TARGET = 5000  # messages/s on one core


def load(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in message_files(folder)]


def analysis_caches() -> list:
    """The functools caches of every analysis module (lru_cache wrappers have cache_clear)."""
    modules = [analysis]
    for package in (analysis, analysis.formats, analysis.formats._lib):
        modules += [importlib.import_module(f"{package.__name__}.{info.name}")
                    for info in pkgutil.iter_modules(package.__path__)]
    found = {}
    for module in modules:
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                found[id(value)] = value
    return list(found.values())


def rate(label: str, work: Callable[[bytes], object], messages: list[bytes], rounds: int,
         min_seconds: float, before_pass: Callable[[], None] = lambda: None) -> float:
    """Median over rounds of messages/s by CPU time (and by wall time, printed); a round
    repeats passes over all messages until it lasts min_seconds."""
    by_cpu: list[float] = []
    by_wall: list[float] = []
    for _ in range(rounds):
        count, cpu, wall = 0, 0.0, 0.0
        while wall < min_seconds:
            before_pass()
            gc.collect()
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for raw in messages:
                work(raw)
            cpu += time.process_time() - start_cpu
            wall += time.perf_counter() - start_wall
            count += len(messages)
        by_cpu.append(count / cpu)
        by_wall.append(count / wall)
    median = statistics.median(by_cpu)
    print(f"  {label:<44} {median:>9,.0f} messages/s (CPU time; rounds {min(by_cpu):,.0f}"
          f"-{max(by_cpu):,.0f}); wall clock {statistics.median(by_wall):,.0f}")
    return median


def hostile_message(parts: int) -> bytes:
    """A multipart report with `parts` tiny parts: it must be read in bounded time."""
    body = b"".join(b"--b\nContent-Type: text/plain\n\nx\n" for _ in range(parts))
    return (b"From: MAILER-DAEMON@example.org\nSubject: Undelivered Mail\n"
            b"Content-Type: multipart/mixed; boundary=b\n\n" + body + b"--b--\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=default_folder())
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--target", type=int, default=TARGET)
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: not a directory")
    messages = load(args.folder)
    if not messages:
        parser.error(f"{args.folder}: no message files")
    pinned = "not pinned (no sched_setaffinity)"
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})  # one core, as the target says
        pinned = f"pinned to CPU {core}"
    size = sum(map(len, messages))
    print(f"{len(messages)} messages, {size / len(messages) / 1024:.1f} KB average, "
          f"from {args.folder}")
    print(f"  one core ({pinned}); {args.rounds} rounds of >= {args.min_seconds:g} s; "
          f"load average {os.getloadavg()[0]:.2f}")

    caches = analysis_caches()

    def empty_caches() -> None:
        for cache in caches:
            cache.cache_clear()

    for raw in messages:  # imports, compiled patterns: once per process, not per message
        analyze(raw)
    analyzer = rate("imap-bouncer analyze()", analyze, messages, args.rounds,
                    args.min_seconds, empty_caches)
    floor = rate("floor: email.message_from_bytes (compat32)", email.message_from_bytes,
                 messages, args.rounds, args.min_seconds)
    rate("floor: email.message_from_bytes (default)",
         lambda raw: email.message_from_bytes(raw, policy=email.policy.default),
         messages, 3, 0.5)
    print(f"  analyzer / compat32 floor: {analyzer / floor:.2f}")

    empty_caches()
    tracemalloc.start()
    for raw in messages:
        analyze(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    largest = max(map(len, messages))
    print(f"  peak Python memory while analyzing: {peak / 1024 / 1024:.1f} MiB "
          f"(largest message {largest / 1024:.0f} KB)")

    hostile = hostile_message(100_000)
    tracemalloc.start()
    start = time.process_time()
    report = analyze(hostile)
    seconds = time.process_time() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    capped = any("MIME parts" in error for error in report.errors)
    print(f"  hostile message, 100,000 MIME parts ({len(hostile) / 1024 / 1024:.1f} MiB): "
          f"{seconds * 1000:.0f} ms, peak Python memory {peak / 1024 / 1024:.1f} MiB, "
          f"{'parts capped (noted in errors)' if capped else 'NOT capped'}")
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"  peak RSS {rss_kb / 1024:.0f} MiB")

    verdict = "meets" if analyzer >= args.target else "BELOW"
    print(f"  target >= {args.target:,} messages/s on one core: {verdict}")
    sys.exit(0 if analyzer >= args.target else 1)


if __name__ == "__main__":
    main()
