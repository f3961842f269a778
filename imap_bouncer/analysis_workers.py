"""Analysis worker processes: each message analyzed in a child that can be killed.

Analysis is pure (bytes in, report out) and CPU-bound, and it reads mail anyone may write:
a message made to be slow must cost the mailbox seconds, not the pass. So every message goes
to a worker process on its own and must come back within the time budget; a worker that
overruns it is killed and replaced, the message gets a report saying so (filed in Error),
and the rest of the batch goes on. A worker that dies on a message (a crash, the kernel's
OOM killer) is replaced and the message tried once more, then reported the same way. A
worker grown past WORKER_RSS_LIMIT is replaced after its batch.

Why not concurrent.futures' ProcessPoolExecutor: it cannot kill one task, nor tell which
task of a batch hangs, and under "spawn" it starts multiprocessing's resource tracker,
which, like the workers themselves, outlives a service that is SIGKILLed. Here a worker is
a plain `subprocess` child speaking length-prefixed pickles over its stdin and stdout, and
it dies with its parent: PR_SET_PDEATHSIG on Linux (the kernel kills it when the thread
that started it, a driver thread living as long as the pool, is gone, the process killed
with it), and everywhere the end of its stdin (the parent's end closes when it dies).

`AnalysisPool(0, ...)` analyzes inline, in the caller's process: no budget can be kept
there (Python cannot interrupt a regular expression from the inside), which the settings
document. Pickles are only exchanged with our own children.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from typing import IO, Any

from . import analysis
from .report import Kind, Report

log = logging.getLogger(__name__)

DEFAULT_TIME_BUDGET = 5.0  # seconds one message's analysis may take in a worker
START_TIMEOUT = 60.0  # seconds a new worker may take to import the analyzers and say so
STOP_GRACE = 1.0  # seconds a worker has to exit at the end of its input before it is killed
STOP_WAIT = 2.0  # seconds a stopping pass still waits for a batch's analysis
# A driver gives up on worker processes after this many in a row failed to start (the
# interpreter or the package is broken): it analyzes inline from then on, saying so.
START_FAILURES = 3
# Bytes of resident memory past which a worker is replaced after its batch.
WORKER_RSS_LIMIT = 512 << 20
BUDGET_ERROR = "analysis exceeded its time budget"
_HEADER = 8  # bytes: the length of the pickled frame that follows
_READY = "ready"


def over_budget(raw: bytes, budget: float) -> Report:
    """The report of a message whose analysis was stopped: unknown, with the error that
    files it in Error (and its Message-ID, read cheaply, for the person who looks)."""
    return Report(kind=Kind.UNKNOWN, message_id=_message_id(raw),
                  evidence=BUDGET_ERROR,
                  errors=[f"{BUDGET_ERROR} ({budget:g} s): stopped and its worker replaced"])


def worker_died(raw: bytes, how: str) -> Report:
    return Report(kind=Kind.UNKNOWN, message_id=_message_id(raw),
                  evidence="analysis worker died",
                  errors=[f"the analysis worker died on this message twice ({how})"])


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^\r\n<>]{1,250}>)", re.IGNORECASE | re.MULTILINE)


def _message_id(raw: bytes) -> str:
    found = _MESSAGE_ID.search(raw, 0, 65536)  # bounded: this message is hostile
    return found.group(1).decode("ascii", "replace") if found else ""


class WorkerFailed(Exception):
    """A worker process did not start, or died."""


class AnalysisStopped(Exception):
    """The service is stopping and a batch's analysis did not end within STOP_WAIT: the
    pass gives it up (nothing of it is recorded or moved; the next start takes it again)."""


class PoolClosed(Exception):
    """The pool was closed while this batch waited or was being analyzed."""


class _Worker:
    """One child process and its two pipes."""

    def __init__(self, options: analysis.Options) -> None:
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c",
                 "from imap_bouncer.analysis_workers import serve; serve()", str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        except OSError as err:  # no memory, no descriptors left, no interpreter
            raise WorkerFailed(f"analysis worker did not start: {err}") from None
        assert self.process.stdin is not None and self.process.stdout is not None
        self.tasks: IO[bytes] = self.process.stdin
        self.results: IO[bytes] = self.process.stdout
        try:
            _write(self.tasks, options)
            if _read(self.results, time.monotonic() + START_TIMEOUT) != _READY:
                raise WorkerFailed("it did not start")
        except TimeoutError:
            self.kill()
            raise WorkerFailed(f"analysis worker did not start within {START_TIMEOUT:g} s") \
                from None
        except (OSError, WorkerFailed) as err:
            self.kill()
            raise WorkerFailed(f"analysis worker did not start: {err}") from None

    def analyze(self, raw: bytes, budget: float) -> Report:
        """The message's report; TimeoutError past the budget, WorkerFailed if it dies."""
        try:
            _write(self.tasks, raw)
            report = _read(self.results, time.monotonic() + budget)
        except TimeoutError:
            raise
        except OSError as err:  # a broken pipe: it died before reading
            raise WorkerFailed(str(err)) from None
        if report is None:
            raise WorkerFailed(self.exit_status())
        return report

    def exit_status(self) -> str:
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)
        code = self.process.returncode
        if code is None:
            return "its pipe closed"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def kill(self) -> None:
        with suppress(OSError):
            self.process.kill()
        self._reap()

    def stop(self) -> None:
        """End of input: it exits by itself; killed should it not."""
        with suppress(OSError):
            self.tasks.close()
        try:
            self.process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def _reap(self) -> None:
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        for handle in (self.tasks, self.results):
            with suppress(OSError):
                handle.close()


