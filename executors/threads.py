"""Threads executor: the strategy's ``prange`` kernel over all local cores, in-process.

No processes and no copies: the parallelism is inside each task (Numba threads
over the parameter sets of a batch), so tasks run one after another here.
"""
from __future__ import annotations

import threading

from btcore.executors.base import Executor, check_worker_count, cpu_count

# numba's thread count is per process; two concurrent threads sweeps must not
# change it under each other.
_NUMBA_THREADS_LOCK = threading.Lock()


class ThreadsExecutor(Executor):
    """Numba threads over parameter sets.

    Parameters
    ----------
    n_threads : int, default -1
        Numba threads to use; -1 means every CPU this process may use.
    """

    name = "threads"
    in_process = True
    parallel_kernel = True

    def __init__(self, n_threads: int = -1):
        super().__init__()
        self._n_threads = check_worker_count("n_threads", n_threads)

    @property
    def n_workers(self) -> int:
        import numba
        return min(self._n_threads, numba.config.NUMBA_NUM_THREADS, cpu_count() or 1)

    def map(self, fn, handle, tasks):
        import numba
        self.start()
        with _NUMBA_THREADS_LOCK:
            previous = numba.get_num_threads()
            numba.set_num_threads(self.n_workers)
            try:
                for task in tasks:
                    yield task, fn(handle, task)
            finally:
                numba.set_num_threads(previous)
