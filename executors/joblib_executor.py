"""joblib executor: a private pool of loky worker processes on this machine.

Sharing: ``share`` writes each array once to a temporary directory (in
``/dev/shm`` when available) and every worker memory-maps it read-only the
first time it sees that directory; a task ships only the directory name and
its ``Task``. Tasks are futures of loky's ``ProcessPoolExecutor`` (the pool
joblib itself uses), owned by this executor: joblib's process-wide reusable
pool is never touched, so other ``joblib.Parallel`` calls, and other sweeps on
this executor, are unaffected by what happens here.

A driver killed before ``close()`` (SIGKILL, an out-of-memory kill) leaves
nothing running: every worker polls its parent and exits once it is gone (loky's
own workers would wait on their queue forever). Its shared directories stay, named
after it (``btcore-share-<pid>.<start time>-...``); the next ``start()`` of any
joblib executor of this user removes those of drivers that are gone, and kills
any worker still marked with a dead driver's name.

Faults: a task's own error fails only its future; the pool keeps its workers.
A worker that dies breaks the whole pool (loky fails every pending future with
``TerminatedWorkerError``, without saying which task was on the dead worker):
the base loop resubmits the pending tasks, which go to a fresh pool.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import threading
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass

from btcore.executors import _worker
from btcore.executors.base import (BrokenExecutorError, Executor, TaskLost, check_worker_count,
                                   cpu_count)

#: environment variable marking this executor's loky workers with the driver's
#: ``_worker.driver_tag()``: the next start kills those whose driver is gone
_MARK = "BTCORE_JOBLIB_DRIVER"
# what joblib's loky backend sets in its workers: no oversubscribed inner thread pools
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class JoblibShare:
    """Handle returned by :meth:`JoblibExecutor.share`: where the payload was written."""

    directory: str


class _Pool:
    """One loky pool and what this executor knows about it."""

    def __init__(self, executor, generation: int):
        self.executor = executor
        self.generation = generation
        self.submitted = 0     # tasks given to it (recycling)
        self.outstanding = 0   # of those, not done yet (a retired pool closes at 0)
        self.broken = False


class JoblibExecutor(Executor):
    """Tasks on a private pool of loky worker processes.

    Parameters
    ----------
    n_jobs : int, default -1
        Worker processes; -1 means every CPU this process may use.
    recycle_after : int, optional
        Replace the pool once it has been given ``recycle_after * n_jobs``
        tasks (about this many per worker): later tasks go to a fresh pool,
        and the old one closes when its tasks are done. (loky has no
        per-worker task limit; a fresh pool costs ~1 s with the workers'
        imports, so use hundreds.) None keeps the workers until ``close()``.
    max_retries : int, default 3
        Times one task is resubmitted after a worker died while it was
        pending, before :class:`~executors.base.BrokenExecutorError`.
    temp_folder : str, optional
        Where shared arrays are written; default ``/dev/shm`` if writable,
        else the system temporary directory.

    Notes
    -----
    ``lost_workers`` counts pools broken by a dead worker, ``retries`` the
    tasks resubmitted after it (every task pending in a broken pool, since
    loky does not say which one was running on the dead worker).
    ``close()`` stops every worker this executor started.

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
        self._shared = set()  # directories not yet unshared: removed on close()
        self._lock = threading.Lock()  # the pools, for maps running in several threads
        self._pool = None
        self._stopped = False  # set by close(), under the lock
        self._retired = []  # pools given no more tasks, closed once their tasks are done
        self._generations = itertools.count(1)

    @property
    def n_workers(self) -> int:
        return self._n_jobs

    # ------------------------------------------------------------------ pools
    def _new_pool(self) -> _Pool:
        from joblib.externals.loky import ProcessPoolExecutor
        threads = str(max(cpu_count() // self._n_jobs, 1))
        env = {var: os.environ.get(var, threads) for var in _THREAD_VARS}
        env.setdefault("ENABLE_IPC", os.environ.get("ENABLE_IPC", "1"))  # TBB
        env[_MARK] = _worker.driver_tag()
        # workers exit when this process dies (loky's would wait on its queue forever)
        return _Pool(ProcessPoolExecutor(max_workers=self._n_jobs, env=env,
                                         initializer=_worker.exit_with_parent,
                                         initargs=(os.getpid(),)),
                     next(self._generations))

    def _pool_for_task(self) -> _Pool:
        """The pool the next task goes to (a fresh one after a break or a recycling
        chunk); counts the task in it."""
        with self._lock:
            if self._stopped:
                raise BrokenExecutorError("joblib executor is closed; create a new one")
            pool = self._pool
            if pool is not None and (pool.broken or (
                    self.recycle_after is not None
                    and pool.submitted >= self.recycle_after * self._n_jobs)):
                self._retired.append(pool)
                pool = self._pool = None
            if pool is None:
                pool = self._pool = self._new_pool()
            done = [old for old in self._retired if old.outstanding == 0]
            self._retired = [old for old in self._retired if old.outstanding]
            pool.submitted += 1
            pool.outstanding += 1
        for old in done:  # idle now: its workers exit (a broken pool's are already dead)
            old.executor.shutdown(wait=True)
        return pool

    def _task_done(self, pool: _Pool) -> None:
        with self._lock:
            pool.outstanding -= 1

    def _start(self) -> None:
        # what drivers killed before they could close left behind: workers, payloads
        _worker.kill_stale(_MARK)
        _worker.remove_stale_shares(self._temp_folder or _default_temp_folder()
                                    or tempfile.gettempdir())
        pool = self._pool_for_task()  # start the workers now, not inside the first sweep
        pings = [pool.executor.submit(_worker.joblib_ping) for _ in range(self._n_jobs)]
        self._task_done(pool)
        for ping in pings:
            ping.result()

    def _close(self) -> None:
        with self._lock:
            pools = self._retired + ([self._pool] if self._pool is not None else [])
            self._pool, self._retired, self._stopped = None, [], True
        for pool in pools:  # stop workers now, even mid-task
            pool.executor.shutdown(wait=True, kill_workers=True)
        for directory in self._shared:
            shutil.rmtree(directory, ignore_errors=True)
        self._shared.clear()

    # ---------------------------------------------------------------- sharing
    def share(self, payload):
        self.start()
        folder = self._temp_folder or _default_temp_folder()
        # named after this process, so a later start can remove it if this one is killed
        directory = tempfile.mkdtemp(prefix=_worker.share_prefix(), dir=folder)
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

    # ------------------------------------------------------ hooks of Executor.map
    def _check_handle(self, handle) -> None:
        if not isinstance(handle, JoblibShare):
            raise TypeError(f"map() takes the handle returned by share(), got "
                            f"{type(handle).__name__}")

    def _begin_map(self, run) -> None:
        run.pools, run.done = {}, []  # future -> its pool; futures done, not yet returned

    def _submit(self, run, task, attempt):
        from joblib.externals.loky.process_executor import BrokenProcessPool
        for _ in range(self.max_retries + 2):
            pool = self._pool_for_task()
            try:
                future = pool.executor.submit(_worker.joblib_task, run.fn, run.handle.directory,
                                              task)
            except BrokenProcessPool:  # it broke since the last result: use a fresh one
                pool.broken = True
                self._task_done(pool)
                continue
            future.add_done_callback(lambda _, pool=pool: self._task_done(pool))
            run.pools[future] = pool
            return future
        raise BrokenExecutorError(f"joblib workers keep dying before they can take task "
                                  f"{task!r} ({self.max_retries + 2} fresh pools)")

    def _next_done(self, run, pending):
        if not run.done:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            run.done.extend(done)
        return run.done.pop()

    def _outcome(self, run, future):
        from joblib.externals.loky.process_executor import (BrokenProcessPool,
                                                            ShutdownExecutorError)
        pool = run.pools.pop(future)
        try:
            return future.result()
        except BrokenProcessPool as err:
            pool.broken = True  # every task pending there failed with it
            raise TaskLost(f"a worker died while the task was pending ({_exit_codes(err)}; "
                           "loky does not say which task was running on it)",
                           event=pool.generation) from err
        except ShutdownExecutorError as err:
            raise BrokenExecutorError("the joblib executor was closed while tasks were "
                                      "running") from err

    def _cancel(self, run, futures) -> None:
        for future in futures:  # those already handed to a worker run to the end
            future.cancel()

    def __repr__(self) -> str:
        return f"JoblibExecutor(n_jobs={self._n_jobs})"


def _exit_codes(err) -> str:
    """The worker exit codes loky put in its message, e.g. ``exit codes {SIGKILL(-9)}``."""
    found = re.search(r"exit codes of the workers are (.*)", str(err))
    return f"exit codes {found.group(1).strip()}" if found else str(err).split("\n")[0]


def _default_temp_folder() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
