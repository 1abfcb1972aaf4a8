"""``backtest``: one parameter set on one asset, with per-bar equity, positions
and the trade list. It runs the same kernel as a sweep (with per-bar recording
switched on), so its metrics equal the matching ``run_sweep`` row exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import btcore.strategies as strategies
from btcore.benchmark import alpha_beta, buy_and_hold
from btcore.engine import Task, check_targets, preflight, run_task
from btcore.engine.calls import trade_log
from btcore.kernels import execution as log
from btcore.kernels.single import (RECORD_EQUITY, RECORD_ROWS, RECORD_SHARES,
                                   RUINED_ROW)
from btcore.metrics import INTEGER_METRICS, METRIC_NAMES
from btcore.settings import check_arguments
from btcore.workflows.base import parameters_of, prepare, resolve_data


@dataclass
class BacktestResult:
    """Result of :func:`backtest`.

    Attributes
    ----------
    equity : pandas.Series
        Equity after each traded bar (cash + shares x close; 0 once out of money).
    positions : pandas.Series
        Shares held after each traded bar (negative = short).
    returns : pandas.Series
        r_t = E_t / E_{t-1} - 1 (E before the first traded bar = initial capital).
    drawdown : pandas.Series
        E_t / max(initial, E_0..E_t) - 1 (<= 0); its minimum is ``max_drawdown``.
    trades : pandas.DataFrame
        One row per round trip: entry/exit time, side, shares, prices, P&L
        (costs of both legs included), ``return`` (P&L / cash before the entry,
        a fraction like every return: 0.05 is 5 %) and bars held (NaN exit
        fields for a position still open at the end). A reversal bar ends one
        trip and starts the next; the closed rows are ``metrics["num_round_trips"]``.
    metrics : dict
        Same names and values as a ``run_sweep`` table row (the benchmark columns
        and ``ruined`` included), and ``alpha`` and ``beta`` with ``benchmark=``.
    params : dict
    asset : str
    benchmark : pandas.Series
        Equity of the initial capital in the benchmark, bought at the first traded
        bar's close and held (no costs; ``btcore.benchmark``): the asset itself,
        or the ``benchmark=`` series.
    """

    equity: pd.Series
    positions: pd.Series
    returns: pd.Series
    drawdown: pd.Series
    trades: pd.DataFrame
    metrics: dict
    params: dict
    asset: str
    benchmark: pd.Series | None = None

    def plot(self):
        """Equity, drawdown and position with trade markers; returns the matplotlib
        Figure (``plot`` extra)."""
        from btcore.plots import backtest_figure
        return backtest_figure(self)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"BacktestResult({self.asset}, {self.params}: {shown})"


def backtest(params, strategy="mean_reversion", data=None, asset=None, *,
             start=None, end=None, initial_capital=1_000_000.0, cost_bps=5.0,
             periods_per_year=None, debug=False, benchmark=None,
             **strategy_options) -> BacktestResult:
    """Run one parameter set on one asset and keep the per-bar detail.

    Parameters
    ----------
    params : dict or pandas.Series
        One value per strategy parameter, e.g. ``{"lookback_period": 20, ...}``,
        or a row of a result table (its ``asset`` is used when ``asset`` is not
        given; metric columns are ignored). Parameters left out take their default.
    strategy, data, start, end, initial_capital, cost_bps, periods_per_year, debug,
    **strategy_options
        As in :func:`btcore.run_sweep`.
    asset : str, optional
        Required when the data has several assets (and ``params`` names none).
    benchmark : pandas.Series, optional
        Prices of another series (e.g. an index): the benchmark columns use it
        instead of the asset's own buy-and-hold, and ``metrics`` gains ``alpha``
        and ``beta`` (OLS of the per-bar returns on its per-bar returns;
        ``btcore.benchmark``).

    Returns
    -------
    BacktestResult

    Examples
    --------
    >>> res = backtest({"lookback_period": 20, "entry_threshold": 2.0,
    ...                 "exit_threshold": 0.5, "stop_loss_z": 3.0}, asset="AAPL")  # doctest: +SKIP
    >>> res.trades.head()  # doctest: +SKIP
    >>> sweep = run_sweep(grid); backtest(sweep.table.iloc[0])  # doctest: +SKIP
    """
    spec = strategies.get(strategy)
    check_arguments(strategy_options, spec, backtest)  # a misspelt keyword lands there
    params, row_asset = parameters_of(params, spec)
    market = resolve_data(data)
    asset = asset if asset is not None else row_asset
    if asset is None:
        if market.n_assets > 1:
            raise ValueError(f"the data has {market.n_assets} assets; pick one with asset=, "
                             f"one of {list(market.symbols)}")
        asset = market.symbols[0]
    if not isinstance(asset, str):
        raise TypeError(f"asset must be a symbol string, got {type(asset).__name__}")
    prepared = prepare({k: [v] for k, v in params.items()}, spec, market, start=start, end=end,
                       initial_capital=initial_capital, cost_bps=cost_bps,
                       periods_per_year=periods_per_year, assets=[asset], debug=debug,
                       options=strategy_options, replay=True, benchmark=benchmark)
    job = prepared.job
    first_bar, last_bar = int(job.first_bar[0, 0]), int(job.windows[0, -1])
    record = np.full((RECORD_ROWS, job.close.shape[0]), np.nan)
    task = Task(0, 0, 0, 0, 1, 0.0)
    preflight.check(job)  # a new strategy's first run: where a crash cannot end this process
    logged = trade_log(job.close.shape[0])
    out = run_task(job.payload(), task, record, logged)
    check_targets(job, task, out)
    traded = slice(first_bar, last_bar + 1)
    index = market.index[traded]
    equity = pd.Series(record[RECORD_EQUITY, traded], index=index, name="equity")
    shares = pd.Series(record[RECORD_SHARES, traded], index=index, name="shares")
    previous = np.concatenate(([job.initial_capital], equity.to_numpy()[:-1]))
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 after an out-of-money bar
        growth = np.where(previous > 0.0, equity.to_numpy() / previous, 1.0)
    returns = pd.Series(growth - 1.0, index=index, name="returns")
    peak = np.maximum.accumulate(np.maximum(equity.to_numpy(), job.initial_capital))
    drawdown = pd.Series(equity.to_numpy() / peak - 1.0, index=index, name="drawdown")
    metrics = {name: (int(out[-1, m, 0]) if name in INTEGER_METRICS else float(out[-1, m, 0]))
               for m, name in enumerate(METRIC_NAMES)}
    metrics.update(benchmark_metrics(prepared, metrics["total_return"], returns, traded,
                                     index))
    metrics["ruined"] = bool(out[-1, RUINED_ROW, 0])
    used = {p.name: (int(v) if p.kind is int else float(v))
            for p, v in zip(job.strategy.params, job.params[0])}
    trades = trade_list(logged, market.index, last_bar)
    held = prepared.benchmark_series if prepared.benchmark_series is not None else \
        job.close[:, 0]
    hold = pd.Series(buy_and_hold(held, first_bar, last_bar, job.initial_capital), index=index,
                     name="benchmark")
    return BacktestResult(equity, shares, returns, drawdown, trades, metrics, used, asset, hold)


def benchmark_metrics(prepared, total_return: float, returns: pd.Series, traded: slice,
                      index) -> dict:
    """The benchmark columns of one backtest, and ``alpha``/``beta`` with a series."""
    benchmark_return, benchmark_sharpe = (float(v) for v in prepared.benchmark[0])
    values = {"benchmark_return": benchmark_return,
              "excess_return": total_return - benchmark_return,
              "benchmark_sharpe": benchmark_sharpe}
    if prepared.benchmark_series is not None:
        prices = prepared.benchmark_series[traded]
        values["alpha"], values["beta"] = alpha_beta(
            returns.to_numpy()[1:], prices[1:] / prices[:-1] - 1.0,
            prepared.settings["periods_per_year"])
    return values


TRADE_COLUMNS = ("entry_time", "exit_time", "side", "shares", "entry_price", "exit_price",
                 "exit_reason", "fees", "borrow", "pnl", "return", "bars_held")


def trade_list(logged: np.ndarray, index: pd.DatetimeIndex, last_bar: int) -> pd.DataFrame:
    """The round trips of the kernel's trade log (``btcore.kernels.execution``).

    Prices are the fill prices (after slippage), ``fees`` both legs' costs and
    fixed fees, ``borrow`` what the short paid while open, ``pnl`` the cash after
    the exit minus the cash before the entry (all of these included) and
    ``return`` that P&L as a fraction of the cash before the entry. A position
    still open at the end has ``exit_reason`` "end" and NaN exit fields.
    """
    rows = logged[~np.isnan(logged[:, log.TRADE_ENTRY_BAR])]
    entry = rows[:, log.TRADE_ENTRY_BAR].astype(np.int64)
    exit_bar = rows[:, log.TRADE_EXIT_BAR]
    is_open = np.isnan(exit_bar)
    exits = np.where(is_open, 0, exit_bar).astype(np.int64)
    reasons = np.array(log.EXIT_REASONS, dtype=object)[
        rows[:, log.TRADE_EXIT_REASON].astype(np.int64)]
    return pd.DataFrame({
        "entry_time": index[entry],
        "exit_time": pd.DatetimeIndex(np.where(is_open, np.datetime64("NaT"),
                                               index[exits].to_numpy())),
        "side": rows[:, log.TRADE_SIDE].astype(np.int64),
        "shares": rows[:, log.TRADE_SHARES],
        "entry_price": rows[:, log.TRADE_ENTRY_PRICE],
        "exit_price": rows[:, log.TRADE_EXIT_PRICE],
        "exit_reason": pd.Categorical(reasons, categories=log.EXIT_REASONS),
        "fees": rows[:, log.TRADE_FEES],
        "borrow": rows[:, log.TRADE_BORROW],
        "pnl": rows[:, log.TRADE_PNL],
        "return": rows[:, log.TRADE_PNL] / rows[:, log.TRADE_ENTRY_CASH],
        "bars_held": np.where(is_open, last_bar, exits) - entry,
    }, columns=list(TRADE_COLUMNS))
