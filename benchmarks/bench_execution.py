"""Execution settings' cost: param-bars/s of the market-on-close kernel, of the
execution kernel with every setting at its default, and with next-open fills,
a stop-loss, a take-profit, a trailing stop, slippage and a fixed fee on candles;
one thread (its CPU time), side by side in one run, best of ``--repeats``
(ratios are what to compare on a shared machine).

Run: ``python benchmarks/bench_execution.py [--repeats 7] [--rounds 3]``.
The candles are AAPL's real closes (the bundled sample, 2010 on) with a
deterministic open, high and low around them (the sample holds closes only).
"""
import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

from btcore import MarketData
from btcore.datasets import sp500_sample
from btcore.engine import Task, run_task
from btcore.workflows.base import prepare

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_kernel import BIG_GRID  # noqa: E402  (1,000 mean-reversion sets)

ASSET, START = "AAPL", "2010-01-01"


def aapl_candles() -> MarketData:
    """AAPL's closes with a seeded open (a gap from the previous close), high and low."""
    sample = sp500_sample()
    column = sample.symbols.index(ASSET)
    close = sample.close[:, column]
    valid = ~np.isnan(close)
    close, index = close[valid], sample.index[valid]
    rng = np.random.default_rng(0)
    previous = np.concatenate(([close[0]], close[:-1]))
    bar_open = previous * np.exp(rng.normal(0.0, 0.005, len(close)))
    high = np.maximum(bar_open, close) * np.exp(np.abs(rng.normal(0.0, 0.008, len(close))))
    low = np.minimum(bar_open, close) * np.exp(-np.abs(rng.normal(0.0, 0.008, len(close))))
    return MarketData(close, pd.DatetimeIndex(index), (ASSET,), open=bar_open, high=high,
                      low=low)


SHAPES = {
    "close kernel (defaults)": ({}, {}),
    "execution kernel, defaults": ({"slippage_bps": [0.0]}, {}),
    "next_open + stop/take-profit/trailing + costs": (
        {}, dict(fill="next_open", stop_loss=0.03, take_profit=0.06, trailing_stop=0.05,
                 slippage_bps=2.0, fee_per_trade=1.0)),
    "next_close + volatility target + borrow": (
        {}, dict(fill="next_close", target_volatility=0.15, borrow_bps=50.0,
                 risk_free_rate=0.02)),
}


def make_runner(data, extra_grid, settings):
    job = prepare({**BIG_GRID, **extra_grid}, "mean_reversion", data, start=START, end=None,
                  initial_capital=1e6, cost_bps=5.0, periods_per_year=252.0, assets=[ASSET],
                  debug=False, options=settings).job
    shared, task = job.payload(), Task(0, 0, 0, 0, job.n_sets, 0.0)
    run_task(shared, task)  # compile or load
    bars = int(job.traded_bars[0, 0])
    return (lambda: run_task(shared, task)), job.n_sets * bars


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args(argv)
    data = aapl_candles()
    runners = {name: make_runner(data, *shape) for name, shape in SHAPES.items()}
    best = dict.fromkeys(runners, np.inf)
    for _ in range(args.rounds):  # interleaved: load changes hit every shape alike
        for name, (run, _) in runners.items():
            for _ in range(args.repeats):
                started = time.thread_time()  # CPU time: a loaded machine's waits excluded
                run()
                best[name] = min(best[name], time.thread_time() - started)
    reference = runners["close kernel (defaults)"][1] / best["close kernel (defaults)"]
    print(f"mean_reversion, 1,000 sets x {runners['close kernel (defaults)'][1] // 1000:,} bars of {ASSET} "
          f"candles, one thread, best of {args.repeats} x {args.rounds} rounds")
    print(f"{'shape':<48} {'M param-bars/s':>15} {'vs close kernel':>16}")
    for name, (_, param_bars) in runners.items():
        speed = param_bars / best[name]
        print(f"{name:<48} {speed / 1e6:>15.1f} {speed / reference:>15.2f}x")


if __name__ == "__main__":
    main()
