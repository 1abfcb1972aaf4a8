"""The engine: one way to run any backtest job on any executor.

A :class:`Job` holds validated arrays with explicit axes:

- ``close`` (n_bars, n_columns): time-major prices; a column is an asset (or,
  for Monte Carlo, a path);
- ``windows`` (n_windows, n_checks) int64: the last traded bar of each
  checkpoint of each trading window (a sweep has one window, one checkpoint;
  anchored walk-forward folds share a window with one checkpoint per fold),
  with ``first_bar`` (n_columns, n_windows) int64 its first traded bar;
- parameter sets ``sets`` (:mod:`btcore.sets`) in an order sorted by indicator
  arguments: a task reads its range's parameters, grid rows and indicator
  series from it, so a Cartesian grid is never materialised.

:func:`run_job` runs it: calibrate -> batch size -> tasks (column x window x
set range, longest first) -> executor (which retries lost tasks) -> progress ->
a *sink*, which receives each finished block. Row order never depends on
completion order: sinks place blocks by their task's indices.
"""
from __future__ import annotations

import sys
import time
from functools import partial
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numba
import numpy as np

from btcore.binding import (KernelRef, StrategyCompileError, compile_error, debug_functions,
                            kernel_ref, load_kernel)
from btcore.kernel import (INVALID_BAR_ROW, OUT_ROWS, RUINED_ROW, batch_kernel_nb,
                           empty_record, no_blocks)
from btcore.metrics import METRIC_NAMES
from btcore.sets import plan_series, sort_sets

#: seconds one task should take; long enough to amortise per-task overhead
#: (~1 ms Dask, ~0.5 ms Ray), short enough to balance load and show progress
TARGET_TASK_SECONDS = 0.5
MIN_TASK_SECONDS, MAX_TASK_SECONDS = 0.2, 2.0
#: most sets in one task: bounds a task's result arrays (~15 floats per set) and
#: the driver's memory while tasks are in flight, however short the bars
MAX_TASK_SETS = 1 << 16
_AUTO_PROGRESS_SECONDS = 2.0


class Task(NamedTuple):
    """Parameter sets ``start:stop`` (sorted order) on one column and window."""

    task_id: int
    column: int
    window: int
    start: int
    stop: int
    cost: float

    @property
    def n_sets(self) -> int:
        return self.stop - self.start


@dataclass
class Job:
    """Validated inputs of a backtest job (see the module docstring for axes)."""

    strategy: object                # StrategySpec (driver side only)
    close: np.ndarray               # (n_bars, n_columns)
    first_bar: np.ndarray           # (n_columns, n_windows) int64
    windows: np.ndarray             # (n_windows, n_checks) int64
    sets: object                    # TableSets or ProductSets, sorted order
    options: np.ndarray             # (n_options,)
    initial_capital: float
    cost_bps: float
    periods_per_year: float
    n_blocks: int = 0               # per-block sums of r, r^2 (CSCV); 0 = none
    paths: object = None            # generates column k's prices in the task (Monte Carlo)
    debug: bool = False
    labels: object = None           # bar timestamps, for messages (driver side only)
    kernel: KernelRef = field(init=False)

    def __post_init__(self):
        self.kernel = kernel_ref(self.strategy)

    @property
    def n_sets(self) -> int:
        return self.sets.n_sets

    # every set at once, for the small jobs of walk-forward, Monte Carlo and
    # portfolios (a sweep's tasks read their own range from ``sets``)
    @property
    def params(self) -> np.ndarray:
        """(n_sets, n_params) in sorted order."""
        return self._all("params")

    @property
    def order(self) -> np.ndarray:
        """(n_sets,) grid row of each sorted set."""
        return self._all("grid_rows")

    @property
    def series(self) -> np.ndarray:
        """(n_series, 1 + n_values): which function, argument values."""
        return self.sets.series

    @property
    def set_series(self) -> np.ndarray:
        """(n_sets, n_indicators) int64."""
        return self._all("set_series")

    def _all(self, what: str) -> np.ndarray:
        cache = self.__dict__.setdefault("_materialised", {})
        if what not in cache:
            cache[what] = getattr(self.sets, what)(0, self.n_sets)
            cache[what].flags.writeable = False
        return cache[what]

    @property
    def n_columns(self) -> int:
        """Assets, or Monte Carlo paths (``paths`` set: ``close`` is the one base series)."""
        return self.first_bar.shape[0]

    @property
    def traded_bars(self) -> np.ndarray:
        """(n_columns, n_windows) bars each window trades on each column."""
        return self.windows[None, :, -1] - self.first_bar + 1

    def payload(self) -> dict:
        """What the executor ships to workers once (arrays and a KernelRef)."""
        return {"kernel": self.kernel, "close": self.close, "first_bar": self.first_bar,
                "windows": self.windows, "sets": self.sets, "options": self.options,
                "settings": np.array([self.initial_capital, self.cost_bps,
                                      self.periods_per_year]),
                "n_blocks": self.n_blocks, "paths": self.paths, "debug": self.debug}


