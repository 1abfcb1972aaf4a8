"""Portfolio sweep benchmark: a 500-asset synthetic universe x 100 mean_reversion
parameter sets, every asset a sleeve of one account per set, end to end
(validation, indicators, kernel, table).

    python benchmarks/bench_universe.py [--assets 500] [--executor serial|threads|joblib]
                                        [--rebalance 21] [--repeats 2]

Prints backtests/s (portfolios), asset-bars/s (sets x assets x traded bars per
second) and peak resident memory. The first (untimed) call compiles or loads
the cached kernel module.
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from btcore import MarketData, run_portfolio_sweep

GRID = {"lookback_period": [10, 20, 40, 60, 100], "entry_threshold": [1.5, 2.0, 2.5, 3.0],
        "exit_threshold": [0.0, 0.25, 0.5, 0.75, 1.0], "stop_loss_z": [3.5]}  # 100 sets


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--executor", default="serial")
    parser.add_argument("--rebalance", type=int, default=None)
    parser.add_argument("--max-gross", type=float, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    data = MarketData.synthetic(n_assets=args.assets, start="2010-01-01", end="2024-01-01",
                                seed=1)
    construction = {"rebalance_every": args.rebalance, "max_gross_exposure": args.max_gross}
    started = time.perf_counter()
    run_portfolio_sweep({k: v[:1] for k, v in GRID.items()}, data=data, progress=False,
                        assets=list(data.symbols[:2]), **construction)
    print(f"compile/load: {time.perf_counter() - started:.2f} s")
    rss_before = peak_rss_mb()
    best = None
    for _ in range(args.repeats):
        started = time.perf_counter()
        res = run_portfolio_sweep(GRID, data=data, executor=args.executor, progress=False,
                                  **construction)
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    n_sets = len(res.table)
    asset_bars = res.stats["param_bars"]
    print(f"universe: {args.assets} assets x {data.n_bars} bars, {n_sets} parameter sets, "
          f"executor={args.executor} x{res.stats['workers']}, batches={res.stats['batches']}, "
          f"construction={construction}")
    print(f"end to end: {best:.2f} s  ->  {n_sets / best:,.1f} portfolio backtests/s, "
          f"{asset_bars / best / 1e6:,.1f} M asset-bars/s "
          f"(kernel only: {res.stats['param_bars_per_s'] / 1e6:,.1f} M asset-bars/s)")
    print(f"peak RSS: {peak_rss_mb():,.0f} MB (after data and compile: {rss_before:,.0f} MB)")
    top = res.table.iloc[0]
    print(f"best set: sharpe {top['sharpe_ratio']:.3f}, turnover {top['turnover']:.2f}/yr, "
          f"trades {int(top['num_trades'])}; ruined rows: {int(res.table['ruined'].sum())}")
    assert np.isfinite(res.table["final_value"]).all()




# ------------------------------------------------- (2) cross-sectional strategy
#: 100 construction variants of the ranked long/short book (5 x 4 x 5)
CS_GRID = {"lookback_period": [5, 10, 20, 60, 120], "top_k": [10, 25, 50, 100],
           "rebalance_every": [1, 5, 21, 63, 126], "gross_leverage": [1.0]}


def main_cross_sectional(argv=None) -> None:
    """``python benchmarks/bench_universe.py cross_sectional [--assets 500]
    [--executor threads] [--direction reversal] [--repeats 2]``: the cross-sectional
    sweep (rank, hold top_k each side) over the same synthetic universe, end to end."""
    from btcore.workflows.cross_sectional import run_cross_sectional_sweep
    parser = argparse.ArgumentParser(description="cross-sectional sweep benchmark")
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--executor", default="threads")
    parser.add_argument("--direction", default="reversal")
    parser.add_argument("--long-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    data = MarketData.synthetic(n_assets=args.assets, start="2010-01-01", end="2024-01-01",
                                seed=1)
    options = {"direction": args.direction, "long_only": args.long_only}
    started = time.perf_counter()
    run_cross_sectional_sweep({"top_k": [1]}, data=data, progress=False,
                              assets=list(data.symbols[:2]), **options)
    print(f"compile/load: {time.perf_counter() - started:.2f} s")
    best = cpu = None
    for _ in range(args.repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        res = run_cross_sectional_sweep(CS_GRID, data=data, executor=args.executor,
                                        progress=False, **options)
        elapsed = time.perf_counter() - started
        if best is None or elapsed < best:
            best, cpu = elapsed, time.process_time() - cpu_started
    n_sets = len(res.table)
    print(f"cross-sectional: {args.assets} assets x {data.n_bars} bars, {n_sets} variants, "
          f"executor={args.executor} x{res.stats['workers']}, batches={res.stats['batches']}, "
          f"{options}")
    print(f"end to end: {best:.2f} s  ->  {n_sets / best:,.1f} backtests/s, "
          f"{res.stats['param_bars'] / best / 1e6:,.1f} M asset-bars/s "
          f"(kernel only: {res.stats['param_bars_per_s'] / 1e6:,.1f} M asset-bars/s); "
          f"CPU time of this process {cpu:.2f} s (load average now "
          f"{os.getloadavg()[0]:.1f})")
    top = res.table.iloc[0]
    print(f"best variant: L={top['lookback_period']} k={top['top_k']} "
          f"every={top['rebalance_every']}: sharpe {top['sharpe_ratio']:.3f}, turnover "
          f"{top['turnover']:.2f}/yr; ruined rows: {int(res.table['ruined'].sum())}")
    assert np.isfinite(res.table["final_value"]).all()


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["cross_sectional"]:
        main_cross_sectional(sys.argv[2:])
    else:
        main()
