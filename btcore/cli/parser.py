"""The command line's grammar: argparse parsers for every command, their flags,
help texts and examples, and the flag types that refuse a bad value as it is
parsed (a :class:`~btcore.cli.inputs.CLIError`, never argparse's exit)."""
from __future__ import annotations

import argparse
import math

from btcore.cli.inputs import CLIError

#: ``btcore --help``'s first line
DESCRIPTION = ("Command line: sweeps, walk-forward, Monte Carlo, portfolios, cross-sectional "
               "books, estimates, a benchmark.")

#: estimate --workflow -> (btcore.estimate's workflow, {flag dest: keyword})
WORKFLOWS = {
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
    "cross-sectional": ("cross_sectional", {"direction": "direction", "long_only": "long_only"}),
}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):  # --strat is not --strategy: no prefix matching
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):  # argparse prints usage and exits; we raise instead
        if message.endswith("required: command"):
            message = ("missing command: give one of sweep, walk-forward, cpcv, monte-carlo, "
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


def _blocks(text: str):
    if text == "year":
        return "year"
    value = _positive_int(text)
    if value < 2 or value % 2:
        raise argparse.ArgumentTypeError(f"expected 'year' or an even integer >= 2, got "
                                         f"{text!r}")
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
def _add_inputs(parser, *, grid: bool = True, grid_help: str | None = None,
                strategy: bool = True) -> None:
    """--strategy, --grid, --data, --assets, --start, --end, --capital, --cost-bps, --option
    (``strategy=False``: a workflow with its own rule, without --strategy and --option)."""
    if strategy:
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
    if strategy:
        parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                            help="a strategy option, e.g. --option allow_short=false or "
                                 "--option average=ema (repeatable; see `btcore strategies`)")


def _add_fills(parser) -> None:
    """--fill, price stops, sizing and costs (btcore.execution; left out: defaults)."""
    group = parser.add_argument_group(
        "fills, stops, sizing and costs",
        "each numeric one may also be a --grid column, e.g. --grid stop_loss=0,0.02,0.05 "
        "(0 turns a stop off); docs/semantics.md defines them")
    group.add_argument("--fill", choices=("close", "next_open", "next_close"),
                       default=argparse.SUPPRESS,
                       help="when a signal decided at a bar's close trades: that close "
                            "(default), the next bar's open (needs OHLC data) or close")
    flags = [("stop-loss", "exit when the price moves this fraction against the entry"),
             ("take-profit", "exit when the price moves this fraction in favour"),
             ("trailing-stop", "exit this fraction below the peak (above the trough)"),
             ("size-fraction", "fraction of cash a new position takes (default 1)"),
             ("target-volatility", "size positions for this annualised volatility"),
             ("volatility-lookback", "returns in that volatility estimate (default 20)"),
             ("max-leverage", "largest fraction of cash a position may take (default 1)"),
             ("slippage-bps", "fill prices move this many bps against every trade"),
             ("fee-per-trade", "fixed cash fee of every fill"),
             ("borrow-bps", "annual borrow cost of a short, bps of its value"),
             ("risk-free-rate", "annual rate Sharpe and Sortino are measured against")]
    for flag, text in flags:
        kind = int if flag == "volatility-lookback" else float
        group.add_argument(f"--{flag}", type=_number(kind), default=argparse.SUPPRESS,
                           metavar="X", help=text)
    group.add_argument("--fractional-shares", action="store_true", default=argparse.SUPPRESS,
                       help="trade fractions of a share (crypto, FX)")


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
    parser.add_argument("--columns", choices=("key", "all"), default="key",
                        help="columns to print on a terminal: key (the parameters, "
                             "Sharpe, return, drawdown and trades, then as many more as fit "
                             "its width; the default) or all (a pipe or file always gets "
                             "all)")
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
    # None when not given: --block-size with another --method is refused
    parser.add_argument("--block-size", type=_number(float), default=default(None),
                        metavar="BARS", help="mean block length of --method block "
                                             "(default 20); only with --method block")
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


def _add_book_flags(parser, given_only: bool = False) -> None:
    """run_cross_sectional_sweep's book: --direction, --long-only."""
    default = _defaults(given_only)
    parser.add_argument("--direction", choices=("reversal", "momentum"),
                        default=default("reversal"),
                        help="reversal buys the worst trailing returns and sells the best; "
                             "momentum the opposite (default reversal)")
    parser.add_argument("--long-only", action="store_true", default=default(False),
                        help="hold the longs only, at gross_leverage / top_k each")


