"""Walk-forward optimisation: folds as one more batch axis of one job.

Folds follow scikit-learn's ``TimeSeriesSplit`` over the traded bars [start, end]
(B bars): ``test_bars`` = B // (n_splits + 1) unless given; fold i's
out-of-sample (OOS) window is the i-th of the last ``n_splits`` blocks of
``test_bars`` bars; its in-sample (IS) window is every traded bar before it
(``anchored=True``) or the ``train_bars`` bars before it (rolling; default the
first fold's IS length), with ``gap`` bars left out in between.

All folds' in-sample sweeps are one job sent to the executor (fold x asset x
set range tasks, longest first): rolling folds are trading windows of the job;
anchored folds share a start, so they are one window whose metrics are
finalised at each fold's end (one pass per set). Each fold's best non-ruined
set by ``objective`` (ties: first in grid order) is then run out of sample
exactly as ``run_sweep(start=oos_start, end=oos_end)`` would (fresh capital,
indicators warmed up on all earlier history).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from btcore.benchmark import alpha_beta, benchmark_values, buy_and_hold
from btcore.engine import DenseSink, Task, TopKSink, check_targets, run_task
from btcore.store import stored_job
from btcore._checks import check_int
from btcore.settings import check_arguments
from btcore.workflows.base import RunOptions, execute, prepare
from btcore.kernels.single import RECORD_EQUITY, RECORD_ROWS, RUINED_ROW
from btcore.metrics import (INTEGER_METRICS, LOWER_IS_BETTER, METRIC_NAMES, N_METRICS,
                            equity_metrics)

#: metrics where a lower value is better


@dataclass
class WalkForwardResult:
    """Result of :func:`walk_forward`.

    Attributes
    ----------
    folds : pandas.DataFrame
        One row per fold (x asset): ``fold``, ``asset`` (several assets),
        ``is_start``, ``is_end``, ``oos_start``, ``oos_end``, the chosen
        parameters, ``is_<metric>`` and ``oos_<metric>`` for every metric and
        ``ruined``, ``efficiency`` and ``efficiency_note``
        (:func:`walk_forward_efficiency` of the fold's OOS and IS cagr).
    oos_equity : pandas.DataFrame
        Stitched OOS equity (bars x assets): each fold's curve scaled to start
        where the previous one ended.
    oos_metrics : pandas.DataFrame
        Return-based metrics of the stitched curve, one row per asset, with
        ``benchmark_return``, ``excess_return`` and ``benchmark_sharpe`` of
        buy-and-hold over the same out-of-sample bars (``btcore.benchmark``), and
        ``alpha`` and ``beta`` with ``benchmark=`` a series.
    efficiency : pandas.Series
        Per asset: :func:`walk_forward_efficiency` of the stitched OOS cagr and the
        mean IS cagr of the chosen sets (NaN when that mean is <= 0 or undefined).
    stability : pandas.DataFrame
        Per asset: ``changes`` (share of fold-to-fold transitions where the
        chosen set changes) and ``mean_step`` (mean absolute change of each
        parameter between consecutive folds, as a share of its grid range).
    stats, settings : dict
    oos_benchmark : pandas.DataFrame
        Buy-and-hold equity over the out-of-sample bars (bars x assets), from the
        initial capital at the first out-of-sample close.
    efficiency_note : pandas.Series
        Per asset: why ``efficiency`` is NaN, or ``""`` when it is defined.
    """

    folds: pd.DataFrame
    oos_equity: pd.DataFrame
    oos_metrics: pd.DataFrame
    efficiency: pd.Series
    stability: pd.DataFrame
    stats: dict
    settings: dict = field(default_factory=dict)
    oos_benchmark: pd.DataFrame | None = None
    efficiency_note: pd.Series | None = None

    def plot(self, asset: str | None = None):
        """In- and out-of-sample metric per fold and the stitched OOS equity; returns
        the matplotlib Figure (``plot`` extra)."""
        from btcore.plots import walk_forward_figure
        return walk_forward_figure(self, asset=asset)

    def __repr__(self) -> str:
        s = self.stats
        return (f"WalkForwardResult({s['folds']} folds, {s['backtests']:,} in-sample backtests "
                f"in {s['elapsed_s']:.2f} s on {s['executor']} x{s['workers']})\n"
                + self.oos_metrics.to_string(float_format="{:.4g}".format))


def fold_windows(first: int, last: int, n_splits: int, *, test_bars=None, train_bars=None,
                 gap: int = 0, anchored: bool = False) -> np.ndarray:
    """(n_splits, 4) int64 rows ``is_start, is_end, oos_start, oos_end`` (inclusive bars).

    Raises
    ------
    ValueError
        Folds that do not fit in [first, last], naming the arithmetic.
    """
    n_splits = check_int("n_splits", n_splits, minimum=2)
    gap = check_int("gap", gap, minimum=0)
    n_bars = last - first + 1
    test_bars = (n_bars // (n_splits + 1) if test_bars is None
                 else check_int("test_bars", test_bars, minimum=1))
    if test_bars < 1:
        raise ValueError(f"{n_bars} traded bars are too few for {n_splits} folds; use fewer "
                         "folds (n_splits) or a wider start/end")
    oos_starts = first + n_bars - (n_splits - np.arange(n_splits)) * test_bars
    first_train = int(oos_starts[0]) - gap - first
    if train_bars is not None:
        if anchored:
            raise ValueError("train_bars sets the rolling in-sample length; anchored folds "
                             "use every bar before each fold (leave train_bars out)")
        train_bars = check_int("train_bars", train_bars, minimum=2)
        if train_bars > first_train:
            raise ValueError(f"train_bars={train_bars} does not fit: the first fold has "
                             f"{first_train} in-sample bars before its gap ({n_bars} traded "
                             f"bars, {n_splits} folds x {test_bars} test bars, gap {gap})")
    if first_train < 2:
        raise ValueError(f"the first fold has {first_train} in-sample bar(s) ({n_bars} traded "
                         f"bars - {n_splits} folds x {test_bars} test bars - gap {gap}); use "
                         "fewer folds, fewer test_bars, a smaller gap or more data")
    length = first_train if train_bars is None else train_bars
    is_end = oos_starts - gap - 1
    is_start = np.full(n_splits, first) if anchored else is_end - length + 1
    return np.column_stack([is_start, is_end, oos_starts, oos_starts + test_bars - 1]
                           ).astype(np.int64)


def walk_forward(grid, strategy="mean_reversion", data=None, *, n_splits=10, train_bars=None,
                 test_bars=None, gap=0, anchored=False, objective="sharpe_ratio",
                 select="per_asset", radius=1, executor="serial", start=None, end=None,
                 progress=None,
                 batch_size="auto", assets=None, initial_capital=1_000_000.0, cost_bps=5.0,
                 periods_per_year=None, debug=False, out=None, overwrite=False,
                 on_progress=None, benchmark=None, **strategy_options) -> WalkForwardResult:
    """Walk-forward optimisation of ``grid`` (see the module docstring for the folds).

    Parameters
    ----------
    grid, strategy, data, executor, start, end, progress, batch_size, assets,
    initial_capital, cost_bps, periods_per_year, debug, on_progress, **strategy_options
        As in :func:`btcore.run_sweep` (``on_progress`` counts in-sample backtests).
    n_splits : int, default 10
        Folds (>= 2).
    train_bars, test_bars, gap : int, optional
        In-sample length of rolling folds (default: the first fold's), OOS length
        (default B // (n_splits + 1)), bars purged between the two.
    anchored : bool
        Expanding in-sample windows from the first traded bar.
    objective : str or callable
        A metric name (lower-is-better ones minimised) or ``f(table) -> scores``
        (higher is better) on a fold's in-sample table (grid order, one asset).
    select : {"per_asset", "universe", "plateau"}
        Choose per asset, the set with the best mean objective over assets, or per
        asset the centre of the best neighbourhood of the objective (the mean over
        the sets within ``radius`` steps on every parameter axis, ruined ones
        counting as the fold's worst: :mod:`btcore.selection`; a product grid).
    radius : int, default 1
        The neighbourhood of ``select="plateau"``.
    out : str or path, optional
        A directory keeping every finished in-sample task, so re-running the
        same call after a crash or Ctrl-C computes only the missing ones (a
        different study there is an error unless ``overwrite=True``); the
        result's ``folds``, ``oos_equity`` and ``oos_metrics`` are saved there as
        Parquet. The objective and ``select`` may change between runs.
    benchmark : pandas.Series, optional
        Prices of another series (e.g. an index) to compare the stitched
        out-of-sample equity with (adds ``alpha`` and ``beta``); None uses
        buy-and-hold of each asset.

    Returns
    -------
    WalkForwardResult
    """
    started = time.perf_counter()
    check_arguments(strategy_options, strategy, walk_forward)
    if select not in ("per_asset", "universe", "plateau"):
        raise ValueError(f"select must be 'per_asset', 'universe' or 'plateau', got "
                         f"{select!r}")
    radius = check_int("radius", radius, 0)
    if not callable(objective) and objective not in METRIC_NAMES:
        raise ValueError(f"unknown objective {objective!r}; choose a metric from "
                         f"{list(METRIC_NAMES)} or pass a function of the in-sample table")
    options = RunOptions(executor, batch_size, progress, on_progress, debug, out,
                         overwrite).check()
    prepared, folds, is_job = plan_walk_forward(
        grid, strategy, data, n_splits=n_splits, train_bars=train_bars, test_bars=test_bars,
        gap=gap, anchored=anchored, start=start, end=end, assets=assets,
        initial_capital=initial_capital, cost_bps=cost_bps, periods_per_year=periods_per_year,
        debug=debug, options=strategy_options, benchmark=benchmark)
    job = prepared.job
    if select == "plateau":
        _check_product(prepared.grid)
    lower = not callable(objective) and objective in LOWER_IS_BETTER
    dense = callable(objective) or select in ("universe", "plateau")
    sink = (DenseSink(is_job) if dense else
            TopKSink(is_job, objective, k=1, lower_is_better=lower))
    run = execute(is_job, sink, options, started=started, open_store=lambda: stored_job(
        out, prepared, is_job, batch_size=batch_size, overwrite=overwrite,
        extra={"anchored": anchored}, workflow="walk_forward"),
        description=f"walk-forward {job.strategy.name}", settings=prepared.settings)
    # (assets, folds, OUT_ROWS, sets) of in-sample metrics, fold-major either way
    chosen = _choose(prepared, sink, objective, select, anchored, lower, dense, radius)
    result = _out_of_sample(prepared, folds, chosen, is_metrics=_is_metrics(sink, anchored))
    run.stats["folds"] = len(folds)
    settings = dict(prepared.settings, n_splits=len(folds), anchored=anchored, gap=gap,
                    test_bars=int(folds[0, 3] - folds[0, 2] + 1),
                    train_bars=None if anchored else int(folds[0, 1] - folds[0, 0] + 1),
                    objective=getattr(objective, "__name__", objective), select=select,
                    **({"radius": radius} if select == "plateau" else {}))
    result = WalkForwardResult(*result[:-2], stats=run.stats, settings=settings,
                               oos_benchmark=result[-2], efficiency_note=result[-1])
    run.finish(settings["objective"], {name: getattr(result, name)
                                       for name in ("folds", "oos_equity", "oos_metrics")})
    return result


def plan_walk_forward(grid, strategy, data, *, n_splits=10, train_bars=None, test_bars=None,
                      gap=0, anchored=False, start=None, end=None, assets=None,
                      initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None,
                      debug=False, options=None, benchmark=None):
    """Validate a walk-forward study and build its in-sample job (no kernel runs):
    ``(prepared, folds, is_job)``; ``folds`` rows are (IS start, IS end, OOS start,
    OOS end) bars, as :func:`fold_windows` returns."""
    if not isinstance(anchored, bool):
        raise TypeError(f"anchored must be True or False, got {anchored!r}")
    prepared = prepare(grid, strategy, data, start=start, end=end,
                       initial_capital=initial_capital, cost_bps=cost_bps,
                       periods_per_year=periods_per_year, assets=assets, debug=debug,
                       options=options or {}, benchmark=benchmark)
    job = prepared.job
    first, last = int(job.first_bar.min()), int(job.windows[0, -1])
    folds = fold_windows(first, last, n_splits, test_bars=test_bars, train_bars=train_bars,
                         gap=gap, anchored=anchored)
    _check_assets_cover(prepared, folds)
    longest = job.strategy.max_window(job.params)
    shortest_is = int((folds[:, 1] - folds[:, 0]).min()) + 1
    if longest >= shortest_is:
        raise ValueError(f"a window parameter of {longest} bars is not shorter than the "
                         f"{shortest_is}-bar in-sample window; use shorter windows, fewer "
                         "folds or a longer train_bars")
    n_assets = job.n_columns
    if anchored:  # one window, a checkpoint at each fold's in-sample end
        is_job = dataclasses.replace(job, windows=folds[None, :, 1].copy(),
                                     first_bar=np.full((n_assets, 1), first, dtype=np.int64))
    else:
        is_job = dataclasses.replace(job, windows=folds[:, 1:2].copy(),
                                     first_bar=np.tile(folds[:, 0], (n_assets, 1)))
    return prepared, folds, is_job


# ----------------------------------------------------------------- choosing
def _is_metrics(sink, anchored: bool):
    """In-sample metrics as (assets, folds, OUT_ROWS, sets): dense, or with a top-k
    sink its best set's alone (sets = 1: read at position 0)."""
    metrics = sink.metrics if isinstance(sink, DenseSink) else \
        sink.outputs[..., 0, :, None]  # (assets, windows, checks, OUT_ROWS, 1)
    return metrics[:, 0] if anchored else metrics[:, :, 0]


def _check_product(grid) -> None:
    if not grid.is_product or grid.kept is not None:
        raise ValueError("select='plateau' needs a product grid (a dict of lists, every "
                         "combination of the values, no constraint): neighbours are steps "
                         "on each parameter's axis; use select='per_asset' for this grid")


def _choose(prepared, sink, objective, select, anchored, lower, dense,
            radius=1) -> np.ndarray:
    """(assets, folds) sorted-set positions of each fold's chosen set (-1: none)."""
    job = prepared.job
    position = np.empty(job.n_sets, dtype=np.int64)  # grid row -> sorted position
    position[job.order] = np.arange(job.n_sets)
    if not dense:
        best = sink.best[..., 0]  # (assets, windows, checks) grid rows
        rows = best[:, 0, :] if anchored else best[:, :, 0]
        return np.where(rows >= 0, position[np.maximum(rows, 0)], -1)
    metrics = _is_metrics(sink, anchored)  # sorted-set order
    n_assets, n_folds = metrics.shape[:2]
    in_grid_order = metrics[..., position]  # (assets, folds, rows, grid rows)
    scores = np.empty((n_assets, n_folds, job.n_sets))
    for asset in range(n_assets):
        for fold in range(n_folds):
            block = in_grid_order[asset, fold]
            if callable(objective):
                table = pd.DataFrame(block[:N_METRICS].T, columns=list(METRIC_NAMES))
                for name in job.strategy.param_names:
                    table.insert(len(table.columns) - N_METRICS, name,
                                 prepared.grid.columns[name])
                table["ruined"] = block[RUINED_ROW] != 0.0
                values = np.asarray(objective(table), dtype=np.float64).reshape(-1)
                if values.shape != (job.n_sets,):
                    raise ValueError(f"the objective returned {values.shape[0]} scores for a "
                                     f"{job.n_sets}-row in-sample table")
            else:
                values = block[METRIC_NAMES.index(objective)]
                values = -values if lower else values
            scores[asset, fold] = np.where(block[RUINED_ROW] != 0.0, np.nan, values)
    if select == "universe":  # best mean over assets; a set ruined anywhere is out
        scores = np.broadcast_to(scores.mean(axis=0), scores.shape)
    elif select == "plateau":  # the centre of the best neighbourhood (grid order is C)
        scores = _plateau_scores(scores, prepared.grid, radius)
    safe = np.where(np.isnan(scores), -np.inf, scores)
    grid_rows = np.argmax(safe, axis=-1)  # first maximum = first in grid order
    none = np.isnan(scores).all(axis=-1)
    return np.where(none, -1, position[grid_rows])


def _plateau_scores(scores, grid, radius) -> np.ndarray:
    """Each (asset, fold)'s scores (grid order) replaced by their neighbourhood means
    (ties: the better worst value), NaN kept where the centre is ruined or NaN."""
    from btcore.selection import neighbourhood
    shape = tuple(len(values) for values in grid.axes.values())
    out = np.full(scores.shape, np.nan)
    for index in np.ndindex(scores.shape[:-1]):
        row = scores[index]
        if np.isnan(row).all():
            continue
        mean, worst, _ = neighbourhood(row.reshape(shape), radius)
        # a rank: by mean, then the worst value, then grid order (first wins)
        order = np.lexsort((-np.arange(row.size), worst.reshape(-1), mean.reshape(-1)))
        ranked = np.empty(row.size)
        ranked[order] = np.arange(row.size)
        out[index] = np.where(np.isnan(row), np.nan, ranked)
    return out


def _check_assets_cover(prepared, folds) -> None:
    job = prepared.job
    for column, first_bar in enumerate(job.first_bar[:, 0]):
        if first_bar > folds[0, 0]:
            symbol = prepared.data.symbols[prepared.asset_index[column]]
            raise ValueError(f"asset {symbol!r} starts trading at "
                             f"{prepared.data.index[first_bar].date()}, after the first "
                             f"in-sample window starts ({prepared.data.index[folds[0, 0]].date()});"
                             " leave it out (assets=) or start later")


# ------------------------------------------------------------ out of sample
def _out_of_sample(prepared, folds, chosen, is_metrics):
    """Run each fold's chosen set on its OOS window; build the result frames."""
    job, market = prepared.job, prepared.data
    n_assets, n_folds = chosen.shape
    index = market.index
    oos_job = dataclasses.replace(job, windows=folds[:, 3:4].copy(),
                                  first_bar=np.tile(folds[:, 2], (n_assets, 1)))
    oos_payload = oos_job.payload()
    symbols = [market.symbols[i] for i in prepared.asset_index]
    rows = []
    curves = {s: ([], []) for s in symbols}  # (equity pieces, their bar positions)
    capital = job.initial_capital
    for asset in range(n_assets):
        level = 1.0
        for fold in range(n_folds):
            p = int(chosen[asset, fold])
            row = {"fold": fold}
            if n_assets > 1 or market.n_assets > 1:
                row["asset"] = symbols[asset]
            is_start, is_end, oos_start, oos_end = folds[fold]
            row.update(is_start=index[is_start], is_end=index[is_end],
                       oos_start=index[oos_start], oos_end=index[oos_end])
            if p < 0:  # every in-sample set ruined: nothing to trade, stay in cash
                for param in job.strategy.params:
                    row[param.name] = np.nan
                row.update({f"is_{m}": np.nan for m in METRIC_NAMES})
                row.update({f"oos_{m}": np.nan for m in METRIC_NAMES})
                row.update(is_ruined=True, oos_ruined=False, efficiency=np.nan,
                           efficiency_note="every in-sample set ruined")
                rows.append(row)
                _extend(curves[symbols[asset]], np.full(oos_end + 1 - oos_start, capital * level),
                        oos_start)
                continue
            for param, value in zip(job.strategy.params, job.params[p]):
                row[param.name] = int(value) if param.kind is int else float(value)
            # dense: every set's in-sample metrics; top-k: the chosen set's alone
            is_out = is_metrics[asset, fold, :, p if is_metrics.shape[-1] == job.n_sets else 0]
            record = np.full((RECORD_ROWS, job.close.shape[0]), np.nan)
            task = Task(0, asset, fold, p, p + 1, 0.0)
            oos_out = run_task(oos_payload, task, record)
            check_targets(job, task, oos_out)  # out of sample too: an invalid target stops
            oos_out = oos_out[-1, :, 0]
            for prefix, out in (("is_", is_out), ("oos_", oos_out)):
                for m, name in enumerate(METRIC_NAMES):
                    value = out[m]
                    row[prefix + name] = int(value) if name in INTEGER_METRICS else float(value)
                row[prefix + "ruined"] = bool(out[RUINED_ROW])
            row["efficiency"], row["efficiency_note"] = walk_forward_efficiency(
                row["oos_cagr"], row["is_cagr"])
            rows.append(row)
            equity = record[RECORD_EQUITY, oos_start:oos_end + 1]
            _extend(curves[symbols[asset]], equity * level, oos_start)
            level *= equity[-1] / capital
    folds_table = pd.DataFrame(rows)
    # one Series per asset (not one per fold, concatenated): the same frame, cheaper
    oos_equity = pd.DataFrame({s: pd.Series(np.concatenate(pieces),
                                            index=_bars(index, np.concatenate(positions)))
                               for s, (pieces, positions) in curves.items()})
    ppy = job.periods_per_year
    oos_metrics = pd.DataFrame({s: equity_metrics(oos_equity[s].to_numpy(), capital, ppy)
                                for s in symbols}).T
    oos_benchmark = _oos_benchmark(prepared, oos_equity, oos_metrics,
                                   int(folds[0, 2]), int(folds[-1, 3]))
    per_asset = folds_table.groupby(folds_table["asset"] if "asset" in folds_table else
                                    np.zeros(len(folds_table), dtype=int), sort=False)
    mean_is_cagr = per_asset["is_cagr"].mean().to_numpy()
    ratios = [walk_forward_efficiency(o, i) for o, i in zip(oos_metrics["cagr"], mean_is_cagr)]
    efficiency = pd.Series([r[0] for r in ratios], index=symbols, name="efficiency")
    notes = pd.Series([r[1] for r in ratios], index=symbols, name="efficiency_note")
    stability = _stability(prepared, chosen, symbols)
    return folds_table, oos_equity, oos_metrics, efficiency, stability, oos_benchmark, notes


def _oos_benchmark(prepared, oos_equity, oos_metrics, first: int, last: int) -> pd.DataFrame:
    """Buy-and-hold over the out-of-sample bars ``first .. last``; adds the benchmark
    columns (and alpha/beta against a ``benchmark=`` series) to ``oos_metrics``."""
    job, series = prepared.job, prepared.benchmark_series
    capital, ppy = job.initial_capital, job.periods_per_year
    curves, rows = {}, []
    for column, symbol in enumerate(oos_equity.columns):
        prices = job.close[:, column] if series is None else series
        hold = buy_and_hold(prices, first, last, capital)
        curves[symbol] = hold
        benchmark_return, benchmark_sharpe = benchmark_values(hold, ppy)
        row = {"benchmark_return": benchmark_return,
               "excess_return": oos_metrics.loc[symbol, "total_return"] - benchmark_return,
               "benchmark_sharpe": benchmark_sharpe}
        if series is not None:
            equity = oos_equity[symbol].to_numpy()
            returns = equity / np.concatenate(([capital], equity[:-1])) - 1.0
            row["alpha"], row["beta"] = alpha_beta(returns[1:], hold[1:] / hold[:-1] - 1.0, ppy)
        rows.append(row)
    extra = pd.DataFrame(rows, index=oos_equity.columns)
    for name in extra.columns:
        oos_metrics[name] = extra[name].astype(np.float64)
    return pd.DataFrame(curves, index=oos_equity.index)


def _extend(curve, equity: np.ndarray, first: int) -> None:
    """Append a fold's OOS equity (bars ``first`` on) to ``curve`` = (pieces, positions)."""
    curve[0].append(equity)
    curve[1].append(np.arange(first, first + equity.size))


def _bars(index: pd.Index, positions: np.ndarray) -> pd.Index:
    """``index[positions]``, as a slice when they are consecutive (keeps a frequency)."""
    if positions.size and (np.diff(positions) == 1).all():
        return index[positions[0]:positions[-1] + 1]
    return index[positions]


def walk_forward_efficiency(oos_cagr: float, is_cagr: float) -> tuple[float, str]:
    """Walk-forward efficiency ``oos_cagr / is_cagr`` and why it is NaN (``""`` if not).

    Defined only when the in-sample cagr is finite and positive: a ratio over a
    losing (or flat) in-sample result reads backwards (-1.9% in sample, -15.2% out
    gives +8.04; -1.1% in, +14.4% out gives -12.71), so it is NaN there.

    Returns
    -------
    (float, str)
        The ratio, or NaN with ``"in-sample cagr <= 0"`` or ``"cagr not finite"``.
    """
    if not (np.isfinite(oos_cagr) and np.isfinite(is_cagr)):
        return np.nan, "cagr not finite"
    if is_cagr <= 0:
        return np.nan, "in-sample cagr <= 0"
    return float(oos_cagr / is_cagr), ""


def _stability(prepared, chosen, symbols) -> pd.DataFrame:
    job = prepared.job
    spans = np.array([np.ptp(prepared.grid.columns[n]) for n in job.strategy.param_names])
    spans = np.where(spans > 0, spans, 1.0)
    records = []
    for asset in range(chosen.shape[0]):
        picks = chosen[asset][chosen[asset] >= 0]
        if len(picks) < 2:
            records.append({"changes": np.nan, "mean_step": np.nan})
            continue
        values = job.params[picks]
        steps = np.abs(np.diff(values, axis=0)) / spans
        records.append({"changes": float((np.diff(picks) != 0).mean()),
                        "mean_step": float(steps.mean())})
    return pd.DataFrame(records, index=symbols)


__all__ = ["WalkForwardResult", "fold_windows", "walk_forward", "walk_forward_efficiency"]
