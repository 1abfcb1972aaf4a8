"""Dask executor: tasks on a local Dask cluster or an existing one.

Sharing: ``share`` scatters the payload once to every worker
(``broadcast=True``); tasks name it by its future and each worker passes its
own copy, made read-only, to the task. Results stream back as they finish
(``as_completed``).

Faults: when a worker dies mid-task the scheduler reschedules the task by
itself (after ``allowed-failures`` deaths of one task: ``KilledWorker``, raised
as :class:`~executors.base.BrokenExecutorError`). When every holder of the
scattered payload died, it is gone and the tasks needing it are cancelled: the
payload is scattered again and the base loop (``Executor.map``) resubmits
them. ``lost_workers`` is read from the scheduler's ``remove-worker`` events
for this map's tasks; ``retries`` counts the tasks the scheduler rescheduled
plus those resubmitted by the driver.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from btcore.executors import _worker
from btcore.executors.base import (BrokenExecutorError, Executor, ExecutorUnavailableError,
                                   TaskLost, check_worker_count, cpu_count)

_INSTALL = "the dask executor needs dask.distributed: pip install 'btcore[dask]'"
#: where a local cluster listens
_LOOPBACK = "127.0.0.1"
_ADDRESS_HINT = ("start a scheduler (`dask scheduler` + `dask worker ADDRESS`), or pass "
                 "address=None to start a local cluster")


@dataclass
class DaskShare:
    """Handle returned by :meth:`DaskExecutor.share`."""

    payload: dict   # kept to scatter again if every copy is lost
    future: Any     # the scattered payload


class DaskExecutor(Executor):
    """Tasks on Dask: a local cluster started on demand, or a cluster joined by address.

    Parameters
    ----------
    address : None, str or distributed.Client
        None starts a ``LocalCluster`` (worker processes with one thread
        each, quiet logs) that listens on 127.0.0.1 only, and stops it on
        ``close()``. A scheduler address (``"tcp://host:port"``) or a
        ``Client`` joins an existing cluster, which ``close()`` leaves running
        (a Client passed in is not closed either).
    n_workers : int, optional
        Worker processes of the local cluster; default all CPUs.
    recycle_after : int, optional
        Restart a worker after it has run this many tasks of a map: it
        retires gracefully (its queued tasks and data move to other workers)
        and its nanny starts a fresh process. One worker at a time, so the
        scattered payload always has a holder. Needs nannies (the default).
    max_retries : int, default 3
        Times a task is resubmitted after the scattered payload was lost,
        before :class:`~executors.base.BrokenExecutorError`. (Worker deaths
        mid-task are retried by the scheduler itself, ``allowed-failures``
        times.)
    timeout : float, default 10
        Seconds to wait for the scheduler and its first worker.
    upload_files : list of str, optional
        Python files (or .zip/.egg) sent to every worker with
        ``Client.upload_file`` at start, so a remote cluster can import a
        strategy module (local workers find it on their own).
    cluster_kwargs : dict, optional
        More keyword arguments for ``LocalCluster``; they override btcore's
        (``host``, ``dashboard_address``, ...).

    Notes
    -----
    A local cluster is closed to the network: the scheduler, the nannies and
    the workers listen on 127.0.0.1 (``host="127.0.0.1"``), and so do the
    scheduler's HTTP endpoint (dashboard, ``/health``, ``/metrics``; on a
    random port, ``dashboard_address="127.0.0.1:0"``) and the workers' own
    HTTP endpoints. ``cluster_kwargs`` with ``host``, ``ip`` or ``interface``
    replaces the host; to reach a cluster from other machines, start one with
    TLS (``distributed.security.Security``) and join it by address instead.

    A local cluster's workers are spawned processes that re-import the script
    that started them, so a script must start it under
    ``if __name__ == "__main__":``; starting one from a script's top level is
    a ``RuntimeError`` that says so, before any process starts. A worker that
    dies while the local cluster starts is one
    :class:`~executors.base.BrokenExecutorError` line.

    Examples
    --------
    >>> if __name__ == "__main__":  # doctest: +SKIP
    ...     with DaskExecutor("tcp://scheduler:8786") as ex:
    ...         res = run_sweep(grid, executor=ex)
    """

    name = "dask"

    def __init__(self, address=None, n_workers: int | None = None, *,
                 recycle_after: int | None = None, max_retries: int = 3,
                 timeout: float = 10.0, upload_files=(), cluster_kwargs: dict | None = None):
        super().__init__()
        if importlib.util.find_spec("distributed") is None:
            raise ExecutorUnavailableError(_INSTALL)
        from distributed import Client
        if not (address is None or isinstance(address, (str, Client))):
            raise TypeError(f"address must be None, a scheduler address or a distributed.Client, "
                            f"got {type(address).__name__}")
        self.address = address
        self._n_workers = (None if n_workers is None else
                           check_worker_count("n_workers", n_workers))
        self.recycle_after, self.max_retries = _worker.check_fault_options(recycle_after,
                                                                           max_retries)
        self.timeout = timeout
        self._cluster_kwargs = dict(cluster_kwargs or {})
        if isinstance(upload_files, str):
            upload_files = [upload_files]
        self._upload_files = [str(path) for path in upload_files]
        for path in self._upload_files:
            if not os.path.isfile(path):
                raise ValueError(f"upload_files: {path!r} is not a file")
        self._cluster = self._client = self._slots = None
        self._recycling = None  # address of the worker being restarted

    @property
    def n_workers(self) -> int:
        if self._slots is None:
            if self.address is None:
                return self._n_workers or cpu_count()
            self.start()  # a cluster's size is only known once connected
        return self._slots

    def _start(self) -> None:
        from distributed import Client, LocalCluster
        if self.address is None:
            options = {"n_workers": self._n_workers or cpu_count(), "threads_per_worker": 1,
                       "processes": True, "silence_logs": logging.CRITICAL,
                       # loopback only: scheduler, nannies and workers (and their HTTP
                       # endpoints), and the scheduler's dashboard on a random port
                       # (":0" alone would bind it to every interface)
                       "host": _LOOPBACK, "dashboard_address": f"{_LOOPBACK}:0",
                       # one Numba thread per worker process, before numba is imported there
                       "env": {"NUMBA_NUM_THREADS": "1"}}
            if {"host", "ip", "interface"} & set(self._cluster_kwargs):
                del options["host"]  # the caller's choice of address, not two of them
            options.update(self._cluster_kwargs)
            if options.get("processes", True):
                check_main_guard()
            try:
                self._cluster = LocalCluster(**options)
            except (RuntimeError, TimeoutError) as err:  # one line, not nanny tracebacks
                if not (isinstance(err, TimeoutError) or "failed to start" in str(err)):
                    raise
                raise BrokenExecutorError(
                    f"the local Dask cluster could not start its {options['n_workers']} "
                    f"worker process(es): {_root_cause(err)} (a worker exited while "
                    "starting: check cluster_kwargs such as preload or env, free memory, "
                    "and that the worker environment imports btcore)") from None
            self._client = Client(self._cluster, set_as_default=False)
        elif isinstance(self.address, str):
            scheme = self.address.split("://")[0] if "://" in self.address else "tcp"
            if scheme in ("tcp", "tls"):  # others (inproc, ucx) cannot be probed by a socket
                _worker.check_reachable(self.address, self.timeout, _ADDRESS_HINT)
            try:
                self._client = Client(self.address, timeout=self.timeout, set_as_default=False)
            except (OSError, TimeoutError) as err:
                raise ConnectionError(f"cannot connect to a Dask scheduler at {self.address!r} "
                                      f"within {self.timeout} s ({err}); {_ADDRESS_HINT}") from None
        else:
            self._client = self.address
        try:
            self._client.wait_for_workers(1, timeout=self.timeout)
        except TimeoutError:
            raise ConnectionError(f"the Dask cluster at {self._client.scheduler.address!r} has "
                                  f"no workers after {self.timeout} s; start some with "
                                  "`dask worker ADDRESS`") from None
        self._slots = max(1, sum(self._client.nthreads().values()))
        for path in self._upload_files:
            self._client.upload_file(path)

    def _close(self) -> None:
        if self._client is not None and self._client is not self.address:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def share(self, payload) -> DaskShare:
        self.start()
        return DaskShare(payload, self._scatter(payload))

    def _scatter(self, payload):
        # one future for the whole dict: tasks get the worker's copy, nothing per task
        for _ in range(self.max_retries + 1):
            self._client.wait_for_workers(1, timeout=self.timeout)  # e.g. all restarting
            try:
                [future] = self._client.scatter([payload], broadcast=True, hash=False)
                return future
            except OSError as err:  # a worker died while receiving it
                self.lost_workers += 1
                error = err
        raise BrokenExecutorError(f"could not scatter the shared data to the Dask workers "
                                  f"({self.max_retries + 1} attempts): {error}") from error

    def unshare(self, handle) -> None:
        if isinstance(handle, DaskShare) and handle.future is not None:
            handle.future.release()
            handle.future = None

    # ------------------------------------------------------ hooks of Executor.map
    def _check_handle(self, handle) -> None:
        if not isinstance(handle, DaskShare) or handle.future is None:
            raise TypeError("map() takes the handle returned by share() (before unshare())")

    def _in_flight_limit(self) -> int:
        return 2 * self._slots + 4  # queued tasks hide Dask's ~1-3 ms per-task round trip

    def _begin_map(self, run) -> None:
        from distributed import as_completed
        run.prefix = f"btcore-{uuid.uuid4().hex[:12]}"
        run.shared_key = run.handle.future.key  # the payload as first scattered
        run.keys = itertools.count()
        run.calls = Counter()  # worker -> tasks done there (recycling)
        run.resubmitted = set()  # keys of tasks cancelled with the lost payload
        run.outcomes = {}  # future -> what as_completed fetched with it
        run.tasks = {}  # future -> its task, for messages
        # results are fetched in the client's event loop, not by a round trip per task
        run.completed = as_completed(loop=self._client.loop, with_results=True,
                                     raise_errors=False)

    def _submit(self, run, task, attempt):
        future = self._client.submit(_worker.dask_task, run.fn, run.handle.future, task,
                                     key=f"{run.prefix}-{next(run.keys)}", pure=False)
        run.completed.add(future)
        run.tasks[future] = task
        return future

    def _next_done(self, run, pending):
        future, outcome = next(run.completed)
        run.outcomes[future] = outcome
        return future

    def _outcome(self, run, future):
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker
        outcome, task = run.outcomes.pop(future), run.tasks.pop(future)
        if future.status == "finished":
            worker, result = outcome
            future.release()
            self._maybe_recycle(worker, run.calls)
            return result
        error = future.exception() if future.status == "error" else None
        if future.status == "cancelled" or isinstance(error, FutureCancelledError):
            # every copy of the payload died with its workers: scatter it again
            if run.handle.future.status != "finished":
                run.handle.future = self._scatter(run.handle.payload)
            run.resubmitted.add(future.key)
            # the scheduler's events count the workers lost (_end_map)
            raise TaskLost("it was cancelled because every copy of the shared data was lost "
                           "with its workers", counted=False) from error
        if isinstance(error, KilledWorker):
            raise BrokenExecutorError(f"Dask workers died running task {task!r} too "
                                      f"often; giving up: {error}") from error
        return future.result()  # an error raised by the task itself: re-raised here

    def _cancel(self, run, futures) -> None:
        for future in futures:
            future.cancel()

    def _end_map(self, run) -> None:
        self._count_losses(run.prefix, run.shared_key, run.resubmitted)

    def _maybe_recycle(self, worker: str, calls: Counter) -> None:
        if self.recycle_after is None:
            return
        calls[worker] += 1
        if self._recycling is not None:
            # one worker at a time, and only once its replacement has joined:
            # a worker retiring with no peer would take the only payload copy along
            retiring, n_before, since = self._recycling
            workers = self._client.nthreads()
            replaced = retiring not in workers and len(workers) >= n_before
            if not replaced and time.monotonic() - since < 3 * self.timeout:
                return
            self._recycling = None
        if calls[worker] >= self.recycle_after:
            del calls[worker]
            self._recycling = (worker, len(self._client.nthreads()), time.monotonic())
            self._client.run(_worker.dask_restart_gracefully, workers=[worker], wait=False)

    def _count_losses(self, prefix: str, shared_key, resubmitted: set) -> None:
        try:
            events, lost_keys = self._client.run_on_scheduler(_worker.scheduler_losses(), prefix,
                                                              shared_key)
        except (OSError, TimeoutError):  # the cluster is gone: nothing more to learn
            return
        self.lost_workers += events
        self.retries += len(set(lost_keys) - resubmitted)  # the base loop counted the others

    def __repr__(self) -> str:
        where = "local" if self.address is None else repr(self.address)
        return f"DaskExecutor({where}, workers={self._slots or self._n_workers or '?'})"


# ------------------------------------------------- the main-module guard
MAIN_GUARD_HINT = """\
Dask starts its worker processes with multiprocessing's 'spawn': each one re-imports
your script {script}, and {where} starts the cluster at the script's top level,
outside `if __name__ == "__main__":`, so every worker would start a cluster of its
own and the workers fail to start ("Nanny failed to start"). Put the code that runs
sweeps under a main guard:

    from btcore import run_sweep

    if __name__ == "__main__":
        result = run_sweep(grid, executor="dask")   # or DaskExecutor(...)
