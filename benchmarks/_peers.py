"""Peer implementations of the mean-reversion sweep, for ``compare_peers.py`` only.

Each peer runs the docs/semantics.md strategy as its users would write it:

- ``vectorbt_sweep``: z-score frames per unique lookback (pandas rolling on the
  shifted close, ddof=1), broadcast to one column per (combo, asset), long and
  short entry/exit signal frames, ``vbt.Portfolio.from_signals`` and the
  portfolio's own metric methods for every column.
- ``backtesting_run`` / ``backtesting_optimize``: a ``backtesting.Strategy``
  with the z-score rule, ``Backtest(..., trade_on_close=True)`` on the window
  plus enough warm-up bars for the longest lookback.
- ``naive_backtest``: the seed article's style, a plain pandas loop over rows
  with ``df.iloc[i]``, equity kept in a list, metrics with pandas at the end.

Conventions shared with btcore (docs/semantics.md): z_t uses the
``lookback_period`` closes *before* t; fills at close_t; cost = ``cost_bps`` of
traded value on each leg; metrics over the traded bars [start, end] with the
equity before the first traded bar = initial capital. Where a peer cannot
follow btcore exactly the difference is left in and measured by the caller.

The peers (vectorbt, backtesting) are imported inside the functions: this
module stays importable, and btcore never imports any of it.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

PARAMS = ("lookback_period", "entry_threshold", "exit_threshold", "stop_loss_z")
COMPARED = ("total_return", "sharpe_ratio", "max_drawdown", "num_trades")


# ---------------------------------------------------------------- shared helpers
def combos_frame(grid: dict) -> pd.DataFrame:
    """The Cartesian product of ``grid`` in btcore's order (last name fastest)."""
    import itertools
    rows = list(itertools.product(*(grid[name] for name in PARAMS)))
    frame = pd.DataFrame(rows, columns=list(PARAMS))
    frame["lookback_period"] = frame["lookback_period"].astype(np.int64)
    return frame


def zscore(close, lookback: int):
    """(close - mean(W)) / std(W, ddof=1), W = the ``lookback`` closes before t (pandas)."""
    previous = close.shift(1)
    return (close - previous.rolling(lookback).mean()) / previous.rolling(lookback).std()


def equity_metrics(equity: np.ndarray, initial_capital: float, periods_per_year: float) -> dict:
    """docs/semantics.md metrics of an equity curve over the traded bars (numpy)."""
    previous = np.concatenate(([initial_capital], equity[:-1]))
    returns = equity / previous - 1.0
    std = returns.std(ddof=1)
    peak = np.maximum.accumulate(np.maximum(equity, initial_capital))
    return {
        "total_return": equity[-1] / initial_capital - 1.0,
        "sharpe_ratio": returns.mean() / std * math.sqrt(periods_per_year) if std > 0 else 0.0,
        "max_drawdown": float(np.min(equity / peak - 1.0)),
    }


# ---------------------------------------------------------------------- vectorbt
#: from_signals settings closest to btcore: whole shares, a bar with both an entry
#: and an exit signal exits when in a position, no reversal on an opposite entry.
VBT_ALIGNED = dict(size_granularity=1.0, upon_long_conflict="opposite",
                   upon_short_conflict="opposite", upon_opposite_entry="ignore")


