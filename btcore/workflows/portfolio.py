"""Portfolios of one account: ``run_portfolio_sweep`` and ``portfolio_backtest``.

Each parameter set of a single-asset strategy trades every asset of a universe
as a *sleeve* of one account (``docs/portfolios.md``). The accounting lives in
:mod:`btcore.kernels.portfolio`; this module validates the inputs, binds the
strategy's functions to the portfolio kernel in a generated, disk-cached
kernel module (next to the one ``btcore.binding`` writes), cuts the parameter
sets into tasks (one universe per task) and runs them on any executor.
"""
from __future__ import annotations

import hashlib
import math
import pathlib
import re
import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

import btcore.kernels.portfolio as kernels_portfolio
import btcore.strategies as strategies
from btcore import binding
from btcore.binding import KernelRef, debug_functions, generate_source, load_kernel
from btcore.engine import ArraySink, Task, check_targets
from btcore.engine.plan import compile_kernel
from btcore.grid import Grid, as_grid
from btcore.kernels.portfolio import (AVG_CORRELATION_ROW, CONSTRUCTION, N_CONSTRUCTION,
                                      PORTFOLIO_OUT_ROWS, RECORD_LAYERS, RECORD_SHARES,
                                      RECORD_TRANSFER, RECORD_TRIP_PNL, RECORD_VALUE,
                                      TURNOVER_ROW, empty_portfolio_record,
                                      portfolio_kernel_nb)
from btcore.kernels.single import RUINED_ROW
from btcore.metrics import INTEGER_METRICS, METRIC_NAMES
from btcore.settings import check_arguments
from btcore.store import ResultStore
from btcore.workflows.base import RunOptions, execute, parameters_of, prepare
from btcore.workflows.sweep import SweepResult

PORTFOLIO_COLUMNS = ("turnover", "avg_correlation")
_PORTFOLIO_ARGS = ("close, first_bars, last_bar, series_which, series_values, set_series, "
                   "params, options, construction, initial_capital, cost_bps, "
                   "periods_per_year, out, record_equity, record")


# ----------------------------------------------------------------- binding
def _portfolio_digest() -> str:
    hasher = hashlib.sha256(binding.BTCORE_DIGEST.encode())
    hasher.update(pathlib.Path(kernels_portfolio.__file__).read_bytes())
    return hasher.hexdigest()


def portfolio_source(spec) -> tuple[str, object]:
    """The portfolio kernel module's source: ``binding.generate_source``'s text
    (``compute_indicator_nb``, ``select_series_nb``, ``load_values_nb``, the rule as
    ``_signal_nb``) plus the ``portfolio_batch_nb`` wrapper of the portfolio kernel."""
    text, source = generate_source(spec)
    parts = [text.rstrip("\n"),
             "from btcore.kernels.portfolio import portfolio_kernel_nb as _portfolio_kernel_nb"]
    parts.append("@_njit(cache=True, nogil=True, error_model='numpy')\n"
                 f"def portfolio_batch_nb({_PORTFOLIO_ARGS}):\n"
                 f"    _portfolio_kernel_nb({_PORTFOLIO_ARGS}, compute_indicator_nb, "
                 "select_series_nb, load_values_nb, _signal_nb)")
    return "\n\n\n".join(parts) + "\n", source


def portfolio_kernel_ref(spec) -> KernelRef:
    """The :class:`~btcore.binding.KernelRef` of ``spec``'s portfolio kernel module;
    its name holds a digest of the source, btcore's kernel files, the portfolio
    kernel and the strategy's own files (as ``binding.kernel_ref``)."""
    cached = spec._cache.get("portfolio_kernel_ref")
    if cached is None:
        text, source = portfolio_source(spec)
        hasher = hashlib.sha256(text.encode())
        hasher.update(_portfolio_digest().encode())
        for file in sorted(source.files):
            try:
                hasher.update(pathlib.Path(file).read_bytes())
            except OSError:
                hasher.update(file.encode())
        slug = re.sub(r"\W", "_", spec.name)[:40]
        module_name = f"btcore_portfolio_{slug}_{hasher.hexdigest()[:16]}"
        cached = KernelRef(spec.name, module_name, text, tuple(sorted(source.roots)))
        spec._cache["portfolio_kernel_ref"] = cached
    return cached


