"""What a task is (parameter sets ``start:stop`` on one column and window), the
:class:`Job` it belongs to, and running one task through the strategy's kernel
(its arguments and the call: :mod:`btcore.engine.calls`), with errors that name the
set and the bar."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numba.core.errors import NumbaError

from btcore.engine.calls import block_index, kernel_args, run_kernel
from btcore.kernels.binding import KernelRef, debug_functions, kernel_ref
from btcore.kernels.single import (EMPTY_INDICATOR, INVALID_BAR_ROW, INVALID_VALUE_ROW,
                                   RECORD_EQUITY, RECORD_ROWS, batch_kernel_nb)
from btcore.kernels.single_exec import exec_batch_kernel_nb
from btcore.strategies.base import show_target, target_advice


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
    """Validated inputs of a backtest job (see the module docstring for axes).

    Every job the engine runs (this one, and the portfolio and cross-sectional
    jobs) offers the same few members to :func:`btcore.engine.run_job`:
    ``n_sets``, ``traded_bars`` (the blocks each set runs over), ``close`` (what
    is shared), ``debug``, ``name``, ``cost_factor``, ``payload()``, ``task_fn``
    (the function a worker runs on ``(payload, task)``) and ``check(task, out)``
    (refuses an invalid result).
    """

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
    execution: object = None        # btcore.execution.Execution (None: the defaults)
    candles: object = None          # (open, high, low), each like close, or None
    block_starts: object = None     # first bar of each block (blocks="year"); None: equal
    kernel: KernelRef = field(init=False)

    def __post_init__(self):
        self.kernel = kernel_ref(self.strategy, "single" if self.execution is None
                                 else "execution")

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def cost_factor(self) -> float:
        return self.strategy.cost_factor

    @property
    def task_fn(self):
        return run_task

    def check(self, task: "Task", out: np.ndarray) -> None:
        check_targets(self, task, out)

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
        """What the executor ships to workers once (arrays and a KernelRef; the
        parameter names and bar labels name the set and bar of an error raised in
        the strategy's code)."""
        return {"kernel": self.kernel, "close": self.close, "first_bar": self.first_bar,
                "windows": self.windows, "sets": self.sets, "options": self.options,
                "settings": np.array([self.initial_capital, self.cost_bps,
                                      self.periods_per_year]),
                "n_blocks": self.n_blocks, "paths": self.paths, "debug": self.debug,
                "params_named": tuple((p.name, p.kind is int) for p in self.strategy.params),
                "labels": self.labels, "execution": self.execution, "candles": self.candles,
                "block_starts": self.block_starts}


def make_tasks(traded_bars: np.ndarray, n_sets: int, batch_size: int,
               cost_factor: float = 1.0) -> "TaskPlan":
    """Cut every (column, window)'s sets into batches; the tasks, longest first.

    ``traded_bars`` is (n_columns, n_windows). The cost estimate is traded bars x
    sets x the strategy's cost factor; ties keep (column, window, start) order
    so the plan is deterministic. The tasks are made as they are read
    (:class:`TaskPlan`): planning a 10^12-set grid takes no memory.
    """
    return TaskPlan(np.asarray(traded_bars, dtype=np.float64), int(n_sets), int(batch_size),
                    float(cost_factor))


class TaskPlan(Sequence):
    """The tasks of :func:`make_tasks`, in their order, generated on demand.

    Each (column, window) block's sets are cut into ``batch_size`` ranges: a run of
    equal-cost full tasks and a last, smaller one. Runs sorted by (cost
    descending, first task id) give exactly the longest-first order of sorting
    every task, and two runs of equal cost never interleave (ids grow block by
    block), so a task is found by arithmetic: ``len``, iteration, ``plan[i]``
    and :meth:`by_id` cost nothing per task.
    """

    def __init__(self, traded_bars: np.ndarray, n_sets: int, batch_size: int,
                 cost_factor: float):
        self.n_sets, self.batch_size, self.cost_factor = n_sets, batch_size, cost_factor
        self.shape = traded_bars.shape
        self.bars = traded_bars.ravel()
        self.per_block = -(-n_sets // batch_size) if n_sets else 0
        full, rest = divmod(n_sets, batch_size)
        runs = []  # (-cost, first id, block, first index in the block, count)
        for block, bars in enumerate(self.bars):
            first = block * self.per_block
            if full:
                runs.append((-bars * batch_size * cost_factor, first, block, 0, full))
            if rest:
                runs.append((-bars * rest * cost_factor, first + full, block, full, 1))
        self.runs = sorted(runs)
        self.offsets = np.cumsum([0] + [run[4] for run in self.runs])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _task(self, block: int, k: int) -> Task:
        column, window = np.unravel_index(block, self.shape)
        start = k * self.batch_size
        stop = min(start + self.batch_size, self.n_sets)
        return Task(block * self.per_block + k, int(column), int(window), start, stop,
                    float(self.bars[block]) * (stop - start) * self.cost_factor)

    def __getitem__(self, position):
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"task position {position} outside the plan's {len(self)}")
        r = int(np.searchsorted(self.offsets, position, side="right")) - 1
        _, _, block, k0, _ = self.runs[r]
        return self._task(block, k0 + position - int(self.offsets[r]))

    def __iter__(self):
        for _, _, block, k0, count in self.runs:
            for k in range(k0, k0 + count):
                yield self._task(block, k)

    def __eq__(self, other) -> bool:
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def by_id(self, task_id: int) -> Task:
        """The task whose ``task_id`` is ``task_id``."""
        block, k = divmod(int(task_id), self.per_block)
        return self._task(block, k)

    @property
    def longest_cost(self) -> float:
        return -self.runs[0][0] if self.runs else 0.0

    def sets_and_param_bars(self, task_ids) -> tuple[int, float]:
        """``(sets, param-bars)`` of the tasks ``task_ids`` (a few: resumed ones)."""
        tasks = [self.by_id(i) for i in task_ids]
        return (sum(t.n_sets for t in tasks),
                float(sum(self.bars[t.task_id // self.per_block] * t.n_sets for t in tasks)))


def block_counts(job) -> np.ndarray:
    """(n_columns, n_blocks) bars per block of each column of ``job``'s first window."""
    last = int(job.windows[0, -1])
    return np.array([np.bincount(block_index(int(first), last, last + 1, job.n_blocks,
                                             job.block_starts)[int(first):],
                                 minlength=job.n_blocks) for first in job.first_bar[:, 0]])


def run_task(shared: dict, task: Task, record: np.ndarray | None = None,
             trades: np.ndarray | None = None) -> np.ndarray:
    """Evaluate one task: ``out`` (n_checks, OUT_ROWS, n_sets), and with
    ``n_blocks`` the block sums appended as (n_sets, n_blocks, 2) (a tuple).

    Every array handed to the kernel is a C-contiguous copy made here (the sets'
    are kept for the payload's next tasks: the kernel only reads them), so the
    kernel sees the same types (one compiled specialisation) whatever the transport. An
    error raised in the strategy's code (an ``IndexError``, a ``ZeroDivisionError``
    under ``error_model="python"``...) is raised again with its type, naming the
    strategy, the parameter set and the bar (:func:`kernel_error`).
    """
    args, out, block_sums = kernel_args(shared, task, record, trades=trades)
    try:
        run_kernel(shared["kernel"], args, debug=shared["debug"])
    except NumbaError:  # compiling: btcore.engine.plan trims it to the strategy's code
        raise
    except Exception as err:  # noqa: BLE001 - raised again, same type, with context
        raise kernel_error(err, shared, task) from None
    return (out, block_sums) if int(shared["n_blocks"]) else out


def check_targets(job: Job, task: Task, out: np.ndarray) -> None:
    """ValueError naming the strategy, the parameter set and the bar if the kernel
    refused a set of ``task``: its rule returned a target other than exactly -1, 0
    or 1 (NaN, 0.5, 2, -inf), or one of its indicators is NaN on every traded bar."""
    final = out[-1]
    refused = final[INVALID_BAR_ROW] != -1.0
    if not refused.any():
        return
    position = int(np.argmax(refused))
    bar, value = int(final[INVALID_BAR_ROW, position]), float(final[INVALID_VALUE_ROW, position])
    spec = job.strategy
    row = job.sets.params(task.start, task.stop)[position]
    params = {param.name: int(v) if param.kind is int else float(v)
              for param, v in zip(spec.params, row)}
    where = f"strategy {spec.name!r}"
    if bar == EMPTY_INDICATOR:
        indicator = spec.indicators[int(value)]
        arguments = {**params, **spec.option_settings(job.options)}
        given = ", ".join(f"{name}={arguments[name]!r}" for name in indicator.names)
        first = int(job.first_bar[task.column, task.window])
        fn = getattr(indicator.fn, "py_func", indicator.fn).__name__
        raise ValueError(f"{where}: indicator {fn} with {given} is NaN on every traded bar "
                         f"(first traded bar {_bar_label(job.labels, first)}): does it "
                         f"write out[t]? (parameters {params})")
    raise ValueError(f"{where}: signal_nb returned a target outside {{-1, 0, 1}} at "
                     f"{_bar_label(job.labels, bar)} for parameters {params}: it returned "
                     f"{show_target(value)} (a target is -1 (short), 0 (flat) or 1 "
                     f"(long){target_advice(value)})")


def _bar_label(labels, bar: int) -> str:
    return str(labels[bar]) if labels is not None else f"bar {bar}"


# ------------------------------------------------ errors in the strategy's code
def kernel_error(err: Exception, shared: dict, task: Task) -> Exception:
    """``err``, raised by the kernel on ``task``, as an exception of the same type
    whose message names the strategy, the parameter set and the bar.

    The kernel runs compiled and keeps no trace of where it stopped, so the set is
    found by running halves of the task again (the first set that raises), and the
    bar by running that set alone with a per-bar record: the first bar left
    unrecorded. With ``debug`` the Python traceback gives both at once. When
    neither works (an error that does not repeat), the task's parameter range is
    named instead.
    """
    named = shared.get("params_named") or ()
    where = f"strategy {shared['kernel'].strategy!r}"
    try:
        found = _locate(err, shared, task)
    except Exception:  # noqa: BLE001 - locating is best effort; err is what matters
        found = None
    if found is None:
        first, last = (_params_of(shared, named, task.start + i) for i in (0, task.n_sets - 1))
        context = (f"{where}, one of the parameter sets {first} to {last} "
                   f"({task.n_sets} sets of a task)")
    else:
        k, bar = found
        context = f"{where}, parameters {_params_of(shared, named, task.start + k)}"
        if bar == INDICATORS:
            context += ", computing its indicators"
        elif bar >= 0:
            context += f", at {_bar_label(shared.get('labels'), bar)}"
    if shared["first_bar"].shape[0] > 1:
        context += f" (column {task.column})"
    message = f"{context}: {err}" if str(err) else f"{context}: {type(err).__name__}"
    try:
        again = type(err)(message)
    except Exception:  # noqa: BLE001 - a type that takes other arguments
        err.add_note(message)
        return err
    return again.with_traceback(err.__traceback__)


def _params_of(shared: dict, named, position: int) -> dict:
    """The parameter set at sorted ``position``, by name (int parameters as int)."""
    row = shared["sets"].params(position, position + 1)[0]
    if not named:
        return {f"params[{j}]": float(v) for j, v in enumerate(row)}
    return {name: int(v) if whole else float(v) for (name, whole), v in zip(named, row)}


#: ``_locate``'s bar when the error came from computing the set's indicators
INDICATORS = -2


def _locate(err: Exception, shared: dict, task: Task):
    """``(set within the task, bar)`` where ``err`` was raised (bar -1: not known;
    ``INDICATORS``: computing the set's indicators), or None if not found."""
    if isinstance(err, MemoryError):
        return None
    if shared["debug"]:
        return _locate_in_traceback(err, shared)
    lo, hi = 0, task.n_sets  # the first failing set is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _raises(shared, task._replace(start=task.start + lo, stop=task.start + mid)):
            hi = mid
        else:
            lo = mid
    one = task._replace(start=task.start + lo, stop=task.start + lo + 1)
    if _raises(shared, one, indicators_only=True):
        return lo, INDICATORS
    n_bars = int(shared["windows"][task.window][-1]) + 1
    record = np.full((RECORD_ROWS, n_bars), np.nan)
    if not _raises(shared, one, record):
        return None
    first_bar = int(shared["first_bar"][task.column, task.window])
    unrecorded = np.flatnonzero(np.isnan(record[RECORD_EQUITY, first_bar:]))
    return lo, (first_bar + int(unrecorded[0]) if unrecorded.size else -1)


def _locate_in_traceback(err: Exception, shared: dict):
    """:func:`_locate` for ``debug`` (plain Python): the kernel's frame holds the set
    and bar, the frame after it says whether the rule or an indicator raised."""
    trace = err.__traceback__
    kernels = (batch_kernel_nb.py_func.__code__, exec_batch_kernel_nb.py_func.__code__)
    while trace is not None and trace.tb_frame.f_code not in kernels:
        trace = trace.tb_next
    if trace is None or trace.tb_next is None:
        return None
    local = trace.tb_frame.f_locals
    callee = trace.tb_next.tb_frame.f_code
    compute_indicator, _, _, signal = debug_functions(shared["kernel"])
    if callee is compute_indicator.__code__:  # a series, shared by sets: the first one's
        uses = np.flatnonzero((local["set_series"] == local["s"]).any(axis=1))
        return (int(uses[0]), INDICATORS) if uses.size else None
    if "k" not in local:
        return None
    return int(local["k"]), int(local["t"]) if callee is signal.__code__ else -1


def _raises(shared: dict, task: Task, record=None, indicators_only: bool = False) -> bool:
    args = kernel_args(shared, task, record, indicators_only)[0]
    try:
        run_kernel(shared["kernel"], args, debug=shared["debug"])
    except Exception:  # noqa: BLE001
        return True
    return False
