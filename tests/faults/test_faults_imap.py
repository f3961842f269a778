"""The network between the service and Dovecot breaks (tests/faults/proxy.py): cut in the
middle of a FETCH answer, after a MOVE was sent, during IDLE; a stall past the timeout; a
MOVE the server refuses. `run` must get over each and every message must end filed once."""

from __future__ import annotations

import pytest
import scenarios
from harness import assert_holds

pytestmark = [pytest.mark.dovecot, pytest.mark.faults]

MESSAGES = 120


def test_drop_mid_fetch(sqlite_bench):
    row = scenarios.imap_drop_mid_fetch(sqlite_bench, MESSAGES, faults=3)
    assert row.injected == 3
    assert_holds(row.tally)
    assert (row.lost, row.twice) == (0, 0)


def test_drop_mid_move_moves_done_by_the_server_are_not_lost(sqlite_bench):
    row = scenarios.imap_drop_mid_move(sqlite_bench, MESSAGES, faults=3)
    assert row.injected == 3
    # The server did the MOVEs whose answers were lost. The messages must be filed once; and
    # the next pass, which finds their UIDs gone from INBOX, must not leave their rows
    # saying moved = 0 for ever (the stale flag of finding 9, by another road).
    assert_holds(row.tally, moved_flags=False)
    assert row.tally.stale_moved == 0, row.tally.problems[-1]


def test_failing_move(sqlite_bench):
    row = scenarios.imap_failing_move(sqlite_bench, MESSAGES, faults=3)
    assert row.injected == 3
    assert_holds(row.tally)


def test_stall_past_the_timeout(sqlite_bench):
    row = scenarios.imap_stall(sqlite_bench, MESSAGES, faults=2, timeout=1.5)
    assert row.injected == 2
    assert_holds(row.tally)


def test_drop_during_idle(sqlite_bench):
    row = scenarios.imap_drop_during_idle(sqlite_bench, 30, faults=2)
    assert row.injected == 2
    assert_holds(row.tally)
