"""Work over many messages, spread over the machine's cores, results in input order.

`imap-bouncer analyze` over a folder is CPU-bound and every message is independent. Below
`PARALLEL_FROM` inputs the work stays in this process: starting workers costs more than
they save there (bench/startup.py measures both sides). From then on, worker processes are
forked, so they start with the analyzers this process has already imported, and take
`CHUNK` inputs per task (a file input is read by the worker, not sent to it), this process
doing its share; results come back in input order, with at most `IN_FLIGHT` tasks per
worker outstanding, so memory follows that window, not the size of the input.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, count, islice
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

T = TypeVar("T")
R = TypeVar("R")

PARALLEL_FROM = 48  # inputs: fewer are done in this process (measured, bench/startup.py)
CHUNK = 16  # inputs per task: amortises the round trip, keeps the order cheap to restore
IN_FLIGHT = 4  # tasks per worker submitted ahead of the one being written out


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def ordered_map(work: Callable[[T], R], items: Iterable[T], *,
                parallel_from: int | None = None, workers: int | None = None) -> Iterator[R]:
    """`map(work, items)`, in forked worker processes once there are `parallel_from` items.

    `work` must be a module-level function (or a partial of one) that does not raise. Should
    a worker die, what it had in hand is done in this process and the rest too.
    """
    workers = cores() if workers is None else workers
    parallel_from = PARALLEL_FROM if parallel_from is None else parallel_from
    iterator = iter(items)
    head = list(islice(iterator, parallel_from))
    if len(head) < parallel_from or workers < 2 or not hasattr(os, "fork"):
        yield from map(work, chain(head, iterator))
        return
    yield from _in_workers(work, chain(head, iterator), workers)


def _in_workers(work: Callable[[T], R], items: Iterator[T], workers: int) -> Iterator[R]:
    """`workers - 1` forked processes and this one share the chunks: every `workers`-th
    chunk is this process's, done when its turn to be written out comes, while the forked
    ones work ahead on theirs."""
    import gc
    import multiprocessing  # only here: a short run never pays for it
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    gc.freeze()  # the analyzers' objects stay untouched by the children's collector: shared
    pending: deque[tuple[list[T], Future | None]] = deque()
    executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
        max_workers=workers - 1, mp_context=multiprocessing.get_context("fork"))
    try:
        for number in count():
            chunk = list(islice(items, CHUNK))
            if chunk:
                future = None
                if executor is not None and number % workers:
                    try:
                        future = executor.submit(_run_chunk, work, chunk)
                    except (BrokenProcessPool, RuntimeError):  # broken since
                        executor = _give_up(executor)
                pending.append((chunk, future))
            if not pending:
                return
            if chunk and len(pending) < workers * IN_FLIGHT:
                continue
            done_chunk, done = pending.popleft()
            try:
                results = done.result() if done is not None else _run_chunk(work, done_chunk)
            except BrokenProcessPool:
                executor = _give_up(executor)
                results = _run_chunk(work, done_chunk)
            yield from results
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


def _run_chunk(work: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [work(item) for item in chunk]


def _give_up(executor: ProcessPoolExecutor | None) -> None:
    """A worker died (killed, out of memory): the rest is done in this process."""
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
    return None
