"""The analysis worker processes (imap_bouncer/analysis_workers.py) as real processes: the
time budget per message, a worker dying on a message, closing while busy, and workers that
die with their parent. Misbehaving messages come from tests/worker_hooks (loaded by the
worker processes through PYTHONPATH), not from hooks in the product code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from service_support import hooked_env, hostile, numbered, session_processes, wait_for
from support import sample

from imap_bouncer import analysis
from imap_bouncer.analysis_workers import BUDGET_ERROR, AnalysisPool
from imap_bouncer.report import Kind


@pytest.fixture
def hooked(monkeypatch):
    """Worker processes started from here on load the misbehaviour hooks."""
    monkeypatch.setenv("PYTHONPATH", hooked_env()["PYTHONPATH"])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_reports_match_inline_analysis():
    raws = [numbered(sample(name), i) for i, name in enumerate(
        ["postfix.eml", "qmail.eml", "arf-abuse.eml", "spam.eml", "garbage.eml"])]
    pool = AnalysisPool(1, analysis.Options())
    try:
        reports = pool.result(pool.submit(raws))
    finally:
        pool.close()
    assert [r.to_dict(explain=True) for r in reports] == \
        [analysis.analyze(raw).to_dict(explain=True) for raw in raws]


def test_a_message_over_its_budget_is_stopped_and_the_batch_goes_on(hooked):
    budget = 1.0
    raws = [numbered(sample("postfix.eml"), 0), hostile("qmail.eml", "hang", 1),
            numbered(sample("arf-abuse.eml"), 2), hostile("postfix.eml", "hang", 3),
            numbered(sample("dsn-delayed.eml"), 4)]
    pool = AnalysisPool(1, analysis.Options(), time_budget=budget)
    try:
        wait_for(pool.worker_pids, 30, "the worker to start")
        first = pool.worker_pids()
        started = time.monotonic()
        reports = pool.result(pool.submit(raws))
        took = time.monotonic() - started
        replaced = pool.worker_pids()
    finally:
        pool.close()
    assert [str(r.kind) for r in reports] == ["bounce", "unknown", "complaint", "unknown",
                                              "delay"]
    for hung in (reports[1], reports[3]):
        assert hung.kind is Kind.UNKNOWN and hung.recipients == []
        assert any(BUDGET_ERROR in e for e in hung.errors), hung.errors
    assert reports[3].message_id == "<20240327090122.3F2A11C00B7@mail.example.org>"
    # Two budgets, two new workers, the rest: seconds, not the hung messages' forever.
    print(f"batch with two hung messages: {took:.2f} s (budget {budget:g} s)")
    assert 2 * budget <= took < 2 * budget + 10
    assert replaced and replaced != first
    assert not alive(first[0])


def test_a_worker_dying_on_a_message_is_replaced_and_the_message_reported(hooked):
    raws = [hostile("postfix.eml", "crash", 0), numbered(sample("qmail.eml"), 1)]
    pool = AnalysisPool(1, analysis.Options(), time_budget=5)
    try:
        reports = pool.result(pool.submit(raws))
    finally:
        pool.close()
    assert reports[0].kind is Kind.UNKNOWN
    assert any("worker died on this message twice (killed by SIGKILL)" in e
               for e in reports[0].errors), reports[0].errors
    assert str(reports[1].kind) == "bounce"


def test_close_while_a_message_hangs_is_quick_and_leaves_no_worker(hooked):
    pool = AnalysisPool(2, analysis.Options(), time_budget=600)
    wait_for(lambda: len(pool.worker_pids()) == 2, 30, "both workers to start")
    pids = pool.worker_pids()
    future = pool.submit([hostile("postfix.eml", "hang", 0)])
    time.sleep(0.3)
    started = time.monotonic()
    pool.close()
    took = time.monotonic() - started
    print(f"close with a hung message: {took:.2f} s")
    assert took < 8
    assert future.done() and future.exception() is not None
    assert not any(alive(pid) for pid in pids)


PARENT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from service_support import hostile
    from imap_bouncer import analysis
    from imap_bouncer.analysis_workers import AnalysisPool
    pool = AnalysisPool(2, analysis.Options(), time_budget=600)
    while len(pool.worker_pids()) < 2:
        time.sleep(0.05)
    pool.submit([hostile("postfix.eml", "hang", 0)])  # one worker spins, one waits
    print(" ".join(map(str, pool.worker_pids())), flush=True)
    time.sleep(600)
""")


def test_workers_die_with_their_parent_busy_or_idle(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(Path(__file__).parent)],
                              env=hooked_env(), stdout=subprocess.PIPE,
                              start_new_session=True, text=True)
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        os.kill(parent.pid, signal.SIGKILL)  # the parent only, not its group
        parent.wait(timeout=10)
        started = time.monotonic()
        wait_for(lambda: not session_processes(parent.pid), 5,
                 f"no process left of the session: {session_processes(parent.pid)}")
        print(f"workers gone {time.monotonic() - started:.2f} s after their parent's SIGKILL")
    finally:
        for pid, _ in session_processes(parent.pid):
            os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()


def test_a_worker_grown_large_is_replaced_after_its_batch(hooked, monkeypatch):
    from imap_bouncer import analysis_workers

    monkeypatch.setattr(analysis_workers, "WORKER_RSS_LIMIT", 100 << 20)
    pool = AnalysisPool(1, analysis.Options())
    try:
        wait_for(pool.worker_pids, 30, "the worker to start")
        first = pool.worker_pids()
        pool.result(pool.submit([numbered(sample("postfix.eml"), 0)]))
        assert pool.worker_pids() == first  # small: kept
        reports = pool.result(pool.submit([hostile("postfix.eml", "bloat", 1),
                                           hostile("qmail.eml", "bloat", 2)]))
        assert [str(r.kind) for r in reports] == ["bounce", "bounce"]
        replaced = wait_for(lambda: pool.worker_pids() not in ([], first)
                            and pool.worker_pids(), 30, "a fresh worker")
        assert replaced != first and not alive(first[0])
    finally:
        pool.close()
