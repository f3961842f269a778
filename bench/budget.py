"""Benchmark: what the analysis time budget costs (imap_bouncer/analysis_workers.py).

Prints, for one worker process: how long a worker takes to start (interpreter, analyzers,
ready), the time per message of a batch of ordinary samples (the per-message round trip to
the worker included) against the same messages analyzed inline, and how long a batch with
hanging messages takes (each one: the budget, a kill, a new worker). Hanging messages come
from tests/worker_hooks (a sitecustomize the worker loads through PYTHONPATH).

    python bench/budget.py [--budget SECONDS] [--hung N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from service_support import hooked_env, hostile, numbered  # noqa: E402
from support import sample, sample_names  # noqa: E402

from imap_bouncer import analysis  # noqa: E402
from imap_bouncer.analysis_workers import AnalysisPool  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--hung", type=int, default=3, help="hanging messages in the batch")
    parser.add_argument("--rounds", type=int, default=20, help="batches of the samples")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = hooked_env()["PYTHONPATH"]

    raws = [numbered(sample(name), i) for i, name in enumerate(sample_names())
            if name != "empty.eml"]
    started = time.monotonic()
    pool = AnalysisPool(1, analysis.Options(), time_budget=args.budget)
    while not pool.worker_pids():
        time.sleep(0.01)
    print(f"worker start: {time.monotonic() - started:.3f} s")
    try:
        pool.result(pool.submit(raws))  # warm
        started = time.monotonic()
        for _ in range(args.rounds):
            pool.result(pool.submit(raws))
        in_worker = (time.monotonic() - started) / (args.rounds * len(raws))
        started = time.monotonic()
        for _ in range(args.rounds):
            analysis.analyze_many(raws)
        inline = (time.monotonic() - started) / (args.rounds * len(raws))
        print(f"per message: {in_worker * 1000:.2f} ms in the worker, {inline * 1000:.2f} ms "
              f"inline ({len(raws)} samples x {args.rounds})")
        batch = [*raws, *(hostile("postfix.eml", "hang", i) for i in range(args.hung))]
        started = time.monotonic()
        reports = pool.result(pool.submit(batch))
        took = time.monotonic() - started
        stopped = sum(any("time budget" in e for e in r.errors) for r in reports)
        print(f"batch of {len(batch)} with {args.hung} hanging (budget {args.budget:g} s): "
              f"{took:.2f} s, {stopped} stopped, "
              f"{(took - len(raws) * in_worker) / max(1, args.hung):.2f} s per hanging message")
    finally:
        started = time.monotonic()
        pool.close()
        print(f"close: {time.monotonic() - started:.3f} s")


if __name__ == "__main__":
    main()
