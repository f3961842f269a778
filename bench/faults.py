"""The fault suite's table (issue 9): every fault row of tests/faults/scenarios.py at the
issue's sizes, against a private Dovecot and SQLite (PostgreSQL for its own rows, and for
all with --backend postgresql), each row on a fresh account and a fresh database.

    python bench/faults.py [--messages 2000] [--rounds 20] [--scale 5] [--only KIND ...]
                           [--backend sqlite|postgresql] [--postgres URL] [--json]

Prints one table: fault kind, faults injected, messages, lost (0), recorded twice (0),
states changed by forged bounces with `[verp] require_signed` on (0; its own row, "-"
in the others), longest analysis of one message (target < 2 s), peak RSS of the service's
process tree (target < 300 MB), orphans left by SIGKILL (0), then a note per row. The
pytest rows (tests/faults/test_*.py) are the same functions at CI sizes.

PostgreSQL: --postgres or $IMAP_BOUNCER_TEST_DATABASE_URL (a fresh schema per row, dropped
after); without it the PostgreSQL rows are listed as not run. Needs Dovecot
(`apt-get install dovecot-imapd`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "faults")]

import database_support  # noqa: E402  (the test suite's databases)
import dovecot  # noqa: E402  (the test suite's Dovecot runner)
import scenarios  # noqa: E402  (the fault rows)
from harness import Row, table  # noqa: E402

# name -> (backend it needs: None = the chosen one, the row's function of (bench, args))
ROWS: dict[str, tuple[str | None, Callable[[scenarios.Bench, argparse.Namespace], Row]]] = {
    "fetch": (None, lambda b, a: scenarios.imap_drop_mid_fetch(b, a.messages, faults=5)),
    "move": (None, lambda b, a: scenarios.imap_drop_mid_move(b, a.messages, faults=3)),
    "idle": (None, lambda b, a: scenarios.imap_drop_during_idle(b, a.messages, faults=3)),
    "stall": (None, lambda b, a: scenarios.imap_stall(b, a.messages, faults=3)),
    "refused-move": (None, lambda b, a: scenarios.imap_failing_move(b, a.messages, faults=3)),
    "pg-terminate": ("postgresql",
                     lambda b, a: scenarios.postgres_terminated_mid_batch(b, a.messages,
                                                                          faults=5)),
    "pg-down": ("postgresql", lambda b, a: scenarios.postgres_unreachable(b, a.messages)),
    "sqlite-locked": ("sqlite", lambda b, a: scenarios.sqlite_locked(b, a.messages)),
    "sigkill": (None, lambda b, a: scenarios.sigkill_rounds(b, a.messages, rounds=a.rounds,
                                                            grace=3.0)),
    "uidvalidity": (None, lambda b, a: scenarios.uidvalidity_change(b, a.messages)),
    "folder-deleted": (None, lambda b, a: scenarios.folder_deleted_during_run(b, a.messages)),
    "other-client": (None, lambda b, a: scenarios.other_client_during_pass(b, a.messages)),
    "hostile": (None, lambda b, a: scenarios.hostile_content(b, a.scale)),
    "forged": (None, lambda b, a: scenarios.forged_bounces(b, 44)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="backlog per row")
    parser.add_argument("--rounds", type=int, default=20, help="SIGKILL rounds")
    parser.add_argument("--scale", type=float, default=5.0,
                        help="size of the hostile shapes (1: the CI sizes)")
    parser.add_argument("--only", nargs="*", choices=sorted(ROWS), help="these rows only")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres", default=os.environ.get(database_support.POSTGRES_ENV),
                        help=f"PostgreSQL server URL (default: ${database_support.POSTGRES_ENV})")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()
    if args.postgres:
        os.environ[database_support.POSTGRES_ENV] = args.postgres

    server = dovecot.DovecotServer()
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="imap-bouncer-faults-"))
    done: list[Row] = []
    try:
        for name in args.only or ROWS:
            needs, run = ROWS[name]
            backend = needs or args.backend
            if backend == "postgresql" and not args.postgres:
                done.append(Row(name, notes=["not run: no PostgreSQL (--postgres)"]))
                continue
            started = time.monotonic()
            row_dir = workdir / name
            row_dir.mkdir()
            with database_support.test_database(backend, row_dir) as database:
                bench = scenarios.Bench(
                    server.add_user(), database.url, row_dir / "work", backend,
                    postgres_admin_url=args.postgres or "",
                    timeouts={"filed": 600, "hostile": 600})
                try:
                    row = run(bench, args)
                except Exception as err:  # a row that could not finish is a figure too
                    row = Row(name, notes=[f"did not finish: {type(err).__name__}: "
                                           f"{str(err)[:300]}"])
            row.notes.append(f"{backend}, {time.monotonic() - started:.0f} s")
            done.append(row)
            print(f"{row.kind}: done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(done))
    if args.json:
        for row in done:
            print(json.dumps({k: v for k, v in row.__dict__.items() if k != "tally"}))
    bad = any(row.lost or row.twice or row.orphans or row.silent_cuts for row in done)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
