"""Cross-sectional strategies: ``run_cross_sectional_sweep`` and ``cross_sectional_backtest``.

Every ``rebalance_every`` bars the assets of a universe are ranked by their
trailing return over ``lookback_period`` bars; the account holds the ``top_k``
at each end of the ranking (``docs/cross_sectional.md``). The accounting lives
in :mod:`btcore.kernels.cross_sectional`, run through its generated kernel module
(the ``cross_sectional`` kind of :func:`btcore.kernels.binding.kernel_ref`, whose
name covers every kernel file it compiles); this module validates inputs, cuts
the parameter sets into tasks (one universe per task) and runs them on any
executor.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Mapping

import numpy as np
import pandas as pd

from btcore.benchmark import benchmark_values, equal_weight_buy_and_hold
from btcore.engine import ArraySink, Task
from btcore.grid import Grid, as_grid
from btcore.kernels.binding import kernel_ref, load_kernel
from btcore.execution import make_execution
from btcore.kernels.cross_sectional import (COST_NAMES, CS_OUT_ROWS, N_PARAMS, PARAM_NAMES,
                                            REBALANCE_EVERY, TURNOVER_ROW,
                                            cross_sectional_kernel_nb)
from btcore.kernels.single import RUINED_ROW
from btcore.metrics import INTEGER_METRICS, METRIC_NAMES
from btcore.settings import run_settings
from btcore.store import ResultStore
from btcore.workflows.base import RunOptions, execute, resolve_data
from btcore.workflows.sweep import SweepResult

STRATEGY = "cross_sectional"
DIRECTIONS = ("reversal", "momentum")
#: parameter -> default (used when a grid leaves the parameter out)
DEFAULTS = {"lookback_period": 20, "top_k": 5, "rebalance_every": 21, "gross_leverage": 1.0}
INTEGER_PARAMS = ("lookback_period", "top_k", "rebalance_every")
#: cost of a rebalance bar in holding bars, for planning tasks
REBALANCE_COST = 60.0


# ------------------------------------------------------------------ one task
def _empty_record():
    return np.empty(0, dtype=np.float64), np.empty((0, 0), dtype=np.float64)


def run_cross_sectional_task(shared: dict, task: Task, record=None) -> np.ndarray:
    """Evaluate parameter sets ``task.start:task.stop`` on the shared universe:
    ``out`` (CS_OUT_ROWS, n_sets). Arrays are fresh C-contiguous copies (one
    compiled specialisation whatever the transport)."""
    rows = slice(task.start, task.stop)
    capital, cost_bps, periods_per_year = (float(v) for v in shared["settings"])
    long_only, momentum = (bool(v) for v in shared["flags"])
    out = np.empty((CS_OUT_ROWS, task.n_sets), dtype=np.float64)
    record_equity, record_shares = _empty_record() if record is None else record
    kernel = (cross_sectional_kernel_nb.py_func if shared.get("debug") else
              load_kernel(shared["kernel"]).cross_sectional_batch_nb)
    kernel(
        np.ascontiguousarray(shared["close"], dtype=np.float64),
        np.array(shared["first_bars"], dtype=np.int64),
        np.array(shared["first_valid"], dtype=np.int64), int(shared["last_bar"]),
        np.array(shared["params"][rows], dtype=np.float64), long_only, momentum,
        capital, cost_bps, np.array(shared["costs"], dtype=np.float64), periods_per_year,
        out, record_equity, record_shares)
    return out


# ---------------------------------------------------------------- preparing
@dataclass
class CrossSectionalJob:
    """A validated cross-sectional sweep (parameter sets in grid order)."""

    close: np.ndarray        # (n_bars, n_assets) of the chosen assets, whole history
    first_bars: np.ndarray   # (n_assets,) first traded bar: max(window start, listing)
    first_valid: np.ndarray  # (n_assets,) listing bar
    last_bar: int
    params: np.ndarray       # (n_sets, N_PARAMS), sorted: most expensive sets first
    order: np.ndarray        # grid row of each sorted set
    columns: dict            # parameter -> values in grid order
    long_only: bool
    momentum: bool
    initial_capital: float
    cost_bps: float
    periods_per_year: float
    settings: dict
    data: object
    debug: bool = False
    costs: np.ndarray = None  # (4,) the COST_NAMES settings

    # the engine's job protocol (btcore.engine.Job): every set over one block, the
    # whole universe; no strategy code, so nothing to compile per strategy
    name = STRATEGY
    cost_factor = 1.0
    strategy = None

    @property
    def n_sets(self) -> int:
        return int(self.params.shape[0])

    @property
    def traded_bars(self) -> np.ndarray:
        return np.array([[(self.last_bar - self.first_bar + 1) * self.n_assets]],
                        dtype=np.int64)

    @property
    def task_fn(self):
        return run_cross_sectional_task

    def check(self, task: Task, out: np.ndarray) -> None:
        """Targets are the kernel's own: nothing to refuse."""

    @property
    def n_assets(self) -> int:
        return int(self.close.shape[1])

    @property
    def first_bar(self) -> int:
        return int(self.first_bars.min())

    @property
    def set_cost(self) -> np.ndarray:
        """Relative cost of each sorted set: a rebalance (ranking and trading every
        asset) costs about 60 bars of holding (measured on 500 assets)."""
        return 1.0 + REBALANCE_COST / self.params[:, REBALANCE_EVERY]

    def to_grid_order(self, out: np.ndarray) -> np.ndarray:
        """``out`` (rows, n_sets) in sorted-set order -> grid order."""
        grid = np.empty_like(out)
        grid[:, self.order] = out
        return grid

    def payload(self) -> dict:
        return {"close": self.close, "first_bars": self.first_bars,
                "first_valid": self.first_valid, "last_bar": self.last_bar,
                "params": self.params, "flags": np.array([self.long_only, self.momentum]),
                "settings": np.array([self.initial_capital, self.cost_bps,
                                      self.periods_per_year]), "debug": self.debug,
                "costs": self.costs,
                "kernel": kernel_ref(None, "cross_sectional")}


