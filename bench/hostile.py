"""Benchmark: the analyzer against hostile messages within the size cap.

For each shape of tests/hostile_mail.py (at the sizes in its SHAPES) prints the message size,
the analysis wall time, the peak Python memory (tracemalloc) and the peak RSS of a fresh
process, the recipients found and the errors recorded; then the ceiling: the longest analysis
of one message and the largest peak RSS, against the targets (under 2 s, under 300 MB).
Exits 1 when a target is missed.

    python bench/hostile.py [--only SUBSTRING] [--no-tracemalloc]

Each shape runs in a child process of its own, so one shape's peak RSS is not another's,
and a shape that hangs is reported (killed after 120 s) instead of stopping the run.
tracemalloc slows allocation-heavy code several times: the wall time is measured in a run
without it, the Python peak in a second run with it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TARGET_SECONDS = 2.0
TARGET_RSS_MB = 300
HANG_SECONDS = 120


def measure(name: str, trace: bool) -> dict:
    """Run in the child: build the shape, analyze it once, return the figures."""
    import hostile_mail

    from imap_bouncer.analysis import analyze

    analyze(hostile_mail.many_recipients(2))  # imports and compiled patterns not counted
    raw = hostile_mail.SHAPES[name]()
    before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    report = analyze(raw)
    seconds = time.perf_counter() - start
    python_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    return {
        "bytes": len(raw), "seconds": seconds, "python_peak": python_peak,
        "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss_before_kb": before_rss, "kind": report.kind.value,
        "recipients": len(report.recipients),
        "errors": [error[:90] for error in report.errors],
    }


def run_child(name: str, trace: bool) -> dict | None:
    command = [sys.executable, __file__, "--child", name] + (["--trace"] if trace else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return None
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="shapes whose name contains this")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.trace)))
        return 0

    import hostile_mail

    names = [n for n in hostile_mail.SHAPES if args.only.lower() in n.lower()]
    print(f"{'shape':42} {'size':>9} {'wall s':>7} {'py peak':>8} {'RSS MB':>7} "
          f"{'kind':>8} {'rcpts':>7}  errors")
    longest = 0.0
    largest = 0.0
    failed = False
    for name in names:
        plain = run_child(name, trace=False)
        if plain is None:
            print(f"{name:42} did not finish within {HANG_SECONDS} s (or failed)")
            failed = True
            continue
        traced = None if args.no_tracemalloc else run_child(name, trace=True)
        rss_mb = plain["rss_kb"] / 1024
        peak = f"{traced['python_peak'] / 2**20:7.1f}M" if traced else "       -"
        errors = "; ".join(plain["errors"]) or "-"
        print(f"{name:42} {plain['bytes'] / 2**20:8.1f}M {plain['seconds']:7.3f} {peak} "
              f"{rss_mb:7.0f} {plain['kind']:>8} {plain['recipients']:7}  {errors[:150]}")
        longest = max(longest, plain["seconds"])
        largest = max(largest, rss_mb)
    print(f"\nlongest analysis of one message: {longest:.2f} s (target under "
          f"{TARGET_SECONDS:.0f} s); largest peak RSS: {largest:.0f} MB (target under "
          f"{TARGET_RSS_MB} MB); cores: {os.cpu_count()}, load: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if failed or longest >= TARGET_SECONDS or largest >= TARGET_RSS_MB:
        print("TARGET MISSED")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
