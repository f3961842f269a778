"""Work over many messages, spread over the machine's cores, results in input order.

`imap-bouncer analyze` over a folder is CPU-bound and every message is independent. Below
`PARALLEL_FROM` inputs the work stays in this process: starting workers costs more than
they save there (bench/startup.py measures both sides). From then on, `cores() - 1` worker
processes are forked, so they start with the analyzers this process has already imported
and compiled, and the inputs go round in chunks of `CHUNK`: one to this process, one to
each worker, and so on (a file input is read by whoever analyzes it, not sent). Each
process has one chunk in hand at a time, so memory follows `cores() * CHUNK` inputs, not
the size of the input, and results are written in input order.

Plain `os.fork` and pipes rather than multiprocessing: importing multiprocessing and
concurrent.futures alone costs some 20 ms, which a command started per folder pays whole.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from itertools import chain, cycle, islice
from typing import IO, Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

PARALLEL_FROM = 64  # inputs: fewer are done in this process (measured, bench/startup.py)
CHUNK = 16  # inputs per hand-out: amortises the round trip, keeps the order cheap to restore


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def ordered_map(work: Callable[[T], R], items: Iterable[T], *,
                parallel_from: int | None = None, workers: int | None = None,
                prepare: Callable[[], None] | None = None) -> Iterator[R]:
    """`map(work, items)`, over `workers` processes (default: one per core) once there are
    `parallel_from` items; then `prepare()` runs first, once, before any worker starts.

    `work` should not raise (an exception in a worker counts as the worker's death). Should
    a worker die, its chunks are done in this process: nothing is lost.
    """
    workers = cores() if workers is None else workers
    parallel_from = PARALLEL_FROM if parallel_from is None else parallel_from
    iterator = iter(items)
    head = list(islice(iterator, parallel_from))
    if len(head) < parallel_from or workers < 2 or not hasattr(os, "fork"):
        yield from map(work, chain(head, iterator))
        return
    # The first inputs are done here before forking: the analyzers compile their patterns
    # on first use (analysis/lazy_re.py), and workers forked after inherit them compiled
    # instead of each compiling its own.
    if prepare is not None:
        prepare()
    warm = parallel_from // 2
    yield from map(work, head[:warm])
    yield from _shared(work, chain(head[warm:], iterator), workers)


def _shared(work: Callable[[T], R], items: Iterator[T], workers: int) -> Iterator[R]:
    import gc

    gc.freeze()  # the children's collector leaves the inherited objects (and pages) alone
    children: list[_Worker] = []
    try:
        for _ in range(workers - 1):
            children.append(_Worker(work, children))
        chunks = iter(lambda: list(islice(items, CHUNK)), [])
        owners = cycle([None, *children])  # None: this process
        pending: deque[tuple[list[T], _Worker | None]] = deque()

        def hand_out() -> None:
            chunk = next(chunks, None)
            if chunk is not None:
                owner = next(owners)
                pending.append((chunk, owner if owner is not None and owner.send(chunk)
                                else None))

        for _ in range(workers):
            hand_out()
        while pending:
            chunk, owner = pending.popleft()
            results = owner.receive() if owner is not None else None
            if results is None:  # this process's chunk, or a dead worker's
                results = [work(item) for item in chunk]
            hand_out()
            yield from results
    finally:
        for child in children:
            child.stop()
        gc.unfreeze()


class _Worker:
    """A forked process that analyzes the chunks it is sent, one at a time."""

    def __init__(self, work: Callable[[Any], Any], siblings: list[_Worker]) -> None:
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the caller's code
            code = 1
            try:
                os.close(task_write)
                os.close(result_read)
                for sibling in siblings:  # its EOF must come when the parent closes it
                    sibling.close_files()
                _serve(work, os.fdopen(task_read, "rb"), os.fdopen(result_write, "wb"))
                code = 0
            finally:
                os._exit(code)
        os.close(task_read)
        os.close(result_write)
        self.pid = pid
        self.tasks: IO[bytes] | None = os.fdopen(task_write, "wb")
        self.results: IO[bytes] | None = os.fdopen(result_read, "rb")

    def send(self, chunk: list[Any]) -> bool:
        """Hand a chunk over; False when the worker is gone."""
        if self.tasks is None:
            return False
        try:
            _write(self.tasks, chunk)
            return True
        except OSError:
            self.close_files()
            return False

    def receive(self) -> list[Any] | None:
        """The results of the chunk in hand; None when the worker died on it."""
        found = _read(self.results) if self.results is not None else None
        if found is None:
            self.close_files()
        return found

    def close_files(self) -> None:
        for handle in (self.tasks, self.results):
            if handle is not None:
                handle.close()
        self.tasks = self.results = None

    def stop(self) -> None:
        """End of input (EOF on its pipe): it exits; reap it."""
        self.close_files()
        with suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _serve(work: Callable[[Any], Any], tasks: IO[bytes], results: IO[bytes]) -> None:
    while (chunk := _read(tasks)) is not None:
        _write(results, [work(item) for item in chunk])


_HEADER = 8  # bytes: the length of the pickled frame that follows


def _write(handle: IO[bytes], value: Any) -> None:
    import pickle

    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    handle.write(len(data).to_bytes(_HEADER, "big") + data)
    handle.flush()


def _read(handle: IO[bytes]) -> Any | None:
    """The next frame; None at end of file or on a frame cut short (its writer died)."""
    import pickle

    header = handle.read(_HEADER)
    if len(header) < _HEADER:
        return None
    size = int.from_bytes(header, "big")
    data = handle.read(size)
    return pickle.loads(data) if len(data) == size else None
