"""The executor protocol, and the one loop that runs tasks on a process backend.

An executor runs ``fn(shared, task)`` for many small tasks and yields
``(task, result)`` pairs *as they complete*. The sweep owns batching, ordering
and re-assembly; executors only ship the shared data once and run tasks.

Verbs (after ``concurrent.futures.Executor``): ``start`` (idempotent; also done
by ``share``/``map``), ``share(payload) -> handle`` once per sweep,
``map(fn, handle, tasks)`` yielding as completed, ``close`` (idempotent); usable
as a context manager so one cluster serves several sweeps.

Process backends (joblib, Ray, Dask) do not write ``map``: they implement a few
hooks (``_submit``, ``_next_done``, ``_outcome``, ``_cancel``) and
:meth:`Executor.map` owns what they have in common: how many tasks are in
flight, resubmitting a task lost to a dead worker, node or payload (raised by
``_outcome`` as :class:`TaskLost`) up to ``max_retries`` times, re-raising a
task's own error unchanged, and cancelling what is still pending when the
consumer stops early or an error propagates.
"""
from __future__ import annotations

import abc
import os
from collections import deque
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator


class ExecutorUnavailableError(ImportError):
    """An optional executor backend is not installed (the message names the extra)."""


class BrokenExecutorError(RuntimeError):
    """Tasks could not be completed even after the allowed retries."""


class TaskLost(Exception):
    """Raised by a backend's ``_outcome``: the task did not fail, what ran it did
    (its worker process, node or shared data is gone), so it may run again.

    Raise it ``from`` the backend's own exception; the message says what was lost.

    Parameters
    ----------
    event : hashable, optional
        Names the failure, so tasks lost together (one pool breaking) count
        one lost worker; None: this task's loss is its own event.
    counted : bool, default True
        False when the backend counts ``lost_workers`` itself (Dask reads the
        scheduler's events).
    """

    def __init__(self, message: str, *, event=None, counted: bool = True):
        super().__init__(message)
        self.event = event
        self.counted = counted


_DONE = object()


