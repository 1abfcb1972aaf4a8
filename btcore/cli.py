"""Command line: ``btcore sweep`` runs a parameter sweep and prints the best rows.

With no arguments it runs the seed article's 135-combination mean-reversion
grid on the bundled 20-stock sample (2,700 backtests).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="btcore", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("sweep", help="run a parameter sweep, print the top rows")
    sweep.add_argument("--grid", default=None,
                       help="JSON file or inline JSON of name -> list (default: the seed's "
                            "135-combination grid)")
    sweep.add_argument("--strategy", default="mean_reversion")
    sweep.add_argument("--data", default=None,
                       help="CSV/Parquet of prices (default: bundled S&P 500 sample)")
    sweep.add_argument("--assets", default=None, help="comma-separated subset of assets")
    sweep.add_argument("--executor", default="serial",
                       help="serial, threads, joblib, ray or dask")
    sweep.add_argument("--start", default=None)
    sweep.add_argument("--end", default=None)
    sweep.add_argument("--cost-bps", type=float, default=5.0)
    sweep.add_argument("--top", type=int, default=10, help="rows to print")
    sweep.add_argument("--out", default=None, help="save the full table (.parquet or .csv)")
    sweep.add_argument("--no-progress", action="store_true")
    commands.add_parser("strategies", help="list registered strategies and their parameters")
    return parser


def _load_grid(text: str | None) -> dict:
    if text is None:
        return dict(SEED_GRID)
    if text.lstrip().startswith("{"):
        return json.loads(text)
    with open(text, encoding="utf-8") as handle:
        return json.load(handle)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "strategies":
        import btcore.strategies as strategies
        for name in strategies.available():
            print(f"{name}\n  " + strategies.get(name).describe().replace("\n", "\n  "))
        return 0
    from btcore import run_sweep
    import pandas as pd
    grid = _load_grid(args.grid)
    assets = args.assets.split(",") if args.assets else None
    started = time.perf_counter()
    try:
        result = run_sweep(grid, args.strategy, args.data, executor=args.executor,
                           start=args.start, end=args.end, cost_bps=args.cost_bps,
                           assets=assets, progress=False if args.no_progress else None)
    except (ValueError, TypeError, ImportError) as exc:
        print(f"btcore: error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    stats = result.stats
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(result.table.head(args.top).to_string(float_format="{:.4f}".format))
    print(f"\n{stats['backtests']:,} backtests ({len(result.table):,} rows) in {elapsed:.2f} s "
          f"total, {stats['compute_s']:.2f} s computing on {stats['executor']} "
          f"x{stats['workers']}: {stats['backtests_per_s']:,.0f} backtests/s, "
          f"{stats['param_bars_per_s'] / 1e6:,.0f} M param-bars/s")
    if args.out:
        if args.out.endswith(".csv"):
            result.table.to_csv(args.out, index=False)
        else:
            result.to_parquet(args.out)
        print(f"saved {len(result.table):,} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