def store_view(cjob: CrossSectionalJob) -> SimpleNamespace:
    """The job as the result store fingerprints a run (a sweep's ``Prepared``): the
    kernel's code (btcore's kernel sources and the cross-sectional kernel), the
    flags, the grid, the prices, the settings."""
    job = SimpleNamespace(
        strategy=SimpleNamespace(name=STRATEGY, params=()),
        kernel=kernel_ref(None, "cross_sectional"),
        options=np.array([cjob.long_only, cjob.momentum], dtype=np.float64),
        close=cjob.close, n_blocks=0)
    return SimpleNamespace(job=job, grid=Grid(pd.DataFrame(cjob.columns)), data=cjob.data,
                           settings=cjob.settings)


def _check_columns(grid) -> dict:
    columns = as_grid(grid).columns
    unknown = [name for name in columns if name not in PARAM_NAMES]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for the cross-sectional strategy; "
                         f"its parameters are {list(PARAM_NAMES)}")
    n_rows = len(next(iter(columns.values())))
    checked = {}
    for name in PARAM_NAMES:
        values = np.asarray(columns[name], dtype=np.float64) if name in columns else \
            np.full(n_rows, float(DEFAULTS[name]))
        if not np.isfinite(values).all():
            raise ValueError(f"{name} must be finite, got {values[~np.isfinite(values)][0]}")
        if name in INTEGER_PARAMS:
            bad = values[(values < 1) | (values != np.round(values))]
            if bad.size:
                raise ValueError(f"{name} must be a whole number >= 1, got {bad[0]:g}")
        else:
            bad = values[values <= 0]
            if bad.size:
                raise ValueError(f"gross_leverage must be > 0 (a multiple of equity), "
                                 f"got {bad[0]:g}")
        checked[name] = values
    return checked


