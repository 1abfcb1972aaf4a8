"""The commands: each checks its inputs, runs one workflow of the Python API and
prints its result.

The four workflow commands (sweep, walk-forward, monte-carlo, portfolio) share
:func:`run_command`: the executor of ``--executor``, the library's errors
reworded to name flags, the files of ``--out`` and ``--plot`` written before
anything is printed, the notes on them printed last.
"""
from __future__ import annotations

import functools
import inspect
import math
import re
import time

from btcore.cli.inputs import (SEED_GRID, USAGE_ERROR, CLIError, Inputs, first_set,
                               heatmap_axes, open_executor, parse_params, print_error,
                               progress_of, resolve_strategy, save_figure, save_table, saved,
                               store_keywords, use_agg)
from btcore.cli.parser import WORKFLOWS


# ------------------------------------------------------------------ output
#: metrics always printed (after the parameters and labels) when a table is cut to fit
KEY_METRICS = ("sharpe_ratio", "total_return", "max_drawdown", "num_trades")
#: columns that are results (not parameters or labels): printed only while they fit
_RESULT_PREFIXES = ("is_", "oos_")


def _result_columns() -> frozenset:
    from btcore.benchmark import ALPHA_BETA, BENCHMARK_COLUMNS
    from btcore.metrics import METRIC_NAMES
    return frozenset((*METRIC_NAMES, *BENCHMARK_COLUMNS, *ALPHA_BETA, "ruined", "turnover",
                      "avg_correlation", "efficiency"))


def terminal_width() -> int | None:
    """The terminal's columns, or None when the output is not a terminal (a file or a
    pipe gets every column)."""
    import shutil
    import sys
    if not sys.stdout.isatty():
        return None
    return max(shutil.get_terminal_size((100, 24)).columns, 40)


def _frame_text(frame, float_format="{:.4f}", columns: str = "all") -> str:
    """``frame`` as text; ``columns="key"`` on a terminal keeps the parameters and
    labels and ``KEY_METRICS``, then adds the other columns in order while the lines
    fit its width, and says how many were left out and how to see them."""
    import pandas as pd

    def text(shown):
        with pd.option_context("display.width", 10_000, "display.max_columns", None,
                               "display.max_colwidth", 40):
            return shown.to_string(float_format=float_format.format)

    whole = text(frame)
    width = terminal_width()
    if columns == "all" or width is None or max(map(len, whole.splitlines()),
                                                default=0) <= width:
        return whole
    results = _result_columns()
    labels = [c for c in frame.columns if c not in results and not str(c).startswith(
        _RESULT_PREFIXES)]
    kept = labels + [c for c in KEY_METRICS if c in frame.columns]
    for column in frame.columns:
        if column in kept:
            continue
        trial = [c for c in frame.columns if c in kept or c == column]
        if max(map(len, text(frame[trial]).splitlines())) <= width:
            kept.append(column)
    shown = [c for c in frame.columns if c in kept]
    hidden = len(frame.columns) - len(shown)
    return (text(frame[shown]) + f"\n({hidden} of {len(frame.columns)} columns left out to "
            f"fit {width} characters: --columns all prints them, --out FILE saves them)")


def _timing_line(stats: dict, rows: int, elapsed: float) -> str:
    return (f"{stats.get('backtests', 0):,} backtests ({rows:,} rows) in {elapsed:.2f} s "
            f"total, {stats.get('compute_s', float('nan')):.2f} s computing on "
            f"{stats.get('executor', '?')} x{stats.get('workers', '?')}: "
            f"{stats.get('backtests_per_s', float('nan')):,.0f} backtests/s, "
            f"{stats.get('param_bars_per_s', float('nan')) / 1e6:,.0f} M param-bars/s")


# ----------------------------------------------------------------- commands
def list_strategies(names: list[str]) -> int:
    import btcore.strategies as strategies
    status = 0
    for name in names or strategies.available():
        try:
            spec = resolve_strategy(name)
        except (CLIError, ValueError, TypeError) as err:  # one broken plug-in hides no other
            print_error(err)
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


def _sweep_keywords(args, inputs: Inputs, run_sweep) -> dict:
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
                   "n_groups", "n_test_groups", "train_bars", "test_bars", "block_size", "rebalance_every",
                   "max_gross_exposure", "max_position_weight", "portfolio_stop_drawdown")))


def _as_flags(message: str) -> str:
    for pattern, flag in _FLAG_WORDS:
        message = pattern.sub(flag, message)
    return message


