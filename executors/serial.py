"""Serial executor: one thread in the driver process, the debugging mode."""
from __future__ import annotations

from btcore.executors.base import Executor


class SerialExecutor(Executor):
    """Run tasks one after another in this process (breakpoints and prints work)."""

    name = "serial"
    in_process = True

    def map(self, fn, handle, tasks):
        self.start()
        for task in tasks:
            yield task, fn(handle, task)
