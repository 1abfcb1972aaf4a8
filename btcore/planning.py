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

from btcore.engine import calibrate, choose_batch_size

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
    local = cpu_count()
    rows = []
    for n in counts:
        name = executor or ("threads" if n <= local else "ray")
        n = 1 if name == "serial" else n
        wall = predict_seconds(job, throughput, name, n, local)
        rows.append({"cpus": n, "executor": name, "predicted_s": wall,
                     "cpu_hours": wall * n / 3600.0,
                     "cost_usd": wall * n / 3600.0 * price_per_cpu_hour,
                     "kernel_param_bars_per_s": throughput})
    return pd.DataFrame(rows)


def predict_seconds(job, throughput: float, executor: str, cpus: int,
                    local_cpus: int, connected: bool = False) -> float:
    """Predicted wall seconds of ``job`` on ``cpus`` CPUs of ``executor``, from the
    kernel's measured param-bars/s on one core and the executor's overheads
    (``connected``: a cluster this process has already joined, no start-up)."""
    traded = job.traded_bars
    kernel_s = float(traded.sum()) * job.n_sets / throughput
    start_s, task_s, mb_s = OVERHEADS[executor]
    if connected:
        start_s = 0.0  # already up: no start-up to pay
    elif cpus > local_cpus:
        start_s += CLUSTER_START_S
    sets_per_task = choose_batch_size(job.n_sets, traded.size, float(traded.mean()),
                                      throughput, cpus)
    n_tasks = traded.size * math.ceil(job.n_sets / sets_per_task)
    # a task is the smallest unit of work: fewer tasks than CPUs leaves CPUs idle
    busy = max(1, min(cpus, n_tasks))
    return start_s + job.close.nbytes / 1e6 * mb_s + (kernel_s + n_tasks * task_s) / busy


def cluster_cpus() -> dict:
    """CPUs of clusters this process is already connected to: ``{"ray": n}`` when
    Ray is initialised, ``{"dask": n}`` when a Dask client is the default."""
    import sys
    found = {}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        found["ray"] = int(ray.cluster_resources().get("CPU", 0))
    if "distributed" in sys.modules:
        from distributed import default_client
        try:
            client = default_client()
        except ValueError:  # no client
            client = None
        if client is not None:
            found["dask"] = int(sum(client.nthreads().values()))
    return found


def choose_executor(job, throughput: float) -> dict:
    """The executor ``executor="auto"`` runs ``job`` on, and why.

    Candidates: ``serial`` (one core), ``threads`` (this machine's cores) and any
    Ray or Dask cluster this process is already connected to; the one with the
    least predicted wall time wins (serial on a tie: nothing to start).

    Returns ``{"executor", "reason", "predicted_s": {name: seconds}}``.
    """
    from btcore.executors.base import cpu_count
    local = cpu_count()
    candidates = {"serial": 1, "threads": local, **cluster_cpus()}
    predicted = {name: predict_seconds(job, throughput, name, cpus, local,
                                       connected=name in ("ray", "dask"))
                 for name, cpus in candidates.items() if cpus > 0}
    chosen = min(predicted, key=predicted.get)
    shown = ", ".join(f"{name} x{candidates[name]} {seconds:.3g} s"
                      for name, seconds in predicted.items())
    reason = (f"predicted {shown} from the measured kernel speed "
              f"({throughput / 1e6:.0f} M param-bars/s per core) and each executor's "
              "start-up and per-task overheads")
    return {"executor": chosen, "reason": reason, "predicted_s": predicted,
            "cpus": candidates[chosen]}


def resolve_auto(executor, job):
    """``(executor, choice)``: ``executor`` unchanged with choice None, or for
    ``"auto"`` the name :func:`choose_executor` picks for ``job`` (serial in debug
    mode) and its ``{"executor", "reason", "predicted_s", "cpus"}``."""
    if not (isinstance(executor, str) and executor == "auto"):
        return executor, None
    if job.debug:
        choice = {"executor": "serial", "reason": "debug=True runs plain Python in this "
                  "process", "predicted_s": {}, "cpus": 1}
    else:
        choice = choose_executor(job, calibrate(job))
    return choice["executor"], choice


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


__all__ = ["estimate", "OVERHEADS", "choose_executor", "predict_seconds", "resolve_auto"]