def run_command(args, inputs: Inputs, run, *, table, whole: bool = False, plot=None,
                report) -> int:
    """Run ``run(executor=, progress=, **inputs.common)`` on the executor of
    ``--executor``/``--address``, then save ``table(result)`` to ``--out`` (``whole``:
    through the result's own ``to_parquet``) and ``plot(result)`` -> (figure, note)
    to ``--plot``, print ``report(result, elapsed)`` and the notes on the files.

    The library's ValueError / TypeError become CLIErrors naming the flags, not the
    keywords. Files come before printing: output cut short by a closed pipe loses
    none of them.
    """
    started = time.perf_counter()
    try:
        with open_executor(args, auto=True) as executor:
            result = run(executor=executor, progress=progress_of(args), **inputs.common)
    except (ValueError, TypeError) as err:  # name the flags, not the keywords
        raise CLIError(_as_flags(str(err))) from None
    except KeyboardInterrupt:
        raise KeyboardInterrupt(interrupted_note(inputs)) from None
    elapsed = time.perf_counter() - started
    notes = saved(inputs, result, table(result), result if whole else None)
    if plot is not None and inputs.plot:
        use_agg()
        fig, note = plot(result)
        notes.append(save_figure(fig, inputs.plot) + note)
    report(result, elapsed)
    for note in notes:
        print(note)
    return 0


def interrupted_note(inputs) -> str:
    """What Ctrl-C leaves behind: the tasks kept in a directory ``--out`` and how to
    resume, or how to keep them next time."""
    if inputs.out_kind != "dir":
        return ("nothing was kept: with --out DIR finished tasks are kept there and "
                "running the same command again resumes")
    finished = finished_tasks(inputs.out)
    return (f"{finished:,} finished task(s) kept in {inputs.out}: run the same command "
            "again to resume (only the missing tasks are computed)")


def finished_tasks(out: str) -> int:
    """Tasks a result store in ``out`` records as finished (0 if it holds none)."""
    import pathlib

    from btcore.store.manifest import MANIFEST, read_journal, read_manifest
    path = pathlib.Path(out)
    try:
        manifest = read_manifest(path / MANIFEST)
        journal = read_journal(path)
    except (OSError, ValueError):
        return 0
    return len({**(manifest.get("parts") or {}), **journal})


def _sweep(args) -> int:
    import btcore
    inputs = Inputs(args, directory=True)
    axes = heatmap_axes(inputs)
    extra = _sweep_keywords(args, inputs, btcore.run_sweep)
    if args.blocks is not None:
        extra["blocks"] = args.blocks

    def report(result, elapsed):
        print(_frame_text(result.table.head(args.top), columns=args.columns))
        print("\n" + _timing_line(result.stats, len(result.table), elapsed))
        if args.blocks is None:
            return
        for asset in result.settings["assets"]:  # the statistics' own errors name flags
            try:
                print("\n" + str(result.certificate(asset=asset, select=args.select)))
            except ValueError as err:
                print(f"\nno overfitting certificate for {asset}: {_as_flags(str(err))}")
    return run_command(
        args, inputs, functools.partial(btcore.run_sweep, inputs.grid, inputs.spec,
                                        inputs.data, assets=inputs.assets, **extra),
        table=lambda result: result.table, whole=True, report=report,
        plot=axes and (lambda result: (result.plot_heatmap(
            *axes, metric=args.sort_by or "sharpe_ratio"), "")))


_FOLD_COLUMNS = ("fold", "asset", "is_start", "is_end", "oos_start", "oos_end")


def _walk_forward(args) -> int:
    import btcore
    inputs = Inputs(args, directory=True)

    def plot(result):
        from btcore.plots import walk_forward_figure
        asset = result.settings["assets"][0]
        return (walk_forward_figure(result, asset=asset, metric=args.objective),
                f" (asset {asset})")

    def report(result, elapsed):
        folds = result.folds
        params = [p.name for p in inputs.spec.params]
        objective = args.objective
        shown = [c for c in (*_FOLD_COLUMNS, *params, f"is_{objective}", f"oos_{objective}",
                             "oos_total_return", "oos_max_drawdown", "efficiency")
                 if c in folds.columns]
        table = folds[list(dict.fromkeys(shown))]
        settings = result.settings
        print(f"{settings['n_splits']} {'anchored' if settings['anchored'] else 'rolling'} "
              f"folds of {settings['test_bars']} out-of-sample bars, chosen by {objective} "
              f"({settings['select']}):")
        print(_frame_text(table.set_index("fold"), columns=args.columns))
        oos = result.oos_metrics.copy()
        oos["efficiency"] = result.efficiency
        oos["changes"] = result.stability["changes"]
        print("\nout-of-sample (stitched folds):")
        print(_frame_text(oos, columns=args.columns))
        stats = result.stats
        print(f"\n{stats['folds']} folds, {stats['backtests']:,} in-sample backtests in "
              f"{elapsed:.2f} s total on {stats['executor']} x{stats['workers']}")
    return run_command(
        args, inputs, functools.partial(
            btcore.walk_forward, inputs.grid, inputs.spec, inputs.data, n_splits=args.folds,
            train_bars=args.train_bars, test_bars=args.test_bars, gap=args.gap,
            anchored=args.anchored, objective=args.objective, select=args.select,
            assets=inputs.assets, **store_keywords(args, inputs)),
        table=lambda result: result.folds, plot=plot, report=report)


