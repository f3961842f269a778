"""Soak: `imap-bouncer run` for N minutes against a private Dovecot, through the fault
suite's proxy (tests/faults/proxy.py), with mail arriving all the time and one fault injected
every minute, in turn: a cut mid-FETCH, a cut during IDLE, a stall past the timeout, a MOVE
refused, a cut after MOVE was sent, a database fault (PostgreSQL: its sessions terminated;
SQLite: its write lock held by another connection for 12 s). The service's process tree is
sampled every few seconds: RSS and open file descriptors, to show whether they grow.

    python bench/soak.py [--minutes 60] [--rate 5] [--fault-every 60] [--postgres URL]

At the end: mail stops, the backlog is drained, `run` is stopped with SIGTERM (the time it
takes is a figure), a clean `once` runs, and the fault suite's invariants are checked (each
message in one folder, recorded once). Prints the figures; exit status 1 if an invariant
broke. Not part of CI (an hour); the figures go into the closing note of issue 9.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "faults")]

import database_support  # noqa: E402
import dovecot  # noqa: E402
import psycopg  # noqa: E402
import scenarios  # noqa: E402
from harness import Row, check, fill, session_processes, settings, wait_filed  # noqa: E402
from proxy import Proxy  # noqa: E402

SAMPLE_EVERY = 5.0
FAULTS = ("drop mid-FETCH", "drop during IDLE", "stall past the timeout", "MOVE refused",
          "drop after MOVE", "database")


class Arrivals:
    """New mail, `rate` messages a second (in one APPEND per second), numbered in order."""

    def __init__(self, account: dovecot.Account, rate: int) -> None:
        self.account, self.rate = account, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            fill(self.account, self.rate, start=self.sent)
            self.sent += self.rate

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class Samples:
    """RSS (MB) and open descriptors of the process tree, every SAMPLE_EVERY seconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rows: list[tuple[float, float, int, int]] = []  # (t, rss, fds, processes)
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            tree = session_processes(self.pid)
            rss = fds = 0
            for pid in tree:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    rss += int(next(line.split()[1] for line in status.splitlines()
                                    if line.startswith("VmRSS:")))
                    fds += len(os.listdir(f"/proc/{pid}/fd"))
                except (OSError, StopIteration):
                    continue
            self.rows.append((time.monotonic() - self._started, rss / 1024, fds, len(tree)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def figures(self) -> str:
        if len(self.rows) < 2:
            return "too few samples"
        minute = max(1, int(60 / SAMPLE_EVERY))
        first, last = self.rows[:minute], self.rows[-minute:]

        def median(rows, index):
            return statistics.median(r[index] for r in rows)

        return (f"RSS of the tree: first minute {median(first, 1):.0f} MB, last minute "
                f"{median(last, 1):.0f} MB, peak {max(r[1] for r in self.rows):.0f} MB\n"
                f"open descriptors: first minute {median(first, 2):.0f}, last minute "
                f"{median(last, 2):.0f}, most {max(r[2] for r in self.rows)}\n"
                f"processes in the tree: {min(r[3] for r in self.rows)}.."
                f"{max(r[3] for r in self.rows)}; {len(self.rows)} samples")


def inject(kind: str, proxy: Proxy, bench: scenarios.Bench, db_proxy: Proxy | None) -> None:
    if kind == "drop mid-FETCH":
        proxy.drop_during("UID FETCH", after_bytes=700)
    elif kind == "drop during IDLE":
        proxy.drop_during_idle(after=0.3)
        proxy.cut_all()  # the IDLE under way: the next one is cut
    elif kind == "stall past the timeout":
        proxy.stall("UID FETCH", seconds=6)
    elif kind == "MOVE refused":
        proxy.refuse("UID MOVE")
    elif kind == "drop after MOVE":
        proxy.drop_after("UID MOVE")
    elif db_proxy is not None:
        with psycopg.connect(bench.postgres_admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "client_addr = '127.0.0.1' AND client_port = ANY(%s)",
                          (sorted(db_proxy.upstream_ports()),))
    else:
        import sqlite3
        holder = sqlite3.connect(bench.database_url.removeprefix("sqlite:///"),
                                 isolation_level=None, timeout=30)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            time.sleep(12)
        finally:
            holder.execute("ROLLBACK")
            holder.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=5, help="messages arriving per second")
    parser.add_argument("--fault-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--postgres", default="", help="PostgreSQL server URL (else SQLite)")
    args = parser.parse_args()
    if args.postgres:
        os.environ[database_support.POSTGRES_ENV] = args.postgres
    backend = "postgresql" if args.postgres else "sqlite"

    server = dovecot.DovecotServer()
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="imap-bouncer-soak-"))
    try:
        with database_support.test_database(backend, workdir) as database:
            bench = scenarios.Bench(server.add_user(), database.url, workdir / "work", backend,
                                    postgres_admin_url=args.postgres)
            return soak(bench, args)
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)


def soak(bench: scenarios.Bench, args: argparse.Namespace) -> int:
    proxy = Proxy(bench.account.host, bench.account.port)
    db_proxy, url = None, bench.database_url
    if bench.backend == "postgresql":
        db_proxy, url = scenarios.postgres_proxy(bench)
    config = settings(bench.path("soak.toml"), bench.account, url, port=proxy.port,
                      timeout=3)
    row = Row("soak")
    watched = scenarios.start_run(bench, config, log="soak.log")
    samples = Samples(watched.pid)
    arrivals = Arrivals(bench.account, args.rate)
    arrivals.start()
    injected: dict[str, int] = {}
    started = time.monotonic()
    end = started + args.minutes * 60
    kinds = itertools.cycle(FAULTS)
    try:
        next_fault = started + args.fault_every
        while time.monotonic() < end and watched.process.poll() is None:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            if time.monotonic() >= next_fault:
                kind = next(kinds)
                inject(kind, proxy, bench, db_proxy)
                injected[kind] = injected.get(kind, 0) + 1
                next_fault += args.fault_every
                print(f"{(time.monotonic() - started) / 60:5.1f} min: {kind}; "
                      f"{arrivals.sent} sent", file=sys.stderr, flush=True)
    finally:
        arrivals.stop()
    alive = watched.process.poll() is None
    proxy.clear()
    drained = time.monotonic()
    if alive:
        wait_filed(bench.account, arrivals.sent, 600, watched)
    drained = time.monotonic() - drained
    samples.stop()
    stopping = time.monotonic()
    scenarios.stop_run(watched, row)
    stopped = time.monotonic() - stopping
    proxy.close()
    if db_proxy is not None:
        db_proxy.close()
    scenarios.clean_once(bench, bench.settings(), row)
    tally = check(bench.account, bench.database_url, arrivals.sent)
    log = watched.log_text()
    print(f"soak: {args.minutes:g} min of run ({bench.backend}), {arrivals.sent} messages "
          f"at {args.rate}/s, {sum(injected.values())} faults: "
          + ", ".join(f"{k} x{n}" for k, n in injected.items()))
    print(samples.figures())
    print(f"backlog drained {drained:.1f} s after mail stopped; SIGTERM to exit "
          f"{stopped:.1f} s; run was {'alive' if alive else 'DEAD'} at the end")
    print(f"lost {tally.lost + tally.unrecorded}, recorded twice "
          f"{tally.recorded_twice + tally.in_two_places}, misfiled {tally.misfiled}, "
          f"stale moved flags {tally.stale_moved}, left in INBOX {tally.in_source}")
    print(f"log: {log.count('retrying in')} reconnects after faults, "
          f"{log.count('Traceback')} tracebacks; notes: {row.notes}")
    return 0 if tally.holds and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
