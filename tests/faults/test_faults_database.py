"""The database fails under `run`: PostgreSQL ends the service's sessions in the middle of
its batches (pg_terminate_backend), PostgreSQL is unreachable (its port closed), another
connection holds SQLite's write lock for longer than the service waits for it."""

from __future__ import annotations

import pytest
import scenarios
from harness import assert_holds

pytestmark = [pytest.mark.dovecot, pytest.mark.faults]


@pytest.mark.postgres
def test_postgresql_sessions_terminated_mid_batch(postgres_bench):
    row = scenarios.postgres_terminated_mid_batch(postgres_bench, 300, faults=3)
    assert row.injected == 3, row.notes
    assert_holds(row.tally)
    assert not row.notes, row.notes


@pytest.mark.postgres
def test_postgresql_unreachable(postgres_bench):
    row = scenarios.postgres_unreachable(postgres_bench, 60, outages=2, seconds=2.0)
    assert row.injected == 3
    assert row.lost == 0, row.notes  # nothing moved while the database was down
    assert_holds(row.tally)
    assert not row.notes, row.notes


def test_sqlite_locked_mid_pass(sqlite_bench):
    """Finding 9: after the lock, rows of messages that were moved kept moved = 0."""
    row = scenarios.sqlite_locked(sqlite_bench, 300)
    assert row.injected == 1
    assert_holds(row.tally)
    assert not row.notes, row.notes