class _Driver(threading.Thread):
    """A thread owning one worker process: takes batches off the pool's queue and hands
    their messages to its worker one at a time, each under the time budget. The worker is
    started from this thread (its parent-death signal follows this thread, which lives as
    long as the pool)."""

    def __init__(self, pool: AnalysisPool, number: int) -> None:
        super().__init__(name=f"analysis-{number}", daemon=True)
        self.pool = pool
        self.worker: _Worker | None = None
        self.start_failures = 0

    def run(self) -> None:
        self._ensure_worker()  # started now: the first bounce should not wait for it
        while True:
            job = self.pool._jobs.get()
            if job is None:
                break
            raws, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result([self._analyze(raw) for raw in raws])
            except BaseException as err:  # never lose the thread: the pass hears of it
                future.set_exception(err)
            self._recycle_if_large()
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def _analyze(self, raw: bytes) -> Report:
        budget = self.pool.time_budget
        for attempt in (1, 2):
            if self.pool.closing:
                raise PoolClosed("the analysis was stopped: the service is stopping")
            worker = self._ensure_worker()
            if worker is None:
                return analysis.analyze(raw, self.pool.options)
            started = time.monotonic()
            try:
                return worker.analyze(raw, budget)
            except TimeoutError:
                log.error("analysis of a message (%d bytes, %s) exceeded its time budget of "
                          "%g s: worker %s killed and replaced", len(raw),
                          _message_id(raw) or "no Message-ID", budget, worker.process.pid)
                self._drop_worker(worker)
                return over_budget(raw, budget)
            except WorkerFailed as err:
                if self.pool.closing:
                    raise PoolClosed("the analysis was stopped: the service is stopping") \
                        from None
                how = str(err)
                log.error("analysis worker %s died after %.1f s on a message (%d bytes, %s): "
                          "%s; %s", worker.process.pid, time.monotonic() - started, len(raw),
                          _message_id(raw) or "no Message-ID", how,
                          "trying it once more" if attempt == 1 else "filed in Error")
                self._drop_worker(worker)
        return worker_died(raw, how)

    def _ensure_worker(self) -> _Worker | None:
        if self.worker is None and self.start_failures < START_FAILURES \
                and not self.pool.closing:
            try:
                self.worker = _Worker(self.pool.options)
                self.start_failures = 0
            except WorkerFailed as err:
                self.start_failures += 1
                log.error("%s (%d of %d tries)%s", err, self.start_failures, START_FAILURES,
                          ": analyzing in the service's own process from now on, with no "
                          "time budget" if self.start_failures >= START_FAILURES else "")
        return self.worker

    def _recycle_if_large(self) -> None:
        """A worker grown past WORKER_RSS_LIMIT (a huge message's analysis leaves the memory
        with the process) is replaced by a fresh one, so the service's memory follows the
        mail of now, not the largest message it ever read."""
        worker = self.worker
        if worker is None:
            return
        rss = _rss(worker.process.pid)
        if rss > WORKER_RSS_LIMIT:
            log.info("analysis worker %s uses %d MiB: replaced by a fresh one",
                     worker.process.pid, rss >> 20)
            worker.stop()
            self.worker = None
            self._ensure_worker()

    def _drop_worker(self, worker: _Worker) -> None:
        worker.kill()
        self.worker = None


