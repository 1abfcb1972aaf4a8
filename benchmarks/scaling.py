"""Scaling study: throughput vs parameter sets, bars and assets; memory vs sets;
and a model of a 320-CPU cluster from measured per-task times and overheads.

Run: ``python benchmarks/scaling.py [--quick] [--sections combos,bars,assets,cluster,memory]``.
The ``memory`` section runs each case in a fresh process and reports its peak RSS
over the baseline after import: 5M sets in memory, 5M with ``out=`` and
``keep=1000``, and 10^8 sets with ``keep=1000``, end to end.
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


MEMORY_CASE = """
import json, resource, sys, tempfile, time
import btcore
from btcore import Grid, run_sweep
from btcore.datasets import sp500_sample
data = sp500_sample()
grid = Grid(json.loads(sys.argv[1]))
kwargs = json.loads(sys.argv[2])
run_sweep({"lookback_period": [20]}, data=data, assets=["AAPL"], progress=False)  # compile
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with tempfile.TemporaryDirectory(dir=".") as folder:
    if kwargs.pop("out", False):
        kwargs["out"] = folder + "/results"
    started = time.perf_counter()
    result = run_sweep(grid, data=data, executor="threads", progress=False, **kwargs)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"sets": len(grid), "rows": len(result.table), "elapsed_s": elapsed,
                      "baseline_mb": baseline / 1e6, "growth_mb": (peak - baseline) / 1e6,
                      "backtests_per_s": result.stats["backtests_per_s"],
                      "param_bars_per_s": result.stats["param_bars_per_s"],
                      "batches": result.stats["batches"]}))
"""


def section_memory(quick, repeats):
    """Peak RSS growth of big sweeps, each in a fresh process (ru_maxrss)."""
    import json
    import subprocess
    import sys

    def axis(low, count, step):
        return [round(low + step * k, 6) for k in range(count)]

    five_million = {"lookback_period": list(range(10, 110)), "entry_threshold": axis(1, 50, 0.04),
                    "exit_threshold": axis(0, 20, 0.04), "stop_loss_z": axis(2.5, 50, 0.04)}
    hundred_million = {"lookback_period": list(range(10, 110)),
                       "entry_threshold": axis(1, 100, 0.02),
                       "exit_threshold": axis(0, 100, 0.008), "stop_loss_z": axis(2.5, 100, 0.02)}
    if quick:  # 500k and 10M sets
        five_million["stop_loss_z"] = five_million["stop_loss_z"][:5]
        hundred_million["stop_loss_z"] = hundred_million["stop_loss_z"][:10]
    window = {"assets": ["AAPL"], "start": "2016-01-01", "end": "2022-12-31"}
    cases = [("in memory", five_million, window),
             ("out= keep=1000", five_million, {**window, "out": True, "keep": 1000}),
             ("keep=1000, 2022 only", hundred_million,
              {**window, "start": "2022-01-01", "keep": 1000})]
    rows = []
    for label, grid, kwargs in cases:
        process = subprocess.run([sys.executable, "-c", MEMORY_CASE, json.dumps(grid),
                                  json.dumps(kwargs)], capture_output=True, text=True)
        if process.returncode != 0:
            print(f"{label}: failed\n{process.stderr[-2000:]}")
            continue
        case = json.loads(process.stdout.strip().splitlines()[-1])
        rows.append((label, case["sets"], case["rows"], case["elapsed_s"],
                     case["param_bars_per_s"] / 1e6, case["baseline_mb"], case["growth_mb"]))
    print_rows("Memory: peak RSS growth over the post-import baseline (fresh process each, "
               "threads executor, AAPL)",
               ("case", "sets", "rows kept", "wall s", "M pb/s", "base MB", "growth MB"), rows)


SECTIONS = {"combos": section_combos, "bars": section_bars, "assets": section_assets,
            "cluster": section_cluster, "memory": section_memory}


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
