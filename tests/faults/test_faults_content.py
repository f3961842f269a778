"""Hostile content through `once` against Dovecot with the default analysis worker: many
parts, deep nesting, a huge header line, a header folded many times, an encoded-word bomb,
CR/LF and controls in the fields, zero bytes, many recipients (tests/faults/hostile.py,
modest sizes). Each must be filed once; the slowest analysis of one message stays under
the issue's 2 s target, the service's process tree under 300 MB, and no recipient is
dropped without an error saying so."""

from __future__ import annotations

import pytest
import scenarios
from harness import assert_holds

pytestmark = [pytest.mark.dovecot, pytest.mark.faults]


def test_hostile_shapes_are_filed_once_in_bounded_time_and_memory(sqlite_bench):
    row = scenarios.hostile_content(sqlite_bench)
    print(f"longest analysis {row.longest_analysis:.2f} s, peak RSS "
          f"{row.peak_rss_mib:.0f} MB; {row.notes}")
    assert row.injected == 8
    assert_holds(row.tally)
    assert row.longest_analysis < 2.0, row.notes
    assert row.peak_rss_mib < 300, row.notes
    assert row.silent_cuts == 0, row.notes


def test_forged_bounces_change_no_state_with_require_signed(sqlite_bench):
    """Unsigned bounces are what anyone can write into the mailbox (finding 5): with
    `[verp] require_signed = true` they change no address state, while a genuine signed
    bounce beside them still does."""
    row = scenarios.forged_bounces(sqlite_bench, 44)
    assert_holds(row.tally)
    assert row.forged == "0", row.notes
    assert row.genuine_changes >= 1, row.notes  # the gate is not merely shut