# ------------------------------------------------------------------ one task
def run_portfolio_task(shared: dict, task: Task, record=None) -> np.ndarray:
    """Evaluate parameter sets ``task.start:task.stop`` on the shared universe:
    ``out`` (PORTFOLIO_OUT_ROWS, n_sets). Every array handed to the kernel is a
    fresh C-contiguous copy (one compiled specialisation whatever the transport)."""
    rows = slice(task.start, task.stop)
    set_series = shared["set_series"][rows]
    needed, local = np.unique(set_series, return_inverse=True)
    series = shared["series"][needed]
    capital, cost_bps, periods_per_year = (float(v) for v in shared["settings"])
    close = np.ascontiguousarray(shared["close"], dtype=np.float64)
    out = np.empty((PORTFOLIO_OUT_ROWS, task.n_sets), dtype=np.float64)
    record_equity, record_layers = (empty_portfolio_record(close.shape[1]) if record is None
                                    else record)
    args = (close, np.array(shared["first_bars"], dtype=np.int64), int(shared["last_bar"]),
            np.ascontiguousarray(series[:, 0], dtype=np.int64),
            np.ascontiguousarray(series[:, 1:], dtype=np.float64),
            np.ascontiguousarray(local.reshape(set_series.shape), dtype=np.int64),
            np.array(shared["params"][rows], dtype=np.float64),
            np.array(shared["options"], dtype=np.float64),
            np.array(shared["construction"][rows], dtype=np.float64),
            capital, cost_bps, periods_per_year, out, record_equity, record_layers)
    if shared["debug"]:  # plain Python: breakpoints and prints in the strategy work
        portfolio_kernel_nb.py_func(*args, *debug_functions(shared["strategy_kernel"]))
    else:
        load_kernel(shared["kernel"]).portfolio_batch_nb(*args)
    return out


# ---------------------------------------------------------------- preparing
@dataclass
class PortfolioJob:
    """A validated portfolio sweep (parameter sets sorted as ``sweep.prepare`` sorts)."""

    prepared: object          # btcore.workflows.sweep.Prepared (single-asset job, for its arrays)
    construction: np.ndarray  # (n_sets, N_CONSTRUCTION), sorted order
    grid_construction: dict   # construction name -> values in grid order
    kernel: KernelRef

    @property
    def job(self):
        return self.prepared.job

    @property
    def first_bar(self) -> int:
        return int(self.job.first_bar[:, 0].min())

    @property
    def last_bar(self) -> int:
        return int(self.job.windows[0, -1])

    @property
    def n_assets(self) -> int:
        return int(self.job.close.shape[1])

    @property
    def asset_bars(self) -> int:
        """Bars x assets one parameter set runs over (one task block)."""
        return (self.last_bar - self.first_bar + 1) * self.n_assets

    # the engine's job protocol (btcore.engine.Job): every set over one block, the
    # whole universe
    @property
    def n_sets(self) -> int:
        return self.job.n_sets

    @property
    def traded_bars(self) -> np.ndarray:
        return np.array([[self.asset_bars]], dtype=np.int64)

    @property
    def close(self) -> np.ndarray:
        return self.job.close

    @property
    def strategy(self):
        return self.job.strategy

    @property
    def debug(self) -> bool:
        return self.job.debug

    @property
    def name(self) -> str:
        return f"{self.job.strategy.name} portfolio"

    @property
    def cost_factor(self) -> float:
        return self.job.strategy.cost_factor

    @property
    def task_fn(self):
        return run_portfolio_task

    def check(self, task: Task, out: np.ndarray) -> None:
        check_targets(self.job, task, out[None])  # the flag row is where a sweep's has it

    def payload(self) -> dict:
        job = self.job
        return {"kernel": self.kernel, "close": job.close,
                "first_bars": np.ascontiguousarray(job.first_bar[:, 0]),
                "last_bar": self.last_bar, "params": job.params, "series": job.series,
                "set_series": job.set_series, "options": job.options,
                "construction": self.construction,
                "settings": np.array([job.initial_capital, job.cost_bps,
                                      job.periods_per_year]),
                "debug": job.debug, "strategy_kernel": job.kernel}