# ------------------------------------------------------------------- planning
def make_tasks(traded_bars: np.ndarray, n_sets: int, batch_size: int,
               cost_factor: float = 1.0) -> list[Task]:
    """Cut every (column, window)'s sets into batches; return tasks longest-first.

    ``traded_bars`` is (n_columns, n_windows). The cost estimate is traded bars x
    sets x the strategy's cost factor; ties keep (column, window, start) order
    so the plan is deterministic.
    """
    tasks = []
    for column, window in np.ndindex(*traded_bars.shape):
        bars = float(traded_bars[column, window])
        for start in range(0, n_sets, batch_size):
            stop = min(start + batch_size, n_sets)
            tasks.append(Task(len(tasks), column, window, start, stop,
                              bars * (stop - start) * cost_factor))
    return sorted(tasks, key=lambda task: -task.cost)


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


# ----------------------------------------------------------------- one task
def block_index(first_bar: int, last_bar: int, n_bars: int, n_blocks: int) -> np.ndarray:
    """Bar -> block of ``numpy.array_split`` of the traded bars into ``n_blocks``."""
    bar_block = np.full(n_bars, -1, dtype=np.int64)
    for block, bars in enumerate(np.array_split(np.arange(first_bar, last_bar + 1), n_blocks)):
        bar_block[bars] = block
    return bar_block


def run_task(shared: dict, task: Task, record: np.ndarray | None = None) -> np.ndarray:
    """Evaluate one task: ``out`` (n_checks, OUT_ROWS, n_sets), and with
    ``n_blocks`` the block sums appended as (n_sets, n_blocks, 2) (a tuple).

    Every array handed to the kernel is a fresh C-contiguous copy, so the kernel
    sees the same types (one compiled specialisation) whatever the transport.
    """
    sets = shared["sets"]
    set_series = sets.set_series(task.start, task.stop)
    needed, local = np.unique(set_series, return_inverse=True)
    series = sets.series[needed]
    checkpoints = np.array(shared["windows"][task.window], dtype=np.int64)
    first_bar = int(shared["first_bar"][task.column, task.window])
    # indicators are causal (out[t] uses closes up to t): bars after the window's
    # last checkpoint are never read, so they are not computed
    close = column_prices(shared, task.column)[:int(checkpoints[-1]) + 1]
    n_blocks = int(shared["n_blocks"])
    if n_blocks:
        bar_block = block_index(first_bar, int(checkpoints[-1]), close.shape[0], n_blocks)
        block_sums = np.zeros((task.n_sets, n_blocks, 2))
    else:
        bar_block, block_sums = no_blocks(task.n_sets)
    capital, cost_bps, periods_per_year = (float(v) for v in shared["settings"])
    out = np.empty((len(checkpoints), OUT_ROWS, task.n_sets), dtype=np.float64)
    args = (close, first_bar, checkpoints, np.ascontiguousarray(series[:, 0], dtype=np.int64),
            np.ascontiguousarray(series[:, 1:]),
            np.ascontiguousarray(local.reshape(set_series.shape), dtype=np.int64),
            np.array(sets.params(task.start, task.stop), dtype=np.float64),
            np.array(shared["options"], dtype=np.float64), capital, cost_bps,
            periods_per_year, bar_block, block_sums, out,
            empty_record() if record is None else record)
    run_kernel(shared["kernel"], args, debug=shared["debug"])
    return (out, block_sums) if n_blocks else out


def column_prices(shared: dict, column: int) -> np.ndarray:
    """Column ``column``'s closes as a fresh C-contiguous array: an asset's, or with
    ``paths`` the k-th generated path (``paths.path(base_close, k)``), made in the
    task so paths are never shipped."""
    generator = shared.get("paths")
    if generator is not None:
        return np.ascontiguousarray(generator.path(shared["close"][:, 0], column),
                                    dtype=np.float64)
    return np.ascontiguousarray(shared["close"][:, column], dtype=np.float64)