def build_parser() -> argparse.ArgumentParser:
    from btcore import __version__
    parser = _Parser(prog="btcore", description=DESCRIPTION,
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
    _add_fills(sweep)
    _add_execution(sweep, auto=True)
    _add_outputs(sweep, what="the result table", directory=True,
                 plot="a heatmap of the --sort-by metric, default sharpe_ratio, over the "
                      "first two parameters that vary in the grid")
    sweep.add_argument("--keep", type=_positive_int, default=None, metavar="N",
                       help="keep only the best N rows by --sort-by (run_sweep's keep=)")
    sweep.add_argument("--sort-by", type=_metric, default=None, metavar="METRIC",
                       help="metric to rank rows by (run_sweep's sort_by=; default "
                            "sharpe_ratio)")
    sweep.add_argument("--blocks", type=_blocks, default=None, metavar="N|year",
                       help="keep per-block sums (run_sweep's blocks=: N equal blocks or "
                            "calendar years): adds the stability columns and prints the "
                            "overfitting certificate of each asset")
    sweep.add_argument("--select", choices=("best", "plateau"), default="best",
                       help="the row the certificate is about: the best Sharpe ratio, or "
                            "the centre of the best plateau (radius 1; default best)")

    wf = command("walk-forward", "walk-forward optimisation: best in-sample set per fold, "
                                 "run out of sample",
                 "btcore walk-forward --grid lookback_period=20,40,60 entry_threshold=1.5,2.0 "
                 "--assets KO,PEP --folds 5 --anchored --objective calmar_ratio")
    _add_inputs(wf)
    _add_fills(wf)
    _add_fold_flags(wf)
    wf.add_argument("--objective", type=_metric, default="sharpe_ratio", metavar="METRIC",
                    help="metric that picks each fold's set (annual_volatility is "
                         "minimised; default sharpe_ratio)")
    wf.add_argument("--select", choices=("per_asset", "universe", "plateau"),
                    default="per_asset",
                    help="choose a set per asset, the set with the best mean objective "
                         "over the assets, or per asset the centre of the best plateau "
                         "(radius 1; default per_asset)")
    _add_execution(wf, auto=True)
    _add_outputs(wf, what="the fold table", top=False, directory=True,
                 plot="in- vs out-of-sample objective per fold and the stitched "
                      "out-of-sample equity of the first asset")

    cv = command("cpcv", "combinatorial purged cross-validation: every split's best "
                         "train set scored on its test groups, paths and PBO",
                 "btcore cpcv --grid lookback_period=20,40,60 entry_threshold=1.5,2.0 "
                 "--assets KO --n-groups 6 --n-test-groups 2 --purge 5 --embargo 5")
    _add_inputs(cv)
    _add_fills(cv)
    cv.add_argument("--n-groups", type=_positive_int, default=6, metavar="N",
                    help="consecutive groups of the traded bars (default 6)")
    cv.add_argument("--n-test-groups", type=_positive_int, default=2, metavar="K",
                    help="groups tested per split, below --n-groups (default 2)")
    cv.add_argument("--purge", type=_number(int), default=0, metavar="N",
                    help="train bars left out next to a test group (default 0)")
    cv.add_argument("--embargo", type=_number(int), default=0, metavar="N",
                    help="more train bars left out after a test group (default 0)")
    cv.add_argument("--objective", type=_metric, default="sharpe_ratio", metavar="METRIC",
                    help="the train score: sharpe_ratio over the train bars, or another "
                         "metric's mean over the train groups (default sharpe_ratio)")
    cv.add_argument("--select", choices=("best", "plateau"), default="best",
                    help="the best train score, or the centre of the best plateau "
                         "(radius 1; default best)")
    _add_execution(cv, auto=True)
    _add_outputs(cv, what="the split table")

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
    _add_fills(mc)
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

    cs = command("cross-sectional", "sweep a cross-sectional book: every rebalance, rank the "
                                    "assets by trailing return and hold the top_k at each end",
                 "btcore cross-sectional --grid lookback_period=20,60,120 top_k=2,4 "
                 "rebalance_every=5,21 --direction momentum --executor threads")
    _add_inputs(cs, strategy=False,
                grid_help="parameter sets over lookback_period, top_k, rebalance_every and "
                          "gross_leverage, in the forms of `btcore sweep --grid`; parameters "
                          "left out take their defaults (20, 5, 21, 1.0)")
    _add_book_flags(cs)
    _add_execution(cs, auto=True)
    _add_outputs(cs, what="the result table", directory=True,
                 plot="a heatmap of the Sharpe ratio over the first two parameters that "
                      "vary in the grid")

    est = command("estimate", "predict the wall time and cost of a sweep, walk-forward "
                              "study, Monte Carlo run, portfolio or cross-sectional sweep on "
                              "several CPU counts",
                  "btcore estimate --grid lookback_period=10:200:10 entry_threshold=1:3:0.25 "
                  "--workflow walk-forward --folds 10 --cpus 1,2,16,320 "
                  "--price-per-cpu-hour 0.015")
    _add_inputs(est, grid_help="parameter sets, in the forms of `btcore sweep --grid` "
                               "(monte-carlo: the first set, unless --params)")
    est.add_argument("--workflow", choices=tuple(WORKFLOWS), default="sweep",
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
    _add_book_flags(est.add_argument_group("--workflow cross-sectional"), given_only=True)
    _add_outputs(est, what="the estimate table", top=False)

    listing = command("strategies", "list strategies with their parameters and options",
                      "btcore strategies mean_reversion my_package.my_module:SPEC")
    listing.add_argument("names", nargs="*",
                         help="strategies to describe: names or package.module:SPEC "
                              "(default: every registered one)")

    warm = command("warmup", "compile the kernels runs will use now (cached on disk), e.g. "
                             "when building an image or starting cluster workers",
                   "btcore warmup --strategy mean_reversion ma_crossover --workflows sweep "
                   "portfolio")
    warm.add_argument("--strategy", dest="strategies", nargs="+", action="extend",
                      default=None, metavar="NAME",
                      help="strategies to compile: names or package.module:SPEC (default: "
                           "every registered one)")
    warm.add_argument("--workflows", nargs="+", action="extend", default=None,
                      choices=("sweep", "portfolio", "cross_sectional"),
                      help="kernels to compile: sweep (also backtest, walk-forward, "
                           "monte-carlo), portfolio, cross_sectional (default sweep)")

    bench = command("bench", "measure backtests/s of serial and threads on the bundled sample "
                    "(or --data, --strategy, --grid)",
                    "btcore bench --repeats 5 --start 2010-01-01 --data prices.csv "
                    "--strategy ma_crossover")
    _add_inputs(bench)
    bench.add_argument("--repeats", type=_positive_int, default=3, metavar="N",
                       help="runs per executor; the best is reported (default 3)")
    bench.add_argument("--executors", default="serial,threads", metavar="A,B,...",
                       help="comma-separated executors to measure (default serial,threads)")
    return parser