def _check_construction_value(name: str, values: np.ndarray) -> None:
    """ValueError for a construction setting outside its range (inf = none)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if np.isnan(values).any() or (values == -np.inf).any():
        raise ValueError(f"{name} must be a number (inf or None for none), got NaN or -inf")
    if name == "rebalance_every":
        bad = finite[(finite < 1) | (finite != np.round(finite))]
        if bad.size:
            raise ValueError(f"rebalance_every must be a whole number of bars >= 1 (None or inf "
                             f"for no rebalancing), got {bad[0]:g}")
    elif name == "portfolio_stop_drawdown":
        bad = finite[(finite <= 0) | (finite >= 1)]
        if bad.size:
            raise ValueError(f"portfolio_stop_drawdown is a fraction of the peak in (0, 1), "
                             f"got {bad[0]:g}")
    else:
        bad = finite[finite <= 0]
        if bad.size:
            raise ValueError(f"{name} must be > 0 (a fraction of equity; None for no cap), "
                             f"got {bad[0]:g}")


def _keyword_value(name: str, value) -> float:
    if value is None:
        return np.inf
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number or None, got {value!r}")
    _check_construction_value(name, np.array([float(value)]))
    return float(value)


def _strategy_grid(columns: dict, n_rows: int, spec):
    """A :class:`~btcore.grid.Grid` of the strategy's columns; its rows may repeat once
    the construction columns are split off (they differ there), so it is built
    without ``Grid``'s distinct-rows check."""
    unknown = [n for n in columns if n not in spec.param_names]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for strategy {spec.name!r} (the "
                         f"portfolio construction columns are {list(CONSTRUCTION)}); its "
                         f"parameters are:\n{spec.describe()}")
    if not columns:  # only construction columns: the strategy runs its defaults
        first = spec.params[0]
        columns = {first.name: np.full(n_rows, float(first.default))}
    grid = Grid.__new__(Grid)
    grid._columns = {name: np.asarray(values, dtype=np.float64) for name, values in
                     columns.items()}
    for values in grid._columns.values():
        values.flags.writeable = False
    return grid.with_defaults(spec)


def prepare_portfolio(grid, strategy, data, *, start, end, initial_capital, cost_bps,
                      periods_per_year, assets, options, rebalance_every=None,
                      max_gross_exposure=None, max_position_weight=None,
                      portfolio_stop_drawdown=None, debug=False) -> PortfolioJob:
    """Validate every input and build the portfolio job (no kernel runs here)."""
    spec = strategies.get(strategy)
    keywords = {"rebalance_every": rebalance_every, "max_gross_exposure": max_gross_exposure,
                "max_position_weight": max_position_weight,
                "portfolio_stop_drawdown": portfolio_stop_drawdown}
    full = as_grid(grid)
    columns = full.columns
    n_rows = len(full)
    construction = {}
    for name in CONSTRUCTION:
        if name in columns:
            if keywords[name] is not None:
                raise ValueError(f"{name} is both a grid column and a keyword; give it once")
            values = np.asarray(columns.pop(name), dtype=np.float64)
            _check_construction_value(name, values)
            construction[name] = values
        else:
            construction[name] = np.full(n_rows, _keyword_value(name, keywords[name]))
    strategy_grid = _strategy_grid(columns, n_rows, spec)
    prepared = prepare(strategy_grid, spec, data, start=start, end=end,
                       initial_capital=initial_capital, cost_bps=cost_bps,
                       periods_per_year=periods_per_year, assets=assets, debug=debug,
                       options=options)
    order = prepared.job.order
    matrix = np.column_stack([construction[name] for name in CONSTRUCTION])[order]
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    matrix.flags.writeable = False
    assert matrix.shape[1] == N_CONSTRUCTION
    prepared.settings["portfolio"] = True
    prepared.settings.update({name: keywords[name] for name in CONSTRUCTION})
    return PortfolioJob(prepared, matrix, construction, portfolio_kernel_ref(spec))


