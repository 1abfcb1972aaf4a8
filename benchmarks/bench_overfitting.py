"""The "is the winner real?" checks at scale: the look-ahead check per built-in
strategy, plateau scores, and the overfitting certificate of a 100,000-set sweep
with blocks=32 (its parts side by side).

Run: ``python benchmarks/bench_overfitting.py [--sets 100000] [--blocks 32]
[--reps 1000] [--repeats 3]``. Figures are best of ``--repeats`` after a warm-up
(compilation excluded), all from this one run.
"""
import argparse
import time

import numpy as np

import btcore.strategies as strategies
from btcore import check_lookahead, run_sweep
from btcore.engine import lookahead
from btcore.overfitting import effective_trials, spa_test


def best_of(fn, repeats):
    fn()
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=100_000)
    parser.add_argument("--blocks", type=int, default=32)
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    print("look-ahead check (compiled indicators loaded; the check itself, uncached):")
    for name in ("mean_reversion", "ma_crossover", "rsi_reversion", "donchian_breakout",
                 "bollinger_reversion"):
        spec = strategies.get(name)
        grid = {p.name: [p.default, 2 * p.default] if p.is_window else [p.default]
                for p in spec.params}
        seconds = best_of(lambda: check_lookahead(spec, grid), args.repeats)
        print(f"  {name:<20} {seconds * 1e3:7.1f} ms")

    lookbacks = list(range(5, 105))  # 100 x 100 x 10 = 100,000 sets
    per_axis = max(1, args.sets // 10_000)
    grid = {"lookback_period": lookbacks,
            "entry_threshold": list(np.round(np.linspace(0.5, 3.0, 100), 4)),
            "exit_threshold": list(np.round(np.linspace(0.0, 0.9, per_axis), 4)),
            "stop_loss_z": [4.0]}
    started = time.perf_counter()
    res = run_sweep(grid, data=None, assets=["KO"], start="2005-01-01",
                    blocks=args.blocks, executor="threads", progress=False)
    print(f"\nsweep: {len(res.table):,} sets, blocks={args.blocks}, "
          f"{time.perf_counter() - started:.1f} s")
    sums = res._block_sums[0]
    block_mean = sums[..., 0] / res._block_counts[0]
    timings = {
        "effective_trials": best_of(lambda: effective_trials(block_mean), args.repeats),
        "spa_test (one benchmark)": best_of(
            lambda: spa_test(block_mean, reps=args.reps), args.repeats),
        "plateau (radius 1)": best_of(lambda: res.plateau(), args.repeats),
        "certificate (whole)": best_of(lambda: res.certificate(reps=args.reps),
                                       args.repeats),
    }
    for name, seconds in timings.items():
        print(f"  {name:<26} {seconds:6.2f} s")
    print(res.certificate(reps=args.reps))
    print(f"\nlook-ahead checks run in this process: {lookahead.checks_run}")


if __name__ == "__main__":
    main()
