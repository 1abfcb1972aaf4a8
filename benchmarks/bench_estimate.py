"""How close ``btcore.estimate()`` comes to the measured wall time of the sweep.

For a few medium sweeps on the bundled 20-stock sample (``data=None``) and each
of ``serial`` (1 CPU), ``threads`` (2 CPUs) and ``joblib`` (2 CPUs):

1. ``estimate(grid, ..., cpus=(1, 2), executor=E)``: the predicted wall time
   (a short calibration of the kernel plus the executor's measured overheads);
2. ``run_sweep(grid, ..., executor=E, progress=False)``: the measured wall time
   of the whole call, best of ``--repeats`` (the executor is created from its
   name, so joblib's pool start-up and close are inside the wall, as in the
   model's start-up term).

It prints one table, ``ratio = measured / predicted`` (the goal: within 2x,
0.5 <= ratio <= 2), and beside it where the measured time went (the run's own
stats: ``calibrate``, ``share`` and ``compute`` seconds; ``driver`` is the rest
of the call: validation, sorting the sets, building the result table, and
starting/closing the executor). Nothing is asserted: it is a measurement.
The load average at start and end says how busy the (shared) machine was.

    python benchmarks/bench_estimate.py               # ~2 minutes on 2 cores
    python benchmarks/bench_estimate.py --quick       # smaller sweeps, ~30 s
    python benchmarks/bench_estimate.py --markdown    # the table as Markdown
"""
from __future__ import annotations

import argparse
import os
import time

#: the mean_reversion parameter space the random grids are drawn from
SPACE = {"lookback_period": (10, 250), "entry_threshold": (0.5, 3.0),
         "exit_threshold": (0.0, 1.0), "stop_loss_z": (2.0, 5.0)}
#: the 1,000-set grid of the seed study (10 lookbacks x 10 entries x 10 exits)
GRID_1000 = {"lookback_period": list(range(20, 220, 20)),
             "entry_threshold": [round(1.0 + 0.2 * i, 4) for i in range(10)],
             "exit_threshold": [round(0.1 * i, 4) for i in range(1, 11)],
             "stop_loss_z": [3.0]}
#: ma_crossover, fast x slow windows
MA_GRID = {"fast_window": list(range(5, 105, 5)), "slow_window": list(range(20, 420, 20))}
EXECUTORS = (("serial", 1), ("threads", 2), ("joblib", 2))


def sweeps(quick: bool) -> list[dict]:
    """The sweeps measured: name, grid and run_sweep keywords."""
    from btcore import Grid
    small, large = (500, 2_000) if quick else (2_000, 10_000)
    return [
        {"name": f"mr random {small:,}, 2018-2022, 20 assets",
         "grid": Grid.random(SPACE, small, seed=1), "strategy": "mean_reversion",
         "kwargs": {"start": "2018-01-01"}},
        {"name": f"mr random {large:,}, 1990-2022, 20 assets",
         "grid": Grid.random(SPACE, large, seed=2), "strategy": "mean_reversion",
         "kwargs": {}},
        {"name": "ma 20x20 dict, 2010-2022, 20 assets", "grid": MA_GRID,
         "strategy": "ma_crossover", "kwargs": {"start": "2010-01-01"}},
        {"name": "mr 1,000 grid, AAPL 1990-2022", "grid": GRID_1000,
         "strategy": "mean_reversion", "kwargs": {"assets": "AAPL"}},
        {"name": "mr 1,000 grid, AAPL 2010-2022", "grid": GRID_1000,
         "strategy": "mean_reversion", "kwargs": {"assets": "AAPL", "start": "2010-01-01"}},
    ]


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def measure(sweep: dict, executor: str, repeats: int) -> dict:
    """Best wall time of ``repeats`` run_sweep calls, with that run's stats."""
    from btcore import run_sweep
    best = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run_sweep(sweep["grid"], sweep["strategy"], executor=executor, progress=False,
                           **sweep["kwargs"])
        wall = time.perf_counter() - started
        if best is None or wall < best["wall"]:
            best = {"wall": wall, "stats": dict(result.stats), "rows": len(result.table)}
    return best


def run(args) -> list[dict]:
    import pandas as pd

    from btcore import estimate, run_sweep
    rows = []
    for sweep in sweeps(args.quick):
        # compile or load the strategy's kernel before anything is timed
        run_sweep({name: [values[0]] for name, values in
                   (MA_GRID if sweep["strategy"] == "ma_crossover" else GRID_1000).items()},
                  sweep["strategy"], progress=False, **sweep["kwargs"])
        for executor, cpus in EXECUTORS:
            started = time.perf_counter()
            table = estimate(sweep["grid"], sweep["strategy"], cpus=(1, 2), executor=executor,
                             **sweep["kwargs"])
            estimate_s = time.perf_counter() - started
            predicted = table.loc[table["cpus"] == cpus].iloc[0] if executor != "serial" \
                else table.iloc[0]
            measured = measure(sweep, executor, args.repeats)
            stats = measured["stats"]
            driver = (measured["wall"] - stats["calibrate_s"] - stats["share_s"]
                      - stats["compute_s"])
            rows.append({
                "sweep": sweep["name"], "executor": executor, "cpus": int(predicted["cpus"]),
                "backtests": stats["backtests"],
                "predicted_s": float(predicted["predicted_s"]),
                "measured_s": measured["wall"],
                "ratio": measured["wall"] / float(predicted["predicted_s"]),
                "calib_M/s": float(predicted["kernel_param_bars_per_s"]) / 1e6,
                "run_M/s/cpu": stats["param_bars_per_s"] / cpus / 1e6,
                "calibrate_s": stats["calibrate_s"], "share_s": stats["share_s"],
                "compute_s": stats["compute_s"], "driver_s": driver,
                "tasks": stats["batches"], "estimate_s": estimate_s, "load": load(),
            })
            print(f"  {sweep['name']} / {executor}: predicted {rows[-1]['predicted_s']:.3f} s, "
                  f"measured {rows[-1]['measured_s']:.3f} s (load {rows[-1]['load']})",
                  flush=True)
    return rows


def markdown(frame) -> str:
    """``frame`` as a Markdown table (floats to 3 significant digits)."""
    def cell(value):
        return f"{value:.3g}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="run_sweep calls per cell "
                        "(best of)")
    parser.add_argument("--quick", action="store_true", help="smaller random grids")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)

    import btcore
    from btcore.executors import cpu_count
    start_load = load()
    print(f"btcore {btcore.__version__} from {os.path.dirname(btcore.__file__)}, "
          f"{cpu_count()} CPUs; load average (1/5/15 min) at start: {start_load}", flush=True)
    rows = run(args)
    frame = pd.DataFrame(rows)
    within = ((frame["ratio"] >= 0.5) & (frame["ratio"] <= 2.0))
    columns = ["sweep", "executor", "cpus", "backtests", "predicted_s", "measured_s", "ratio",
               "calib_M/s", "run_M/s/cpu", "calibrate_s", "share_s", "compute_s", "driver_s",
               "tasks"]
    print()
    if args.markdown:
        print(markdown(frame[columns]))
    else:
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nwithin 2x (0.5 <= measured/predicted <= 2): {int(within.sum())} of {len(frame)}; "
          f"ratio min {frame['ratio'].min():.2f}, max {frame['ratio'].max():.2f}")
    print(f"estimate() itself took {frame['estimate_s'].min():.2f}-"
          f"{frame['estimate_s'].max():.2f} s per call")
    print(f"load average (1/5/15 min) at start: {start_load}, at end: {load()}")


if __name__ == "__main__":
    main()