def run_kernel(ref: KernelRef, args: tuple, *, debug: bool = False) -> None:
    """Call the strategy's batch kernel: compiled, or as plain Python (``debug``:
    breakpoints and prints in the strategy work)."""
    if debug:
        batch_kernel_nb.py_func(*args, *debug_functions(ref))
    else:
        load_kernel(ref).batch_nb(*args)


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
    try:
        run_task(shared, Task(-1, 0, 0, 0, 1, 0.0))  # compile or load from the cache
    except numba.core.errors.NumbaError as err:
        raise compile_error(job.strategy, err) from None
    size = 32
    while True:
        probes = _probe_tasks(job.n_sets, size)
        best = np.inf
        for _ in range(max(repeats, 1)):
            started = time.perf_counter()
            for probe in probes:
                run_task(shared, probe)
            best = min(best, time.perf_counter() - started)
        n_probed = sum(p.n_sets for p in probes)
        if best >= CALIBRATE_SECONDS or n_probed >= job.n_sets or repeats == 0 or \
                size >= MAX_PROBE_SETS:
            return n_bars * n_probed / max(best, 1e-6)
        size *= 2


#: a calibration probe grows until it takes this long, up to this many sets a run
CALIBRATE_SECONDS, MAX_PROBE_SETS = 0.003, 128


