"""joblib executor: a local pool of loky worker processes.

Sharing: ``share`` writes each array once to a temporary directory (in
``/dev/shm`` when available) and every worker memory-maps it read-only the
first time it sees that directory; a task ships only the directory name and
its ``Task``. Results stream back as they finish
(``return_as="generator_unordered"``).

Faults: loky cannot retry a task whose worker died; the whole call raises
``TerminatedWorkerError``. ``map`` keeps what was already yielded and runs only
the missing tasks on a fresh pool, up to ``max_retries`` times.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass

from btcore.executors import _worker
from btcore.executors.base import BrokenExecutorError, Executor, check_worker_count

# loky keeps one process-wide pool and reuses it while its arguments do not
# change; a new value here forces a fresh pool (worker recycling)
_POOL_GENERATION = itertools.count(1)


@dataclass(frozen=True)
class JoblibShare:
    """Handle returned by :meth:`JoblibExecutor.share`: where the payload was written."""

    directory: str


class JoblibExecutor(Executor):
    """Tasks on a local pool of joblib (loky) worker processes.

    Parameters
    ----------
    n_jobs : int, default -1
        Worker processes; -1 means every CPU this process may use.
    recycle_after : int, optional
        Replace the pool after each worker has run about this many tasks
        (loky has no per-worker task limit: ``map`` runs the tasks in chunks
        of ``recycle_after * n_jobs`` and starts a fresh pool for each chunk:
        ~1 s with the workers' imports, so use hundreds). None keeps the
        workers for the executor's lifetime.
    max_retries : int, default 3
        Fresh pools to try after a worker died before giving up with
        :class:`~executors.base.BrokenExecutorError`.
    temp_folder : str, optional
        Where shared arrays are written; default ``/dev/shm`` if writable,
        else the system temporary directory.

    Notes
    -----
    ``retries`` counts pools restarted after a worker died (loky does not say
    which tasks were running, so every unfinished task is resubmitted) and
    ``lost_workers`` counts the deaths seen. ``close()`` leaves the idle loky
    processes to joblib, which reuses them for later calls and stops them
    after 300 s without work.

    Examples
    --------
    >>> with JoblibExecutor(n_jobs=2) as ex:  # doctest: +SKIP
    ...     res = run_sweep(grid, executor=ex)
    """

    name = "joblib"

    def __init__(self, n_jobs: int = -1, *, recycle_after: int | None = None,
                 max_retries: int = 3, temp_folder: str | None = None):
        super().__init__()
        self._n_jobs = check_worker_count("n_jobs", n_jobs)
        self.recycle_after, self.max_retries = _worker.check_fault_options(recycle_after,
                                                                           max_retries)
        self._temp_folder = temp_folder
        self._generation = None  # pool arguments of the current recycling chunk
        self._shared = set()  # directories not yet unshared: removed on close()

    @property
    def n_workers(self) -> int:
        return self._n_jobs

    def _parallel(self):
        from joblib import Parallel
        pool_args = {}
        if self._generation is not None:  # new initargs -> loky starts a fresh pool
            pool_args = {"initializer": _recycled_pool_init, "initargs": (self._generation,)}
        # tasks are already batches: one per dispatch, a few queued per worker
        return Parallel(n_jobs=self._n_jobs, backend="loky", return_as="generator_unordered",
                        batch_size=1, pre_dispatch="2 * n_jobs", max_nbytes=None, **pool_args)

    def _start(self) -> None:
        from joblib import delayed
        # start the workers now, not inside the first sweep
        list(self._parallel()(delayed(_worker.joblib_ping)() for _ in range(self._n_jobs)))

    def share(self, payload):
        self.start()
        folder = self._temp_folder or _default_temp_folder()
        directory = tempfile.mkdtemp(prefix="btcore-share-", dir=folder)
        try:
            _worker.dump_shared(payload, directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._shared.add(directory)
        return JoblibShare(directory)

    def unshare(self, handle) -> None:
        if isinstance(handle, JoblibShare):
            shutil.rmtree(handle.directory, ignore_errors=True)
            self._shared.discard(handle.directory)

    def _close(self) -> None:
        for directory in self._shared:
            shutil.rmtree(directory, ignore_errors=True)
        self._shared.clear()

    def map(self, fn, handle, tasks):
        from joblib import delayed
        from joblib.externals.loky.process_executor import TerminatedWorkerError
        if not isinstance(handle, JoblibShare):
            raise TypeError(f"map() takes the handle returned by share(), got "
                            f"{type(handle).__name__}")
        self.start()
        tasks = list(tasks)
        chunk = len(tasks) if self.recycle_after is None else self.recycle_after * self._n_jobs
        for first in range(0, len(tasks), max(chunk, 1)):
            if self.recycle_after is not None and first:
                self._generation = next(_POOL_GENERATION)
            todo = dict(enumerate(tasks[first:first + chunk]))
            failures = 0
            while todo:
                calls = (delayed(_indexed)(fn, handle.directory, i, task)
                         for i, task in list(todo.items()))
                results = self._parallel()(calls)
                try:
                    for i, result in results:
                        yield todo.pop(i), result
                except TerminatedWorkerError as err:
                    # results already yielded are kept; the pool is rebuilt on the next call
                    self.lost_workers += 1
                    failures += 1
                    if failures > self.max_retries:
                        raise BrokenExecutorError(
                            f"joblib workers died {failures} times while running {len(todo)} "
                            f"remaining task(s); giving up (max_retries={self.max_retries}). "
                            "A task may crash its worker (memory? segfault?): try the serial "
                            "executor to see the error") from err
                    self.retries += 1
                finally:
                    _close_quietly(results)

    def __repr__(self) -> str:
        return f"JoblibExecutor(n_jobs={self._n_jobs})"


def _close_quietly(results) -> None:
    """Close a joblib generator; stopping early is intended here, not worth a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*You could benefit from adjusting the input task")
        results.close()


def _indexed(fn, directory, index, task):
    """Run one task in a worker; the index tells the driver which task finished."""
    return index, _worker.joblib_task(fn, directory, task)


def _recycled_pool_init(generation: int) -> None:
    """Pool initializer whose argument only makes each recycled pool distinct."""


def _default_temp_folder() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
