"""Sweep planning: group parameter sets by indicator key, cut them into tasks,
order the tasks longest-first, and run one task (the function executors ship).

A task is ``(task_id, asset, start, stop)``: parameter sets ``start:stop`` of
the key-sorted grid on one asset. Everything else a task needs lives in the
*shared payload*, shipped once per sweep:

``close``       (n_assets, n_bars) float64, asset-major so each asset is contiguous
``first_bar``   (n_assets,) int64: first traded bar (window start or listing)
``params``      (n_sets, n_params) float64, sorted by indicator key
``key_values``  (n_keys, n_key_params) float64: unique indicator keys
``combo_key``   (n_sets,) int64: key row of each sorted set
``options``     (n_options,) float64; plus ``spec``, ``last_bar``, settings, flags.

Grouping by key means a task touches few unique keys, so indicators are
computed once per (task, key) and stay in cache while its sets run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from btcore.kernel import empty_record, sweep_batch_nb
from btcore.metrics import N_METRICS

#: seconds one task should take; long enough to amortise per-task overhead
#: (~1 ms Dask, ~0.5 ms Ray), short enough to balance load and show progress
TARGET_TASK_SECONDS = 0.5
MIN_TASK_SECONDS, MAX_TASK_SECONDS = 0.2, 2.0


class Task(NamedTuple):
    task_id: int
    asset: int
    start: int
    stop: int
    cost: float

    @property
    def n_sets(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class KeyedGrid:
    """Parameter sets sorted by indicator key, with the permutation back."""

    params: np.ndarray       # sorted (n_sets, n_params)
    order: np.ndarray        # order[i] = original row of sorted row i
    key_values: np.ndarray   # (n_keys, n_key_params)
    combo_key: np.ndarray    # (n_sets,)


def _readonly(array: np.ndarray) -> np.ndarray:
    """A read-only, contiguous ``array`` (so every caller shares one Numba
    specialisation): marked in place when it owns its data, else copied first."""
    array = np.ascontiguousarray(array)
    if array.flags.writeable:
        if not array.flags.owndata:  # a view of someone else's array: don't touch it
            array = array.copy()
        array.flags.writeable = False
    return array


def group_by_key(spec, params: np.ndarray) -> KeyedGrid:
    """Sort ``params`` rows by the strategy's indicator parameters (stable, one sort)."""
    key_columns = [spec.param_names.index(n) for n in spec.indicator_params]
    n_sets = len(params)
    if not key_columns:
        order = np.arange(n_sets, dtype=np.int64)
        key_values = np.zeros((1, 0), dtype=np.float64)
        combo_key = np.zeros(n_sets, dtype=np.int64)
    else:
        keys = params[:, key_columns]
        order = np.lexsort(keys.T[::-1])  # stable: ties keep grid order
        sorted_keys = keys[order]
        starts = np.ones(n_sets, dtype=bool)
        starts[1:] = (sorted_keys[1:] != sorted_keys[:-1]).any(axis=1)
        combo_key = np.cumsum(starts) - 1
        key_values = sorted_keys[starts]
    return KeyedGrid(_readonly(params[order]), _readonly(order.astype(np.int64)),
                     _readonly(key_values.astype(np.float64)),
                     _readonly(combo_key.astype(np.int64)))


def make_tasks(n_sets: int, traded_bars: np.ndarray, batch_size: int,
               cost_factor: float = 1.0) -> list[Task]:
    """Cut every asset's sets into batches; return tasks longest-first.

    The cost estimate is traded bars x sets x the strategy's cost factor; ties
    keep (asset, start) order so the plan is deterministic.
    """
    tasks = []
    for asset, bars in enumerate(traded_bars):
        for start in range(0, n_sets, batch_size):
            stop = min(start + batch_size, n_sets)
            tasks.append(Task(len(tasks), asset, start, stop,
                              float(bars) * (stop - start) * cost_factor))
    return sorted(tasks, key=lambda task: -task.cost)


def run_kernel(spec, args: tuple, *, debug: bool = False, parallel: bool = False) -> None:
    """Call the strategy's batch kernel on ``args`` (see ``btcore.kernel``): compiled,
    compiled over all Numba threads, or as plain Python (``debug``)."""
    if debug:
        sweep_batch_nb.py_func(*args, 1, spec.n_indicator_outputs, spec.indicator_nb.py_func,
                               spec.signal_nb.py_func)
    elif parallel:
        spec.batch_parallel_nb(*args, numba.get_num_threads())
    else:
        spec.batch_nb(*args, 1)


def run_task(shared: dict, task: Task) -> tuple[int, np.ndarray]:
    """Evaluate one task; returns ``(task_id, metrics)`` with metrics (N_METRICS, n_sets)."""
    spec = shared["spec"]
    rows = slice(task.start, task.stop)
    combo_key = shared["combo_key"][rows]
    low, high = int(combo_key[0]), int(combo_key[-1]) + 1  # sorted: keys are contiguous
    key_values = _readonly(shared["key_values"][low:high])
    local_key = _readonly(combo_key - low)
    out = np.empty((N_METRICS, task.n_sets), dtype=np.float64)
    args = (shared["close"][task.asset], int(shared["first_bar"][task.asset]),
            int(shared["last_bar"]), key_values, local_key, shared["params"][rows],
            shared["options"], shared["initial_capital"], shared["cost_bps"],
            shared["periods_per_year"], out, empty_record(), empty_record())
    run_kernel(spec, args, debug=shared.get("debug", False),
               parallel=shared.get("parallel", False))
    return task.task_id, out


def calibrate(shared: dict, n_bars: int, n_sets: int, repeats: int = 2) -> float:
    """Measured param-bars/s of the serial kernel on a small batch (compiles first)."""
    probe = Task(-1, 0, 0, min(n_sets, 64), 0.0)
    run_task(shared, Task(-1, 0, 0, 1, 0.0))  # compile or load from cache
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run_task(shared, probe)
        best = min(best, time.perf_counter() - started)
    return n_bars * probe.n_sets / max(best, 1e-6)


def choose_batch_size(n_sets: int, n_assets: int, bars_per_task: float, throughput: float,
                      slots: int, target_seconds: float = TARGET_TASK_SECONDS) -> int:
    """Sets per task so tasks last about ``target_seconds`` (0.2-2 s), with enough
    tasks to keep ``slots`` workers busy when the sweep is big enough."""
    per_set_seconds = bars_per_task / throughput
    size = int(target_seconds / max(per_set_seconds, 1e-12))
    # at least ~4 tasks per slot if that keeps tasks >= MIN_TASK_SECONDS
    total_seconds = n_sets * n_assets * per_set_seconds
    if total_seconds / (4 * slots) >= MIN_TASK_SECONDS:
        size = min(size, int(np.ceil(n_sets * n_assets / (4 * slots))))
    size = min(size, int(MAX_TASK_SECONDS / max(per_set_seconds, 1e-12)))
    return int(max(1, min(size, n_sets)))