def _probe_tasks(n_sets: int, size: int) -> list:
    """Two runs of ``size`` neighbouring sets around the quartiles (all sets if few)."""
    if n_sets <= 2 * size:
        return [Task(-1, 0, 0, 0, n_sets, 0.0)]
    starts = (n_sets // 4 - size // 2, 3 * n_sets // 4 - size // 2)
    return [Task(-1, 0, 0, max(0, a), max(0, a) + size, 0.0) for a in starts]


# ---------------------------------------------------------------------- sinks
class DenseSink:
    """Every result: ``metrics`` (n_columns, n_windows, n_checks, OUT_ROWS, n_sets)
    in sorted-set order, plus ``block_sums`` (n_columns, n_windows, n_sets, n_blocks, 2)."""

    def __init__(self, job: Job):
        shape = (job.n_columns, job.windows.shape[0], job.windows.shape[1], OUT_ROWS,
                 job.n_sets)
        self.metrics = np.full(shape, np.nan)
        self.block_sums = (np.full(shape[:2] + (job.n_sets, job.n_blocks, 2), np.nan)
                           if job.n_blocks else None)
        self._filled = np.zeros(shape[:2] + (job.n_sets,), dtype=np.int64)

    def add(self, task: Task, out: np.ndarray, block_sums=None) -> None:
        rows = slice(task.start, task.stop)
        self.metrics[task.column, task.window, :, :, rows] = out
        if block_sums is not None:
            self.block_sums[task.column, task.window, rows] = block_sums
        self._filled[task.column, task.window, rows] += 1

    def check_complete(self) -> None:
        if not (self._filled == 1).all():
            raise RuntimeError(f"internal error: {int((self._filled == 0).sum())} backtests "
                               f"missing, {int((self._filled > 1).sum())} duplicated")


class TopKSink:
    """The ``k`` best sets by ``metric`` per (column, window, checkpoint), ruined
    rows excluded; ties go to the first set in grid order.

    ``best`` after the run: (n_columns, n_windows, n_checks, k) grid rows (-1
    where fewer than k rows qualify), ``values`` the metric of each.
    """

    def __init__(self, job: Job, metric: str = "sharpe_ratio", k: int = 1,
                 lower_is_better: bool = False):
        if metric not in METRIC_NAMES:
            raise ValueError(f"unknown metric {metric!r}; choose from {list(METRIC_NAMES)}")
        self.row = METRIC_NAMES.index(metric)
        self.k, self.sign = int(k), (1.0 if lower_is_better else -1.0)
        shape = (job.n_columns, job.windows.shape[0], job.windows.shape[1])
        self._sets = job.sets
        self._candidates = {index: [] for index in np.ndindex(*shape)}
        self._shape = shape
        self._seen = np.zeros(shape[:2], dtype=np.int64)
        self._n_sets = job.n_sets

    def add(self, task: Task, out: np.ndarray, block_sums=None) -> None:
        grid_rows = self._sets.grid_rows(task.start, task.stop)
        for check in range(out.shape[0]):
            values = out[check, self.row]
            keep = ~np.isnan(values) & (out[check, RUINED_ROW] == 0.0)
            # score ascending = better first; grid row breaks ties
            scored = list(zip(self.sign * values[keep], grid_rows[keep], values[keep]))
            bucket = self._candidates[(task.column, task.window, check)]
            bucket.extend(scored)
            bucket.sort()
            del bucket[self.k:]
        self._seen[task.column, task.window] += task.n_sets

    @property
    def best(self) -> np.ndarray:
        best = np.full(self._shape + (self.k,), -1, dtype=np.int64)
        for index, bucket in self._candidates.items():
            best[index][:len(bucket)] = [grid_row for _, grid_row, _ in bucket]
        return best

    @property
    def values(self) -> np.ndarray:
        values = np.full(self._shape + (self.k,), np.nan)
        for index, bucket in self._candidates.items():
            values[index][:len(bucket)] = [value for _, _, value in bucket]
        return values

    def check_complete(self) -> None:
        if not (self._seen == self._n_sets).all():
            raise RuntimeError("internal error: the top-k sink missed or duplicated blocks")


def best_per_window_sink(job: Job, metric: str = "sharpe_ratio",
                         lower_is_better: bool = False) -> TopKSink:
    """The best set of every (column, window, checkpoint): walk-forward's choice."""
    return TopKSink(job, metric, 1, lower_is_better)


# --------------------------------------------------------------------- run
def run_job(job: Job, runner, sink, *, batch_size="auto", progress=None,
            description: str = "", on_progress=None, store=None) -> dict:
    """Run every task of ``job`` on the started-or-not executor ``runner`` into ``sink``.

    With ``store`` (a :class:`btcore.results.ResultStore`) the batch size is the
    store's fixed plan, tasks it already holds are loaded into ``sink`` instead
    of run, and every new task is written there first. ``on_progress(done,
    total, backtests_per_s)`` is called after each task.

    Returns the run's stats (timings, throughput, tasks, retries, task-time
    quantiles). The executor is left open (its owner closes it).
    """
    n_sets = job.n_sets
    traded = job.traded_bars
    runner.start()  # a cluster joined by address knows its size only once connected
    slots = runner.n_workers
    before = (runner.retries, runner.lost_workers)
    calibrate_started = time.perf_counter()
    throughput = None
    resume = None
    if store is not None:
        plan, resume, sink = store.attach(job, sink, batch_size)
        batch_size = plan(slots)
    if job.debug:  # plain Python: no calibration, one task per column and window
        batch_size = n_sets if batch_size == "auto" else batch_size
        progress = sys.stderr.isatty() if progress is None else progress
    elif batch_size == "auto" or progress is None:
        throughput = calibrate(job)
    else:  # still compile in the driver first, so errors are trimmed and raised once
        calibrate(job, repeats=0)
    calibrate_s = time.perf_counter() - calibrate_started
    if batch_size == "auto":
        batch_size = choose_batch_size(n_sets, traded.size, float(traded.mean()), throughput,
                                       slots)
    tasks = make_tasks(traded, n_sets, int(batch_size), job.strategy.cost_factor)
    done = resume(tasks) if resume is not None else set()
    todo, initial = _pending(tasks, done)
    total_param_bars = float(traded.sum()) * n_sets
    if progress is None:
        estimate = total_param_bars / throughput / max(slots, 1)
        progress = sys.stderr.isatty() and estimate > _AUTO_PROGRESS_SECONDS

    def take(task, result):
        out, block_sums = result if isinstance(result, tuple) else (result, None)
        check_targets(job, task, out)
        sink.add(task, out, block_sums)

    timings = execute_tasks(runner, run_task, job.payload(), todo, take,
                            total=n_sets * traded.size, progress=progress,
                            description=description or f"{job.strategy.name} [{runner.name}]",
                            on_progress=on_progress, initial=initial)
    sink.check_complete()
    stats = run_stats(runner, before, n_backtests=sum(t.n_sets for t in todo),
                      param_bars=float(sum(traded[t.column, t.window] * t.n_sets
                                           for t in todo)),
                      tasks=tasks, batch_size=batch_size, calibrate_s=calibrate_s, **timings)
    stats["tasks_resumed"], stats["tasks_computed"] = len(tasks) - len(todo), len(todo)
    return stats


def measure_set_batches(fn, payload, *, n_sets: int, asset_bars: float,
                        measure: bool, repeats: int = 1) -> float:
    """Run ``fn`` on one set (compiling or loading the kernel in the driver) and, if
    ``measure``, return the asset-bars/s of the first sets (best of ``repeats``
    runs; from 4 sets, doubled until a run takes ``CALIBRATE_SECONDS``), else NaN."""
    fn(payload, Task(-1, 0, 0, 0, 1, 0.0))
    if not measure:
        return float("nan")
    size = 4
    while True:
        probe = Task(-1, 0, 0, 0, min(n_sets, size), 0.0)
        best = np.inf
        for _ in range(max(repeats, 1)):
            started = time.perf_counter()
            fn(payload, probe)
            best = min(best, time.perf_counter() - started)
        if best >= CALIBRATE_SECONDS or probe.n_sets >= n_sets or size >= MAX_PROBE_SETS:
            return asset_bars * probe.n_sets / max(best, 1e-6)
        size *= 2


def run_set_batches(runner, fn, payload, *, n_sets: int, out_rows: int, asset_bars: float,
                    calibrate_fn, plan_fn, batch_size, progress, description: str,
                    check=None, kind: str = "", store=None) -> tuple[np.ndarray, dict]:
    """Run a job whose tasks are ranges of parameter sets over one whole universe
    (portfolio and cross-sectional sweeps): ``(out (out_rows, n_sets) in sorted-set
    order, stats)``.

    ``calibrate_fn(measure)`` compiles the kernel in the driver and returns the
    measured asset-bars/s (NaN unless ``measure``); ``plan_fn(batch_size,
    throughput, slots)`` returns ``(tasks, batch_size)``; ``check(task, result)``
    may refuse a result (e.g. an invalid target). With ``store`` (an arrays
    :class:`btcore.results.ResultStore`), finished tasks found there are loaded,
    not run, and every new one is written there first.
    """
    runner.start()
    slots = runner.n_workers
    before = (runner.retries, runner.lost_workers)
    calibrate_started = time.perf_counter()
    throughput = calibrate_fn(batch_size == "auto" or progress is None)
    calibrate_s = time.perf_counter() - calibrate_started
    tasks, batch_size = plan_fn(batch_size, throughput, slots)
    if progress is None:
        estimate = asset_bars * n_sets / throughput / max(slots, 1)
        progress = sys.stderr.isatty() and estimate > _AUTO_PROGRESS_SECONDS
    out = np.full((out_rows, n_sets), np.nan)
    filled = np.zeros(n_sets, dtype=np.int64)

    def place(task, result):
        out[:, task.start:task.stop] = result
        filled[task.start:task.stop] += 1

    def take(task, result):
        if check is not None:
            check(task, result)
        if store is not None:
            store.write(task, result)
        place(task, result)

    done = store.load_finished(tasks, place) if store is not None else set()
    todo, initial = _pending(tasks, done)
    timings = execute_tasks(runner, fn, payload, todo, take, total=n_sets, progress=progress,
                            description=description, initial=initial)
    if not (filled == 1).all():
        raise RuntimeError(f"internal error: {kind} backtests missing or duplicated")
    computed = sum(task.n_sets for task in todo)
    stats = run_stats(runner, before, n_backtests=computed, param_bars=asset_bars * computed,
                      tasks=tasks, batch_size=batch_size, calibrate_s=calibrate_s, **timings)
    stats["tasks_resumed"], stats["tasks_computed"] = len(done), len(todo)
    return out, stats


def _pending(tasks, done: set) -> tuple[list, int]:
    """The tasks still to run, and the sets the ``done`` ones already cover."""
    todo = [task for task in tasks if task.task_id not in done]
    return todo, sum(task.n_sets for task in tasks if task.task_id in done)


def timed_call(fn, shared, task):
    """``(fn(shared, task), seconds it took in the worker)``."""
    started = time.perf_counter()
    result = fn(shared, task)
    return result, time.perf_counter() - started


def execute_tasks(runner, fn, payload, tasks, take, *, total, progress,
                  description, on_progress=None, initial: int = 0) -> dict:
    """Share ``payload``, run ``fn(shared, task)`` for every task on ``runner`` and hand
    each result to ``take(task, result)`` once (a retried task that finished twice
    has the same bits: the second copy is dropped), with a tqdm bar of ``total``
    backtests (each task adds its ``n_sets``; ``initial`` were done before) and
    ``on_progress(done, total, backtests_per_s)`` after each task; the payload is
    released whatever happens.

    Returns ``{"share_s", "compute_s", "task_seconds"}``: the last is each task's
    time in its worker, by task id.
    """
    from tqdm.auto import tqdm  # ~50 ms the first time: keep it out of the timings
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be a callable (done, total, backtests_per_s), "
                        f"got {on_progress!r}")
    share_started = time.perf_counter()
    handle = runner.share(payload)
    share_s = time.perf_counter() - share_started
    compute_started = time.perf_counter()
    seconds = {}
    finished = initial
    with tqdm(total=int(total), initial=int(initial), unit="bt", disable=not progress,
              smoothing=0.1, desc=description) as bar:
        try:
            for task, (result, took) in runner.map(partial(timed_call, fn), handle, tasks):
                if task.task_id in seconds:
                    continue
                seconds[task.task_id] = took
                take(task, result)
                bar.update(task.n_sets)
                finished += task.n_sets
                if on_progress is not None:
                    rate = (finished - initial) / max(time.perf_counter() - compute_started,
                                                      1e-9)
                    on_progress(finished, int(total), rate)
        finally:
            runner.unshare(handle)
    return {"share_s": share_s, "compute_s": time.perf_counter() - compute_started,
            "task_seconds": seconds}


