"""CPCV beside walk-forward on the same data: ``cpcv`` with 6 groups / 2 test groups
(15 splits, 5 paths) and a rolling ``walk_forward`` with 10 folds, 1,000 parameter
sets x ``--assets`` assets (~3,400 daily bars), side by side in one run.

Run: ``python benchmarks/bench_cpcv.py [--executor threads] [--assets 50]
[--sets 1000] [--repeats 2]``. Figures are best of ``--repeats`` after a warm-up
run (compilation excluded).
"""
import argparse

import numpy as np

from bench_workflows import best_of, grid_of  # the same grid and timing (benchmarks/)
from btcore import MarketData, cpcv, walk_forward


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", default="threads")
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    data = MarketData.synthetic(n_assets=args.assets, start="2010-01-01", end="2022-12-31",
                                seed=5)
    grid = grid_of(args.sets)
    n_sets = int(np.prod([len(v) for v in grid.values()]))
    print(f"mean_reversion: {n_sets:,} sets x {args.assets} assets, {len(data.index):,} "
          f"bars, executor={args.executor}\n")
    header = f"{'variant':<36}{'seconds':>9}{'backtests':>12}{'M param-bars/s':>16}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    runs = {
        "walk_forward 10 folds (rolling)": lambda: walk_forward(
            grid, data=data, n_splits=10, executor=args.executor, progress=False),
        "cpcv 6 groups / 2 test": lambda: cpcv(
            grid, data=data, n_groups=6, n_test_groups=2, executor=args.executor,
            progress=False),
        "cpcv 6 / 2, purge 5, embargo 5": lambda: cpcv(
            grid, data=data, n_groups=6, n_test_groups=2, purge=5, embargo=5,
            executor=args.executor, progress=False),
    }
    reference = None
    for name, run in runs.items():
        seconds, result = best_of(run, args.repeats)
        reference = reference or seconds
        stats = result.stats
        print(f"{name:<36}{seconds:>9.2f}{stats['backtests']:>12,}"
              f"{stats['param_bars'] / seconds / 1e6:>16.0f}{seconds / reference:>7.2f}")


if __name__ == "__main__":
    main()
