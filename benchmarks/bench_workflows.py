"""Research workflows at the seed study's shape: walk-forward over 1,000 parameter
sets x 10 folds x 50 assets (~3,400 daily bars), rolling and anchored, against the
same in-sample work done as 10 separate ``run_sweep`` calls (one per fold), and
10,000 Monte Carlo paths of one set.

Run: ``python benchmarks/bench_workflows.py [--executor threads] [--assets 50]
[--sets 1000] [--folds 10] [--repeats 2]``. Figures are best of ``--repeats``
after a warm-up run (compilation excluded), all from this one run.
"""
import argparse
import time

import numpy as np

from btcore import MarketData, run_sweep, walk_forward
try:  # a checkout from before the workflows package (to compare with, PYTHONPATH=...)
    from btcore.walk_forward import fold_windows
except ImportError:
    from btcore.workflows.walk_forward import fold_windows


def grid_of(n_sets: int) -> dict:
    lookbacks = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    entries = list(np.round(np.linspace(1.0, 3.0, 10), 3))
    exits = list(np.round(np.linspace(0.0, 0.9, max(1, n_sets // 100)), 3))
    return {"lookback_period": lookbacks, "entry_threshold": entries,
            "exit_threshold": exits, "stop_loss_z": [3.5]}


def best_of(fn, repeats):
    fn()  # warm-up: compile / load caches, start workers
    best, value = np.inf, None
    for _ in range(repeats):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", default="threads")
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--paths", type=int, default=10_000)
    args = parser.parse_args(argv)
    data = MarketData.synthetic(n_assets=args.assets, start="2010-01-01", end="2022-12-31",
                                seed=5)
    grid = grid_of(args.sets)
    n_sets = int(np.prod([len(v) for v in grid.values()]))
    print(f"walk-forward, mean_reversion: {n_sets:,} sets x {args.folds} folds x "
          f"{args.assets} assets, {len(data.index):,} bars, executor={args.executor}\n")
    header = f"{'variant':<34}{'seconds':>9}{'IS backtests/s':>16}{'M param-bars/s':>16}"
    print(header)
    print("-" * len(header))
    results = {}
    for anchored in (False, True):
        name = "anchored" if anchored else "rolling"
        seconds, result = best_of(lambda: walk_forward(
            grid, data=data, n_splits=args.folds, anchored=anchored, executor=args.executor,
            progress=False), args.repeats)
        results[name] = seconds
        stats = result.stats
        print(f"{'walk_forward ' + name:<34}{seconds:>9.2f}"
              f"{stats['backtests'] / seconds:>16,.0f}{stats['param_bars'] / seconds / 1e6:>16.0f}")
    folds = fold_windows(0, len(data.index) - 1, args.folds)

    def per_fold_sweeps():
        for is_start, is_end, _, _ in folds:
            run_sweep(grid, data=data, start=data.index[is_start], end=data.index[is_end],
                      executor=args.executor, progress=False)

    seconds, _ = best_of(per_fold_sweeps, args.repeats)
    print(f"{'10 run_sweep calls (rolling IS)':<34}{seconds:>9.2f}"
          f"{n_sets * args.assets * args.folds / seconds:>16,.0f}")
    print(f"\nanchored / rolling: {results['anchored'] / results['rolling']:.2f}; "
          f"separate sweeps / rolling walk-forward: {seconds / results['rolling']:.2f}")
    report_monte_carlo(args)


def report_monte_carlo(args):
    """10,000 paths of one mean_reversion set on ~8,000 daily bars, per method."""
    from btcore import monte_carlo
    data = MarketData.synthetic(n_assets=1, start="1993-01-01", end="2023-12-31", seed=9)
    params = {"lookback_period": 20, "entry_threshold": 2.0, "exit_threshold": 0.5,
              "stop_loss_z": 3.0}
    print(f"\nMonte Carlo, one set, {args.paths:,} paths x {len(data.index):,} bars, "
          f"executor={args.executor}")
    for method in ("bootstrap", "block", "gbm"):
        seconds, result = best_of(lambda: monte_carlo(
            params, data=data, n_paths=args.paths, method=method, executor=args.executor,
            progress=False), args.repeats)
        print(f"  {method:<10}{seconds:>7.2f} s  {args.paths / seconds:>9,.0f} paths/s  "
              f"P(loss) {result.prob_loss:.2f}")


if __name__ == "__main__":
    main()
