"""Planning a job: the kernel's measured speed (calibration) and the sets per task."""
from __future__ import annotations

import contextlib
import re
import sys
import threading
import time

import numba
import numpy as np

from btcore.kernels import binding
from btcore.kernels.binding import compile_error
from btcore.engine import preflight
from btcore.engine.tasks import Job, Task, make_tasks

#: seconds one task should take; long enough to amortise per-task overhead
#: (~1 ms Dask, ~0.5 ms Ray), short enough to balance load and show progress
TARGET_TASK_SECONDS = 0.5
MIN_TASK_SECONDS, MAX_TASK_SECONDS = 0.2, 2.0
#: most sets in one task: bounds a task's result arrays (~15 floats per set) and
#: the driver's memory while tasks are in flight, however short the bars
MAX_TASK_SETS = 1 << 16
#: a progress bar is shown (progress=None, in a terminal) when a run is predicted longer
AUTO_PROGRESS_SECONDS = 2.0
#: a deliberately slow kernel speed (the built-in strategies run 100-200 M
#: param-bars/s per core): a plan that is one task per block even at this speed
#: is one task at any speed, so measuring the kernel could not change it
SLOW_PARAM_BARS_PER_S = 20e6


def choose_batch_size(n_sets: int, n_blocks: int, bars_per_task: float, throughput: float,
                      slots: int, target_seconds: float = TARGET_TASK_SECONDS) -> int:
    """Sets per task so tasks last about ``target_seconds`` (0.2-2 s, at most
    ``MAX_TASK_SETS`` sets), with enough tasks to keep ``slots`` workers busy
    when the job is big enough.

    ``n_blocks`` is the number of (column, window) blocks each set runs on.
    """
    per_set_seconds = bars_per_task / throughput
    size = int(target_seconds / max(per_set_seconds, 1e-12))
    # at least ~4 tasks per slot if that keeps tasks >= MIN_TASK_SECONDS
    total_seconds = n_sets * n_blocks * per_set_seconds
    if total_seconds / (4 * slots) >= MIN_TASK_SECONDS:
        size = min(size, int(np.ceil(n_sets * n_blocks / (4 * slots))))
    size = min(size, int(MAX_TASK_SECONDS / max(per_set_seconds, 1e-12)))
    size = min(size, MAX_TASK_SETS)
    return int(max(1, min(size, n_sets)))


def needs_calibration(job, slots: int, batch_size, progress) -> bool:
    """Whether measuring the kernel can change ``job``'s plan on ``slots`` workers.

    Only with ``batch_size="auto"`` when the job may be more than one task per
    block even at the slow speed ``SLOW_PARAM_BARS_PER_S`` (sets per task never
    shrink as the kernel gets faster, so a plan of whole blocks at that speed is
    the plan at any speed, however many workers share it), or when a progress
    bar may be due: a small sweep, or a walk-forward study of many small blocks,
    skips the probes.
    """
    traded = job.traded_bars
    slow_seconds = float(traded.sum()) * job.n_sets / SLOW_PARAM_BARS_PER_S / max(slots, 1)
    if progress is None and slow_seconds > AUTO_PROGRESS_SECONDS:
        return True
    if batch_size != "auto":
        return False
    return choose_batch_size(job.n_sets, traded.size, float(traded.mean()),
                             SLOW_PARAM_BARS_PER_S, slots) < job.n_sets


def compile_kernel(job) -> None:
    """Compile (or load from the cache) ``job``'s kernel in this process by running
    one set, so a compile error is raised once, trimmed to the strategy's code.

    A new strategy's kernel runs first in a child process (:mod:`btcore.engine.preflight`):
    a crash there is a ValueError here, not the end of this process. A kernel
    module this process has loaded already is not run again (~1 % of a small
    sweep).

    When this takes over ``COMPILE_NOTICE_SECONDS`` (a first use: a cached kernel
    loads in well under a second) one line on stderr says what is compiling."""
    if _compiled_here(job):
        return
    with compile_notice(kernel_name(job)):
        preflight.check(job)
        try:
            job.task_fn(job.payload(), Task(-1, 0, 0, 0, 1, 0.0))
        except numba.core.errors.NumbaError as err:
            if job.strategy is None:  # btcore's own kernel: not the user's to fix
                raise
            raise compile_error(job.strategy, err) from None


def _compiled_here(job) -> bool:
    """Whether ``job``'s kernel module is loaded in this process and its kernel has
    compiled here (a module whose compile failed has no signature: it is tried
    again, so the error is raised trimmed)."""
    ref = getattr(job, "kernel", None)
    module = binding._LOADED.get(getattr(ref, "module_name", None))
    return module is not None and any(
        getattr(getattr(module, kind.wrapper, None), "signatures", None)
        for kind in binding.KINDS.values())


#: :func:`compile_kernel` says what it compiles once it has taken this long
COMPILE_NOTICE_SECONDS = 1.0


def kernel_name(job) -> str:
    """``job``'s kernel as the user knows it: the strategy, or the kernel's kind."""
    spec = getattr(job, "strategy", None)
    if spec is not None:
        return spec.name
    ref = getattr(job, "kernel", None)
    module = getattr(ref, "module_name", "") or ""
    kind = module.removeprefix("btcore_").rpartition("_")[0]  # btcore_<kind>_<digest>
    if kind:
        return kind.replace("_", "-")
    job_type = type(job).__name__.removesuffix("Job")  # CrossSectionalJob: cross-sectional
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "-", job_type).lower() or "btcore"


