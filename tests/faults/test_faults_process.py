"""SIGKILL of `once` at random moments over 20 rounds of one backlog, then a clean run:
every message filed once, and nothing of the killed command left running (finding 6: the
analysis worker and multiprocessing's resource tracker outlived it). The backlog is 300
messages (topped up to 150 before each round) here to keep CI in budget; bench/faults.py
runs the issue's 2,000."""

from __future__ import annotations

import pytest
import scenarios
from harness import assert_holds

pytestmark = [pytest.mark.dovecot, pytest.mark.faults]


@pytest.mark.postgres
def test_sigkill_rounds_then_a_clean_run(postgres_bench):
    row = scenarios.sigkill_rounds(postgres_bench, 300, rounds=20, grace=2.0)
    print(row.notes, f"orphans: {row.orphans}")
    assert row.injected >= 18  # rounds whose command was still running when killed
    assert_holds(row.tally)
    assert row.orphans == 0, (f"{row.orphans} process(es) of the killed commands were "
                              "still running 2 s after (killed by the test)")
