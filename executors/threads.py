"""Threads executor: tasks on a pool of Python threads in this process.

The batch kernel is compiled ``nogil=True``, so threads running different
tasks run in parallel on all local cores, with no processes, no copies and no
pickling. Each task is the serial kernel, so results are bit-identical to
``serial``. (Parallelising *inside* a task with Numba's ``prange`` instead meets
at a barrier twice per task: on a machine shared with other processes a
descheduled thread stalls every task, measured 10-15x slower than serial on
short walk-forward tasks; independent tasks have no such barrier.)
"""
from __future__ import annotations

import queue
import threading

from btcore.executors.base import Executor, check_worker_count, cpu_count

_DONE = object()


class ThreadsExecutor(Executor):
    """Tasks on ``n_threads`` Python threads running the ``nogil`` kernel.

    Parameters
    ----------
    n_threads : int, default -1
        Threads to use; -1 means every CPU this process may use.
    """

    name = "threads"
    in_process = True

    def __init__(self, n_threads: int = -1):
        super().__init__()
        self._n_threads = check_worker_count("n_threads", n_threads)

    @property
    def n_workers(self) -> int:
        return min(self._n_threads, cpu_count() or 1)

    def map(self, fn, handle, tasks):
        """Yield ``(task, fn(handle, task))`` as tasks finish.

        Threads take tasks from ``tasks`` in order (longest first, as given) as
        they free up, reading it lazily: a plan of millions of tasks is never
        held in memory. A task's error stops the others after their current task
        and is re-raised here. Stopping early (closing the generator) lets running
        tasks finish and starts no new ones.
        """
        self.start()
        upcoming, taking = iter(tasks), threading.Lock()
        n_threads = self.n_workers
        results = queue.SimpleQueue()
        stop = threading.Event()

        def work():
            while not stop.is_set():
                with taking:
                    task = next(upcoming, _DONE)
                if task is _DONE:
                    break
                try:
                    results.put((task, fn(handle, task), None))
                except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
                    stop.set()
                    results.put((task, None, err))
                    break
            results.put(_DONE)

        threads = [threading.Thread(target=work, name=f"btcore-threads-{i}", daemon=True)
                   for i in range(n_threads)]
        for thread in threads:
            thread.start()
        running = n_threads
        try:
            while running:
                item = results.get()
                if item is _DONE:
                    running -= 1
                    continue
                task, result, error = item
                if error is not None:
                    raise error
                yield task, result
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    def __repr__(self) -> str:
        return f"ThreadsExecutor(n_threads={self.n_workers})"