def prepare_cross_sectional(grid, data, *, direction, long_only, start, end, initial_capital,
                            cost_bps, periods_per_year, assets, debug=False,
                            costs=None) -> CrossSectionalJob:
    """Validate every input and build the job (no kernel runs here); ``costs``: the
    :data:`~btcore.kernels.cross_sectional.COST_NAMES` keywords given."""
    given = {name: value for name, value in (costs or {}).items() if value is not None}
    values = make_execution(given).values  # the single-asset settings' ranges and errors
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")
    if not isinstance(long_only, (bool, np.bool_)):
        raise TypeError(f"long_only must be True or False, got {long_only!r}")
    columns = _check_columns(grid)
    market = resolve_data(data)
    capital, costs, ppy, basis = run_settings(initial_capital, cost_bps, periods_per_year,
                                              market.index)
    asset_index = market.asset_indices(assets)
    n_assets = len(asset_index)
    if n_assets < 2:
        raise ValueError(f"a cross-sectional strategy ranks several assets; the universe has "
                         f"{n_assets} ({[market.symbols[i] for i in asset_index]})")
    limit = n_assets if long_only else n_assets // 2
    top_k = columns["top_k"]
    if (top_k > limit).any():
        what = "all" if long_only else "half of all"
        raise ValueError(f"top_k={top_k[top_k > limit][0]:g} exceeds {what} the universe's "
                         f"{n_assets} assets (at most {limit}"
                         f"{'' if long_only else ' when long and short'})")
    first, last = market.window(start, end)
    first_valid = np.ascontiguousarray(market.first_valid[asset_index], dtype=np.int64)
    first_bars = np.maximum(first, first_valid).astype(np.int64)
    if last - int(first_bars.min()) + 1 < 2:
        raise ValueError("no asset has 2 bars in the window; widen start/end")
    close = np.ascontiguousarray(market.close[:, asset_index], dtype=np.float64)
    params = np.column_stack([columns[n] for n in PARAM_NAMES])
    assert params.shape[1] == N_PARAMS
    # frequent rebalancing first: the costliest tasks start first
    order = np.argsort(params[:, REBALANCE_EVERY], kind="stable")
    params = np.ascontiguousarray(params[order])
    for array in (close, first_valid, first_bars, params, order):
        array.flags.writeable = False
    settings = {"start": market.index[first], "end": market.index[last],
                "initial_capital": capital, "cost_bps": costs, "periods_per_year": ppy,
                "periods_per_year_basis": basis,
                "assets": [market.symbols[i] for i in asset_index], "direction": direction,
                "long_only": bool(long_only),
                **{name: values[name] for name in COST_NAMES if values.get(name, 0.0) != 0.0}}
    cost_row = np.array([values.get(name, 0.0) for name in COST_NAMES])
    cost_row.flags.writeable = False
    return CrossSectionalJob(close, first_bars, first_valid, int(last), params, order, columns,
                             bool(long_only), direction == "momentum", capital, costs, ppy,
                             settings, market, bool(debug), cost_row)


def build_cross_sectional_table(cjob: CrossSectionalJob, out: np.ndarray) -> pd.DataFrame:
    """One row per parameter set from ``out`` in grid order, best Sharpe first (stable)."""
    sharpe = out[METRIC_NAMES.index("sharpe_ratio")]
    rows = np.argsort(-np.nan_to_num(sharpe, nan=-np.inf), kind="stable")
    front = {}
    for name in PARAM_NAMES:
        values = cjob.columns[name][rows]
        front[name] = values.astype(np.int64) if name in INTEGER_PARAMS else values
    table = pd.DataFrame(front)
    for m, name in enumerate(METRIC_NAMES):
        values = out[m, rows]
        table[name] = values.astype(np.int64) if name in INTEGER_METRICS else values
    table["turnover"] = out[TURNOVER_ROW, rows]
    benchmark_return, benchmark_sharpe = book_benchmark(cjob)
    table["benchmark_return"] = np.full(len(rows), benchmark_return)
    table["excess_return"] = table["total_return"].to_numpy() - benchmark_return
    table["benchmark_sharpe"] = np.full(len(rows), benchmark_sharpe)
    table["ruined"] = out[RUINED_ROW, rows] != 0.0
    return table


def book_benchmark(cjob: CrossSectionalJob) -> tuple[float, float]:
    """``(benchmark_return, benchmark_sharpe)`` of equal-weight buy-and-hold of the
    universe over the book's traded bars (``btcore.benchmark``)."""
    equity = equal_weight_buy_and_hold(cjob.close, cjob.first_bars, cjob.last_bar)
    return benchmark_values(equity, cjob.periods_per_year)


@dataclass
class CrossSectionalSweepResult(SweepResult):
    """:class:`~btcore.workflows.sweep.SweepResult` of :func:`run_cross_sectional_sweep`: one row
    per parameter set; :meth:`backtest` replays a row with :func:`cross_sectional_backtest`."""

    def backtest(self, row=0, data=None, **overrides):
        row = self._row(row)
        settings = {key: self.settings[key] for key in
                    ("start", "end", "initial_capital", "cost_bps", "periods_per_year",
                     "assets", "direction", "long_only")}
        settings.update({name: self.settings[name] for name in COST_NAMES
                         if name in self.settings})
        settings.update(overrides)
        return cross_sectional_backtest(row, self._data if data is None else data, **settings)

    def pbo(self, asset=None):  # pragma: no cover - not kept for cross-sectional sweeps
        raise ValueError("pbo() is not available for cross-sectional sweeps")