def run_stats(runner, before: tuple, *, n_backtests: int, param_bars: float, tasks,
              batch_size, calibrate_s: float, share_s: float, compute_s: float,
              task_seconds: dict | None = None) -> dict:
    """The stats dict every workflow returns (``before`` = the executor's
    ``(retries, lost_workers)`` when the run started): with ``task_seconds``,
    quantiles of the tasks' times and the stragglers (over 3x the median)."""
    stats = {
        "backtests": int(n_backtests),
        "backtests_per_s": n_backtests / max(compute_s, 1e-9),
        "param_bars": int(param_bars),
        "param_bars_per_s": param_bars / max(compute_s, 1e-9),
        "executor": runner.name, "workers": runner.n_workers, "batches": len(tasks),
        "batch_size": int(batch_size), "retries": runner.retries - before[0],
        "lost_workers": runner.lost_workers - before[1], "share_s": share_s,
        "compute_s": compute_s, "calibrate_s": calibrate_s,
    }
    if task_seconds:
        times = np.fromiter(task_seconds.values(), dtype=np.float64)
        quantiles = np.quantile(times, [0.5, 0.9, 0.99])
        stats["task_s"] = {"p50": float(quantiles[0]), "p90": float(quantiles[1]),
                           "p99": float(quantiles[2]), "max": float(times.max())}
        by_id = {task.task_id: task for task in tasks}
        slow = sorted((t for t in task_seconds.items() if t[1] > 3 * quantiles[0]),
                      key=lambda t: -t[1])[:5]
        stats["stragglers"] = [{"task": task_id, "seconds": took,
                                "column": by_id[task_id].column,
                                "window": by_id[task_id].window,
                                "sets": [by_id[task_id].start, by_id[task_id].stop]}
                               for task_id, took in slow if task_id in by_id]
    return stats


def check_targets(job: Job, task: Task, out: np.ndarray) -> None:
    """ValueError naming the strategy, bar and set if a target left {-1, 0, 1}."""
    invalid = out[-1, INVALID_BAR_ROW]
    if (invalid >= 0).any():
        position = int(np.argmax(invalid >= 0))
        bar = int(invalid[position])
        when = job.labels[bar] if job.labels is not None else f"bar {bar}"
        params = {param.name: int(value) if param.kind is int else float(value)
                  for param, value in zip(job.strategy.params,
                                          job.sets.params(task.start, task.stop)[position])}
        raise ValueError(f"strategy {job.strategy.name!r}: signal_nb returned a target "
                         f"outside {{-1, 0, 1}} at {when} for parameters {params}; a target "
                         "is -1 (short), 0 (flat) or 1 (long)")


__all__ = ["Job", "Task", "DenseSink", "TopKSink", "best_per_window_sink", "run_job",
           "run_task", "make_tasks", "choose_batch_size", "calibrate", "plan_series",
           "sort_sets", "StrategyCompileError", "RUINED_ROW", "replace"]
