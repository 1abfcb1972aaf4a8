"""Command line: ``btcore sweep`` runs a parameter sweep and prints the best rows.

With no arguments it runs the seed article's 135-combination mean-reversion
grid on the bundled 20-stock sample (2,700 backtests). ``btcore strategies``
lists the registered strategies with their parameters and options.

Errors in the arguments or inputs print one ``btcore: error: ...`` line (any
detail follows on indented lines) and exit with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}

#: exit status of a usage or input error (argparse's convention)
USAGE_ERROR = 2


class CLIError(Exception):
    """A problem with the command line or its inputs: printed, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage and exits; we raise instead
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _number(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _positive_int(text: str) -> int:
    value = _number(int)(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="btcore", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sweep = commands.add_parser("sweep", help="run a parameter sweep, print the top rows")
    sweep.add_argument("--grid", default=None,
                       help="JSON file, or inline JSON: an object of name -> list of values "
                            "(Cartesian product) or a list of objects (default: the seed's "
                            "135-combination grid)")
    sweep.add_argument("--strategy", default="mean_reversion",
                       help="a registered name (see `btcore strategies`) or "
                            "package.module:SPEC; the current directory is importable")
    sweep.add_argument("--data", default=None,
                       help="CSV/Parquet of prices (default: bundled S&P 500 sample)")
    sweep.add_argument("--assets", default=None, help="comma-separated subset of assets")
    sweep.add_argument("--executor", default="serial",
                       help="serial, threads, joblib, ray or dask")
    sweep.add_argument("--start", default=None, help="first traded date (inclusive)")
    sweep.add_argument("--end", default=None, help="last traded date (inclusive)")
    sweep.add_argument("--cost-bps", type=_number(float), default=5.0,
                       help="cost per trade in basis points of traded value (default 5)")
    sweep.add_argument("--top", type=_positive_int, default=10, help="rows to print")
    sweep.add_argument("--out", default=None, help="save the full table (.parquet or .csv)")
    sweep.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                       help="a strategy option, e.g. --option allow_short=false or "
                            "--option average=ema (repeatable; see `btcore strategies`)")
    sweep.add_argument("--no-progress", action="store_true")
    listing = commands.add_parser("strategies",
                                  help="list strategies with their parameters and options")
    listing.add_argument("names", nargs="*",
                         help="strategies to describe: names or package.module:SPEC "
                              "(default: every registered one)")
    return parser


# ------------------------------------------------------------------- inputs
def _load_grid(text: str | None):
    """The grid of ``--grid``: inline JSON (starts with ``{`` or ``[``) or a JSON file."""
    if text is None:
        return dict(SEED_GRID)
    if text.lstrip().startswith(("{", "[")):
        source, where = text, "--grid"
    else:
        try:
            with open(text, encoding="utf-8") as handle:
                source = handle.read()
        except FileNotFoundError:
            raise CLIError(f"--grid: no such file {text!r} (give a JSON file, or inline JSON "
                           "such as '{\"lookback_period\": [20, 40]}')") from None
        except (OSError, UnicodeDecodeError) as err:
            raise CLIError(f"--grid: cannot read {text!r}: {err}") from None
        where = f"--grid file {text!r}"
    try:
        grid = json.loads(source)
    except json.JSONDecodeError as err:
        raise CLIError(f"{where} is not valid JSON: {err.msg} at line {err.lineno} column "
                       f"{err.colno}") from None
    if not isinstance(grid, (dict, list)):
        raise CLIError(f"{where} must be a JSON object of name -> list of values, or a list "
                       f"of objects; got a {type(grid).__name__}")
    return grid


def _make_importable(strategy: str) -> None:
    """For ``package.module:SPEC``: put the current directory on ``sys.path`` (as
    ``python -m`` does) when the module cannot be found otherwise."""
    if ":" not in strategy:
        return
    module_name = strategy.partition(":")[0]
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):  # a parent package is missing, or an empty name
        found = False
    cwd = os.getcwd()
    if not found and cwd not in sys.path:
        sys.path.insert(0, cwd)
        importlib.invalidate_caches()


