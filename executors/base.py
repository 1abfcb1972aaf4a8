"""The executor protocol.

An executor runs ``fn(shared, task)`` for many small tasks and yields
``(task, result)`` pairs *as they complete*. The sweep owns batching, ordering
and re-assembly; executors only ship the shared data once and run tasks.

Verbs (after ``concurrent.futures.Executor``): ``start`` (idempotent; also done
by ``share``/``map``), ``share(payload) -> handle`` once per sweep,
``map(fn, handle, tasks)`` yielding as completed, ``close`` (idempotent); usable
as a context manager so one cluster serves several sweeps.
"""
from __future__ import annotations

import abc
import os
from typing import Any, Callable, Iterable, Iterator


class ExecutorUnavailableError(ImportError):
    """An optional executor backend is not installed (the message names the extra)."""


class BrokenExecutorError(RuntimeError):
    """Tasks could not be completed even after the allowed retries."""


class Executor(abc.ABC):
    """Base class of btcore executors.

    Capability flags (class attributes):

    - ``in_process``: tasks run in the driver process (no pickling, no copies).
    - ``parallel_kernel``: tasks should use the strategy's ``prange`` kernel
      (the executor parallelises *inside* a task rather than across tasks).
    """

    name = "base"
    in_process = False
    parallel_kernel = False

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
        """Parallel task slots (threads for ``parallel_kernel`` executors)."""
        return 1

    def share(self, payload: dict[str, Any]) -> Any:
        """Make ``payload`` (arrays and small objects) available to every worker once."""
        self.start()
        return payload

    def unshare(self, handle: Any) -> None:
        """Release what ``share`` placed on workers (no-op by default)."""

    @abc.abstractmethod
    def map(self, fn: Callable, handle: Any, tasks: Iterable) -> Iterator[tuple[Any, Any]]:
        """Run ``fn(shared, task)`` for every task; yield ``(task, result)`` as each finishes."""

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