"""


def check_main_guard() -> None:
    """RuntimeError (with :data:`MAIN_GUARD_HINT`) when a local cluster is being started
    by the top-level code of a ``__main__`` script, outside its main guard: spawned
    workers re-import the script and would run that code again.

    Checked in the driver, before any process starts (the line of the script that
    is running, against the script's syntax tree), and as a fallback in a process
    that is being spawned (``multiprocessing``'s bootstrapping phase), which then
    exits with the hint instead of failing inside its nanny.
    """
    import multiprocessing
    import sys
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # a spawned process re-running the script: one message, no nanny tracebacks
        raise SystemExit("btcore: " + MAIN_GUARD_HINT.format(script=script or "",
                                                             where="it"))
    if not script or not _spawns_processes():
        return
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            break
        frame = frame.f_back
    if frame is None:
        return  # not run by the script's top-level code (a thread, a callback)
    line = unguarded_line(script, frame.f_lineno)
    if line is not None:
        raise RuntimeError(MAIN_GUARD_HINT.format(script=script, where=f"line {line}"))


def _spawns_processes() -> bool:
    """True when Dask's worker processes start by 'spawn' or 'forkserver' (which
    re-import ``__main__``), not 'fork'."""
    import dask
    method = dask.config.get("distributed.worker.multiprocessing-method", "spawn")
    return method != "fork"


def unguarded_line(path: str, lineno: int) -> int | None:
    """The first line of the top-level statement of the Python file ``path`` that
    holds line ``lineno``, unless it is an ``if __name__ == "__main__":`` block; None
    then, and when the file cannot be read or parsed (no false alarm)."""
    import ast
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), filename=path)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    for node in tree.body:
        end = getattr(node, "end_lineno", node.lineno)
        if node.lineno <= lineno <= end:
            return None if _is_main_guard(node) else node.lineno
    return None


def _is_main_guard(node) -> bool:
    import ast
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and mains)


def _root_cause(err: BaseException) -> str:
    """``Type: first line`` of the innermost cause of ``err``."""
    while err.__cause__ is not None or (err.__context__ is not None
                                        and not err.__suppress_context__):
        err = err.__cause__ or err.__context__
    text = str(err).strip().split("\n")[0][:200]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
