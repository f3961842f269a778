"""The real `imap-bouncer once` and `run` against a real Dovecot, faulted the hard way: a
SIGKILL of the command alone (its analysis worker must not outlive it), and a message whose
analysis never ends (filed in Error within its time budget, the rest of the mail flowing).
Misbehaving messages come from tests/worker_hooks, loaded through PYTHONPATH."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from service_support import (
    SAMPLES,
    append,
    clean_env,
    counts,
    hooked_env,
    hostile,
    log_count,
    numbered,
    rows,
    run_cli,
    seq_numbers,
    session_processes,
    sigterm_and_wait,
    start_cli_env,
    stop_process,
    wait_for,
    write_settings,
)
from support import sample

from imap_bouncer.ledger import Ledger

pytestmark = pytest.mark.dovecot

NAMES = list(SAMPLES)
IDLE_LINE = "waiting for new mail (IDLE)"


def kill_alone_and_expect_no_survivor(process, log: Path) -> float:
    """SIGKILL the command itself (not its group, as a crash or the OOM killer would), then
    wait for every process of its session to be gone; returns how long that took."""
    assert len(session_processes(process.pid)) >= 2, "no worker process to orphan"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    started = time.monotonic()
    try:
        wait_for(lambda: not session_processes(process.pid), 5,
                 "no process left of the session", log=log)
    except AssertionError as err:
        left = session_processes(process.pid)
        for pid, _ in left:  # the test's own orphans, by their ids
            os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"{err}\nleft: {left}") from None
    return time.monotonic() - started


def test_sigkill_of_once_leaves_no_process_behind(imap_server, test_db, tmp_path):
    total = 2000
    append(imap_server, (numbered(sample(NAMES[i % len(NAMES)]), i) for i in range(total)))
    config = write_settings(tmp_path / "settings.toml", imap_server, test_db.url,
                            analysis={"workers": 1}, batch_size=20)
    log = tmp_path / "once.log"
    process = start_cli_env("once", "-c", str(config), cwd=tmp_path, log=log, env=clean_env())
    try:
        wait_for(lambda: counts(imap_server, ["Processed"])["Processed"] > 0, 60,
                 "some messages filed", interval=0.01, log=log)
        took = kill_alone_and_expect_no_survivor(process, log)
        print(f"once killed mid-backlog: its processes gone {took:.2f} s later")
    finally:
        stop_process(process)
    again = run_cli("once", "-c", str(config), cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stderr
    ledger = Ledger.open(test_db.url)
    try:
        recorded = rows(ledger)
    finally:
        ledger.close()
    assert len(recorded) == total and all(r.moved for r in recorded)


def run_with_a_hanging_message(imap_server, test_db, tmp_path: Path):
    """`run` with a ten-minute budget, idling, then handed a message whose analysis hangs
    (the test hook in tests/worker_hooks): (the process, its log)."""
    config = write_settings(tmp_path / "settings.toml", imap_server, test_db.url,
                            analysis={"workers": 1, "time_budget": 600})
    log = tmp_path / "run.log"
    process = start_cli_env("run", "-c", str(config), cwd=tmp_path, log=log,
                            env=hooked_env(clean_env()))
    try:
        wait_for(lambda: log_count(log, IDLE_LINE) >= 1, 30, "the first IDLE", log=log)
        append(imap_server, [hostile("postfix.eml", "hang", 0)])
    except BaseException:
        stop_process(process)
        raise
    return process, log


def test_sigkill_of_run_while_its_worker_spins_leaves_no_process_behind(imap_server, test_db,
                                                                       tmp_path):
    process, log = run_with_a_hanging_message(imap_server, test_db, tmp_path)
    try:
        time.sleep(1.0)  # the worker is now spinning on it (a budget of 10 minutes)
        took = kill_alone_and_expect_no_survivor(process, log)
        print(f"run killed with its worker busy: its processes gone {took:.2f} s later")
    finally:
        stop_process(process)


def test_a_message_over_its_time_budget_lands_in_error_and_the_rest_flows(imap_server,
                                                                         test_db, tmp_path):
    budget = 1.0
    raws = [numbered(sample(name), i) for i, name in enumerate(NAMES)]
    hung = len(raws)
    raws.append(hostile("postfix.eml", "hang", hung))
    raws += [numbered(sample(name), hung + 1 + i) for i, name in enumerate(NAMES)]
    append(imap_server, raws)
    config = write_settings(tmp_path / "settings.toml", imap_server, test_db.url,
                            analysis={"workers": 1, "time_budget": budget}, batch_size=5)
    started = time.monotonic()
    result = run_cli("once", "-c", str(config), cwd=tmp_path, timeout=120,
                     env=hooked_env(clean_env()))
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    print(f"once over {len(raws)} messages, one hanging, budget {budget:g} s: {took:.2f} s")
    assert seq_numbers(imap_server, "INBOX") == []
    assert hung in seq_numbers(imap_server, "Error")
    ledger = Ledger.open(test_db.url)
    try:
        by_uid = {r.uid: r for r in rows(ledger)}
    finally:
        ledger.close()
    assert len(by_uid) == len(raws) and all(r.moved for r in by_uid.values())
    row = by_uid[hung + 1]
    assert row.target_folder == "Error" and row.events == 0
    assert any("analysis exceeded its time budget" in e for e in row.errors), row.errors
    others = [*NAMES, None, *NAMES]  # what each number is
    for number, name in enumerate(others):
        if name is not None:
            assert by_uid[number + 1].target_folder == SAMPLES[name].folder, name
    assert "analysis exceeded its time budget" in result.stdout


def test_sigterm_while_a_message_hangs_in_analysis_stops_within_seconds(imap_server, test_db,
                                                                        tmp_path):
    """A budget of ten minutes, a message using it all: SIGTERM does not wait for it. The
    pass gives the batch up (nothing recorded, nothing moved), the worker is killed, and the
    message is still in INBOX for the next start."""
    process, log = run_with_a_hanging_message(imap_server, test_db, tmp_path)
    try:
        wait_for(lambda: log_count(log, "1 message(s) to process") >= 1, 10,
                 "the pass to start", log=log)
        time.sleep(0.5)  # its worker spinning on it
        code, stopped = sigterm_and_wait(process)
    finally:
        stop_process(process)
    print(f"SIGTERM to exit with a message hanging in analysis: {stopped:.2f} s")
    assert code == 0, log.read_text()
    assert stopped < 8
    assert "left for the next start" in log.read_text()
    assert not session_processes(process.pid)
    assert seq_numbers(imap_server, "INBOX") == [0]
    ledger = Ledger.open(test_db.url)
    try:
        assert rows(ledger) == []
    finally:
        ledger.close()
