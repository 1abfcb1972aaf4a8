"""The seed article's approach: pandas rolling z-score, then a per-row ``.iloc`` loop.

Used by the benchmarks as the "before" picture. Same decisions as btcore's
mean_reversion (sizing with costs, fills at the close, one change per bar) so
the per-backtest time compares like with like.
"""
import math

import numpy as np
import pandas as pd


def naive_backtest(close: pd.Series, lookback_period, entry_threshold, exit_threshold,
                   stop_loss_z, start=None, initial_capital=1_000_000.0, cost_bps=5.0):
    """One backtest, the slow way; returns (final equity, number of trades, sharpe)."""
    frame = pd.DataFrame({"close": close})
    previous = frame["close"].shift(1).rolling(lookback_period)
    frame["z"] = ((frame["close"] - previous.mean()) / previous.std()).fillna(0.0)
    if start is not None:
        frame = frame.loc[start:]
    fee = cost_bps / 1e4
    cash, shares, trades = initial_capital, 0.0, 0
    equity = []
    for i in range(len(frame)):
        row = frame.iloc[i]
        z, price = row["z"], row["close"]
        if shares == 0:
            side = 1 if z < -entry_threshold else (-1 if z > entry_threshold else 0)
            if side:
                size = math.floor(cash / (price * (1 + fee)))
                cash -= side * size * price + size * price * fee
                shares = side * size
                trades += 1
        elif abs(z) < exit_threshold or (z < -stop_loss_z if shares > 0 else z > stop_loss_z):
            cash += shares * price - abs(shares) * price * fee
            shares = 0.0
            trades += 1
        equity.append(cash + shares * price)
    returns = pd.Series(equity).pct_change().fillna(equity[0] / initial_capital - 1)
    sharpe = returns.mean() / returns.std() * np.sqrt(252) if returns.std() > 0 else 0.0
    return equity[-1], trades, sharpe
