"""Time around the kernel: an end-to-end serial ``run_sweep`` against the kernel's
own time on the same sets, measured side by side in one run.

Run: ``python benchmarks/bench_overhead.py [--repeats 7]``. For each grid size
the kernel is timed as one task over every set (``run_task``), and the sweep as
the user calls it (validation, sets, calibration if any, tasks, table); the
ratio sweep / kernel is the figure to watch (1.0 = nothing but the kernel).
Best of ``--repeats``, CPU time (the machine is shared: preemption inflates
wall time), after one warm-up run that compiles or loads the kernel.
"""
import argparse
import time

import numpy as np

from btcore import Grid, run_sweep
from btcore.datasets import sp500_sample
from btcore.engine import Task, run_task
try:  # a checkout from before the workflows package (to compare with, PYTHONPATH=...)
    from btcore.sweep import prepare
except ImportError:
    from btcore.workflows.base import prepare

ASSET = "AAPL"
GRIDS = {
    "135 (seed)": {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
                   "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]},
    "1,000": {"lookback_period": list(range(10, 110, 10)),
              "entry_threshold": [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25],
              "exit_threshold": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
              "stop_loss_z": [3.5]},
}


def best_cpu_seconds(fn, repeats: int) -> float:
    fn()  # compile or load the cache
    best = np.inf
    for _ in range(repeats):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    data = sp500_sample()
    print(f"serial run_sweep vs its kernel, mean_reversion on {ASSET}, every bar of the "
          f"sample (best of {args.repeats}, CPU seconds)\n")
    header = (f"{'grid':<12}{'bars':>6}{'kernel s':>10}{'sweep s':>10}{'sweep/kernel':>14}"
              f"{'calibrate s':>13}")
    print(header)
    print("-" * len(header))
    for name, grid in GRIDS.items():
        job = prepare(Grid(grid), "mean_reversion", data, start=None, end=None,
                      initial_capital=1e6, cost_bps=5.0, periods_per_year=None,
                      assets=[ASSET], debug=False, options={}).job
        shared, task = job.payload(), Task(0, 0, 0, 0, job.n_sets, 0.0)
        kernel = best_cpu_seconds(lambda: run_task(shared, task), args.repeats)
        results = []
        sweep = best_cpu_seconds(lambda: results.append(
            run_sweep(grid, data=data, assets=[ASSET], progress=False)), args.repeats)
        print(f"{name:<12}{int(job.traded_bars[0, 0]):>6}{kernel:>10.4f}{sweep:>10.4f}"
              f"{sweep / kernel:>14.2f}{results[-1].stats['calibrate_s']:>13.4f}")


if __name__ == "__main__":
    main()
