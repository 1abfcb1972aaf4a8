"""The run template every workflow stands on.

A workflow (sweep, backtest, walk-forward, Monte Carlo, portfolio,
cross-sectional) is: check its own keywords and the shared run options
(:class:`RunOptions`), prepare a validated job (:func:`prepare` for the
single-asset kernel), hand it with a sink to :func:`execute` (auto executor,
result store, executor, the engine's one loop, clean-up), and build its result
from the sink. Everything here runs before any kernel does, or around it.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

import btcore.strategies as strategies
from btcore._checks import check_callable, check_optional_bool
from btcore.benchmark import align_benchmark, benchmark_columns, series_label
from btcore.data import MarketData, as_market_data
from btcore.engine import Job, run_job
from btcore.engine.cost import resolve_auto
from btcore.execution import (check_data, check_leverage, grid_execution_names, make_execution,
                              split_settings, with_settings)
from btcore.execution import NAMES as EXECUTION_NAMES
from btcore.grid import as_grid
from btcore.metrics import METRIC_NAMES
from btcore.store import check_out
from btcore.sets import job_sets
from btcore.settings import run_settings
from btcore.strategies.base import check_rule


def resolve_data(data, price: str | None = None) -> MarketData:
    """``data`` as MarketData; None is the bundled 20-stock sample
    (:func:`btcore.datasets.sp500_sample`), anything else as
    :func:`btcore.data.as_market_data` takes it."""
    if data is None:
        from btcore.datasets import sp500_sample
        if price is not None:
            raise ValueError(f"price={price!r} picks a column of OHLCV data, but the bundled "
                             "sample holds adjusted closes only; leave price=None")
        return sp500_sample()
    return as_market_data(data, price)


# ----------------------------------------------------------------- run options
@dataclass(frozen=True)
class RunOptions:
    """How a workflow runs, whatever it computes (see :func:`btcore.run_sweep`)."""

    executor: object = "serial"
    batch_size: object = "auto"
    progress: bool | None = None
    on_progress: object = None
    debug: bool = False
    out: object = None
    overwrite: bool = False

    def check(self) -> "RunOptions":
        """TypeError/ValueError for a bad option, before any work; returns self."""
        check_batch_size(self.batch_size)
        check_optional_bool("progress", self.progress)
        check_callable("on_progress", self.on_progress, "(done, total, backtests_per_s)")
        if not isinstance(self.debug, bool):
            raise TypeError(f"debug must be True or False, got {self.debug!r}")
        check_out(self.out, self.overwrite)
        if self.debug and not (self.executor in ("serial", "auto") or
                               getattr(self.executor, "name", None) == "serial"):
            raise ValueError("debug=True runs plain Python in this process; use "
                             "executor='serial'")
        return self


# -------------------------------------------------------------- preparing
@dataclass
class Prepared:
    """A validated job and what the driver needs to label its results."""

    job: Job
    grid: object
    data: object
    asset_index: np.ndarray
    settings: dict
    #: (n_columns, 2) ``benchmark_return``, ``benchmark_sharpe`` per asset (btcore.benchmark)
    benchmark: np.ndarray | None = None
    #: the ``benchmark=`` series, one price per bar of the data (None: each asset's own)
    benchmark_series: np.ndarray | None = None


def prepare(grid, strategy, data, *, start, end, initial_capital, cost_bps, periods_per_year,
            assets, debug, options, n_blocks: int = 0, replay: bool = False,
            benchmark=None) -> Prepared:
    """Validate every input and build the job (no compiled kernel runs here).

    ``options`` holds the strategy's options and the execution settings
    (:mod:`btcore.execution`); ``replay``: run the execution kernel even with
    default settings (its trade log says why each trip ended). ``benchmark`` (a
    price series, or None for each asset's own buy-and-hold) sets the
    ``benchmark_*`` values of the result (:mod:`btcore.benchmark`)."""
    spec = strategies.get(strategy)
    settings_given, options = split_settings(options)
    option_values = spec.option_values(options)
    checked = spec._cache.setdefault("rule_checked", set())
    if tuple(option_values) not in checked:  # the rule, as plain Python, once per options
        check_rule(spec, options=option_values)
        checked.add(tuple(option_values))
    raw_grid = as_grid(grid)
    execution_names = grid_execution_names(raw_grid.names, spec)
    spec = with_settings(spec, execution_names)  # settings in the grid vary per set
    grid = as_grid(raw_grid, spec)  # parameters left out take their defaults
    grid.check(spec)
    execution = make_execution(settings_given, execution_names)
    check_leverage(execution, grid.value_range)
    market = resolve_data(data)
    check_data(execution, market.open is not None)
    capital, costs, ppy, basis = run_settings(initial_capital, cost_bps, periods_per_year,
                                              market.index)
    asset_index = market.asset_indices(assets)
    first, last = market.window(start, end)
    first_bar = np.maximum(first, market.first_valid[asset_index]).astype(np.int64)
    for position, bar in enumerate(first_bar):
        if last - bar + 1 < 2:
            symbol = market.symbols[asset_index[position]]
            raise ValueError(f"asset {symbol!r} has {max(last - bar + 1, 0)} bar(s) in the "
                             "window; exclude it with assets= or widen start/end")
    longest_window = max((math.ceil(grid.value_range(p.name)[1]) for p in spec.params
                          if p.is_window), default=0)
    targeting = "target_volatility" in execution_names and \
        grid.value_range("target_volatility")[1] > 0.0 or \
        bool(execution.values.get("target_volatility", 0.0))  # 0 (or off) needs no history
    if targeting:  # the volatility estimate's returns need lookback + 1 closes
        lookback = grid.value_range("volatility_lookback")[1] if \
            "volatility_lookback" in execution_names else \
            execution.values.get("volatility_lookback", 20)
        longest_window = max(longest_window, int(lookback) + 1)
    for asset in asset_index:
        history = last + 1 - int(market.first_valid[asset])
        if longest_window >= history:
            where = f" of asset {market.symbols[asset]!r}" if len(asset_index) > 1 else ""
            raise ValueError(f"a window parameter of {longest_window:.6g} bars is at least the "
                             f"{history:,} bars of data{where} up to the window end; use "
                             "shorter windows, more data, or leave the asset out (assets=)")
    block_starts = None
    if n_blocks == "year":  # a block per calendar year of the window
        years = market.index[first:last + 1].year
        block_starts = frozen(first + np.flatnonzero(np.r_[True, years[1:] != years[:-1]]))
        n_blocks = len(block_starts)
    close = market.close[:, asset_index]  # time-major (bars, assets)
    warn_unaffordable(close, first_bar, last, capital, costs,
                      [market.symbols[i] for i in asset_index])
    job = Job(spec, frozen(close), frozen(first_bar[:, None]),
              frozen(np.array([[last]], dtype=np.int64)),
              job_sets(spec, grid, option_values), frozen(option_values),
              capital, costs, ppy, n_blocks=n_blocks, debug=bool(debug), labels=market.index,
              execution=execution if replay or not execution.is_default else None,
              candles=market_candles(market, asset_index), block_starts=block_starts)
    settings = {
        "start": market.index[first], "end": market.index[last], "initial_capital": capital,
        "cost_bps": costs, "periods_per_year": ppy, "periods_per_year_basis": basis,
        "assets": [market.symbols[i] for i in asset_index],
        **spec.option_settings(option_values), **execution.settings(),
    }
    series = None
    if benchmark is not None:
        series = align_benchmark(benchmark, market.index, int(first_bar.min()), last)
        settings["benchmark"] = series_label(benchmark, series)
    values = benchmark_columns(close, first_bar, last, ppy, series)
    return Prepared(job, grid, market, asset_index, settings, values, series)


def market_candles(market: MarketData, asset_index: np.ndarray):
    """``(open, high, low)`` of the assets, each (bars, assets), or None for close-only
    data; a missing high or low is the bar's larger or smaller of open and close."""
    if market.open is None:
        return None
    close = market.close[:, asset_index]
    bar_open = market.open[:, asset_index]
    high = market.high[:, asset_index] if market.high is not None else \
        np.fmax(bar_open, close)
    low = market.low[:, asset_index] if market.low is not None else np.fmin(bar_open, close)
    return frozen(bar_open), frozen(high), frozen(low)


def warn_unaffordable(close: np.ndarray, first_bar: np.ndarray, last: int, capital: float,
                      cost_bps: float, symbols: list) -> None:
    """Warn (UserWarning) for each asset whose cheapest close in the window costs more
    than ``capital`` with costs: whole shares can never be bought, so every row of it
    shows 0 trades and a Sharpe of 0."""
    for column, symbol in enumerate(symbols):
        prices = close[int(first_bar[column]):last + 1, column]
        cheapest = float(np.nanmin(prices)) if prices.size else np.nan
        if cheapest * (1.0 + cost_bps / 1e4) > capital:
            warnings.warn(f"asset {symbol!r}: initial_capital={capital:,.6g} buys no whole "
                          f"share (its lowest close in the window is {cheapest:,.6g}), so "
                          "every backtest of it makes no trade; raise initial_capital",
                          UserWarning, stacklevel=4)


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous copy-or-view, safe to share with workers."""
    array = np.ascontiguousarray(array)
    if array.flags.writeable:
        if not array.flags.owndata:
            array = array.copy()
        array.flags.writeable = False
    return array


# ----------------------------------------------------------------- checks
def check_output(keep, sort_by, out, blocks) -> None:
    """The sweep table's options: rows kept in memory, the ranking metric, blocks."""
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, (int, np.integer))
                             or keep < 1):
        raise ValueError(f"keep must be a positive int (rows kept in memory) or None, got "
                         f"{keep!r}")
    if sort_by not in METRIC_NAMES:
        raise ValueError(f"sort_by={sort_by!r} is not a metric; choose from "
                         f"{list(METRIC_NAMES)}")
    if out is not None and blocks is not None:
        raise ValueError("blocks= (for pbo()) cannot be combined with out= yet: the per-block "
                         "sums are not stored; run the blocks= sweep without out=")