def run_cross_sectional_sweep(grid, data=None, *, direction="reversal", long_only=False,
                              executor="serial", start=None, end=None,
                              initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None,
                              progress=None, batch_size="auto", assets=None,
                              on_progress=None, debug=False, out=None, overwrite=False,
                              slippage_bps=None, fee_per_trade=None, borrow_bps=None,
                              risk_free_rate=None) -> CrossSectionalSweepResult:
    """Backtest every parameter set of ``grid`` as a ranked long/short book on one account.

    Every ``rebalance_every`` bars (from the first traded bar) the eligible
    assets are ranked by close_t / close_{t-L} - 1; ``reversal`` buys the
    ``top_k`` worst and sells the ``top_k`` best, ``momentum`` the opposite,
    each at ``gross_leverage / (2 top_k)`` of equity (``long_only``: the longs
    only, at ``gross_leverage / top_k``). See ``docs/cross_sectional.md``.

    Parameters
    ----------
    grid : dict of lists, DataFrame, list of dicts or Grid
        Columns among ``lookback_period``, ``top_k``, ``rebalance_every`` (whole
        numbers >= 1) and ``gross_leverage`` (> 0); missing ones take their
        defaults (20, 5, 21, 1.0).
    data : MarketData, pandas object, path, or None (the bundled 20-stock sample)
    direction : {"reversal", "momentum"}
    long_only : bool
    executor, start, end, initial_capital, cost_bps, periods_per_year, progress,
    batch_size, assets, on_progress, debug
        As in :func:`btcore.run_sweep` (``periods_per_year=None`` is inferred from
        the bar spacing; ``debug=True`` runs the kernel as plain Python).
    slippage_bps, fee_per_trade, borrow_bps, risk_free_rate : float, optional
        As in :func:`btcore.run_sweep` (``docs/semantics.md``): fills slipped
        against each trade, a cash fee per asset traded at a rebalance, borrow on
        shorts at each close, the rate Sharpe and Sortino are measured against.
        The book trades at each rebalance's close (no ``fill``, stops or sizing).
    out, overwrite : optional
        A directory keeping every finished task, so re-running the same call
        after a crash or Ctrl-C computes only the missing ones (a different run
        there is an error unless ``overwrite=True``); the table is saved there as
        ``table.parquet``.

    Returns
    -------
    CrossSectionalSweepResult
        ``table``: the four parameters, the metrics, ``turnover``, ``ruined``;
        best Sharpe first.

    Raises
    ------
    ValueError, TypeError
        Bad grid, data, assets, window, settings or direction; a universe of
        one asset; ``top_k`` above half the universe (all of it when long only);
        all before any work starts.
    """
    started = time.perf_counter()
    options = RunOptions(executor, batch_size, progress, on_progress, debug, out,
                         overwrite).check()
    cjob = prepare_cross_sectional(grid, data, direction=direction, long_only=long_only,
                                   start=start, end=end, initial_capital=initial_capital,
                                   cost_bps=cost_bps, periods_per_year=periods_per_year,
                                   assets=assets, debug=debug, costs=dict(
                                       slippage_bps=slippage_bps, fee_per_trade=fee_per_trade,
                                       borrow_bps=borrow_bps, risk_free_rate=risk_free_rate))
    sink = ArraySink(CS_OUT_ROWS, cjob.n_sets, "cross-sectional")
    run = execute(cjob, sink, options, started=started, open_store=lambda: ResultStore.open(
        out, store_view(cjob), batch_size=batch_size, overwrite=overwrite, kind="arrays",
        workflow="run_cross_sectional_sweep"), settings=cjob.settings)
    table = build_cross_sectional_table(cjob, cjob.to_grid_order(sink.out))
    run.stats["assets"] = cjob.n_assets
    stats = run.finish("sharpe_ratio", {"table": table})
    return CrossSectionalSweepResult(table, stats, STRATEGY, cjob.settings, None, cjob.data)


