"""Time and cost estimates for a sweep (or walk-forward study, Monte Carlo run,
portfolio sweep) on 1 to hundreds of CPUs: the floor just under the CLI.

``estimate`` measures the kernel on this data (a short calibration, as every
sweep does before it starts) and adds each executor's overheads, measured on a
2-core VM (``benchmarks/RESULTS.md``): start-up, CPU time per task, and sharing
the data. Wall = start-up + share + (kernel + per-task overhead) / CPUs, plus
what every call pays whatever its size: the checks and preparation of the
inputs (timed here, as ``estimate`` does the same work), loading the compiled
kernel in the driver, and the driver's handling of each finished task (its rows
ranked and added to the table, progress): ``DRIVER_TASK_S`` per task, one at a
time in the driver (``benchmarks/bench_estimate.py``). Those fixed costs are
what a small sweep's time is mostly made of.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

import btcore.strategies as strategies
from btcore.engine import plan
from btcore.engine.cost import OVERHEADS, Workload, planned_tasks, predict_seconds
from btcore.settings import check_arguments
from btcore.workflows.base import prepare
from btcore.workflows.cross_sectional import prepare_cross_sectional
from btcore.workflows.monte_carlo import plan_monte_carlo
from btcore.workflows.portfolio_job import prepare_portfolio
from btcore.workflows.walk_forward import plan_walk_forward

#: driver seconds per finished task (its result checked, placed in the table or
#: array, progress counted), measured with benchmarks/bench_estimate.py: 0.25-0.4 ms
DRIVER_TASK_S = 3e-4
#: the run's own calibration and loading of a cached kernel take at most about this
#: (the first call of a process loads the machine code: ``estimate`` pays it too)
CALIBRATION_S = 0.05

#: estimate(workflow=...) -> the keywords of that workflow it takes besides the sweep's
WORKFLOW_KEYWORDS = {
    "sweep": (),
    "walk_forward": ("n_splits", "train_bars", "test_bars", "gap", "anchored"),
    "monte_carlo": ("n_paths", "method", "block_size", "seed", "asset"),
    "portfolio": ("rebalance_every", "max_gross_exposure", "max_position_weight",
                  "portfolio_stop_drawdown"),
    "cross_sectional": ("direction", "long_only"),
}


def estimate(grid, strategy="mean_reversion", data=None, *, workflow: str = "sweep",
             cpus=(1, 2, 16, 320), price_per_cpu_hour: float = 0.05,
             executor: str | None = None, start=None, end=None, assets=None,
             initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None,
             **options) -> pd.DataFrame:
    """Predicted wall time and cost of a sweep, walk-forward study, Monte Carlo run
    or portfolio sweep on each CPU count.

    Parameters
    ----------
    grid, strategy, data, start, end, assets, initial_capital, cost_bps, periods_per_year
        As in :func:`btcore.run_sweep` (for ``workflow="monte_carlo"``, ``grid`` is
        what :func:`btcore.monte_carlo` takes as ``params``).
    workflow : {"sweep", "walk_forward", "monte_carlo", "portfolio"}
        What to predict: :func:`btcore.run_sweep`, :func:`btcore.walk_forward`,
        :func:`btcore.monte_carlo` or :func:`btcore.run_portfolio_sweep`.
    cpus : iterable of int
        CPU counts to predict for.
    price_per_cpu_hour : float
        Dollars per CPU-hour (cloud on-demand ~0.05, spot ~0.015).
    executor : str, optional
        Executor to model; default ``threads`` up to this machine's CPUs and a Ray
        cluster beyond.
    **options
        The workflow's own keywords (``n_splits``, ``anchored``, ... for walk-forward;
        ``n_paths``, ``method``, ``asset``, ... for Monte Carlo; ``rebalance_every``,
        ... for portfolios; ``direction``, ``long_only`` for cross-sectional sweeps;
        their defaults as there) and strategy options.

    Returns
    -------
    pandas.DataFrame
        ``cpus, executor, predicted_s, cpu_hours, cost_usd`` and the measured
        ``kernel_param_bars_per_s`` of one core; ``attrs`` holds ``workflow``,
        ``backtests``, ``parameter_sets`` and ``setup_s`` (the measured checks and
        preparation every call pays, included in ``predicted_s``).

    Examples
    --------
    >>> estimate({"lookback_period": range(10, 200)}, workflow="walk_forward",
    ...          n_splits=10, cpus=[1, 16, 320])  # doctest: +SKIP
    """
    from btcore.executors.base import cpu_count
    if workflow not in WORKFLOW_KEYWORDS:
        raise ValueError(f"workflow must be one of {list(WORKFLOW_KEYWORDS)}, got "
                         f"{workflow!r}")
    counts = _cpu_counts(cpus)
    if isinstance(price_per_cpu_hour, bool) or not isinstance(price_per_cpu_hour, (int, float)) \
            or not math.isfinite(price_per_cpu_hour) or price_per_cpu_hour < 0:
        raise ValueError(f"price_per_cpu_hour must be a number >= 0, got {price_per_cpu_hour!r}")
    if executor is not None and executor not in OVERHEADS:
        raise ValueError(f"executor must be one of {sorted(OVERHEADS)} or None, got "
                         f"{executor!r}")
    keywords = {name: options.pop(name) for name in WORKFLOW_KEYWORDS[workflow]
                if name in options}
    _check_options(options, strategy, workflow)
    common = dict(start=start, end=end, initial_capital=initial_capital, cost_bps=cost_bps,
                  periods_per_year=periods_per_year, options=options)
    started = time.perf_counter()
    workload, measure = _PLANNERS[workflow](grid, strategy, data, assets, common, keywords)
    setup_s = time.perf_counter() - started  # the run checks and prepares the same inputs
    started = time.perf_counter()
    throughput = measure()  # param-bars/s of one core (loads the compiled kernel first)
    measure_s = time.perf_counter() - started
    local = cpu_count()
    rows = []
    for n in counts:
        name = executor or ("threads" if n <= local else "ray")
        n = 1 if name == "serial" else n
        driver_s = planned_tasks(workload, throughput, n) * DRIVER_TASK_S
        wall = predict_seconds(workload, throughput, name, n, local) + setup_s + \
            min(measure_s, CALIBRATION_S) + driver_s
        rows.append({"cpus": n, "executor": name, "predicted_s": wall,
                     "cpu_hours": wall * n / 3600.0,
                     "cost_usd": wall * n / 3600.0 * price_per_cpu_hour,
                     "kernel_param_bars_per_s": throughput})
    table = pd.DataFrame(rows)
    table.attrs.update(workflow=workflow, backtests=workload.backtests,
                       parameter_sets=workload.n_sets, setup_s=setup_s)
    return table


def _check_options(options: dict, strategy, workflow: str) -> None:
    """A keyword that is not a strategy option: name the workflow that takes it, or
    the closest argument (as the workflows themselves do)."""
    spec = strategies.get(strategy)
    for name in options:
        owners = [other for other, names in WORKFLOW_KEYWORDS.items() if name in names]
        if name not in spec.options and owners:
            raise TypeError(f"{name!r} is an argument of workflow={owners[0]!r}, not of "
                            f"workflow={workflow!r}; pass workflow={owners[0]!r} with it")
    check_arguments(options, strategy, estimate)


def _plan_sweep(grid, strategy, data, assets, common, keywords):
    job = prepare(grid, strategy, data, assets=assets, debug=False, **common).job
    return Workload.of_job(job), lambda: plan.calibrate(job, repeats=3)


def _plan_walk_forward(grid, strategy, data, assets, common, keywords):
    _, _, is_job = plan_walk_forward(grid, strategy, data, assets=assets, **common, **keywords)
    return Workload.of_job(is_job), lambda: plan.calibrate(is_job, repeats=3)


def _plan_monte_carlo(grid, strategy, data, assets, common, keywords):
    if assets is not None:
        raise TypeError("workflow='monte_carlo' resamples one asset: give asset=NAME, not "
                        "assets=")
    job = plan_monte_carlo(grid, strategy, data, **common, **keywords).job
    return Workload.of_job(job), lambda: plan.calibrate(job, repeats=3)


def _plan_portfolio(grid, strategy, data, assets, common, keywords):
    pjob = prepare_portfolio(grid, strategy, data, assets=assets, **common, **keywords)
    return Workload.of_job(pjob), lambda: plan.calibrate(pjob, repeats=3)


def _plan_cross_sectional(grid, strategy, data, assets, common, keywords):
    if common.pop("options"):
        raise TypeError("workflow='cross_sectional' ranks assets with its own rule: it takes "
                        "no strategy options")
    cjob = prepare_cross_sectional(grid, data, assets=assets, **common,
                                   direction=keywords.get("direction", "reversal"),
                                   long_only=keywords.get("long_only", False))
    return Workload.of_job(cjob), lambda: plan.calibrate(cjob, repeats=3)


_PLANNERS = {"sweep": _plan_sweep, "walk_forward": _plan_walk_forward,
             "monte_carlo": _plan_monte_carlo, "portfolio": _plan_portfolio,
             "cross_sectional": _plan_cross_sectional}


def _cpu_counts(cpus) -> list[int]:
    if isinstance(cpus, (int, np.integer)) and not isinstance(cpus, bool):
        cpus = [cpus]
    try:
        counts = [int(c) for c in cpus]
    except (TypeError, ValueError):
        raise TypeError(f"cpus must be an int or a list of ints, got {cpus!r}") from None
    if not counts or any(c < 1 or c != float(v) for c, v in zip(counts, cpus)):
        raise ValueError(f"cpus must be whole numbers >= 1, got {list(cpus)!r}")
    return counts


__all__ = ["estimate", "WORKFLOW_KEYWORDS"]
