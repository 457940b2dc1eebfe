"""Where sweep tasks run: in this process, in a local process pool, or on Ray.

A task is a plain dict (see :func:`initlab.lab.compare.run_task`) and its
result a list of plain record dicts, so every executor ships the same
picklable values. Each executor yields results as tasks finish, which lets
the caller store every finished run at once.

Workers of the local pool watch their parent (:func:`watch_parent`, also
the initializer of the ``initlab claims`` workers): each runs a daemon
thread that checks every :data:`PARENT_POLL_SECONDS` whether the process
that started the pool is still its parent, and ends the worker at once when
it is not (the parent was killed, even by SIGKILL, which no handler sees). A
worker that dies under the pool (killed for memory, a crash in native code)
ends the sweep with :class:`WorkerLost`; every run stored before stays.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from initlab.rng.checks import check_int

__all__ = ["EXECUTORS", "execute", "default_workers", "check_executor", "WorkerLost", "PARENT_POLL_SECONDS",
           "watch_parent"]

# how often a pool worker checks that its parent is alive; it outlives a killed parent by at most this
PARENT_POLL_SECONDS = 0.5


class WorkerLost(RuntimeError):
    """A pool worker died while running a task (the pool cannot go on)."""

EXECUTORS = ("local", "inline", "ray")

Task = dict[str, Any]
Records = list[dict[str, Any]]


def default_workers() -> int:
    """The machine's usable cores (the scheduler affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _exit_when_orphaned(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # the parent is gone: no one will read this worker's results
        time.sleep(PARENT_POLL_SECONDS)


def watch_parent(parent: int) -> None:
    """End this process within :data:`PARENT_POLL_SECONDS` once ``parent`` is no longer its parent.

    For the initializer of a worker pool (``initargs=(os.getpid(),)``): a
    daemon thread polls ``os.getppid()``, so a worker whose parent was
    killed (even by SIGKILL) exits instead of running on unread.
    """
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="initlab-parent-watch", daemon=True).start()


def _worker_setup(threads: int, parent: int) -> None:
    # runs only in pool workers we started: share the cores instead of each worker taking all of them
    watch_parent(parent)
    import torch

    torch.set_num_threads(max(1, threads))


def _inline(run: Callable[[Task], Records], tasks: Sequence[Task]) -> Iterator[Records]:
    for task in tasks:
        yield run(task)


def _local(run: Callable[[Task], Records], tasks: Sequence[Task], workers: int) -> Iterator[Records]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    workers = max(1, min(workers, len(tasks)))
    threads = max(1, default_workers() // workers)
    context = multiprocessing.get_context("spawn")
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_setup,
                               initargs=(threads, os.getpid()))
    try:
        pending = {pool.submit(run, task) for task in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    result = future.result()
                except BrokenProcessPool as error:
                    raise WorkerLost(
                        f"a worker process of the local pool died while running a task ({error}); the runs "
                        "stored so far are kept: continue with --resume, with fewer --workers if memory ran out"
                    ) from None
                yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ray(run: Callable[[Task], Records], tasks: Sequence[Task], address: str | None) -> Iterator[Records]:
    try:
        import ray
    except ImportError as error:
        raise ValueError(
            "executor 'ray' needs Ray: pip install 'initlab[ray]' (or use --executor local)"
        ) from error
    started_here = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started_here = True
    try:
        remote_run = ray.remote(run)
        pending = [remote_run.remote(task) for task in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for reference in done:
                yield ray.get(reference)
    finally:
        if started_here:
            ray.shutdown()


def check_executor(executor: str, workers: int | None) -> None:
    """ValueError for an executor that cannot run here (unknown name, workers < 1, Ray not installed)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers is not None:
        check_int("workers", workers, minimum=1)
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ValueError("executor 'ray' needs Ray: pip install 'initlab[ray]' (or use --executor local)")


def execute(
    run: Callable[[Task], Records],
    tasks: Sequence[Task],
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
) -> Iterator[Records]:
    """Run ``run(task)`` for every task on ``executor``; yield each task's records as it finishes.

    ``local``: a spawn-based process pool with ``workers`` processes (default:
    the machine's cores; 1 worker runs in this process). ``inline``: this
    process, one task after another. ``ray``: one Ray task per task, on the
    cluster at ``address`` or on a local Ray instance started here.
    """
    check_executor(executor, workers)
    if not tasks:
        return iter(())
    if executor == "ray":
        return _ray(run, tasks, address)
    count = default_workers() if workers is None else workers
    if executor == "inline" or count == 1 or len(tasks) == 1:
        return _inline(run, tasks)
    return _local(run, tasks, count)
