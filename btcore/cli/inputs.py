"""Command line: sweeps, walk-forward, Monte Carlo, portfolios, estimates, a benchmark.

``btcore sweep`` with no arguments runs the seed article's 135-combination
mean-reversion grid on the bundled 20-stock sample (2,700 backtests) and prints
the best rows. ``btcore walk-forward``, ``btcore monte-carlo``, ``btcore
portfolio`` and ``btcore estimate`` run the other workflows of the Python API on
the same inputs; ``btcore strategies`` lists the registered strategies with their
parameters and options; ``btcore bench`` measures serial and threads on the
sample. ``python -m btcore`` is the same program. See ``docs/cli.md``.

Errors in the arguments or inputs print one ``btcore: error: ...`` line (any
detail follows on indented lines) and exit with status 2, without a traceback,
before any work starts.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import json
import math
import os
import re
import sys
import time

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}

#: exit status of a usage or input error (argparse's convention)
USAGE_ERROR = 2
#: the accepted forms of ``--grid``, named by every error about it
GRID_FORMS = ("give name=v1,v2,... or name=start:stop:step tokens (e.g. "
              "lookback_period=20:100:20 entry_threshold=1.5,2.0), one JSON object or list "
              "of objects, or a .json file")
#: output files of ``--out`` (a directory is the other form, for ``sweep``)
TABLE_FORMATS = (".parquet", ".csv")
#: figure files of ``--plot``
PLOT_FORMATS = (".png", ".pdf", ".svg")
#: most values one ``name=start:stop:step`` token may expand to
MAX_RANGE_VALUES = 1_000_000
#: executors that join a cluster with ``--address``
CLUSTER_EXECUTORS = ("ray", "dask")


class CLIError(Exception):
    """A problem with the command line or its inputs: printed, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage and exits; we raise instead
        if message.endswith("required: command"):
            message = ("missing command: give one of sweep, walk-forward, monte-carlo, "
                       "portfolio, estimate, strategies, bench")
        raise CLIError(f"{message} (see `{self.prog} --help`)")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples of each command's epilog as written."""


# ------------------------------------------------------------- flag types
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


def _metric(text: str) -> str:
    from btcore.metrics import METRIC_NAMES
    if text not in METRIC_NAMES:
        raise argparse.ArgumentTypeError(f"unknown metric {text!r}; choose from "
                                         f"{', '.join(METRIC_NAMES)}")
    return text