def _resolve_strategy(name: str):
    """The StrategySpec of ``--strategy`` (a plug-in that cannot load, or is not a
    spec, is a ValueError from the registry: an input error, not a traceback)."""
    import btcore.strategies as strategies
    _make_importable(name)
    return strategies.get(name)


def _check_out(path: str | None) -> None:
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"--out: the folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"--out: {path!r} is a folder; give a .parquet or .csv file name")


# ----------------------------------------------------------------- commands
def _strategies(names: list[str]) -> int:
    import btcore.strategies as strategies
    status = 0
    for name in names or strategies.available():
        try:
            spec = _resolve_strategy(name)
        except (CLIError, ValueError, TypeError) as err:  # one broken plug-in hides no other
            _print_error(err)
            status = USAGE_ERROR
            continue
        title = name if name == spec.name else f"{name} ({spec.name})"
        print(title + (f": {spec.description}" if spec.description else ""))
        print("  parameters:")
        for param in spec.params:
            text = f"    {param.name}: {param.describe_range()}, default {param.default:g}"
            if param.is_window:
                text += ", a window (bars)"
            print(text + (f" - {param.description}" if param.description else ""))
        print("  options:" + ("" if spec.options else " none"))
        for line in spec.describe().splitlines():
            if line.startswith("option "):
                print("    " + line[len("option "):])
    return status


def _parse_options(items: list, spec) -> dict:
    """``--option NAME=VALUE`` pairs typed by the strategy's declared defaults."""
    options = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name:
            raise CLIError(f"--option takes NAME=VALUE, got {item!r}")
        if name not in spec.options:
            valid = ", ".join(spec.options) or "none"
            raise CLIError(f"--option {name}: strategy {spec.name!r} has no such option; "
                           f"valid options: {valid}")
        default = spec.options[name]
        if isinstance(default, bool):
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise CLIError(f"--option {name}: give true or false, got {text!r}")
            options[name] = lowered in ("true", "1", "yes")
        elif isinstance(default, tuple):  # named choices: validated by the spec
            options[name] = text
        else:
            try:
                options[name] = int(text) if isinstance(default, int) else float(text)
            except ValueError:
                raise CLIError(f"--option {name}: give a number, got {text!r}") from None
    return options


def _sweep(args) -> int:
    grid = _load_grid(args.grid)
    _check_out(args.out)
    spec = _resolve_strategy(args.strategy)
    assets = [a.strip() for a in args.assets.split(",") if a.strip()] if args.assets else None
    from btcore import run_sweep
    import pandas as pd
    started = time.perf_counter()
    options = _parse_options(args.option, spec)
    result = run_sweep(grid, spec, args.data, executor=args.executor,
                       start=args.start, end=args.end, cost_bps=args.cost_bps,
                       assets=assets, progress=False if args.no_progress else None, **options)
    elapsed = time.perf_counter() - started
    stats = result.stats
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(result.table.head(args.top).to_string(float_format="{:.4f}".format))
    print(f"\n{stats['backtests']:,} backtests ({len(result.table):,} rows) in {elapsed:.2f} s "
          f"total, {stats['compute_s']:.2f} s computing on {stats['executor']} "
          f"x{stats['workers']}: {stats['backtests_per_s']:,.0f} backtests/s, "
          f"{stats['param_bars_per_s'] / 1e6:,.0f} M param-bars/s")
    if args.out:
        try:
            if args.out.endswith(".csv"):
                result.table.to_csv(args.out, index=False)
            else:
                result.to_parquet(args.out)
        except OSError as err:
            raise CLIError(f"--out: cannot write {args.out!r}: {err}") from None
        print(f"saved {len(result.table):,} rows to {args.out}")
    return 0


def _print_error(error) -> None:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    print(f"btcore: error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status: 0 on success, 2 on a usage or input error."""
    try:
        args = _parser().parse_args(argv)
        if args.command == "strategies":
            return _strategies(args.names)
        return _sweep(args)
    except (CLIError, ValueError, TypeError, ImportError, ConnectionError) as err:
        # ValueError / TypeError: bad inputs, refused before any work by the library;
        # ImportError: a strategy module, or an executor's optional backend, is missing
        _print_error(err)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("btcore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
