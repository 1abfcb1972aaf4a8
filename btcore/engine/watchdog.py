"""A throughput watchdog for running jobs.

Operators of large sweeps alert when throughput drops ("below 500
backtests/minute indicates worker failures"). The engine watches for them:

- **slow**: the rolling rate of the last tasks falls below ``min_rate_fraction``
  of the rate the plan expects (the calibrated kernel speed x workers) for longer
  than ``slow_tasks`` expected task times and at least ``min_slow_s`` (short
  tasks pay fixed costs the kernel's speed does not show: seconds-long runs of
  them are not a slowdown);
- **stalled**: no task finishes for ``stall_factor`` x the longest expected task
  (at least ``min_stall_s``).

Each kind warns once per run: a note on the progress bar, a
:class:`ThroughputWarning`, and a record in ``stats["slowdowns"]`` naming the
workers the executor has lost so far. A background thread checks every
``check_every_s``, so a stall is reported while it lasts, not after.
"""
from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass


class ThroughputWarning(RuntimeWarning):
    """A run is much slower than planned, or no task has finished for a long time."""


@dataclass(frozen=True)
class WatchdogSettings:
    """Thresholds of :class:`Watchdog` (module default: :data:`DEFAULT`)."""

    min_rate_fraction: float = 0.25
    slow_tasks: float = 3.0
    min_slow_s: float = 10.0
    stall_factor: float = 20.0
    min_stall_s: float = 30.0
    check_every_s: float = 1.0
    #: tasks in the rolling window
    window: int = 8


DEFAULT = WatchdogSettings()


class Watchdog:
    """Watches one run; ``finished(param_bars)`` after each task, ``stop()`` at the end.

    Parameters
    ----------
    expected_rate : float or None
        Param-bars/s the plan expects (kernel speed x workers); None disables it.
    longest_task_s : float
        The longest task's expected seconds.
    runner : Executor
        Read for ``lost_workers`` when a slowdown is reported.
    note : callable
        ``note(text)`` shows a short text on the progress bar.
    """

    def __init__(self, expected_rate, longest_task_s: float, runner, note,
                 settings: WatchdogSettings | None = None):
        self.settings = settings or DEFAULT
        self.expected_rate = expected_rate
        self.longest_task_s = max(float(longest_task_s), 1e-6)
        self.typical_task_s = self.longest_task_s
        self.runner = runner
        self.lost_before = runner.lost_workers
        self.note = note
        self.slowdowns: list = []
        self._started = self._last = time.perf_counter()
        self._recent = deque(maxlen=self.settings.window)  # (time, param_bars)
        self._slow_since = None
        self._reported: set = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if expected_rate:
            self._thread = threading.Thread(target=self._watch, name="btcore-watchdog",
                                            daemon=True)
            self._thread.start()

    def finished(self, param_bars: float) -> None:
        """One task finished, covering ``param_bars``."""
        now = time.perf_counter()
        with self._lock:
            self._last = now
            self._recent.append((now, float(param_bars)))
        if self.expected_rate:
            self._check_rate(now)

    def stop(self) -> list:
        """End the watch; returns the slowdowns reported."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.slowdowns

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.check_every_s):
            with self._lock:
                quiet = time.perf_counter() - self._last
            limit = max(self.settings.stall_factor * self.longest_task_s,
                        self.settings.min_stall_s)
            if quiet > limit:
                self._report("stalled", f"no task has finished for {quiet:.1f} s (the "
                             f"longest should take about {self.longest_task_s:.3g} s)")

    def _check_rate(self, now: float) -> None:
        with self._lock:
            if len(self._recent) < 2:
                return
            first_time = self._recent[0][0]
            bars = sum(b for _, b in list(self._recent)[1:])
        rate = bars / max(now - first_time, 1e-9)
        floor = self.settings.min_rate_fraction * self.expected_rate
        if rate >= floor:
            self._slow_since = None
            return
        self._slow_since = self._slow_since or now
        if now - self._slow_since >= max(self.settings.slow_tasks * self.longest_task_s,
                                         self.settings.min_slow_s):
            self._report("slow", f"throughput fell to {rate / 1e6:.3g} M param-bars/s, "
                         f"under {self.settings.min_rate_fraction:.0%} of the "
                         f"{self.expected_rate / 1e6:.3g} M planned")

    def _report(self, kind: str, text: str) -> None:
        with self._lock:
            if kind in self._reported:
                return
            self._reported.add(kind)
        lost = self.runner.lost_workers - self.lost_before
        if lost:
            text += f"; {lost} worker(s) lost so far (the executor retried their tasks)"
        self.slowdowns.append({"kind": kind, "after_s": time.perf_counter() - self._started,
                               "message": text, "lost_workers": lost})
        self.note(kind)
        warnings.warn(f"btcore: {text}", ThroughputWarning, stacklevel=2)
