"""Many inputs over forked workers: same results as inline, in input order, the input read
only a bounded window ahead, and a dead worker's share done in the parent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import BASICS

from imap_bouncer import fanout, sources
from imap_bouncer.cli import main

PARENT = os.getpid()


def square_with_pid(number: int) -> tuple[int, int]:
    return number * number, os.getpid()


def die_in_a_worker(number: int) -> tuple[int, int]:
    """Dies on the 8th input of the second chunk (the first chunk is this process's own)."""
    if number == fanout.CHUNK + 7 and os.getpid() != PARENT:
        os._exit(3)  # as the kernel's OOM killer would end it
    return number + 1, os.getpid()


def test_few_inputs_stay_in_this_process() -> None:
    found = list(fanout.ordered_map(square_with_pid, range(5), parallel_from=10, workers=2))
    assert [value for value, _ in found] == [n * n for n in range(5)]
    assert {pid for _, pid in found} == {os.getpid()}


def test_many_inputs_go_to_workers_in_order() -> None:
    count = 10 * fanout.CHUNK + 3
    found = list(fanout.ordered_map(square_with_pid, range(count), parallel_from=8, workers=2))
    assert [value for value, _ in found] == [n * n for n in range(count)]
    pids = {pid for _, pid in found}
    assert len(pids) == 2 and os.getpid() in pids  # a forked worker, and this process


def test_the_input_is_read_a_bounded_window_ahead() -> None:
    pulled = 0

    def items():
        nonlocal pulled
        for number in range(2000):
            pulled += 1
            yield number

    results = fanout.ordered_map(square_with_pid, items(), parallel_from=8, workers=2)
    next(results)
    assert pulled <= 3 * fanout.CHUNK  # a chunk per process in hand, and the next one
    rest = list(results)
    assert len(rest) == 1999 and pulled == 2000


def test_a_dead_worker_loses_nothing() -> None:
    count = 6 * fanout.CHUNK
    found = list(fanout.ordered_map(die_in_a_worker, range(count), parallel_from=4, workers=2))
    assert [value for value, _ in found] == [n + 1 for n in range(count)]
    second_chunk = {pid for _, pid in found[fanout.CHUNK:2 * fanout.CHUNK]}
    assert second_chunk == {os.getpid()}  # the worker died on it: done here again
    later = {pid for _, pid in found[3 * fanout.CHUNK:4 * fanout.CHUNK]}
    assert later == {os.getpid()}  # and the dead worker's later share too


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_analyze_of_a_folder_in_workers_matches_inline(tmp_path: Path, monkeypatch,
                                                       as_json: bool) -> None:
    samples = sorted(BASICS.glob("*.eml"))
    count = fanout.PARALLEL_FROM + 2 * fanout.CHUNK
    for index in range(count):
        source = samples[index % len(samples)]
        shutil.copy(source, tmp_path / f"{index:03d}-{source.name}")
    (tmp_path / "050-unreadable.eml").write_bytes(b"")
    real_read = sources.Input.read

    def read(item: sources.Input) -> bytes:  # forked workers inherit the patch
        if "unreadable" in item.source:
            raise sources.SourceError(f"{item.source}: Permission denied")
        return real_read(item)

    monkeypatch.setattr(sources.Input, "read", read)
    args = ["analyze", *(["--json"] if as_json else []), str(tmp_path)]
    parallel = CliRunner().invoke(main, args)
    monkeypatch.setattr(fanout, "PARALLEL_FROM", 10_000)
    inline = CliRunner().invoke(main, args)
    assert parallel.exit_code == inline.exit_code == 1  # the unreadable file, named on stderr
    assert "050-unreadable.eml: Permission denied" in parallel.stderr
    assert parallel.stdout == inline.stdout
    assert parallel.stdout.count(str(tmp_path)) == count