def build_portfolio_table(pjob: PortfolioJob, out: np.ndarray) -> pd.DataFrame:
    """One row per parameter set (grid order, then best Sharpe first, stable)."""
    job = pjob.job
    n_sets = job.n_sets
    position = np.empty(n_sets, dtype=np.int64)
    position[job.order] = np.arange(n_sets)
    grid_out = out[:, position]  # grid order
    sharpe = grid_out[METRIC_NAMES.index("sharpe_ratio")]
    rows = np.argsort(-np.nan_to_num(sharpe, nan=-np.inf), kind="stable")
    front = {}
    columns = pjob.prepared.grid.columns
    for param in job.strategy.params:
        values = np.asarray(columns[param.name])[rows]
        front[param.name] = values.astype(np.int64) if param.kind is int else values
    for name in CONSTRUCTION:
        front[name] = pjob.grid_construction[name][rows]
    table = pd.DataFrame(front)
    for m, name in enumerate(METRIC_NAMES):
        values = grid_out[m, rows]
        table[name] = values.astype(np.int64) if name in INTEGER_METRICS else values
    table["turnover"] = grid_out[TURNOVER_ROW, rows]
    table["avg_correlation"] = grid_out[AVG_CORRELATION_ROW, rows]
    table["ruined"] = grid_out[RUINED_ROW, rows] != 0.0
    return table


@dataclass
class PortfolioSweepResult(SweepResult):
    """:class:`~btcore.workflows.sweep.SweepResult` of :func:`run_portfolio_sweep`: one row per
    parameter set (one account over the universe); :meth:`backtest` replays a row
    with :func:`portfolio_backtest`."""

    def backtest(self, row=0, data=None, **overrides):
        row, spec, settings = self._replay(row, overrides, keys=("assets",))
        return portfolio_backtest(row, spec, self._data if data is None else data, **settings)

    def pbo(self, asset=None):  # pragma: no cover - not kept for portfolios
        raise ValueError("pbo() is not available for portfolio sweeps")


