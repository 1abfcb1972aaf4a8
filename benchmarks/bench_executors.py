"""Wall time and speed-up vs serial of every executor, side by side in one run.

Two sweeps of mean_reversion on the bundled 20-stock sample from 2010-01-01:

(a) the seed's 135-combo grid x 20 assets = 2,700 backtests;
(b) a 50,000-combo grid x 20 assets = 1,000,000 backtests (``--quick``: 5,000).

Clusters are started (and their workers warmed up by a tiny sweep, which pays
for imports and Numba cache loads) before any sweep is timed; those one-off
costs are reported in their own columns. Each sweep is timed best of N
(``--repeats-small`` for (a), ``--repeats-large`` for (b)). ``wall`` is the
whole ``run_sweep`` call, including what stays serial in the driver
(validation, calibration, building the result table); ``compute`` is the
executor's part (``stats["compute_s"]``: sharing excluded, tasks until the
last result).

    python benchmarks/bench_executors.py            # ~3 minutes on 2 cores
    python benchmarks/bench_executors.py --quick    # ~40 s
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}
START = "2010-01-01"
EXECUTORS = ("serial", "threads", "joblib", "ray", "dask")


def large_grid(n_stops: int) -> dict:
    """10 lookbacks x 10 entries x 10 exits x ``n_stops`` stop levels."""
    return {"lookback_period": list(range(10, 110, 10)),
            "entry_threshold": [round(x, 4) for x in np.linspace(0.5, 3.0, 10)],
            "exit_threshold": [round(x, 4) for x in np.linspace(0.0, 0.9, 10)],
            "stop_loss_z": [round(x, 4) for x in np.linspace(1.5, 6.5, n_stops)]}


def make_executor(name: str, n_workers: int):
    import btcore.executors as executors
    options = {"threads": {"n_threads": n_workers}, "joblib": {"n_jobs": n_workers},
               "ray": {"num_cpus": n_workers}, "dask": {"n_workers": n_workers}}
    return executors.executor_class(name)(**options.get(name, {}))


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def best_of(repeats: int, sweep) -> dict:
    """Best wall time of ``repeats`` sweeps, with that run's compute time and batches."""
    best = None
    for _ in range(repeats):
        wall, result = timed(sweep)
        if best is None or wall < best["wall"]:
            best = {"wall": wall, "compute": result.stats["compute_s"],
                    "batches": result.stats["batches"], "rows": len(result.table),
                    "retries": result.stats["retries"]}
    return best


def run(args) -> list[dict]:
    from btcore import run_sweep
    from btcore.datasets import sp500_sample
    data = sp500_sample()
    cases = [("(a) seed grid", SEED_GRID, args.repeats_small),
             ("(b) large grid", large_grid(5 if args.quick else 50), args.repeats_large)]
    tiny = {name: values[:1] for name, values in SEED_GRID.items()}
    run_sweep(tiny, data=data, start=START, progress=False)  # compile / load the kernels

    # one executor at a time: an idle Ray or Dask cluster left running steals CPU
    # (heartbeats, raylet) from whatever is measured next, on 2 cores visibly so
    results = {case: {} for case, _, _ in cases}
    for name in args.executors:
        executor = make_executor(name, args.workers)
        start_s, _ = timed(executor.start)
        warm_s, _ = timed(lambda: run_sweep(tiny, data=data, start=START, executor=executor,
                                            progress=False))
        try:
            for case, grid, repeats in cases:
                result = best_of(repeats, lambda: run_sweep(
                    grid, data=data, start=START, executor=executor, progress=False))
                result.update(case=case, executor=name, workers=executor.n_workers,
                              start=start_s, warm=warm_s, repeats=repeats)
                results[case][name] = result
        finally:
            close_s, _ = timed(executor.close)
        for case in results:
            results[case][name]["close"] = close_s
    rows = []
    for case, by_name in results.items():
        base = by_name.get("serial")
        for result in by_name.values():
            result["speedup_wall"] = base["wall"] / result["wall"] if base else np.nan
            result["speedup_compute"] = base["compute"] / result["compute"] if base else np.nan
            rows.append(result)
    return rows


def print_table(rows: list[dict]) -> None:
    header = (f"{'sweep':<15} {'executor':<8} {'workers':>7} {'tasks':>5} {'backtests':>10} "
              f"{'wall s':>7} {'x serial':>8} {'compute s':>9} {'x serial':>8} "
              f"{'start s':>7} {'warm s':>6} {'close s':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['case']:<15} {r['executor']:<8} {r['workers']:>7} {r['batches']:>5} "
              f"{r['rows']:>10,} {r['wall']:>7.3f} {r['speedup_wall']:>7.2f}x "
              f"{r['compute']:>9.3f} {r['speedup_compute']:>7.2f}x {r['start']:>7.2f} "
              f"{r['warm']:>6.2f} {r.get('close', float('nan')):>7.2f}")
    print(f"\nbest of {rows[0]['repeats']} (a) / {rows[-1]['repeats']} (b) runs; "
          f"CPUs available: {len(os.sched_getaffinity(0))}; start/warm/close are one-off "
          "costs per executor, outside the sweep timings")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="5,000-combo large grid (100k backtests) and single runs")
    parser.add_argument("--repeats-small", type=int, default=None,
                        help="repeats of the seed-grid sweep (default 3, --quick 1)")
    parser.add_argument("--repeats-large", type=int, default=1,
                        help="repeats of the large sweep (default 1)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="workers / threads per parallel executor (default: all CPUs)")
    parser.add_argument("--executors", default=",".join(EXECUTORS),
                        help="comma-separated executors to compare (serial first)")
    args = parser.parse_args(argv)
    args.executors = [name.strip() for name in args.executors.split(",") if name.strip()]
    if args.repeats_small is None:
        args.repeats_small = 1 if args.quick else 3
    if min(args.repeats_small, args.repeats_large, args.workers) < 1:
        parser.error("repeats and workers must be >= 1")
    print_table(run(args))


if __name__ == "__main__":
    main()