@contextlib.contextmanager
def compile_notice(name: str, after: float | None = None, stream=None):
    """Within the block, print ``compiling <name> kernel (first use; cached
    afterwards)...`` on ``stream`` (stderr) if the block lasts over ``after``
    seconds (``COMPILE_NOTICE_SECONDS``), from a timer thread: the compile itself
    is not delayed, and a quick (cached) load prints nothing."""
    delay = COMPILE_NOTICE_SECONDS if after is None else after

    def notice():
        out = sys.stderr if stream is None else stream
        try:
            print(f"compiling {name} kernel (first use; cached afterwards)...", file=out,
                  flush=True)
        except (OSError, ValueError):  # a closed stream: nothing to tell
            pass
    timer = threading.Timer(delay, notice)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def plan_tasks(job, batch_size, throughput: float, slots: int) -> tuple[list, int]:
    """``(tasks longest first, sets per task)``: ``batch_size`` sets per task, or
    with "auto" from the measured ``throughput`` (:func:`choose_batch_size`).

    A job whose sets differ in cost (``set_cost``: relative cost per sorted set,
    the cross-sectional sweep's rebalances) has its tasks costed by it, and with
    "auto" is cut where a task's cost reaches that of ``batch_size`` average sets.
    """
    traded = job.traded_bars
    explicit = batch_size != "auto"
    if not explicit:
        batch_size = choose_batch_size(job.n_sets, traded.size, float(traded.mean()),
                                       throughput, slots)
    batch_size = int(batch_size)
    set_cost = getattr(job, "set_cost", None)
    if set_cost is None:
        return make_tasks(traded, job.n_sets, batch_size, job.cost_factor), batch_size
    bars = float(traded.mean())
    if explicit:
        tasks = [task._replace(cost=bars * float(set_cost[task.start:task.stop].sum()))
                 for task in make_tasks(traded, job.n_sets, batch_size)]
        return sorted(tasks, key=lambda task: -task.cost), batch_size
    return weighted_tasks(bars, set_cost, batch_size), batch_size


def weighted_tasks(bars: float, set_cost: np.ndarray, batch_size: int) -> list:
    """Tasks of consecutive sets of one block, each costing about ``batch_size``
    average sets, costliest first."""
    budget = batch_size * float(set_cost.mean())
    tasks, start, spent = [], 0, 0.0
    for stop in range(1, set_cost.size + 1):
        spent += set_cost[stop - 1]
        if spent >= budget or stop == set_cost.size:
            tasks.append(Task(len(tasks), 0, 0, start, stop, bars * spent))
            start, spent = stop, 0.0
    return sorted(tasks, key=lambda task: -task.cost)


def calibrate(job: Job, repeats: int = 2) -> float:
    """Measured param-bars/s of the serial kernel (compiles first: a compile error
    is raised here, trimmed to the strategy's own code).

    The probe is two runs of neighbouring sets, a quarter and three quarters of
    the way through the sorted order (sets sort by indicator arguments, and the
    first ones, say the shortest lookbacks, cost more per bar than the rest),
    doubled from 32 sets each until it takes ``CALIBRATE_SECONDS`` (at most
    ``MAX_PROBE_SETS`` each): a few sets
    overweight the indicators, which a real task shares among many.
    """
    shared = job.payload()
    n_bars = int(job.traded_bars[0, 0])
    compile_kernel(job)
    size = 32
    while True:
        probes = _probe_tasks(job.n_sets, size)
        best = np.inf
        for _ in range(max(repeats, 1)):
            started = time.perf_counter()
            for probe in probes:
                job.task_fn(shared, probe)
            best = min(best, time.perf_counter() - started)
        n_probed = sum(p.n_sets for p in probes)
        if best >= CALIBRATE_SECONDS or n_probed >= job.n_sets or repeats == 0 or \
                size >= MAX_PROBE_SETS:
            return n_bars * n_probed / max(best, 1e-6) * _cost_weight(job, probes)
        size *= 2


#: a calibration probe grows until it takes this long, up to this many sets a run
CALIBRATE_SECONDS, MAX_PROBE_SETS = 0.003, 128


def _cost_weight(job, probes) -> float:
    """For jobs whose sets differ in cost: the probed sets' mean cost over all sets',
    turning the probes' speed into the whole job's average."""
    set_cost = getattr(job, "set_cost", None)
    if set_cost is None:
        return 1.0
    probed = np.concatenate([set_cost[p.start:p.stop] for p in probes])
    return float(probed.mean() / set_cost.mean())


def _probe_tasks(n_sets: int, size: int) -> list:
    """Two runs of ``size`` neighbouring sets around the quartiles (all sets if few)."""
    if n_sets <= 2 * size:
        return [Task(-1, 0, 0, 0, n_sets, 0.0)]
    starts = (n_sets // 4 - size // 2, 3 * n_sets // 4 - size // 2)
    return [Task(-1, 0, 0, max(0, a), max(0, a) + size, 0.0) for a in starts]
