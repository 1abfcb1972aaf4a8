"""Time and cost estimates for a sweep on 1 to hundreds of CPUs.

``estimate`` measures the kernel on this data (a short calibration, as every
sweep does before it starts) and adds each executor's overheads, measured on a
2-core VM (``benchmarks/RESULTS.md``): start-up, CPU time per task, and sharing
the data. Wall = start-up + share + (kernel + per-task overhead) / CPUs.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from btcore.engine import TARGET_TASK_SECONDS, calibrate

#: measured one-off and per-task costs: (start-up s, CPU s per task, s per MB shared)
OVERHEADS = {
    "serial": (0.0, 0.00002, 0.0),
    "threads": (0.0, 0.00002, 0.0),
    "joblib": (0.5, 0.0005, 0.002),
    "dask": (0.35, 0.002, 0.005),
    "ray": (2.6, 0.0014, 0.0025),
}
#: starting (or joining and scaling) a multi-node Ray cluster, measured with a
#: 2-node ``ray.cluster_utils.Cluster``; a real cloud cluster takes minutes to boot
CLUSTER_START_S = 3.6


def estimate(grid, strategy="mean_reversion", data=None, *, cpus=(1, 2, 16, 320),
             price_per_cpu_hour: float = 0.05, executor: str | None = None, start=None,
             end=None, assets=None, initial_capital=1_000_000.0, cost_bps=5.0,
             periods_per_year=None, **strategy_options) -> pd.DataFrame:
    """Predicted wall time and cost of ``run_sweep(grid, ...)`` on each CPU count.

    Parameters
    ----------
    grid, strategy, data, start, end, assets, initial_capital, cost_bps,
    periods_per_year, **strategy_options
        As in :func:`btcore.run_sweep`.
    cpus : iterable of int
        CPU counts to predict for.
    price_per_cpu_hour : float
        Dollars per CPU-hour (cloud on-demand ~0.05, spot ~0.015).
    executor : str, optional
        Executor to model; default ``threads`` up to this machine's CPUs and a Ray
        cluster beyond.

    Returns
    -------
    pandas.DataFrame
        ``cpus, executor, predicted_s, cpu_hours, cost_usd`` and the measured
        ``kernel_param_bars_per_s`` of one core.
    """
    from btcore.executors.base import cpu_count
    from btcore.settings import check_arguments
    from btcore.sweep import prepare
    check_arguments(strategy_options, strategy, estimate)
    counts = _cpu_counts(cpus)
    if isinstance(price_per_cpu_hour, bool) or not isinstance(price_per_cpu_hour, (int, float)) \
            or not math.isfinite(price_per_cpu_hour) or price_per_cpu_hour < 0:
        raise ValueError(f"price_per_cpu_hour must be a number >= 0, got {price_per_cpu_hour!r}")
    if executor is not None and executor not in OVERHEADS:
        raise ValueError(f"executor must be one of {sorted(OVERHEADS)} or None, got "
                         f"{executor!r}")
    job = prepare(grid, strategy, data, start=start, end=end, initial_capital=initial_capital,
                  cost_bps=cost_bps, periods_per_year=periods_per_year, assets=assets,
                  debug=False, options=strategy_options).job
    throughput = calibrate(job, repeats=3)  # param-bars/s of one core
    traded = job.traded_bars
    param_bars = float(traded.sum()) * job.n_sets
    kernel_s = param_bars / throughput
    shared_mb = job.close.nbytes / 1e6
    per_set_s = float(traded.mean()) / throughput
    local = cpu_count()
    rows = []
    for n in counts:
        name = executor or ("threads" if n <= local else "ray")
        if name == "serial":
            n = 1
        start_s, task_s, mb_s = OVERHEADS[name]
        if n > local:
            start_s += CLUSTER_START_S
        sets_per_task = max(1, min(job.n_sets, int(TARGET_TASK_SECONDS / max(per_set_s, 1e-12))))
        n_tasks = traded.size * math.ceil(job.n_sets / sets_per_task)
        wall = start_s + shared_mb * mb_s + (kernel_s + n_tasks * task_s) / n
        rows.append({"cpus": n, "executor": name, "predicted_s": wall,
                     "cpu_hours": wall * n / 3600.0,
                     "cost_usd": wall * n / 3600.0 * price_per_cpu_hour,
                     "kernel_param_bars_per_s": throughput})
    return pd.DataFrame(rows)


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


__all__ = ["estimate", "OVERHEADS"]