def vectorbt_sweep(closes: pd.DataFrame, combos: pd.DataFrame, assets, start, end, *,
                   initial_capital: float, cost_bps: float, periods_per_year: float,
                   conventions: str = "aligned") -> pd.DataFrame:
    """Every combo x asset with vectorbt; one metrics row per column.

    ``closes``: full-history closes (bars, assets) so the z-scores warm up on
    the bars before ``start`` as in btcore. ``conventions``: "aligned" uses
    :data:`VBT_ALIGNED`; "defaults" leaves vectorbt's defaults (fractional
    shares, conflicting signals ignored, opposite entries reverse).
    """
    import vectorbt as vbt
    vbt.settings.returns["year_freq"] = f"{periods_per_year:g} days"  # with freq="1D"
    assets = list(assets)
    n_assets = len(assets)
    history = closes[assets]
    traded = history.loc[start:end]
    previous = history.shift(1)
    z_by_lookback = {}
    for lookback in np.unique(combos["lookback_period"].to_numpy()):
        mean = previous.rolling(int(lookback)).mean()
        std = previous.rolling(int(lookback)).std()
        z_by_lookback[lookback] = ((history - mean) / std).loc[start:end].to_numpy()
    # one column per (combo, asset), asset fastest, as in btcore's table
    column_lookback = np.repeat(combos["lookback_period"].to_numpy(), n_assets)
    column_asset = np.tile(np.arange(n_assets), len(combos))
    z = np.empty((len(traded), len(column_lookback)), dtype=np.float64)
    for lookback, values in z_by_lookback.items():
        selected = column_lookback == lookback
        z[:, selected] = values[:, column_asset[selected]]
    entry, exit_, stop = (np.repeat(combos[name].to_numpy(), n_assets)
                          for name in PARAMS[1:])
    columns = pd.MultiIndex.from_arrays(
        [column_lookback, entry, exit_, stop, np.array(assets, dtype=object)[column_asset]],
        names=[*PARAMS, "asset"])
    close = pd.DataFrame(traded.to_numpy()[:, column_asset], index=traded.index,
                         columns=columns)

    def frame(values):
        return pd.DataFrame(values, index=traded.index, columns=columns)

    distance = np.abs(z)
    settings = dict(VBT_ALIGNED) if conventions == "aligned" else {}
    portfolio = vbt.Portfolio.from_signals(
        close, entries=frame(z < -entry), exits=frame((distance < exit_) | (z < -stop)),
        short_entries=frame(z > entry), short_exits=frame((distance < exit_) | (z > stop)),
        fees=cost_bps / 1e4, init_cash=initial_capital, freq="1D", **settings)
    metrics = vectorbt_metrics(portfolio)
    return metrics.reset_index()


def vectorbt_metrics(portfolio) -> pd.DataFrame:
    """btcore's metric columns from a vectorbt Portfolio, one row per column."""
    return pd.DataFrame({
        "total_return": portfolio.total_return(),
        "final_value": portfolio.final_value(),
        "sharpe_ratio": portfolio.sharpe_ratio(),
        "sortino_ratio": portfolio.sortino_ratio(),
        "annual_volatility": portfolio.annualized_volatility(),
        "max_drawdown": portfolio.max_drawdown(),
        "cagr": portfolio.annualized_return(),
        "calmar_ratio": portfolio.calmar_ratio(),
        "num_trades": portfolio.orders.count(),  # orders = bars where the position changes
        "exposure": (portfolio.assets() != 0).mean(),
        "win_rate": portfolio.trades.closed.win_rate(),
    })


def vectorbt_replay(close: pd.Series, shares: np.ndarray, *, initial_capital: float,
                    cost_bps: float, periods_per_year: float):
    """vectorbt's equity and metrics when it is fed btcore's own position changes.

    Isolates accounting (sizing, fills, fees) and metric definitions from signal
    handling: with whole shares vectorbt should reproduce btcore's equity and
    metrics. ``shares``: (bars, columns) btcore positions over the traded bars.
    Returns ``(equity (bars, columns), metrics DataFrame)``.
    """
    import vectorbt as vbt
    vbt.settings.returns["year_freq"] = f"{periods_per_year:g} days"  # with freq="1D"
    before = np.vstack([np.zeros((1, shares.shape[1])), shares[:-1]])
    columns = pd.RangeIndex(shares.shape[1])

    def frame(values):
        return pd.DataFrame(values, index=close.index, columns=columns)

    prices = pd.DataFrame(np.repeat(close.to_numpy()[:, None], shares.shape[1], axis=1),
                          index=close.index, columns=columns)
    portfolio = vbt.Portfolio.from_signals(
        prices, entries=frame((shares > 0) & (before == 0)),
        exits=frame((before > 0) & (shares == 0)),
        short_entries=frame((shares < 0) & (before == 0)),
        short_exits=frame((before < 0) & (shares == 0)),
        fees=cost_bps / 1e4, init_cash=initial_capital, freq="1D", **VBT_ALIGNED)
    return portfolio.value().to_numpy(), vectorbt_metrics(portfolio).reset_index(drop=True)


# ------------------------------------------------------------------- backtesting.py
def _zscore_array(close, lookback):
    return zscore(pd.Series(close), int(lookback)).to_numpy()