def run_portfolio_sweep(grid, strategy="mean_reversion", data=None, *, rebalance_every=None,
                        max_gross_exposure=None, max_position_weight=None,
                        portfolio_stop_drawdown=None, executor="serial", start=None, end=None,
                        initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None,
                        progress=None, batch_size="auto", assets=None, out=None,
                        overwrite=False, on_progress=None, debug=False,
                        **strategy_options) -> PortfolioSweepResult:
    """Backtest every parameter set of ``grid`` as one account trading every asset.

    Each asset of ``data`` (or of ``assets``) is a sleeve of the single-asset
    strategy, starting with ``initial_capital / n_assets`` and sizing from its own
    cash; the account's equity is the sum of the sleeves (``docs/portfolios.md``).

    Parameters
    ----------
    grid : dict of lists, DataFrame, list of dicts or Grid
        Strategy parameter sets; the construction settings below may be grid
        columns too (swept; ``inf`` means none).
    strategy : str or StrategySpec, default "mean_reversion"
        A single-asset strategy.
    data : MarketData, pandas object, path, or None (the bundled 20-stock sample)
    rebalance_every : int, optional
        Every this many bars from the first traded bar, each sleeve's budget is
        reset to equity / n and open positions are resized to floor(budget / close).
    max_gross_exposure : float, optional
        Cap on sum |shares x close| / equity, checked at each entry (scaled down to fit).
    max_position_weight : float, optional
        Cap on an entry's |shares x close| / equity.
    portfolio_stop_drawdown : float in (0, 1), optional
        Equity / peak - 1 <= -d closes every position; the account stays flat.
    executor, start, end, initial_capital, cost_bps, periods_per_year, progress,
    batch_size, assets, on_progress, debug, **strategy_options
        As in :func:`btcore.run_sweep`.
    out : str or path, optional
        A directory keeping every finished task, so re-running the same call
        after a crash or Ctrl-C computes only the missing ones (a different run
        there is an error unless ``overwrite=True``); the table is saved there as
        ``table.parquet``.

    Returns
    -------
    PortfolioSweepResult
        ``table``: parameters, the four construction columns, the portfolio's
        metrics, ``turnover`` and ``avg_correlation`` (NaN in sweeps; see
        :func:`portfolio_backtest`), ``ruined``.

    Raises
    ------
    ValueError, TypeError
        Bad grid, data, assets, window, settings, construction values or
        options, before any work starts.
    """
    started = time.perf_counter()
    check_arguments(strategy_options, strategy, run_portfolio_sweep)
    options = RunOptions(executor, batch_size, progress, on_progress, debug, out,
                         overwrite).check()
    pjob = prepare_portfolio(grid, strategy, data, start=start, end=end,
                             initial_capital=initial_capital, cost_bps=cost_bps,
                             periods_per_year=periods_per_year, assets=assets,
                             options=strategy_options, rebalance_every=rebalance_every,
                             max_gross_exposure=max_gross_exposure,
                             max_position_weight=max_position_weight,
                             portfolio_stop_drawdown=portfolio_stop_drawdown, debug=debug)
    sink = ArraySink(PORTFOLIO_OUT_ROWS, pjob.n_sets, "portfolio")
    run = execute(pjob, sink, options, started=started, open_store=lambda: ResultStore.open(
        out, pjob.prepared, batch_size=batch_size, overwrite=overwrite, kind="arrays",
        extra=dict(pjob.grid_construction), workflow="run_portfolio_sweep"))
    table = build_portfolio_table(pjob, sink.out)
    run.stats["assets"] = pjob.n_assets
    stats = run.finish("sharpe_ratio", {"table": table})
    job = pjob.job
    return PortfolioSweepResult(table, stats, job.strategy.name, pjob.prepared.settings,
                                job.strategy, pjob.prepared.data)


# ---------------------------------------------------------------- backtest
@dataclass
class PortfolioBacktestResult:
    """Result of :func:`portfolio_backtest`.

    Attributes
    ----------
    equity : pandas.Series
        Account equity after each traded bar.
    returns : pandas.Series
        r_t = E_t / E_{t-1} - 1 (E before the first traded bar = initial capital).
    weights : pandas.DataFrame
        bars x assets: shares x close / equity after each bar (0 once out of money).
    positions : pandas.DataFrame
        bars x assets: shares held after each bar.
    sleeve_values : pandas.DataFrame
        bars x assets: each sleeve's cash + shares x close after each bar.
    trades : pandas.DataFrame
        One row per sleeve round trip (``asset`` column; NaN exit fields when still open).
    metrics : dict
        The sweep row's metrics, ``turnover``, ``avg_correlation`` and ``ruined``.
    params : dict
        Strategy parameters and construction settings.
    drawdown : pandas.Series
        E_t / max(initial capital, E_0..E_t) - 1 (<= 0); its minimum is
        ``max_drawdown``.
    """

    equity: pd.Series
    returns: pd.Series
    weights: pd.DataFrame
    positions: pd.DataFrame
    sleeve_values: pd.DataFrame
    trades: pd.DataFrame
    metrics: dict
    params: dict
    drawdown: pd.Series | None = None

    def plot(self, max_named: int = 10):
        """Equity, drawdown and the per-asset weights over time (stacked, long above
        zero and short below, with the gross exposure); returns the matplotlib Figure
        (``plot`` extra). The ``max_named`` largest assets (by mean |weight|) are named;
        with more assets than that, the rest are one "other" band."""
        from btcore.plots import portfolio_figure
        return portfolio_figure(self, max_named=max_named)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"PortfolioBacktestResult({self.params}: {shown})"


