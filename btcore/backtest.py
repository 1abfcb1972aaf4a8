"""``backtest``: one parameter set on one asset, with per-bar equity, positions
and the trade list. It runs the same kernel as a sweep (with per-bar recording
switched on), so its metrics equal the matching ``run_sweep`` row exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from btcore.plan import run_kernel
from btcore.metrics import INTEGER_METRICS, METRIC_NAMES, N_METRICS, is_ruined


@dataclass
class BacktestResult:
    """Result of :func:`backtest`.

    Attributes
    ----------
    equity : pandas.Series
        Equity after each traded bar (cash + shares x close).
    positions : pandas.Series
        Shares held after each traded bar (negative = short).
    trades : pandas.DataFrame
        One row per round trip: entry/exit time, side, shares, prices, P&L
        (costs included; NaN exit fields for a position still open at the end).
    metrics : dict
        Same names and values as a ``run_sweep`` table row.
    params : dict
    asset : str
    """

    equity: pd.Series
    positions: pd.Series
    trades: pd.DataFrame
    metrics: dict
    params: dict
    asset: str

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"BacktestResult({self.asset}, {self.params}: {shown})"


def backtest(params: Mapping[str, float], strategy="mean_reversion", data=None, asset=None, *,
             start=None, end=None, initial_capital=1_000_000.0, cost_bps=5.0,
             periods_per_year=252, debug=False, **strategy_options) -> BacktestResult:
    """Run one parameter set on one asset and keep the per-bar detail.

    Parameters
    ----------
    params : dict
        One value per strategy parameter, e.g. ``{"lookback_period": 20, ...}``.
    strategy, data, start, end, initial_capital, cost_bps, periods_per_year, debug,
    **strategy_options
        As in :func:`btcore.run_sweep`.
    asset : str, optional
        Required when the data has several assets.

    Returns
    -------
    BacktestResult

    Examples
    --------
    >>> res = backtest({"lookback_period": 20, "entry_threshold": 2.0,
    ...                 "exit_threshold": 0.5, "stop_loss_z": 3.0}, asset="AAPL")  # doctest: +SKIP
    >>> res.trades.head()  # doctest: +SKIP
    """
    from btcore.data import as_market_data
    from btcore.sweep import prepare
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of name -> value, got {type(params).__name__}")
    market = as_market_data(data)
    if asset is None:
        if market.n_assets > 1:
            raise ValueError(f"the data has {market.n_assets} assets; pick one with asset=, "
                             f"one of {list(market.symbols)}")
        asset = market.symbols[0]
    if not isinstance(asset, str):
        raise TypeError(f"asset must be a symbol string, got {type(asset).__name__}")
    for name, value in params.items():
        if not np.isscalar(value):
            raise TypeError(f"params[{name!r}] must be one number, got {value!r}; use "
                            "run_sweep for several values")
    job = prepare({k: [v] for k, v in params.items()}, strategy, market, start=start, end=end,
                  initial_capital=initial_capital, cost_bps=cost_bps,
                  periods_per_year=periods_per_year, assets=[asset], debug=debug,
                  options=strategy_options)
    shared, spec = job.shared, job.spec
    close = shared["close"][0]
    first_bar, last_bar = int(shared["first_bar"][0]), job.last_bar
    equity = np.full(close.shape[0], np.nan)
    shares = np.full(close.shape[0], np.nan)
    out = np.empty((N_METRICS, 1), dtype=np.float64)
    args = (close, first_bar, last_bar, shared["key_values"], shared["combo_key"],
            shared["params"], shared["options"], shared["initial_capital"],
            shared["cost_bps"], shared["periods_per_year"], out, equity, shares)
    run_kernel(spec, args, debug=debug)
    index = market.index[first_bar:last_bar + 1]
    equity_series = pd.Series(equity[first_bar:last_bar + 1], index=index, name="equity")
    shares_series = pd.Series(shares[first_bar:last_bar + 1], index=index, name="shares")
    metrics = {name: (int(out[m, 0]) if name in INTEGER_METRICS else float(out[m, 0]))
               for m, name in enumerate(METRIC_NAMES)}
    metrics["ruined"] = bool(is_ruined(metrics["max_drawdown"]))
    used = {p.name: (int(v) if p.kind is int else float(v))
            for p, v in zip(spec.params, shared["params"][0])}
    trades = trade_list(close[first_bar:last_bar + 1], shares_series, equity_series,
                        shared["initial_capital"])
    return BacktestResult(equity_series, shares_series, trades, metrics, used, asset)


TRADE_COLUMNS = ("entry_time", "exit_time", "side", "shares", "entry_price", "exit_price",
                 "pnl", "return_pct", "bars_held")


def trade_list(close: np.ndarray, shares: pd.Series, equity: pd.Series,
               initial_capital: float) -> pd.DataFrame:
    """Round trips from the per-bar share counts.

    A trade's P&L is the equity after its exit bar minus the equity before its
    entry bar (both flat, so both are cash): costs on both legs included. A
    position still open at the end has NaN exit fields.
    """
    held = shares.to_numpy()
    value = equity.to_numpy()
    before = np.concatenate(([0.0], held[:-1]))
    changes = np.flatnonzero(held != before)
    entries = changes[held[changes] != 0.0]
    exits = changes[before[changes] != 0.0]  # entries and exits alternate
    closed = len(exits)
    start_value = np.where(entries > 0, value[np.maximum(entries - 1, 0)], initial_capital)
    exit_value = value[exits]
    # on a reversal bar the exit equity already holds the new position: no clean P&L
    pnl = np.where(held[exits] == 0.0, exit_value - start_value[:closed], np.nan)
    pad = len(entries) - closed  # 1 if a position is still open
    index = shares.index
    return pd.DataFrame({
        "entry_time": index[entries],
        "exit_time": index[exits].append(pd.DatetimeIndex([pd.NaT] * pad)),
        "side": np.sign(held[entries]).astype(np.int64),
        "shares": np.abs(held[entries]),
        "entry_price": close[entries],
        "exit_price": np.concatenate([close[exits], np.full(pad, np.nan)]),
        "pnl": np.concatenate([pnl, np.full(pad, np.nan)]),
        "return_pct": np.concatenate([pnl / start_value[:closed] * 100.0, np.full(pad, np.nan)]),
        "bars_held": np.concatenate([exits - entries[:closed],
                                     len(held) - 1 - entries[closed:]]),
    }, columns=list(TRADE_COLUMNS))