def _strategy_class():
    """The backtesting.py Strategy, built on first use (backtesting imports lazily) and
    published as ``_peers.MeanReversion`` so optimize()'s worker processes can pickle it."""
    if "MeanReversion" in globals():
        return globals()["MeanReversion"]
    from backtesting import Strategy

    class MeanReversion(Strategy):
        """docs/semantics.md mean reversion; ``first_bar`` = first traded bar (warm-up before)."""

        lookback_period = 20
        entry_threshold = 2.0
        exit_threshold = 0.5
        stop_loss_z = 3.0
        first_bar = 0

        def init(self):
            self.z = self.I(_zscore_array, self.data.Close, self.lookback_period)

        def next(self):
            if len(self.data) - 1 < self.first_bar:
                return
            z = self.z[-1]
            if not self.position:
                if z < -self.entry_threshold:
                    self.buy()
                elif z > self.entry_threshold:
                    self.sell()
            elif self.position.is_long:
                if abs(z) < self.exit_threshold or z < -self.stop_loss_z:
                    self.position.close()
            elif abs(z) < self.exit_threshold or z > self.stop_loss_z:
                self.position.close()

    MeanReversion.__qualname__ = "MeanReversion"
    globals()["MeanReversion"] = MeanReversion
    return MeanReversion


def backtesting_setup(close: pd.Series, start, end, max_lookback: int, *,
                      initial_capital: float, cost_bps: float):
    """``(Backtest, first_bar)`` on the window plus ``max_lookback + 1`` warm-up bars.

    Only closes exist, so Open = High = Low = Close and ``trade_on_close=True``
    fills market orders at the close of the bar that placed them, as btcore does.
    """
    from backtesting import Backtest
    traded = close.loc[start:end]
    first = close.index.get_loc(traded.index[0])
    last = close.index.get_loc(traded.index[-1])
    first_bar = min(first, max_lookback + 1)
    window = close.iloc[first - first_bar:last + 1]
    frame = pd.DataFrame({"Open": window, "High": window, "Low": window, "Close": window})
    backtest = Backtest(frame, _strategy_class(), cash=initial_capital,
                        commission=cost_bps / 1e4, exclusive_orders=True, trade_on_close=True)
    return backtest, first_bar


def backtesting_metrics(stats, first_bar: int, initial_capital: float,
                        periods_per_year: float) -> dict:
    """The compared metrics from one ``Backtest.run`` result (docs/semantics.md formulas)."""
    equity = stats["_equity_curve"]["Equity"].to_numpy()[first_bar:]
    metrics = equity_metrics(equity, initial_capital, periods_per_year)
    still_open = 1 if stats["_strategy"].position.size != 0 else 0
    metrics["num_trades"] = 2 * len(stats["_trades"]) + still_open
    return metrics


# ------------------------------------------------------------------- naive loop
def naive_backtest(close: pd.Series, lookback_period, entry_threshold, exit_threshold,
                   stop_loss_z, *, start, end, initial_capital=1_000_000.0, cost_bps=5.0,
                   periods_per_year=252, seed_quirks=False) -> dict:
    """One backtest the seed article's way: pandas rolling, then a row loop with ``.iloc``.

    ``seed_quirks=False`` follows docs/semantics.md (shorts, sizing with the cost).
    ``seed_quirks=True`` keeps the seed's two quirks: the short entry trades
    ``-shares`` (0 when flat, a no-op) and sizing ignores the cost, so cash can
    go slightly negative; compare it with btcore's ``allow_short=False``.
    """
    df = pd.DataFrame({"close": close})
    df["mean"] = df["close"].shift(1).rolling(lookback_period).mean()
    df["std"] = df["close"].shift(1).rolling(lookback_period).std()
    df["zscore"] = (df["close"] - df["mean"]) / df["std"]
    df = df.loc[start:end]
    fee = cost_bps / 1e4
    cash, shares, trades = initial_capital, 0.0, 0
    equity = []
    for i in range(len(df)):
        row = df.iloc[i]
        price, z = row["close"], row["zscore"]
        delta = 0.0
        if shares == 0:
            if z < -entry_threshold:
                delta = math.floor(cash / (price if seed_quirks else price * (1 + fee)))
            elif z > entry_threshold:
                delta = -shares if seed_quirks else -math.floor(cash / (price * (1 + fee)))
        elif shares > 0:
            if abs(z) < exit_threshold or z < -stop_loss_z:
                delta = -shares
        elif abs(z) < exit_threshold or z > stop_loss_z:
            delta = -shares
        if delta != 0:
            cash -= delta * price + abs(delta) * price * fee
            shares += delta
            trades += 1
        equity.append(cash + shares * price)
    equity = pd.Series(equity, index=df.index)
    returns = equity.pct_change()
    returns.iloc[0] = equity.iloc[0] / initial_capital - 1.0
    std = returns.std()
    peak = equity.cummax().clip(lower=initial_capital)
    return {
        "total_return": equity.iloc[-1] / initial_capital - 1.0,
        "sharpe_ratio": returns.mean() / std * math.sqrt(periods_per_year) if std > 0 else 0.0,
        "max_drawdown": (equity / peak - 1.0).min(),
        "num_trades": trades,
    }