def _int_list(text: str) -> list[int]:
    values = []
    for part in text.split(","):
        try:
            value = int(part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated whole numbers such as 1,2,16,320, got {text!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected CPU counts >= 1, got {text!r}")
        values.append(value)
    return values


# ----------------------------------------------------------------- parser
def _add_inputs(parser, *, grid: bool = True, grid_help: str | None = None) -> None:
    """--strategy, --grid, --data, --assets, --start, --end, --capital, --cost-bps, --option."""
    parser.add_argument("--strategy", default="mean_reversion", metavar="NAME",
                        help="a registered name (see `btcore strategies`) or "
                             "package.module:SPEC; the current directory is importable "
                             "(default: mean_reversion)")
    if grid:
        parser.add_argument("--grid", nargs="+", action="extend", default=None,
                            metavar="TOKEN",
                            help=grid_help or
                            "parameter sets: name=v1,v2,v3 and name=start:stop:step tokens "
                            "(stop included when the steps land on it; a Cartesian "
                            "product), or one JSON string (an object of name -> list, or "
                            "a list of objects), or a .json file (default: the seed's "
                            "135-set grid for mean_reversion, a strategy's defaults "
                            "otherwise)")
    parser.add_argument("--data", default=None, metavar="sample|FILE",
                        help="prices: sample (the bundled 20-stock S&P 500 sample, the "
                             "default), a .csv or a .parquet file")
    parser.add_argument("--assets", default=None, metavar="A,B,...",
                        help="comma-separated subset of the data's assets (default: all)")
    parser.add_argument("--start", default=None, metavar="DATE",
                        help="first traded date, inclusive (earlier bars warm up indicators)")
    parser.add_argument("--end", default=None, metavar="DATE",
                        help="last traded date, inclusive")
    parser.add_argument("--capital", type=_number(float), default=1_000_000.0,
                        help="initial capital (default 1000000)")
    parser.add_argument("--cost-bps", type=_number(float), default=5.0,
                        help="cost per trade in basis points of traded value (default 5)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a strategy option, e.g. --option allow_short=false or "
                             "--option average=ema (repeatable; see `btcore strategies`)")


def _add_execution(parser, *, auto: bool = False) -> None:
    """--executor, --address, --no-progress."""
    names = "serial, threads, joblib, ray, dask" + (" or auto" if auto else "")
    parser.add_argument("--executor", default="serial", metavar="NAME",
                        help=f"{names}, or a registered plug-in (default: serial)")
    parser.add_argument("--address", default=None, metavar="ADDRESS",
                        help="join a running cluster: a Ray address (auto, host:port, "
                             "ray://host:port) with --executor ray, or a Dask scheduler "
                             "(tcp://host:port) with --executor dask")
    parser.add_argument("--no-progress", action="store_true",
                        help="never show a progress bar (default: shown in a terminal when "
                             "the run takes more than 2 s)")


def _add_outputs(parser, *, what: str, top: bool = True, directory: bool = False,
                 plot: str | None = None) -> None:
    """--top, --out, --plot."""
    if top:
        parser.add_argument("--top", type=_positive_int, default=10,
                            help="rows to print (default 10)")
    forms = "a .parquet or .csv file"
    if directory:
        forms = ("a directory (dir/, or a name without extension) to stream resumable "
                 "results into, or a .parquet or .csv file")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help=f"save {what}: {forms}")
    if directory:
        parser.add_argument("--overwrite", action="store_true",
                            help="with a directory --out: discard the results already there "
                                 "and start again (default: resume)")
    if plot:
        parser.add_argument("--plot", default=None, metavar="FILE.png",
                            help=f"save a figure ({plot}) to a .png, .pdf or .svg file "
                                 "(needs matplotlib: pip install 'btcore[plot]')")


def _defaults(given_only: bool):
    """A flag's default, or none (``argparse.SUPPRESS``: the flag is absent from the
    namespace unless given; estimate passes on only what was given)."""
    return (lambda value: argparse.SUPPRESS) if given_only else (lambda value: value)


def _add_fold_flags(parser, given_only: bool = False) -> None:
    """walk_forward's folds: --folds, --anchored, --train-bars, --test-bars, --gap."""
    default = _defaults(given_only)
    parser.add_argument("--folds", type=_positive_int, default=default(10), metavar="N",
                        help="number of folds, >= 2 (walk_forward's n_splits; default 10)")
    parser.add_argument("--anchored", action="store_true", default=default(False),
                        help="expanding in-sample windows from the first traded bar "
                             "(default: rolling windows of --train-bars)")
    parser.add_argument("--train-bars", type=_positive_int, default=default(None),
                        metavar="N",
                        help="in-sample bars of each rolling fold (default: the first "
                             "fold's)")
    parser.add_argument("--test-bars", type=_positive_int, default=default(None),
                        metavar="N", help="out-of-sample bars of each fold (default: "
                                          "traded bars // (folds + 1))")
    parser.add_argument("--gap", type=_number(int), default=default(0), metavar="N",
                        help="bars left out between each in-sample and out-of-sample "
                             "window (default 0)")


def _add_path_flags(parser, given_only: bool = False) -> None:
    """monte_carlo's paths: --paths, --method, --block-size, --seed."""
    default = _defaults(given_only)
    parser.add_argument("--paths", type=_positive_int, default=default(1000), metavar="N",
                        help="number of simulated paths (default 1000)")
    parser.add_argument("--method", choices=("bootstrap", "block", "gbm"),
                        default=default("bootstrap"),
                        help="iid bootstrap of log returns, stationary block bootstrap, or "
                             "GBM fitted to them (default bootstrap)")
    parser.add_argument("--block-size", type=_number(float), default=default(20.0),
                        metavar="BARS", help="mean block length of --method block "
                                             "(default 20)")
    parser.add_argument("--seed", type=_number(int), default=default(0),
                        help="random seed, >= 0 (default 0); path k is reproducible alone")


def _add_construction_flags(parser, given_only: bool = False) -> None:
    """run_portfolio_sweep's construction: --rebalance-every, --max-gross-exposure,
    --max-position-weight, --portfolio-stop-drawdown."""
    default = _defaults(given_only)
    parser.add_argument("--rebalance-every", type=_positive_int, default=default(None),
                        metavar="BARS", help="reset every sleeve's budget to equity / n "
                                             "every this many bars (default: never)")
    parser.add_argument("--max-gross-exposure", type=_number(float), default=default(None),
                        metavar="X", help="cap on sum |position value| / equity at each "
                                          "entry")
    parser.add_argument("--max-position-weight", type=_number(float), default=default(None),
                        metavar="X", help="cap on one entry's |position value| / equity")
    parser.add_argument("--portfolio-stop-drawdown", type=_number(float),
                        default=default(None), metavar="D",
                        help="close everything, and stay flat, once equity / peak - 1 <= -D "
                             "(0 < D < 1)")


def _parser() -> argparse.ArgumentParser:
    from btcore import __version__
    parser = _Parser(prog="btcore", description=__doc__.split("\n\n")[0].split("\n")[0],
                     epilog="Run `btcore command --help` for a command's flags; "
                            "docs/cli.md has examples.")
    parser.add_argument("--version", action="version", version=f"btcore {__version__}",
                        help="print btcore's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                     metavar="command",
                                     help="one of these (`btcore command --help` for its "
                                          "flags):")

    def command(name, help, example):
        return commands.add_parser(name, help=help, description=help[0].upper() + help[1:]
                                   + ".", epilog=f"example:\n  {example}\n",
                                   formatter_class=_Formatter)

    sweep = command("sweep", "run a parameter sweep, print the top rows",
                    "btcore sweep --grid lookback_period=20:100:20 entry_threshold=1.5,2.0 "
                    "--start 2015-01-01 --executor threads --out table.parquet")
    _add_inputs(sweep)
    _add_execution(sweep, auto=True)
    _add_outputs(sweep, what="the result table", directory=True,
                 plot="a heatmap of the --sort-by metric, default sharpe_ratio, over the "
                      "first two parameters that vary in the grid")
    sweep.add_argument("--keep", type=_positive_int, default=None, metavar="N",
                       help="keep only the best N rows by --sort-by (run_sweep's keep=)")
    sweep.add_argument("--sort-by", type=_metric, default=None, metavar="METRIC",
                       help="metric to rank rows by (run_sweep's sort_by=; default "
                            "sharpe_ratio)")

    wf = command("walk-forward", "walk-forward optimisation: best in-sample set per fold, "
                                 "run out of sample",
                 "btcore walk-forward --grid lookback_period=20,40,60 entry_threshold=1.5,2.0 "
                 "--assets KO,PEP --folds 5 --anchored --objective calmar_ratio")
    _add_inputs(wf)
    _add_fold_flags(wf)
    wf.add_argument("--objective", type=_metric, default="sharpe_ratio", metavar="METRIC",
                    help="metric that picks each fold's set (annual_volatility is "
                         "minimised; default sharpe_ratio)")
    wf.add_argument("--select", choices=("per_asset", "universe"), default="per_asset",
                    help="choose a set per asset, or the set with the best mean objective "
                         "over the assets (default per_asset)")
    _add_execution(wf, auto=True)
    _add_outputs(wf, what="the fold table", top=False, directory=True,
                 plot="in- vs out-of-sample objective per fold and the stitched "
                      "out-of-sample equity of the first asset")

    mc = command("monte-carlo", "one parameter set on simulated price paths of one asset",
                 "btcore monte-carlo --params lookback_period=40 entry_threshold=2.0 "
                 "--asset KO --paths 1000 --method block --seed 1")
    _add_inputs(mc, grid_help="take the first parameter set of this grid (same forms as "
                              "`btcore sweep --grid`) instead of --params")
    mc.add_argument("--asset", dest="asset", default=None, metavar="NAME",
                    help="the asset whose log returns are resampled (required when the data "
                         "has several; --assets with one name is the same)")
    mc.add_argument("--params", nargs="+", action="extend", default=None,
                    metavar="NAME=VALUE",
                    help="the parameter set, e.g. lookback_period=40 entry_threshold=2.0 "
                         "(parameters left out take their defaults)")
    _add_path_flags(mc)
    _add_execution(mc, auto=True)
    _add_outputs(mc, what="the per-path table", top=False, directory=True,
                 plot="the Sharpe ratio's distribution over the paths and the equity fan")

    pf = command("portfolio", "sweep a grid where every parameter set trades all the assets "
                              "as one account",
                 "btcore portfolio --grid lookback_period=20,40 entry_threshold=1.5,2.0 "
                 "--assets KO,PEP,JNJ --rebalance-every 21")
    _add_inputs(pf, grid_help="parameter sets, in the forms of `btcore sweep --grid`; the "
                              "construction settings (rebalance_every, max_gross_exposure, "
                              "...) may be grid columns too (default: the seed's grid)")
    _add_construction_flags(pf)
    _add_execution(pf, auto=True)
    _add_outputs(pf, what="the result table", directory=True,
                 plot="a heatmap of the Sharpe ratio over the first two parameters that "
                      "vary in the grid")

    est = command("estimate", "predict the wall time and cost of a sweep, walk-forward "
                              "study, Monte Carlo run or portfolio sweep on several CPU counts",
                  "btcore estimate --grid lookback_period=10:200:10 entry_threshold=1:3:0.25 "
                  "--workflow walk-forward --folds 10 --cpus 1,2,16,320 "
                  "--price-per-cpu-hour 0.015")
    _add_inputs(est, grid_help="parameter sets, in the forms of `btcore sweep --grid` "
                               "(monte-carlo: the first set, unless --params)")
    est.add_argument("--workflow", choices=tuple(_WORKFLOWS), default="sweep",
                     help="what to predict: the command of that name (default sweep); its "
                          "flags below apply to it alone")
    est.add_argument("--cpus", type=_int_list, default=[1, 2, 16, 320], metavar="N,N,...",
                     help="CPU counts to predict for (default 1,2,16,320)")
    est.add_argument("--price-per-cpu-hour", type=_number(float), default=0.05,
                     metavar="USD", help="dollars per CPU-hour (default 0.05)")
    est.add_argument("--executor", default=None, metavar="NAME",
                     help="executor to model: serial, threads, joblib, dask or ray (default: "
                          "threads up to this machine's CPUs, a Ray cluster beyond)")
    _add_fold_flags(est.add_argument_group("--workflow walk-forward"), given_only=True)
    paths = est.add_argument_group("--workflow monte-carlo")
    paths.add_argument("--asset", default=argparse.SUPPRESS, metavar="NAME",
                       help="the asset whose log returns are resampled")
    paths.add_argument("--params", nargs="+", action="extend", default=argparse.SUPPRESS,
                       metavar="NAME=VALUE", help="the parameter set (instead of --grid)")
    _add_path_flags(paths, given_only=True)
    _add_construction_flags(est.add_argument_group("--workflow portfolio"), given_only=True)
    _add_outputs(est, what="the estimate table", top=False)

    listing = command("strategies", "list strategies with their parameters and options",
                      "btcore strategies mean_reversion my_package.my_module:SPEC")
    listing.add_argument("names", nargs="*",
                         help="strategies to describe: names or package.module:SPEC "
                              "(default: every registered one)")

    bench = command("bench", "measure backtests/s of serial and threads on the bundled sample",
                    "btcore bench --repeats 5 --start 2010-01-01")
    bench.add_argument("--repeats", type=_positive_int, default=3, metavar="N",
                       help="runs per executor; the best is reported (default 3)")
    bench.add_argument("--executors", default="serial,threads", metavar="A,B,...",
                       help="comma-separated executors to measure (default serial,threads)")
    bench.add_argument("--start", default=None, metavar="DATE",
                       help="first traded date (default: the sample's first bar)")
    bench.add_argument("--end", default=None, metavar="DATE",
                       help="last traded date (default: the sample's last bar)")
    return parser


# ------------------------------------------------------------------- grids
_INT = re.compile(r"[+-]?\d+")


def _scalar(text: str, token: str):
    """A grid value: an int when written as one, else a float (inf allowed)."""
    text = text.strip()
    if _INT.fullmatch(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or math.isnan(value):
        raise CLIError(f"--grid: bad token {token!r}: {text!r} is not a number; {GRID_FORMS}")
    return value


def _range(text: str, token: str) -> list:
    """``start:stop:step``, stop included when the steps land on it (to a relative
    tolerance of 1e-9 of a step); ints when all three are ints."""
    parts = text.split(":")
    if len(parts) != 3:
        raise CLIError(f"--grid: bad token {token!r}: a range is start:stop:step; "
                       f"{GRID_FORMS}")
    start, stop, step = (_scalar(part, token) for part in parts)
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise CLIError(f"--grid: bad token {token!r}: a range needs finite numbers; "
                       f"{GRID_FORMS}")
    if step <= 0 or stop < start:
        raise CLIError(f"--grid: bad token {token!r}: a range needs step > 0 and "
                       f"start <= stop; {GRID_FORMS}")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_RANGE_VALUES:
        raise CLIError(f"--grid: bad token {token!r}: the range has {count:,} values, more "
                       f"than {MAX_RANGE_VALUES:,}; use a larger step")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return list(range(start, start + count * step, step))
    return [float(f"{start + i * step:.12g}") for i in range(count)]


def _grid_tokens(tokens: list[str]) -> dict:
    """``name=v1,v2`` / ``name=start:stop:step`` tokens as a dict of lists."""
    grid = {}
    for token in tokens:
        name, sep, text = token.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise CLIError(f"--grid: bad token {token!r}; {GRID_FORMS}")
        if name in grid:
            raise CLIError(f"--grid: {name!r} is given twice ({token!r}); give each "
                           "parameter once")
        if ":" in text:
            grid[name] = _range(text, token)
        else:
            grid[name] = [_scalar(part, token) for part in text.split(",")]
    return grid


def _load_grid(tokens):
    """The grid of ``--grid``: name=values tokens, inline JSON (starts with ``{`` or
    ``[``) or a JSON file; the seed grid without the flag."""
    if tokens is None:
        return dict(SEED_GRID)
    if isinstance(tokens, str):
        tokens = [tokens]
    if any("=" in t and not t.lstrip().startswith(("{", "[")) and not os.path.isfile(t)
           for t in tokens):
        bad = [t for t in tokens if "=" not in t or t.lstrip().startswith(("{", "["))]
        if bad:
            raise CLIError(f"--grid: bad token {bad[0]!r} among name=values tokens (JSON and "
                           f"files go alone); {GRID_FORMS}")
        return _grid_tokens(tokens)
    if len(tokens) > 1:
        raise CLIError(f"--grid: bad token {tokens[1]!r}: one JSON string or file, or "
                       f"name=values tokens; {GRID_FORMS}")
    text = tokens[0]
    if text.lstrip().startswith(("{", "[")):
        source, where = text, "--grid"
    else:
        try:
            with open(text, encoding="utf-8") as handle:
                source = handle.read()
        except FileNotFoundError:
            if text.lower().endswith(".json") or os.sep in text or "/" in text:
                raise CLIError(f"--grid: no such file {text!r}; {GRID_FORMS}") from None
            raise CLIError(f"--grid: bad token {text!r}: not name=values, JSON, or an "
                           f"existing .json file; {GRID_FORMS}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise CLIError(f"--grid: cannot read {text!r}: {err}") from None
        where = f"--grid file {text!r}"
    try:
        grid = json.loads(source)
    except json.JSONDecodeError as err:
        raise CLIError(f"{where} is not valid JSON: {err.msg} at line {err.lineno} column "
                       f"{err.colno}; {GRID_FORMS}") from None
    if not isinstance(grid, (dict, list)):
        raise CLIError(f"{where} must be a JSON object of name -> list of values, or a list "
                       f"of objects; got a {type(grid).__name__}")
    return grid


def _default_grid(spec) -> dict:
    """The seed grid for mean_reversion, else one set of the strategy's defaults."""
    if spec.name == "mean_reversion":
        return dict(SEED_GRID)
    return {param.name: [param.default] for param in spec.params}


def _varying(grid) -> list[str]:
    """Parameters that take several values in ``grid``, in its order."""
    if isinstance(grid, dict):  # a product: its lists say it, nothing is expanded
        try:
            return [name for name, values in grid.items()
                    if isinstance(values, list) and len(set(values)) > 1]
        except TypeError:  # unhashable values: the grid's own checks name them
            pass
    from btcore.grid import Grid
    import numpy as np
    columns = Grid(grid).columns
    return [name for name, values in columns.items() if len(np.unique(values)) > 1]


def _first_set(grid) -> dict:
    """The first parameter set of a grid (dict of lists, or list of objects)."""
    if isinstance(grid, list):
        if not grid or not isinstance(grid[0], dict):
            raise CLIError("--grid: a list grid must hold objects of name -> value")
        return dict(grid[0])
    first = {}
    for name, values in grid.items():
        if isinstance(values, list):
            if not values:
                raise CLIError(f"--grid: parameter {name!r} has no values")
            values = values[0]
        first[name] = values
    return first


def _params(tokens: list[str]) -> dict:
    """``--params name=value`` tokens, one value each."""
    params = {}
    for token in tokens:
        name, sep, text = token.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text or "," in text or ":" in text:
            raise CLIError(f"--params takes name=value tokens with one value each, e.g. "
                           f"lookback_period=40; got {token!r}")
        if name in params:
            raise CLIError(f"--params: {name!r} is given twice")
        try:
            params[name] = int(text) if _INT.fullmatch(text) else float(text)
        except ValueError:
            raise CLIError(f"--params {name}: give a number, got {text!r}") from None
    return params


# ------------------------------------------------------------ other inputs
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


def _data(text: str | None):
    """``--data``: None for the bundled sample, else an existing file's path."""
    if text is None or text == "sample":
        return None
    if not os.path.exists(text):
        raise CLIError(f"--data: no such file {text!r} (give sample, a .csv or a .parquet "
                       "file)")
    if os.path.isdir(text):
        raise CLIError(f"--data: {text!r} is a folder; give sample, a .csv or a .parquet "
                       "file")
    return text


def _assets(text: str | None):
    return [a.strip() for a in text.split(",") if a.strip()] if text else None


def _check_writable_folder(folder: str, flag: str) -> None:
    if not os.path.isdir(folder):
        raise CLIError(f"{flag}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"{flag}: the folder {folder!r} is not writable")


def _check_file(path: str, flag: str, formats: tuple, forms: str) -> str:
    """The extension of an output file ``path`` that can be written, else a CLIError."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in formats:
        has = f"extension {extension}" if extension else "no extension"
        raise CLIError(f"{flag}: {path!r} has {has}; give {forms}")
    if os.path.isdir(path):
        raise CLIError(f"{flag}: {path!r} is a folder; give {forms}")
    _check_writable_folder(os.path.dirname(os.path.abspath(path)), flag)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise CLIError(f"{flag}: {path!r} exists and is not writable")
    return extension


def _out_kind(path: str | None, directory: bool) -> str | None:
    """``"dir"``, ``".parquet"`` or ``".csv"`` for ``--out path`` (None without it),
    checked to be writable; a CLIError for any other form."""
    if path is None:
        return None
    dir_forms = "a directory (dir/, or a name without extension), " if directory else ""
    forms = f"{dir_forms}a .parquet or a .csv file"
    stripped = path.rstrip("/" + os.sep)
    named_dir = path.endswith(("/", os.sep)) or os.path.isdir(path) or (
        stripped and not os.path.splitext(stripped)[1])
    if not stripped or not named_dir:
        return _check_file(path, "--out", TABLE_FORMATS, forms)
    if not directory:
        raise CLIError(f"--out: {path!r} is a directory; resumable results are for `sweep`, "
                       "`walk-forward`, `monte-carlo` and `portfolio`: give a .parquet or a "
                       ".csv file")
    if os.path.exists(stripped) and not os.path.isdir(stripped):
        raise CLIError(f"--out: {path!r} is an existing file without an extension; give "
                       f"{forms}")
    if os.path.isdir(stripped):
        if not os.access(stripped, os.W_OK | os.X_OK):
            raise CLIError(f"--out: the folder {stripped!r} is not writable")
    else:
        _check_writable_folder(os.path.dirname(os.path.abspath(stripped)), "--out")
    return "dir"


def _check_plot(path: str | None) -> None:
    if path is None:
        return
    _check_file(path, "--plot", PLOT_FORMATS, "a .png, .pdf or .svg file")
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError("--plot needs matplotlib, which is not installed: pip install "
                       "'btcore[plot]'")


def _check_executor(name: str, address, *, auto: bool = False):
    """The executor to pass: a name, or a Ray/Dask executor joining ``address``."""
    import btcore.executors as executors
    names = executors.available()
    if name not in names and not (auto and name == "auto"):
        choices = ", ".join(names + (["auto"] if auto else []))
        raise CLIError(f"--executor: unknown executor {name!r}; choose from {choices}")
    if address is None:
        return name
    if name not in CLUSTER_EXECUTORS:
        raise CLIError(f"--address joins a Ray or Dask cluster: use it with --executor ray "
                       f"or --executor dask, not {name!r}")
    if not address.strip():
        raise CLIError("--address is empty; give a Ray address (auto, host:port) or a Dask "
                       "scheduler (tcp://host:port)")
    return executors.executor_class(name)(address=address)


@contextlib.contextmanager
def _executor(args, *, auto: bool = False):
    """The executor of ``--executor``/``--address``; one built here is closed after."""
    executor = _check_executor(args.executor, args.address, auto=auto)
    try:
        yield executor
    finally:
        if not isinstance(executor, str):
            executor.close()


def _progress(args):
    return False if args.no_progress else None


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


class _Inputs:
    """What every workflow takes, checked before any work: grid, strategy, data,
    assets, window, capital, costs, options, outputs."""

    def __init__(self, args, *, grid: bool = True, directory: bool = False):
        self.tokens = getattr(args, "grid", None) if grid else None
        self.grid = _load_grid(self.tokens) if self.tokens is not None else None
        self.out = getattr(args, "out", None)
        self.out_kind = _out_kind(self.out, directory)
        self.plot = getattr(args, "plot", None)
        _check_plot(self.plot)
        self.data = _data(args.data)
        self.spec = _resolve_strategy(args.strategy)
        if grid and self.tokens is None:
            self.grid = _default_grid(self.spec)
        self.options = _parse_options(args.option, self.spec)
        self.assets = _assets(args.assets)
        self.common = dict(start=args.start, end=args.end, initial_capital=args.capital,
                           cost_bps=args.cost_bps, **self.options)


# ------------------------------------------------------------------ output
def _frame_text(frame, float_format="{:.4f}") -> str:
    import pandas as pd
    with pd.option_context("display.width", 250, "display.max_columns", 60,
                           "display.max_colwidth", 40):
        return frame.to_string(float_format=float_format.format)


def _directory_note(stats: dict, out: str) -> str:
    resumed, computed = stats.get("tasks_resumed", 0), stats.get("tasks_computed", 0)
    return f"results in {out}" + (
        f" (resumed: {resumed:,} of {resumed + computed:,} tasks were already there)"
        if resumed else "")


def _saved(inputs, result, table, whole=None) -> list:
    """Notes on what ``--out`` saved: the resumable directory, or ``table`` as a
    file (``whole``: the result whose own ``to_parquet`` keeps its settings)."""
    if inputs.out_kind == "dir":
        return [_directory_note(result.stats, inputs.out)]
    if inputs.out_kind:
        return [_save_table(table, inputs.out, inputs.out_kind, whole)]
    return []


def _store_keywords(args, inputs) -> dict:
    """``out=`` and ``overwrite=`` of a workflow, for a directory ``--out``."""
    if inputs.out_kind != "dir":
        return {}
    return {"out": inputs.out, "overwrite": bool(args.overwrite)}


def _save_table(table, path: str, kind: str, result=None) -> str:
    try:
        if kind == ".csv":
            table.to_csv(path, index=False)
        elif result is not None and hasattr(result, "to_parquet"):
            result.to_parquet(path)
        else:
            table.to_parquet(path, index=False)
    except OSError as err:
        raise CLIError(f"--out: cannot write {path!r}: {err}") from None
    return f"saved {len(table):,} rows to {path}"


def _save_figure(fig, path: str) -> str:
    import matplotlib.pyplot as plt
    try:
        fig.savefig(path, dpi=110)
    except OSError as err:
        raise CLIError(f"--plot: cannot write {path!r}: {err}") from None
    finally:
        plt.close(fig)
    return f"saved the plot to {path}"


def _use_agg() -> None:
    """Draw off-screen unless the program already chose a backend."""
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib
        matplotlib.use("Agg")


def _heatmap_axes(inputs: _Inputs) -> tuple[str, str] | None:
    """The first two parameters that vary in the grid, checked before any work."""
    if inputs.plot is None:
        return None
    varying = _varying(inputs.grid)
    if len(varying) < 2:
        raise CLIError(f"--plot draws a heatmap over two parameters, but the grid varies "
                       f"{len(varying)} ({', '.join(varying) or 'none'}); give at least two "
                       "parameters several values")
    return varying[0], varying[1]


def _timing_line(stats: dict, rows: int, elapsed: float) -> str:
    return (f"{stats.get('backtests', 0):,} backtests ({rows:,} rows) in {elapsed:.2f} s "
            f"total, {stats.get('compute_s', float('nan')):.2f} s computing on "
            f"{stats.get('executor', '?')} x{stats.get('workers', '?')}: "
            f"{stats.get('backtests_per_s', float('nan')):,.0f} backtests/s, "
            f"{stats.get('param_bars_per_s', float('nan')) / 1e6:,.0f} M param-bars/s")


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


def _sweep_keywords(args, inputs: _Inputs, run_sweep) -> dict:
    """``out=``, ``keep=``, ``sort_by=``, ``overwrite=`` for run_sweep, when given;
    a CLIError when this run_sweep does not take one of them."""
    extra = {}
    if inputs.out_kind == "dir":
        extra["out"] = inputs.out
    if args.keep is not None:
        extra["keep"] = args.keep
    if args.sort_by is not None:
        extra["sort_by"] = args.sort_by
    if args.overwrite and inputs.out_kind == "dir":
        extra["overwrite"] = True
    accepted = inspect.signature(run_sweep).parameters
    flags = {"out": "--out DIR", "keep": "--keep", "sort_by": "--sort-by",
             "overwrite": "--overwrite"}
    missing = [flags[name] for name in extra if name not in accepted]
    if missing:
        raise CLIError(f"{', '.join(missing)}: this version of btcore's run_sweep does not "
                       f"take {', '.join(n + '=' for n in extra if n not in accepted)} yet")
    return extra


#: run_sweep's streaming keywords in its messages -> the flags that set them
_FLAG_WORDS = ((re.compile(r"\boverwrite=True\b"), "--overwrite"),
               (re.compile(r"\bout=(?=['\"])"), "--out "),
               (re.compile(r"\bout= "), "--out "),
               (re.compile(r"\bkeep=(?=\d)"), "--keep "),
               (re.compile(r"\bsort_by=(?=['\"])"), "--sort-by "),
               (re.compile(r"\bpick one with asset=,"), "pick one with --asset NAME,"),
               (re.compile(r"\bn_splits\b"), "--folds"), (re.compile(r"\bn_paths\b"), "--paths"),
               (re.compile(r"^(gap|seed)\b"), r"--\1"),
               *((re.compile(rf"\b{name}\b"), "--" + name.replace("_", "-")) for name in (
                   "train_bars", "test_bars", "block_size", "rebalance_every",
                   "max_gross_exposure", "max_position_weight", "portfolio_stop_drawdown")))


def _as_flags(message: str) -> str:
    for pattern, flag in _FLAG_WORDS:
        message = pattern.sub(flag, message)
    return message


def _sweep(args) -> int:
    import btcore
    inputs = _Inputs(args, directory=True)
    axes = _heatmap_axes(inputs)
    extra = _sweep_keywords(args, inputs, btcore.run_sweep)
    started = time.perf_counter()
    try:
        with _executor(args, auto=True) as executor:
            result = btcore.run_sweep(inputs.grid, inputs.spec, inputs.data,
                                      executor=executor, assets=inputs.assets,
                                      progress=_progress(args), **inputs.common, **extra)
    except (ValueError, TypeError) as err:  # name the flags, not run_sweep's keywords
        raise CLIError(_as_flags(str(err))) from None
    elapsed = time.perf_counter() - started
    # files first: output cut short by a closed pipe loses none of them
    notes = _saved(inputs, result, result.table, result)
    if axes:
        _use_agg()
        fig = result.plot_heatmap(*axes, metric=args.sort_by or "sharpe_ratio")
        notes.append(_save_figure(fig, inputs.plot))
    print(_frame_text(result.table.head(args.top)))
    print("\n" + _timing_line(result.stats, len(result.table), elapsed))
    for note in notes:
        print(note)
    return 0


_FOLD_COLUMNS = ("fold", "asset", "is_start", "is_end", "oos_start", "oos_end")


def _walk_forward(args) -> int:
    import btcore
    inputs = _Inputs(args, directory=True)
    started = time.perf_counter()
    try:
        with _executor(args, auto=True) as executor:
            result = btcore.walk_forward(
                inputs.grid, inputs.spec, inputs.data, n_splits=args.folds,
                train_bars=args.train_bars, test_bars=args.test_bars, gap=args.gap,
                anchored=args.anchored, objective=args.objective, select=args.select,
                executor=executor, assets=inputs.assets, progress=_progress(args),
                **inputs.common, **_store_keywords(args, inputs))
    except (ValueError, TypeError) as err:  # name the flags, not the keywords
        raise CLIError(_as_flags(str(err))) from None
    elapsed = time.perf_counter() - started
    notes = _saved(inputs, result, result.folds)
    if inputs.plot:
        from btcore.plots import walk_forward_figure
        _use_agg()
        asset = result.settings["assets"][0]
        fig = walk_forward_figure(result, asset=asset, metric=args.objective)
        notes.append(_save_figure(fig, inputs.plot) + f" (asset {asset})")
    folds = result.folds
    params = [p.name for p in inputs.spec.params]
    objective = args.objective
    shown = [c for c in (*_FOLD_COLUMNS, *params, f"is_{objective}", f"oos_{objective}",
                         "oos_total_return", "oos_max_drawdown", "efficiency")
             if c in folds.columns]
    table = folds[list(dict.fromkeys(shown))]
    settings = result.settings
    print(f"{settings['n_splits']} {'anchored' if settings['anchored'] else 'rolling'} folds "
          f"of {settings['test_bars']} out-of-sample bars, chosen by {objective} "
          f"({settings['select']}):")
    print(_frame_text(table.set_index("fold")))
    oos = result.oos_metrics.copy()
    oos["efficiency"] = result.efficiency
    oos["changes"] = result.stability["changes"]
    print("\nout-of-sample (stitched folds):")
    print(_frame_text(oos))
    stats = result.stats
    print(f"\n{stats['folds']} folds, {stats['backtests']:,} in-sample backtests in "
          f"{elapsed:.2f} s total on {stats['executor']} x{stats['workers']}")
    for note in notes:
        print(note)
    return 0


def _monte_carlo(args) -> int:
    import btcore
    if args.params is not None and args.grid is not None:
        raise CLIError("give the parameter set with --params or --grid, not both")
    inputs = _Inputs(args, directory=True)
    params = (_params(args.params) if args.params is not None else
              _first_set(inputs.grid) if args.grid is not None else {})
    asset = args.asset
    if inputs.assets is not None:
        if asset is not None or len(inputs.assets) != 1:
            raise CLIError("monte-carlo resamples one asset: give --asset NAME (or --assets "
                           "with one name)")
        asset = inputs.assets[0]
    from btcore.data import as_market_data
    inputs.data = as_market_data(inputs.data)  # loaded once, to name a missing --asset
    if asset is None and inputs.data.n_assets > 1:
        symbols = list(inputs.data.symbols)
        shown = ", ".join(symbols[:12]) + (", ..." if len(symbols) > 12 else "")
        raise CLIError(f"monte-carlo resamples one asset and the data has {len(symbols)}: "
                       f"give --asset NAME, one of {shown}")
    started = time.perf_counter()
    try:
        with _executor(args, auto=True) as executor:
            result = btcore.monte_carlo(params, inputs.spec, inputs.data, n_paths=args.paths,
                                        method=args.method, block_size=args.block_size,
                                        seed=args.seed, executor=executor, asset=asset,
                                        progress=_progress(args), **inputs.common,
                                        **_store_keywords(args, inputs))
    except (ValueError, TypeError) as err:  # name the flags, not the keywords
        raise CLIError(_as_flags(str(err))) from None
    elapsed = time.perf_counter() - started
    notes = _saved(inputs, result, result.table)
    if inputs.plot:
        _use_agg()
        notes.append(_save_figure(result.plot(), inputs.plot))
    settings = result.settings
    chosen = result.sets.iloc[0]
    described = ", ".join(f"{name}={value:g}" for name, value in chosen.items())
    print(f"{result.strategy} on {settings['assets'][0]}: {result.n_paths:,} "
          f"{settings['method']} paths (seed {settings['seed']}), {described}")
    print(_frame_text(result.summary.T))
    print(f"\nprob_loss {result.prob_loss:.4f} (share of paths with total_return < 0)")
    stats = result.stats
    print(f"{stats['backtests']:,} backtests in {elapsed:.2f} s total on {stats['executor']} "
          f"x{stats['workers']}: {stats['backtests_per_s']:,.0f} backtests/s")
    for note in notes:
        print(note)
    return 0


def _portfolio(args) -> int:
    import btcore
    inputs = _Inputs(args, directory=True)
    axes = _heatmap_axes(inputs)
    started = time.perf_counter()
    try:
        with _executor(args, auto=True) as executor:
            result = btcore.run_portfolio_sweep(
                inputs.grid, inputs.spec, inputs.data, rebalance_every=args.rebalance_every,
                max_gross_exposure=args.max_gross_exposure,
                max_position_weight=args.max_position_weight,
                portfolio_stop_drawdown=args.portfolio_stop_drawdown, executor=executor,
                assets=inputs.assets, progress=_progress(args), **inputs.common,
                **_store_keywords(args, inputs))
    except (ValueError, TypeError) as err:  # name the flags, not the keywords
        raise CLIError(_as_flags(str(err))) from None
    elapsed = time.perf_counter() - started
    notes = _saved(inputs, result, result.table, result)
    if axes:
        _use_agg()
        notes.append(_save_figure(result.plot_heatmap(*axes), inputs.plot))
    assets = result.settings["assets"]
    print(f"portfolio of {len(assets)} assets: {', '.join(assets)}")
    print(_frame_text(result.table.head(args.top)))
    print("\n" + _timing_line(result.stats, len(result.table), elapsed).replace(
        "backtests (", "portfolio backtests ("))
    for note in notes:
        print(note)
    return 0


#: estimate --workflow -> (btcore.estimate's workflow, {flag dest: keyword})
_WORKFLOWS = {
    "sweep": ("sweep", {}),
    "walk-forward": ("walk_forward", {"folds": "n_splits", "anchored": "anchored",
                                      "train_bars": "train_bars", "test_bars": "test_bars",
                                      "gap": "gap"}),
    "monte-carlo": ("monte_carlo", {"paths": "n_paths", "method": "method",
                                    "block_size": "block_size", "seed": "seed",
                                    "asset": "asset"}),
    "portfolio": ("portfolio", {name: name for name in (
        "rebalance_every", "max_gross_exposure", "max_position_weight",
        "portfolio_stop_drawdown")}),
}


def _estimate(args) -> int:
    import btcore
    from btcore.engine.cost import OVERHEADS
    if args.executor is not None and args.executor not in OVERHEADS:
        raise CLIError(f"--executor: estimate models {', '.join(sorted(OVERHEADS))}, not "
                       f"{args.executor!r}")
    workflow, flags = _WORKFLOWS[args.workflow]
    for other, (_, other_flags) in _WORKFLOWS.items():
        for dest in (*other_flags, *(("params",) if other == "monte-carlo" else ())):
            if other != args.workflow and dest in vars(args):
                raise CLIError(f"--{dest.replace('_', '-')} belongs to --workflow {other}, "
                               f"not {args.workflow}")
    keywords = {keyword: getattr(args, dest) for dest, keyword in flags.items()
                if dest in vars(args)}
    inputs = _Inputs(args)
    grid = inputs.grid
    if workflow == "monte_carlo":
        if getattr(args, "params", None) is not None and args.grid is not None:
            raise CLIError("give the parameter set with --params or --grid, not both")
        grid = (_params(args.params) if getattr(args, "params", None) is not None else
                _first_set(grid) if args.grid is not None else {})
        if inputs.assets is not None:
            if "asset" in keywords or len(inputs.assets) != 1:
                raise CLIError("--workflow monte-carlo resamples one asset: give --asset NAME "
                               "(or --assets with one name)")
            keywords["asset"] = inputs.assets[0]
    assets = None if workflow == "monte_carlo" else inputs.assets
    try:
        table = btcore.estimate(grid, inputs.spec, inputs.data, workflow=workflow,
                                cpus=args.cpus, price_per_cpu_hour=args.price_per_cpu_hour,
                                executor=args.executor, assets=assets, **inputs.common,
                                **keywords)
    except (ValueError, TypeError) as err:  # name the flags, not the keywords
        raise CLIError(_as_flags(str(err))) from None
    notes = [_save_table(table, inputs.out, inputs.out_kind)] if inputs.out_kind else []
    what = "" if workflow == "sweep" else f"{args.workflow}: "
    print(f"{what}{table.attrs['parameter_sets']:,} parameter sets, "
          f"{table.attrs['backtests']:,} backtests at ${args.price_per_cpu_hour:g} per "
          f"CPU-hour; one core runs {table['kernel_param_bars_per_s'].iloc[0] / 1e6:,.0f} M "
          "param-bars/s here")
    formats = {name: "{:.4g}".format for name in ("predicted_s", "cpu_hours", "cost_usd",
                                                  "kernel_param_bars_per_s")}
    print(table.to_string(index=False, formatters=formats))
    for note in notes:
        print(note)
    return 0


def _bench(args) -> int:
    import btcore
    import btcore.executors as executors
    names = [n.strip() for n in args.executors.split(",") if n.strip()]
    if not names:
        raise CLIError("--executors: give comma-separated executor names, e.g. "
                       "serial,threads")
    for name in names:
        if name not in executors.available():
            raise CLIError(f"--executors: unknown executor {name!r}; choose from "
                           f"{', '.join(executors.available())}")
    window = dict(start=args.start, end=args.end)
    # validation, and the compiled kernel loaded, before anything is timed
    btcore.run_sweep({k: v[:1] for k, v in SEED_GRID.items()}, assets=None, progress=False,
                     **window)
    n_sets = math.prod(map(len, SEED_GRID.values()))
    print(f"btcore {btcore.__version__} bench: the seed's {n_sets}-set grid on the bundled "
          f"sample, best of {args.repeats}")
    rows = []
    for name in names:
        best = None
        for _ in range(args.repeats):
            result = btcore.run_sweep(SEED_GRID, executor=name, progress=False, **window)
            if best is None or result.stats["elapsed_s"] < best.stats["elapsed_s"]:
                best = result
        stats = best.stats
        rows.append({"executor": name, "workers": stats["workers"],
                     "backtests": stats["backtests"], "best_s": stats["elapsed_s"],
                     "backtests_per_s": stats["backtests_per_s"],
                     "M_param_bars_per_s": stats["param_bars_per_s"] / 1e6})
    import pandas as pd
    formats = {"best_s": "{:.3f}".format, "backtests_per_s": "{:,.0f}".format,
               "M_param_bars_per_s": "{:,.1f}".format}
    print(pd.DataFrame(rows).to_string(index=False, formatters=formats))
    return 0


_COMMANDS = {"sweep": _sweep, "walk-forward": _walk_forward, "monte-carlo": _monte_carlo,
             "portfolio": _portfolio, "estimate": _estimate, "bench": _bench}


def _print_error(error) -> None:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    print(f"btcore: error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {line}", file=sys.stderr)


def _quiet_stdout() -> None:
    """After a closed pipe (``btcore ... | head``): send what is left to /dev/null, so
    the interpreter's final flush prints nothing either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def _run(argv) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else 0
    if args.command == "strategies":
        return _strategies(args.names)
    return _COMMANDS[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status: 0 on success, 2 on a usage or input error."""
    try:
        status = _run(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:  # the reader (head, less) has gone: stop quietly
        _quiet_stdout()
        return 0
    except (CLIError, ValueError, TypeError, ImportError, ConnectionError) as err:
        # ValueError / TypeError: bad inputs, refused before any work by the library;
        # ImportError: a strategy module, or an executor's optional backend, is missing;
        # ConnectionError: a cluster --address that cannot be reached
        _print_error(err)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("btcore: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as err:  # the executor lost its workers past the retries
        from btcore.executors import BrokenExecutorError
        if not isinstance(err, BrokenExecutorError):
            raise
        _print_error(err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