# ---------------------------------------------------------------- backtest
@dataclass
class CrossSectionalBacktestResult:
    """Result of :func:`cross_sectional_backtest`.

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
    metrics : dict
        The sweep row's metrics, ``turnover`` and ``ruined``.
    params : dict
    """

    equity: pd.Series
    returns: pd.Series
    weights: pd.DataFrame
    positions: pd.DataFrame
    metrics: dict
    params: dict

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"CrossSectionalBacktestResult({self.params}: {shown})"


def cross_sectional_backtest(params=None, data=None, *, direction="reversal", long_only=False,
                             start=None, end=None, initial_capital=1_000_000.0, cost_bps=5.0,
                             periods_per_year=None, assets=None, slippage_bps=None,
                             fee_per_trade=None, borrow_bps=None,
                             risk_free_rate=None) -> CrossSectionalBacktestResult:
    """One parameter set with per-bar equity, returns, weights and positions.

    ``params`` is a dict (missing parameters take their defaults) or a row of a
    :func:`run_cross_sectional_sweep` table; the metrics equal the sweep row's
    exactly.
    """
    if params is None:
        params = {}
    if isinstance(params, pd.Series):
        params = params.to_dict()
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of name -> value or a result-table row, got "
                        f"{type(params).__name__}")
    from_row = any(name in params for name in METRIC_NAMES)
    values = {}
    for name, value in params.items():
        if from_row and name not in PARAM_NAMES:
            continue
        if not np.isscalar(value):
            raise TypeError(f"params[{name!r}] must be one number, got {value!r}")
        values[name] = [value]
    if not values:
        values = {"top_k": [DEFAULTS["top_k"]]}
    cjob = prepare_cross_sectional(values, data, direction=direction, long_only=long_only,
                                   start=start, end=end, initial_capital=initial_capital,
                                   cost_bps=cost_bps, periods_per_year=periods_per_year,
                                   assets=assets, costs=dict(
                                       slippage_bps=slippage_bps, fee_per_trade=fee_per_trade,
                                       borrow_bps=borrow_bps, risk_free_rate=risk_free_rate))
    n_bars, n_assets = cjob.close.shape
    record_equity = np.full(n_bars, np.nan)
    record_shares = np.zeros((n_bars, n_assets))
    out = run_cross_sectional_task(cjob.payload(), Task(0, 0, 0, 0, 1, 0.0),
                                   (record_equity, record_shares))
    traded = slice(cjob.first_bar, cjob.last_bar + 1)
    index = cjob.data.index[traded]
    symbols = list(cjob.settings["assets"])
    equity_values = record_equity[traded]
    previous = np.concatenate(([cjob.initial_capital], equity_values[:-1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        growth = np.where(previous > 0.0, equity_values / previous, 1.0)
        held = record_shares[traded]
        marked = np.where(held != 0.0, held * np.nan_to_num(cjob.close[traded]), 0.0)
        weights = np.where(equity_values[:, None] > 0.0, marked / equity_values[:, None], 0.0)
    metrics = {name: (int(out[m, 0]) if name in INTEGER_METRICS else float(out[m, 0]))
               for m, name in enumerate(METRIC_NAMES)}
    metrics["turnover"] = float(out[TURNOVER_ROW, 0])
    benchmark_return, metrics["benchmark_sharpe"] = book_benchmark(cjob)
    metrics["benchmark_return"] = benchmark_return
    metrics["excess_return"] = metrics["total_return"] - benchmark_return
    metrics["ruined"] = bool(out[RUINED_ROW, 0])
    used = {name: (int(cjob.params[0, i]) if name in INTEGER_PARAMS else float(cjob.params[0, i]))
            for i, name in enumerate(PARAM_NAMES)}
    return CrossSectionalBacktestResult(
        pd.Series(equity_values, index=index, name="equity"),
        pd.Series(growth - 1.0, index=index, name="returns"),
        pd.DataFrame(weights, index=index, columns=symbols),
        pd.DataFrame(held, index=index, columns=symbols), metrics, used)


__all__ = ["run_cross_sectional_sweep", "cross_sectional_backtest",
           "CrossSectionalSweepResult", "CrossSectionalBacktestResult",
           "run_cross_sectional_task", "prepare_cross_sectional",
           "PARAM_NAMES", "DIRECTIONS"]
