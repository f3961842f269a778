"""The mailbox changes under the service: its source folder recreated (new UIDVALIDITY),
a target folder deleted while `run` waits, another client moving and deleting messages
while a pass drains a backlog."""

from __future__ import annotations

import pytest
import scenarios
from harness import assert_holds

pytestmark = [pytest.mark.dovecot, pytest.mark.faults]


def test_uidvalidity_change_after_a_pass_that_moved_nothing(sqlite_bench):
    row = scenarios.uidvalidity_change(sqlite_bench, 100)
    assert row.injected == 1
    assert_holds(row.tally)


def test_target_folder_deleted_during_run(sqlite_bench):
    row = scenarios.folder_deleted_during_run(sqlite_bench, 60)
    assert row.injected == 2
    assert_holds(row.tally)
    assert row.notes == [row.notes[-1]], row.notes  # only the count of deleted messages


@pytest.mark.postgres
def test_another_client_moves_and_deletes_during_a_pass(postgres_bench):
    row = scenarios.other_client_during_pass(postgres_bench, 300)
    assert row.injected >= 4, row.notes
    assert_holds(row.tally)