class Executor(abc.ABC):
    """Base class of btcore executors.

    Capability flags (class attributes):

    - ``in_process``: tasks run in the driver process (no pickling, no copies).
    """

    name = "base"
    in_process = False
    max_retries = 0  # resubmissions of one lost task (process backends take it as an option)

    def __init__(self) -> None:
        self.retries = 0
        self.lost_workers = 0
        self._started = False
        self._closed = False

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "Executor":
        """Start workers or connect to a cluster (idempotent)."""
        if self._closed:
            raise BrokenExecutorError(f"{self.name} executor is closed; create a new one")
        if not self._started:
            self._start()
            self._started = True
        return self

    def _start(self) -> None:  # overridden by executors that own resources
        pass

    def close(self) -> None:
        """Release workers/clusters this executor started (idempotent)."""
        if self._started and not self._closed:
            self._close()
        self._closed = True

    def _close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self):  # best effort; explicit close() or a with-block is the contract
        try:
            self.close()
        except Exception:
            pass

    # -------------------------------------------------------------------- work
    @property
    def n_workers(self) -> int:
        """Tasks that run at once (processes, cluster CPUs or threads)."""
        return 1

    def share(self, payload: dict[str, Any]) -> Any:
        """Make ``payload`` (arrays and small objects) available to every worker once."""
        self.start()
        return payload

    def unshare(self, handle: Any) -> None:
        """Release what ``share`` placed on workers (no-op by default)."""

    def map(self, fn: Callable, handle: Any, tasks: Iterable) -> Iterator[tuple[Any, Any]]:
        """Run ``fn(shared, task)`` for every task; yield ``(task, result)`` as each finishes.

        Each task is yielded once. Tasks are taken from ``tasks`` lazily, at most
        ``_in_flight_limit()`` in flight. A task lost to a dead worker, node or
        payload is resubmitted up to ``max_retries`` times (each resubmission
        counts in ``retries``), then :class:`BrokenExecutorError` names it; an
        exception raised by the task itself propagates with its own type and
        message and is never retried. Closing the iterator early (or an error)
        cancels the tasks still pending.
        """
        self._check_handle(handle)
        self.start()
        return self._loop(fn, handle, tasks)

    def _loop(self, fn, handle, tasks):
        run = SimpleNamespace(fn=fn, handle=handle)  # this map's state: maps may run concurrently
        self._begin_map(run)
        limit = max(1, int(self._in_flight_limit()))
        upcoming, again = iter(tasks), deque()
        pending = {}  # backend future -> (task, attempt)
        events = set()  # loss events already counted in lost_workers
        try:
            while True:
                while len(pending) < limit:
                    if again:
                        task, attempt = again.popleft()
                    else:
                        task = _DONE if upcoming is None else next(upcoming, _DONE)
                        if task is _DONE:
                            upcoming = None
                            break
                        attempt = 0
                    pending[self._submit(run, task, attempt)] = (task, attempt)
                if not pending:
                    return
                future = self._next_done(run, pending)
                task, attempt = pending.pop(future)
                try:
                    result = self._outcome(run, future)
                except TaskLost as lost:
                    if lost.counted and (lost.event is None or lost.event not in events):
                        self.lost_workers += 1
                        if lost.event is not None:
                            events.add(lost.event)
                    if attempt >= self.max_retries:
                        raise BrokenExecutorError(
                            f"task {task!r} was lost {attempt + 1} times on the {self.name} "
                            f"executor (max_retries={self.max_retries}): {lost} (a task that kills "
                            "its own worker, by memory or a crash, shows why on the serial "
                            "executor)") from (lost.__cause__ or lost)
                    self.retries += 1
                    again.append((task, attempt + 1))
                    continue
                yield task, result
        finally:
            try:
                if pending:  # the consumer stopped early or an error propagates
                    self._cancel(run, list(pending))
            finally:
                self._end_map(run)

    # ------------------------------------------------- hooks of process backends
    def _check_handle(self, handle: Any) -> None:
        """TypeError unless ``handle`` came from this kind of executor's ``share``."""

    def _in_flight_limit(self) -> int:
        """Tasks submitted at once: a few queued per worker hide the round trip."""
        return 2 * self.n_workers

    def _begin_map(self, run: SimpleNamespace) -> None:
        """Set up per-map state on ``run`` (it has ``fn`` and ``handle``)."""

    def _submit(self, run: SimpleNamespace, task: Any, attempt: int) -> Any:
        """Start ``run.fn(shared, task)`` (attempt 0, then 1... after losses); return a
        hashable future."""
        raise NotImplementedError(f"{type(self).__name__} implements neither map() nor _submit()")

    def _next_done(self, run: SimpleNamespace, pending: dict) -> Any:
        """Block until one future of ``pending`` (a dict keyed by futures) is done; return it."""
        raise NotImplementedError

    def _outcome(self, run: SimpleNamespace, future: Any) -> Any:
        """The result of a done future; raise :class:`TaskLost` if what ran it died,
        or the task's own exception, unchanged."""
        raise NotImplementedError

    def _cancel(self, run: SimpleNamespace, futures: list) -> None:
        """Cancel futures still pending (best effort, must not raise)."""

    def _end_map(self, run: SimpleNamespace) -> None:
        """After a map, however it ended (e.g. read loss counts from a scheduler)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.n_workers})"


def cpu_count() -> int:
    """CPUs this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_worker_count(name: str, value, allow_minus_one: bool = True) -> int:
    """Validate an ``n_jobs``-style count: a positive int, or -1 for all CPUs."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value == -1 and allow_minus_one:
        return cpu_count()
    if value < 1:
        hint = " or -1 for all CPUs" if allow_minus_one else ""
        raise ValueError(f"{name} must be >= 1{hint}, got {value}")
    return value
