"""Scaling study: throughput vs parameter sets, bars and assets; memory vs sets;
and a model of a 320-CPU cluster from measured per-task times and overheads.

Run: ``python benchmarks/scaling.py [--quick] [--sections combos,bars,assets,cluster]``.
All figures come from this run (best of ``--repeats`` for the short cases).
"""
from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np

from btcore import Grid, MarketData, run_sweep

SPACE = {"lookback_period": (10, 120), "entry_threshold": (0.5, 3.0),
         "exit_threshold": (0.0, 1.0), "stop_loss_z": (2.0, 4.5)}


def timed_sweep(n_sets, data, executor="threads", repeats=1, **kwargs):
    """(best seconds, result) of a sweep of ``n_sets`` random sets over ``data``."""
    grid = Grid.random(SPACE, n_sets, seed=n_sets)
    best, result = np.inf, None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        result = run_sweep(grid, data=data, executor=executor, progress=False, **kwargs)
        best = min(best, time.perf_counter() - started)
    return best, result


def print_rows(title, header, rows):
    print(f"\n{title}")
    print("".join(f"{h:>14}" for h in header))
    for row in rows:
        print("".join(f"{v:>14}" if isinstance(v, str) else f"{v:>14,.4g}" for v in row))


def section_combos(quick, repeats):
    data = MarketData.synthetic(1, "2010-01-01", "2013-10-31", seed=1)  # ~1,000 bars
    sizes = [10, 100, 1_000, 10_000, 100_000] + ([] if quick else [1_000_000, 10_000_000])
    rows = []
    for n_sets in sizes:
        tracemalloc.start()
        seconds, result = timed_sweep(n_sets, data, repeats=repeats if n_sets <= 10_000 else 1)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        stats = result.stats
        rows.append((n_sets, seconds, stats["compute_s"], stats["param_bars_per_s"] / 1e6,
                     peak / 1e6, peak / n_sets))
        del result
    print_rows(f"Parameter sets ({data.n_bars:,} bars, 1 asset, threads executor)",
               ("sets", "wall s", "kernel s", "M pb/s", "peak MB", "bytes/set"), rows)


def section_bars(quick, repeats):
    rows = []
    cases = [(1_000, "B"), (10_000, "B"), (100_000, "B")] + ([] if quick else [(100_000, "h")])
    for n_bars, frequency in cases:
        close = MarketData.synthetic(1, "1990-01-01", "2030-01-01", seed=2).close[:, 0]
        close = np.resize(close, n_bars) if n_bars > len(close) else close[:n_bars]
        import pandas as pd
        index = pd.date_range("2000-01-03", periods=n_bars, freq=frequency)
        data = MarketData(close, index, ("X",))
        periods = 252 * 7 if frequency == "h" else 252
        seconds, result = timed_sweep(1_000, data, repeats=repeats, periods_per_year=periods)
        rows.append((n_bars, "hourly" if frequency == "h" else "daily", seconds,
                     result.stats["param_bars_per_s"] / 1e6))
    print_rows("Bars (1,000 parameter sets, 1 asset, threads executor)",
               ("bars", "frequency", "wall s", "M pb/s"), rows)


def section_assets(quick, repeats):
    rows = []
    for n_assets in [1, 20, 100] + ([] if quick else [500]):
        data = MarketData.synthetic(n_assets, "2010-01-01", "2022-12-31", seed=3)
        seconds, result = timed_sweep(200, data, repeats=repeats if n_assets <= 20 else 1)
        rows.append((n_assets, 200 * n_assets, seconds,
                     result.stats["param_bars_per_s"] / 1e6))
    print_rows("Assets (200 parameter sets x universe, 3,390 bars, threads executor)",
               ("assets", "backtests", "wall s", "M pb/s"), rows)


def section_cluster(quick, repeats):
    """Model a 320-CPU sweep from measured kernel time per task and Ray overheads."""
    data = MarketData.synthetic(1, "2010-01-01", "2022-12-31", seed=4)
    seconds, result = timed_sweep(5_000, data, executor="serial", repeats=repeats)
    per_pb = result.stats["compute_s"] / result.stats["param_bars"]
    overheads = measure_ray_overheads(quick)
    print(f"\nCluster model from measured costs: kernel {1 / per_pb / 1e6:,.0f} M param-bars/s "
          f"per core; Ray (2-node local cluster) start {overheads['start_s']:.2f} s, "
          f"ray.put of 20 MB {overheads['put_s']:.3f} s, {overheads['task_s'] * 1e3:.2f} "
          "CPU-ms per task")
    # the mission's walk-forward study: 50 strategies x 1,000 sets x 10 folds, and
    # a 1,000x larger one (e.g. 1,000,000 sets per strategy and fold)
    studies = (("mission study", 500_000), ("1,000x study", 500_000_000))
    rows = []
    for label, backtests in studies:
        work = backtests * 3_300 * per_pb  # CPU-seconds of kernel
        for cpus in (1, 2, 32, 320):
            # tasks of ~1 s (the sweep's auto batch size), at least 4 per CPU
            tasks = max(4 * cpus, int(work))
            wall = (overheads["start_s"] if cpus > 2 else 0.0) + overheads["put_s"] \
                + (work + tasks * overheads["task_s"]) / cpus
            rows.append((label, backtests, cpus, tasks, work / cpus, wall, work / cpus / wall))
    print_rows("Modelled wall time = cluster start (>2 CPUs) + data share + "
               "(kernel + per-task overhead) / CPUs",
               ("study", "backtests", "CPUs", "tasks", "kernel s/CPU", "wall s", "efficiency"),
               rows)


def measure_ray_overheads(quick):
    """Ray start, put and per-task round trip on a 2-node local cluster (or 1 node)."""
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        print("ray is not installed: pip install 'btcore[ray]'; using 0 overheads")
        return {"start_s": 0.0, "put_s": 0.0, "task_s": 0.0}
    import os
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 200_000_000, "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=200_000_000)
    ray.init(address=cluster.address, log_to_driver=False)
    start_s = time.perf_counter() - started

    @ray.remote
    def noop(array, i):
        return i

    payload = np.zeros(2_500_000)  # 20 MB, the size of a large price panel
    started = time.perf_counter()
    ref = ray.put(payload)
    put_s = time.perf_counter() - started
    ray.get([noop.remote(ref, i) for i in range(20)])  # warm workers on both nodes
    n_tasks = 200 if quick else 1_000
    started = time.perf_counter()
    ray.get([noop.remote(ref, i) for i in range(n_tasks)])
    task_s = (time.perf_counter() - started) * 2 / n_tasks  # CPU-seconds per task, 2 CPUs
    ray.shutdown()
    cluster.shutdown()
    return {"start_s": start_s, "put_s": put_s, "task_s": task_s}


SECTIONS = {"combos": section_combos, "bars": section_bars, "assets": section_assets,
            "cluster": section_cluster}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the largest cases")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    args = parser.parse_args(argv)
    for name in args.sections.split(","):
        SECTIONS[name](args.quick, args.repeats)


if __name__ == "__main__":
    main()