def check_blocks(blocks):
    """``blocks=`` as prepare takes it: 0 (none), an even int >= 2, or "year"."""
    if blocks is None:
        return 0
    if blocks == "year":
        return "year"
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)):
        raise TypeError(f"blocks must be an even int >= 2, 'year' or None, got {blocks!r}")
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be an even int >= 2 (CSCV splits them in halves), "
                         f"got {blocks}")
    return int(blocks)


def check_batch_size(batch_size) -> None:
    if batch_size == "auto":
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


# ------------------------------------------------------------------ the run
@dataclass
class Run:
    """A finished :func:`execute`: the engine's ``stats`` and the store, if any."""

    stats: dict
    store: object
    started: float

    def finish(self, sort_by: str, tables: Mapping[str, pd.DataFrame] | None = None) -> dict:
        """Stamp ``elapsed_s`` (validation to result, all included); with a store,
        save ``tables`` there as Parquet and mark the run complete. Returns stats."""
        self.stats["elapsed_s"] = time.perf_counter() - self.started
        if self.store is not None:
            for name, frame in (tables or {}).items():
                self.store.save_table(name, frame)
            self.store.complete(self.stats, sort_by)
            self.stats["out"] = str(self.store.path)
        return self.stats


def execute(job, sink, options: RunOptions, *, started: float, open_store=None,
            description: str = "", settings: dict | None = None) -> Run:
    """Run ``job`` into ``sink``: the one template of every workflow.

    ``executor="auto"`` is resolved on this job (its measured speed is reused by
    the run); ``open_store()`` opens the ``out=`` store (called only with
    ``out``; it may refuse a different study there); the executor is created
    from a name and closed here, or borrowed; the store is released if anything
    fails, Ctrl-C included, so a re-run resumes.
    """
    import btcore.executors as executors
    executor, choice = resolve_auto(options.executor, job)
    store = open_store() if options.out is not None and open_store is not None else None
    try:
        runner, owned = executors.get_executor(executor)
        try:  # RunOptions.check refused debug=True on anything but serial
            stats = run_job(job, runner, sink, batch_size=options.batch_size,
                            progress=options.progress, description=description,
                            on_progress=options.on_progress, store=store,
                            throughput=choice and choice.get("param_bars_per_s"))
        finally:
            if owned:
                runner.close()
    except BaseException:
        if store is not None:
            store.close()  # release the out= lock: a re-run or another process may resume
        raise
    if choice is not None:
        stats["executor_choice"] = choice
    for key in ("periods_per_year", "periods_per_year_basis"):  # the annualisation used
        if settings and key in settings:
            stats[key] = settings[key]
    return Run(stats, store, started)


# ------------------------------------------------------------ parameter rows
def parameters_of(params, spec) -> tuple[dict, str | None]:
    """``(parameter values, asset or None)`` from a dict or a result-table row;
    parameters left out take their defaults."""
    if isinstance(params, pd.Series):
        params = params.to_dict()
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of name -> value or a result-table row, got "
                        f"{type(params).__name__}")
    asset = params.get("asset")
    from_row = any(name in params for name in METRIC_NAMES)
    values = {}
    for name, value in params.items():
        if from_row and name not in spec.param_names and name not in EXECUTION_NAMES:
            continue  # a result row: metric and label columns are not parameters
        if not np.isscalar(value):
            raise TypeError(f"params[{name!r}] must be one number, got {value!r}; use "
                            "run_sweep for several values")
        values[name] = value
    for param in spec.params:
        values.setdefault(param.name, param.default)
    return values, asset if isinstance(asset, str) else None
