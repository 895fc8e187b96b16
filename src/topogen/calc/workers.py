"""Per-structure CHGNet work in worker processes: ``workers`` processes of ``threads`` torch
threads each, sharing the parent's loaded model (fork: copy-on-write, no reload).

On small CPU nodes several single-thread processes beat one multi-threaded one: CHGNet's
small graphs parallelise poorly inside torch, and on shared cores multi-threaded torch can
become many times slower (measured on 2 shared cores: 2 threads 3-6x slower than 1). Work
items must not depend on which worker runs them; results come back in input order.
Without ``fork`` (not Linux) or with ``workers <= 1`` everything runs in this process.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Sequence
from typing import Any

_MODEL: Any = None


def _init(threads: int) -> None:
    from topogen.runtime import set_threads

    # A parent's SIGTERM handler (Lightning installs one for SLURM) would outlive the fork
    # and keep the pool from ending its workers.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    set_threads(threads)


def _call(job: tuple[Callable[[Any, Any], Any], Any]) -> Any:
    fn, item = job
    return fn(_MODEL, item)


def map_with_model(
    fn: Callable[[Any, Any], Any],
    items: Sequence[Any],
    *,
    model: Any,
    workers: int = 1,
    threads: int = 1,
    cost: Sequence[float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """``[fn(model, item) for item in items]``, spread over ``workers`` processes.

    ``fn`` must be a module-level function (it is pickled by name). ``cost`` (one estimate
    per item) hands out the most expensive items first, which balances the workers;
    ``progress(done, total)`` is called as items finish.
    """
    global _MODEL
    n = len(items)
    serial = workers <= 1 or n <= 1 or "fork" not in multiprocessing.get_all_start_methods()
    if serial:
        out = []
        for k, item in enumerate(items):
            out.append(fn(model, item))
            if progress is not None:
                progress(k + 1, n)
        return out
    order = list(range(n)) if cost is None else sorted(range(n), key=lambda i: -cost[i])
    results: list[Any] = [None] * n
    _MODEL = model
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(workers, n), initializer=_init, initargs=(threads,)) as pool:
            jobs = [(fn, items[i]) for i in order]
            for done, (i, res) in enumerate(zip(order, pool.imap(_call, jobs), strict=True)):
                results[i] = res
                if progress is not None:
                    progress(done + 1, n)
            pool.close()  # let the workers end on their own (terminate() is for errors)
            pool.join()
    finally:
        _MODEL = None
    return results