def portfolio_backtest(params, strategy="mean_reversion", data=None, *, rebalance_every=None,
                       max_gross_exposure=None, max_position_weight=None,
                       portfolio_stop_drawdown=None, start=None, end=None,
                       initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None,
                       assets=None, **strategy_options) -> PortfolioBacktestResult:
    """One parameter set as one account over the universe, with per-bar detail.

    ``params`` is a dict of strategy parameters (construction settings may be in
    it too) or a row of a :func:`run_portfolio_sweep` table; a construction
    keyword given here overrides the row's. Metrics equal the sweep row's
    exactly; ``avg_correlation`` (NaN in sweeps) is computed here from the
    sleeves' returns.
    """
    check_arguments(strategy_options, strategy, portfolio_backtest)
    spec = strategies.get(strategy)
    if isinstance(params, pd.Series):
        params = params.to_dict()
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of name -> value or a result-table row, got "
                        f"{type(params).__name__}")
    keywords = {"rebalance_every": rebalance_every, "max_gross_exposure": max_gross_exposure,
                "max_position_weight": max_position_weight,
                "portfolio_stop_drawdown": portfolio_stop_drawdown}
    for name in CONSTRUCTION:  # a row's construction values, unless a keyword overrides
        value = params.get(name)
        if name in params and keywords[name] is None:
            keywords[name] = None if value is None or (
                isinstance(value, float) and math.isinf(value)) else value
    values, _ = parameters_of({k: v for k, v in params.items() if k not in CONSTRUCTION},
                              spec)
    pjob = prepare_portfolio({k: [v] for k, v in values.items()}, spec, data, start=start,
                             end=end, initial_capital=initial_capital, cost_bps=cost_bps,
                             periods_per_year=periods_per_year, assets=assets,
                             options=strategy_options, **keywords)
    compile_kernel(pjob)
    job = pjob.job
    n_bars, n_assets = job.close.shape
    record_equity = np.full(n_bars, np.nan)
    record = np.full((RECORD_LAYERS, n_bars, n_assets), np.nan)
    record[RECORD_TRANSFER] = 0.0
    task = Task(0, 0, 0, 0, 1, 0.0)
    out = run_portfolio_task(pjob.payload(), task, (record_equity, record))
    check_targets(job, task, out[None])
    first, last = pjob.first_bar, pjob.last_bar
    traded = slice(first, last + 1)
    market = pjob.prepared.data
    index = market.index[traded]
    symbols = list(pjob.prepared.settings["assets"])
    equity_values = record_equity[traded]
    equity = pd.Series(equity_values, index=index, name="equity")
    previous = np.concatenate(([job.initial_capital], equity_values[:-1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        growth = np.where(previous > 0.0, equity_values / previous, 1.0)
    returns = pd.Series(growth - 1.0, index=index, name="returns")
    peak = np.maximum.accumulate(np.maximum(equity_values, job.initial_capital))
    drawdown = pd.Series(equity_values / peak - 1.0, index=index, name="drawdown")
    close = job.close[traded]
    held = record[RECORD_SHARES, traded]
    with np.errstate(invalid="ignore"):
        marked = np.where(held != 0.0, held * np.nan_to_num(close), 0.0)
        weights = np.where(equity_values[:, None] > 0.0, marked / equity_values[:, None], 0.0)
    positions = pd.DataFrame(held, index=index, columns=symbols)
    values_frame = pd.DataFrame(record[RECORD_VALUE, traded], index=index, columns=symbols)
    metrics = {name: (int(out[m, 0]) if name in INTEGER_METRICS else float(out[m, 0]))
               for m, name in enumerate(METRIC_NAMES)}
    metrics["turnover"] = float(out[TURNOVER_ROW, 0])
    sleeve_returns = _sleeve_returns(record[RECORD_VALUE, traded],
                                     record[RECORD_TRANSFER, traded],
                                     job.initial_capital / n_assets)
    metrics["avg_correlation"] = average_correlation(sleeve_returns)
    metrics["ruined"] = bool(out[RUINED_ROW, 0])
    used = {p.name: (int(v) if p.kind is int else float(v))
            for p, v in zip(spec.params, job.params[0])}
    used.update({name: float(pjob.construction[0, i]) for i, name in enumerate(CONSTRUCTION)})
    trades = _trade_list(index, close, held, record[RECORD_TRIP_PNL, traded], symbols)
    return PortfolioBacktestResult(equity, returns,
                                   pd.DataFrame(weights, index=index, columns=symbols),
                                   positions, values_frame, trades, metrics, used, drawdown)


def _sleeve_returns(values: np.ndarray, transfers: np.ndarray, sleeve_capital: float):
    """(bars, assets) sleeve returns V_t / (V_{t-1} + transfer_t) - 1 (0 where undefined)."""
    previous = np.vstack([np.full((1, values.shape[1]), sleeve_capital), values[:-1]])
    base = previous + transfers
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = np.where(base > 0.0, values / base - 1.0, 0.0)
    return np.nan_to_num(returns, nan=0.0)


def average_correlation(returns: np.ndarray) -> float:
    """Mean pairwise Pearson correlation of the columns of ``returns`` that vary
    (NaN with fewer than 2 such columns)."""
    varying = returns[:, returns.std(axis=0) > 0.0]
    if varying.shape[1] < 2:
        return float("nan")
    corr = np.corrcoef(varying, rowvar=False)
    upper = corr[np.triu_indices(varying.shape[1], 1)]
    return float(np.mean(upper))


TRADE_COLUMNS = ("asset", "entry_time", "exit_time", "side", "shares", "entry_price",
                 "exit_price", "pnl", "bars_held")


def _trade_list(index, close, held, trip_pnl, symbols) -> pd.DataFrame:
    """Sleeve round trips from the per-bar shares: a trip opens where the sign of a
    sleeve's position becomes non-zero (or flips) and ends where it changes next."""
    rows = []
    n_bars = len(index)
    for a, symbol in enumerate(symbols):
        sign = np.sign(held[:, a])
        before = np.concatenate(([0.0], sign[:-1]))
        changes = np.flatnonzero(sign != before)
        entries = changes[sign[changes] != 0.0]
        exits = changes[before[changes] != 0.0]
        for j, bar in enumerate(entries):
            exit_bar = exits[j] if j < len(exits) else None
            rows.append({
                "asset": symbol, "entry_time": index[bar],
                "exit_time": index[exit_bar] if exit_bar is not None else pd.NaT,
                "side": int(sign[bar]), "shares": float(abs(held[bar, a])),
                "entry_price": float(close[bar, a]),
                "exit_price": float(close[exit_bar, a]) if exit_bar is not None else np.nan,
                "pnl": float(trip_pnl[exit_bar, a]) if exit_bar is not None else np.nan,
                "bars_held": int((exit_bar if exit_bar is not None else n_bars - 1) - bar),
            })
    frame = pd.DataFrame(rows, columns=list(TRADE_COLUMNS))
    return frame.sort_values(["entry_time", "asset"], kind="stable").reset_index(drop=True)


__all__ = ["run_portfolio_sweep", "portfolio_backtest", "PortfolioSweepResult",
           "PortfolioBacktestResult", "run_portfolio_task",
           "prepare_portfolio", "portfolio_kernel_ref", "portfolio_source",
           "average_correlation", "CONSTRUCTION"]
