"""``portfolio_backtest``: one parameter set as one account over the universe, with
per-bar equity, weights, positions, sleeve values and trades."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

import btcore.strategies as strategies
from btcore.engine import Task, check_targets
from btcore.engine.plan import compile_kernel
from btcore.kernels.portfolio import (CONSTRUCTION, RECORD_LAYERS,
                                      RECORD_SHARES, RECORD_TRANSFER, RECORD_TRIP_PNL,
                                      RECORD_VALUE, TURNOVER_ROW)
from btcore.kernels.single import RUINED_ROW
from btcore.metrics import INTEGER_METRICS, METRIC_NAMES
from btcore.settings import check_arguments
from btcore.workflows.base import parameters_of
from btcore.workflows.portfolio_job import prepare_portfolio, run_portfolio_task


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
    benchmark : pandas.Series
        Equity of the initial capital in equal-weight buy-and-hold of the universe
        (each asset's share bought at its first traded bar; ``btcore.benchmark``).
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
    benchmark: pd.Series | None = None

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
    hold, benchmark_return, benchmark_sharpe = pjob.benchmark()
    metrics.update(benchmark_return=benchmark_return,
                   excess_return=metrics["total_return"] - benchmark_return,
                   benchmark_sharpe=benchmark_sharpe)
    metrics["ruined"] = bool(out[RUINED_ROW, 0])
    used = {p.name: (int(v) if p.kind is int else float(v))
            for p, v in zip(spec.params, job.params[0])}
    used.update({name: float(pjob.construction[0, i]) for i, name in enumerate(CONSTRUCTION)})
    trades = _trade_list(index, close, held, record[RECORD_TRIP_PNL, traded], symbols)
    return PortfolioBacktestResult(equity, returns,
                                   pd.DataFrame(weights, index=index, columns=symbols),
                                   positions, values_frame, trades, metrics, used, drawdown,
                                   pd.Series(hold, index=index, name="benchmark"))


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


__all__ = ["PortfolioBacktestResult", "portfolio_backtest", "average_correlation"]