def _monte_carlo(args) -> int:
    import btcore
    if args.params is not None and args.grid is not None:
        raise CLIError("give the parameter set with --params or --grid, not both")
    _check_block_size(args.method, args.block_size is not None)
    inputs = Inputs(args, directory=True)
    params = (parse_params(args.params) if args.params is not None else
              first_set(inputs.grid) if args.grid is not None else {})
    asset = args.asset
    if inputs.assets is not None:
        if asset is not None or len(inputs.assets) != 1:
            raise CLIError("monte-carlo resamples one asset: give --asset NAME (or --assets "
                           "with one name)")
        asset = inputs.assets[0]
    from btcore.workflows.base import resolve_data
    inputs.data = resolve_data(inputs.data)  # loaded once, to name a missing --asset
    if asset is None and inputs.data.n_assets > 1:
        symbols = list(inputs.data.symbols)
        shown = ", ".join(symbols[:12]) + (", ..." if len(symbols) > 12 else "")
        raise CLIError(f"monte-carlo resamples one asset and the data has {len(symbols)}: "
                       f"give --asset NAME, one of {shown}")

    def report(result, elapsed):
        settings = result.settings
        chosen = result.sets.iloc[0]
        described = ", ".join(f"{name}={value:g}" for name, value in chosen.items())
        print(f"{result.strategy} on {settings['assets'][0]}: {result.n_paths:,} "
              f"{settings['method']} paths (seed {settings['seed']}), {described}")
        print(_frame_text(result.summary.T, columns=args.columns))
        print(f"\nprob_loss {result.prob_loss:.4f} (share of paths with total_return < 0)")
        stats = result.stats
        print(f"{stats['backtests']:,} backtests in {elapsed:.2f} s total on "
              f"{stats['executor']} x{stats['workers']}: {stats['backtests_per_s']:,.0f} "
              "backtests/s")
    return run_command(
        args, inputs, functools.partial(
            btcore.monte_carlo, params, inputs.spec, inputs.data, n_paths=args.paths,
            method=args.method, seed=args.seed, asset=asset, **store_keywords(args, inputs),
            **({} if args.block_size is None else {"block_size": args.block_size})),
        table=lambda result: result.table, plot=lambda result: (result.plot(), ""),
        report=report)


def _portfolio(args) -> int:
    import btcore
    inputs = Inputs(args, directory=True)
    axes = heatmap_axes(inputs)

    def report(result, elapsed):
        assets = result.settings["assets"]
        print(f"portfolio of {len(assets)} assets: {', '.join(assets)}")
        print(_frame_text(result.table.head(args.top), columns=args.columns))
        print("\n" + _timing_line(result.stats, len(result.table), elapsed).replace(
            "backtests (", "portfolio backtests ("))
    return run_command(
        args, inputs, functools.partial(
            btcore.run_portfolio_sweep, inputs.grid, inputs.spec, inputs.data,
            rebalance_every=args.rebalance_every, max_gross_exposure=args.max_gross_exposure,
            max_position_weight=args.max_position_weight,
            portfolio_stop_drawdown=args.portfolio_stop_drawdown, assets=inputs.assets,
            **store_keywords(args, inputs)),
        table=lambda result: result.table, whole=True, report=report,
        plot=axes and (lambda result: (result.plot_heatmap(*axes), "")))


def _cross_sectional(args) -> int:
    import btcore
    inputs = Inputs(args, directory=True)
    axes = heatmap_axes(inputs)

    def report(result, elapsed):
        assets = result.settings["assets"]
        print(f"{args.direction} book of {len(assets)} assets"
              f"{' (long only)' if args.long_only else ''}: {', '.join(assets)}")
        print(_frame_text(result.table.head(args.top), columns=args.columns))
        print("\n" + _timing_line(result.stats, len(result.table), elapsed))
    return run_command(
        args, inputs, functools.partial(
            btcore.run_cross_sectional_sweep, inputs.grid, inputs.data,
            direction=args.direction, long_only=args.long_only, assets=inputs.assets,
            **store_keywords(args, inputs)),
        table=lambda result: result.table, whole=True, report=report,
        plot=axes and (lambda result: (result.plot_heatmap(*axes), "")))


