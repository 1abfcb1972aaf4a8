"""Kernel throughput: param-bars/s on 1 and all threads vs a naive per-row loop.

Run: ``python benchmarks/bench_kernel.py [--repeats 5] [--naive-runs 3]``.
Every figure comes from this one run, best of ``--repeats``; the naive loop's
per-backtest time is measured on a few backtests and extrapolated.
"""
import argparse
import os
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _peers import naive_backtest  # noqa: E402

from btcore import Grid  # noqa: E402
from btcore.datasets import sp500_sample  # noqa: E402
from btcore.plan import Task, run_task  # noqa: E402
from btcore.sweep import prepare  # noqa: E402

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}
BIG_GRID = {"lookback_period": list(range(10, 110, 10)),
            "entry_threshold": [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25],
            "exit_threshold": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
            "stop_loss_z": [3.5]}
ASSET, START = "AAPL", "2010-01-01"


def best_time(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def kernel_seconds(grid, threads, repeats):
    """Best time of the fused kernel on the whole grid (one task, one asset)."""
    job = prepare(grid, "mean_reversion", sp500_sample(), start=START, end=None,
                  initial_capital=1e6, cost_bps=5.0, periods_per_year=252.0, assets=[ASSET],
                  debug=False, options={})
    shared = dict(job.shared, parallel=threads > 1)
    task = Task(0, 0, 0, len(job.keyed.params), 0.0)
    numba.set_num_threads(threads)
    run_task(shared, task)  # compile / load cache
    seconds = best_time(lambda: run_task(shared, task), repeats)
    return seconds, int(job.traded_bars[0]), len(job.keyed.params)


STARTUP_PROBE = """
import time
started = time.perf_counter()
from btcore import run_sweep
imported = time.perf_counter()
run_sweep(%r, assets=["%s"], start="%s", progress=False)
done = time.perf_counter()
print(imported - started, done - imported)
"""


def startup_seconds(cache_dir):
    """(import s, first sweep s, whole process s) of a fresh interpreter."""
    import subprocess
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", STARTUP_PROBE % (SEED_GRID, ASSET, START)],
                            env=env, check=True, capture_output=True, text=True).stdout
    total = time.perf_counter() - started
    import_s, sweep_s = map(float, output.split())
    return import_s, sweep_s, total


def report_startup():
    import tempfile
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = startup_seconds(cache_dir)
        warm = min((startup_seconds(cache_dir) for _ in range(3)), key=lambda r: r[2])
    print("\nfresh process, seed grid on one asset: import s, first sweep s, process s")
    print(f"  cold numba cache (compiles):  {cold[0]:.2f}  {cold[1]:.2f}  {cold[2]:.2f}")
    print(f"  warm numba cache (loads):     {warm[0]:.2f}  {warm[1]:.2f}  {warm[2]:.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-runs", type=int, default=3)
    parser.add_argument("--no-startup", action="store_true", help="skip the fresh-process timing")
    args = parser.parse_args(argv)
    close = sp500_sample()
    series = __import__("pandas").Series(close.close[:, close.symbols.index(ASSET)],
                                         index=close.index)
    started = time.perf_counter()
    for _ in range(args.naive_runs):
        naive_backtest(series, 40, 2.0, 0.5, 3.0, start=START, end=None)
    naive_per_backtest = (time.perf_counter() - started) / args.naive_runs
    all_threads = numba.config.NUMBA_NUM_THREADS
    print(f"btcore kernel, mean_reversion on {ASSET} from {START} "
          f"(best of {args.repeats}); naive .iloc loop {naive_per_backtest:.3f} s/backtest\n")
    header = (f"{'grid':<10}{'combos':>7}{'bars':>6}{'threads':>8}{'seconds':>10}"
              f"{'M param-bars/s':>16}{'vs 1 thread':>12}{'naive loop s':>14}{'speed-up':>11}")
    print(header)
    print("-" * len(header))
    for name, grid in (("seed 135", SEED_GRID), ("1,000", BIG_GRID)):
        single = None
        for threads in sorted({1, all_threads}):
            seconds, bars, combos = kernel_seconds(Grid(grid), threads, args.repeats)
            single = single or seconds
            naive_total = naive_per_backtest * combos
            print(f"{name:<10}{combos:>7}{bars:>6}{threads:>8}{seconds:>10.4f}"
                  f"{combos * bars / seconds / 1e6:>16.1f}{single / seconds:>12.2f}"
                  f"{naive_total:>14.1f}{naive_total / seconds:>11,.0f}x")
    numba.set_num_threads(all_threads)
    if not args.no_startup:
        report_startup()


if __name__ == "__main__":
    main()