class AnalysisPool:
    """Analysis in `workers` worker processes, each message within `time_budget` seconds;
    `workers = 0`: inline, in this process, without a budget. A batch submitted goes to
    one worker; a pass keeps `depth` batches in analysis at once."""

    def __init__(self, workers: int, options: analysis.Options,
                 time_budget: float = DEFAULT_TIME_BUDGET) -> None:
        self.options = options
        self.time_budget = time_budget
        self.depth = max(1, workers)
        self.closing = False
        self._jobs: queue.SimpleQueue[tuple[list[bytes], Future] | None] = queue.SimpleQueue()
        self._drivers = [_Driver(self, number) for number in range(workers)]
        for driver in self._drivers:
            driver.start()

    def submit(self, raws: Sequence[bytes]) -> Future:
        """The reports of these messages, in their order, when done."""
        future: Future = Future()
        if self._drivers and raws:
            self._jobs.put((list(raws), future))
        else:
            future.set_result(analysis.analyze_many(raws, self.options))
        return future

    def result(self, future: Future, messages: Sequence[Any] = (),
               stop: threading.Event | None = None) -> list[Report]:
        """The reports of a submitted batch. With `stop`: once it is set, STOP_WAIT seconds
        more at most, then AnalysisStopped (a stopping service does not wait for a batch
        of hostile messages to use up their budgets one after the other)."""
        while stop is None or not stop.is_set():
            with suppress(FutureTimeout):
                return future.result(timeout=0.1)
            if not future.running() and not any(d.is_alive() for d in self._drivers):
                # No thread left to take it (a bug killed them): here, not never.
                log.error("no analysis worker thread is left: analyzing in the service's "
                          "own process")
                return analysis.analyze_many([m.raw for m in messages], self.options)
        try:
            return future.result(timeout=STOP_WAIT)
        except FutureTimeout:
            future.cancel()
            raise AnalysisStopped(f"stopping: a batch of {len(messages)} message(s) still in "
                                  "analysis was left for the next start") from None

    def worker_pids(self) -> list[int]:
        """The worker processes now running (for tests and diagnostics)."""
        return [driver.worker.process.pid for driver in self._drivers
                if driver.worker is not None and driver.worker.process.poll() is None]

    def close(self) -> None:
        """Stop the workers: batches not yet started are cancelled; a message being analyzed
        has STOP_GRACE seconds to finish, then its worker is killed."""
        drivers, self._drivers = self._drivers, []
        if not drivers:
            return
        self.closing = True
        while True:  # what is queued and not started: cancelled (the pass is over)
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[1].cancel()
        for _ in drivers:
            self._jobs.put(None)
        deadline = time.monotonic() + STOP_GRACE
        for driver in drivers:
            driver.join(timeout=max(0.0, deadline - time.monotonic()))
        for driver in drivers:
            worker = driver.worker
            if driver.is_alive() and worker is not None:
                worker.kill()  # busy on a message: the driver sees it die and ends
            driver.join(timeout=STOP_GRACE + 10)


def _rss(pid: int) -> int:
    """Resident bytes of a process (Linux /proc; 0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


# -- the worker process's side ------------------------------------------------------------


def serve() -> None:
    """A worker's main loop: options, then one message at a time, until the end of input."""
    _die_with_parent()
    tasks, results = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the service's to handle
    options = _read(tasks, None)
    if options is None:
        return
    analysis.prepare_for_many()
    _write(results, _READY)
    while (raw := _read(tasks, None)) is not None:
        _write(results, analysis.analyze(raw, options))


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGKILL when our parent (its thread that started us) ends.
    Then, should the parent already be gone (it died before this line), exit at once."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    expected = sys.argv[1] if len(sys.argv) > 1 else ""
    if expected.isdigit() and os.getppid() != int(expected):
        os._exit(1)


# -- frames: an 8-byte length, then a pickle ----------------------------------------------


def _write(handle: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    handle.write(len(data).to_bytes(_HEADER, "big") + data)
    handle.flush()


def _read(handle: IO[bytes], deadline: float | None) -> Any | None:
    """The next frame; None at the end of input or on a frame cut short (its writer died);
    TimeoutError should the whole frame not have come by `deadline` (monotonic)."""
    header = _read_exactly(handle, _HEADER, deadline)
    if header is None:
        return None
    data = _read_exactly(handle, int.from_bytes(header, "big"), deadline)
    return None if data is None else pickle.loads(data)


def _read_exactly(handle: IO[bytes], size: int, deadline: float | None) -> bytes | None:
    if deadline is None:
        data = handle.read(size)
        return data if len(data) == size else None
    fd = handle.fileno()
    chunks: list[bytes] = []
    left = size
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([fd], [], [], wait)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