def _check_block_size(method: str | None, given: bool) -> None:
    """Refuse ``--block-size`` without ``--method block`` (it would be ignored)."""
    if given and method != "block":
        raise CLIError(f"--block-size is the mean block length of --method block, not "
                       f"--method {method or 'bootstrap'}: add --method block or drop "
                       "--block-size")


def _estimate(args) -> int:
    import btcore
    from btcore.engine.cost import OVERHEADS
    if args.executor is not None and args.executor not in OVERHEADS:
        raise CLIError(f"--executor: estimate models {', '.join(sorted(OVERHEADS))}, not "
                       f"{args.executor!r}")
    workflow, flags = WORKFLOWS[args.workflow]
    for other, (_, other_flags) in WORKFLOWS.items():
        for dest in (*other_flags, *(("params",) if other == "monte-carlo" else ())):
            if other != args.workflow and dest in vars(args):
                raise CLIError(f"--{dest.replace('_', '-')} belongs to --workflow {other}, "
                               f"not {args.workflow}")
    keywords = {keyword: getattr(args, dest) for dest, keyword in flags.items()
                if dest in vars(args)}
    if workflow == "monte_carlo":
        _check_block_size(keywords.get("method"), "block_size" in keywords)
    inputs = Inputs(args)
    grid = inputs.grid
    if workflow == "cross_sectional" and args.grid is None:
        grid = {}  # the book's defaults, not a strategy's grid
    if workflow == "monte_carlo":
        if getattr(args, "params", None) is not None and args.grid is not None:
            raise CLIError("give the parameter set with --params or --grid, not both")
        grid = (parse_params(args.params) if getattr(args, "params", None) is not None else
                first_set(grid) if args.grid is not None else {})
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
    notes = [save_table(table, inputs.out, inputs.out_kind)] if inputs.out_kind else []
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
    inputs = Inputs(args)
    names = [n.strip() for n in args.executors.split(",") if n.strip()]
    if not names:
        raise CLIError("--executors: give comma-separated executor names, e.g. "
                       "serial,threads")
    for name in names:
        if name not in executors.available():
            raise CLIError(f"--executors: unknown executor {name!r}; choose from "
                           f"{', '.join(executors.available())}")
    from btcore.grid import as_grid
    from btcore.workflows.base import resolve_data
    data = resolve_data(inputs.data)  # read once, not at every repeat
    sweep = functools.partial(btcore.run_sweep, inputs.grid, inputs.spec, data,
                              assets=inputs.assets, progress=False, **inputs.common)
    try:
        n_sets = len(as_grid(inputs.grid, inputs.spec))
        sweep(executor="serial", batch_size=1 << 30)  # checked, kernel loaded, untimed
    except (ValueError, TypeError) as err:
        raise CLIError(_as_flags(str(err))) from None
    seed = inputs.tokens is None and inputs.spec.name == "mean_reversion"
    what = f"the seed's {n_sets}-set grid" if seed else f"{n_sets:,} parameter sets of " \
        f"{inputs.spec.name}"
    where = "the bundled sample" if args.data in (None, "sample") else args.data
    print(f"btcore {btcore.__version__} bench: {what} on {where} ({data.n_assets} assets), "
          f"best of {args.repeats}")
    rows = []
    for name in names:
        best = None
        for _ in range(args.repeats):
            result = sweep(executor=name)
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


def _warmup(args) -> int:
    from btcore.workflows.warmup import warmup
    timings = warmup(args.strategies, workflows=args.workflows or ("sweep",), verbose=True)
    print(f"{len(timings)} kernel(s) ready in {sum(timings.values()):.1f} s "
          "(cached for later runs)")
    return 0


def _cpcv(args) -> int:
    from btcore.cli.cpcv_command import cpcv_command
    inputs = Inputs(args)
    run, report = cpcv_command(args, inputs, _frame_text)
    return run_command(args, inputs, run, table=lambda result: result.splits, report=report)


COMMANDS = {"sweep": _sweep, "walk-forward": _walk_forward, "cpcv": _cpcv,
            "monte-carlo": _monte_carlo,
             "portfolio": _portfolio, "cross-sectional": _cross_sectional,
             "estimate": _estimate, "bench": _bench, "warmup": _warmup}
