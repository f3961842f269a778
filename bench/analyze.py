"""Benchmark: messages/s and peak memory of the analyzer over a folder of messages.

Prints, in one run and over the same messages held in memory, the analyzer's rate and the
stdlib parser's (the floor: what parsing alone costs with `email.message_from_bytes`, both
with compat32 and with policy.default), each on one core, plus the analyzer's peak Python
memory (tracemalloc) and the process's peak RSS.

    python bench/analyze.py [FOLDER] [--rounds N] [--min-seconds S]

FOLDER defaults to ../shared/corpus/messages beside the repository, else tests/samples.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imap_bouncer.analysis import analyze  # noqa: E402


def load(folder: Path) -> list[bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [p.read_bytes() for p in files]


def rate(label: str, work, messages: list[bytes], rounds: int, min_seconds: float) -> float:
    """Best of `rounds` runs over all messages (each run repeated to last min_seconds)."""
    best = 0.0
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while True:
            for raw in messages:
                work(raw)
            count += len(messages)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = max(best, count / elapsed)
    print(f"  {label:<44} {best:>9,.0f} messages/s")
    return best


def main() -> None:
    default = ROOT.parent / "shared" / "corpus" / "messages"
    if not default.is_dir():
        default = ROOT / "tests" / "samples"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=default)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: not a directory")
    messages = load(args.folder)
    if not messages:
        parser.error(f"{args.folder}: no message files")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    size = sum(map(len, messages))
    print(f"{len(messages)} messages, {size / len(messages) / 1024:.1f} KB average, "
          f"from {args.folder}")

    analyzer = rate("imap-bouncer analyze()", analyze, messages, args.rounds, args.min_seconds)
    rate("floor: email.message_from_bytes (compat32)", email.message_from_bytes, messages,
         args.rounds, args.min_seconds)
    rate("floor: email.message_from_bytes (default)",
         lambda raw: email.message_from_bytes(raw, policy=email.policy.default),
         messages, args.rounds, 0.5)

    tracemalloc.start()
    for raw in messages:
        analyze(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    largest = max(map(len, messages))
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"  peak Python memory while analyzing: {peak / 1024 / 1024:.1f} MiB "
          f"(largest message {largest / 1024:.0f} KB); peak RSS {rss_kb / 1024:.0f} MiB")
    target = 2500
    verdict = "meets" if analyzer >= target else "BELOW"
    print(f"  target >= {target:,} messages/s on one core: {verdict}")


if __name__ == "__main__":
    main()
