"""Performance metrics: names, output layout and the formulas' definitions.

The kernels accumulate, per parameter set, a handful of running sums over the
traded bars (no per-bar arrays; ``btcore.kernels.accounting.MetricState``) and
``btcore.kernels.accounting.finalize_metrics_nb`` turns them into the metrics
below, written into rows ``0 .. N_METRICS - 1`` of a kernel's ``out`` array in
this order. Definitions (``docs/semantics.md``) follow empyrical (required
return 0, no risk-free rate):

- sharpe_ratio = mean(r) / std(r, ddof=1) * sqrt(periods_per_year); 0 if std == 0
- sortino_ratio = mean(r) * ppy / (sqrt(mean(min(r, 0)^2)) * sqrt(ppy));
  +inf when there is no downside and mean(r) > 0, NaN when mean(r) == 0 too
- annual_volatility = std(r, ddof=1) * sqrt(ppy)
- max_drawdown = min_t E_t / max(initial, E_0..E_t) - 1  (<= 0)
- cagr = (E_last / initial) ** (1 / years) - 1 with years = n / ppy; -1 if E_last == 0
- calmar_ratio = cagr / |max_drawdown|; NaN when max_drawdown == 0 or not finite
- num_trades = traded bars with at least one fill (per asset in a portfolio or
  book): an entry, an exit and a reversal bar each count once
- num_round_trips = closed round trips (entry to exit; a reversal closes one and
  opens the next; a position still open at the end is not counted)
- exposure = share of bars ending in the market
- win_rate = share of the num_round_trips closed round trips with positive P&L
  (costs included); NaN if none

An account whose equity reaches 0 or less is closed out and stays at 0 (the
out-of-money rule); the kernel flags such rows ``ruined`` and
``SweepResult.best`` skips them unless asked not to.

This module holds no Numba code: :func:`equity_metrics` is the numpy version of
the same formulas for curves no kernel ran.
"""
import math

import numpy as np

METRIC_NAMES = (
    "total_return", "final_value", "sharpe_ratio", "sortino_ratio", "annual_volatility",
    "max_drawdown", "cagr", "calmar_ratio", "num_trades", "num_round_trips", "exposure",
    "win_rate",
)
N_METRICS = len(METRIC_NAMES)
TOTAL_RETURN, FINAL_VALUE, SHARPE, SORTINO, VOLATILITY, MAX_DRAWDOWN, CAGR, CALMAR, \
    NUM_TRADES, NUM_ROUND_TRIPS, EXPOSURE, WIN_RATE = range(N_METRICS)
#: metrics that are whole numbers (stored as int64 in result tables)
INTEGER_METRICS = ("num_trades", "num_round_trips")
#: metrics where less is better: rankings sort them ascending, heatmaps reverse the colours
LOWER_IS_BETTER = frozenset({"annual_volatility"})


def equity_metrics(equity: np.ndarray, initial_capital: float, periods_per_year: float) -> dict:
    """The return-based metrics of an equity curve (numpy; same formulas as the
    kernel), for curves no kernel ran, such as stitched walk-forward equity.

    ``equity`` holds E_t after each bar; the equity before the first is
    ``initial_capital``. Trade counts need the trades, so they are not here.
    """
    equity = np.asarray(equity, dtype=np.float64)
    previous = np.concatenate(([initial_capital], equity[:-1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = np.where(previous > 0.0, equity / previous - 1.0, 0.0)
    n_bars = len(returns)
    mean = returns.mean()
    std = returns.std(ddof=1) if n_bars > 1 else 0.0
    annualizer = math.sqrt(periods_per_year)
    downside = math.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)) * annualizer
    if downside > 0.0:
        sortino = mean * periods_per_year / downside
    else:
        sortino = np.inf if mean > 0.0 else np.nan
    peak = np.maximum.accumulate(np.maximum(equity, initial_capital))
    max_drawdown = float(np.min(equity / peak) - 1.0)
    growth = equity[-1] / initial_capital
    cagr = growth ** (periods_per_year / n_bars) - 1.0 if growth > 0.0 else -1.0
    calmar = cagr / abs(max_drawdown) if max_drawdown < 0.0 else np.nan
    return {"total_return": growth - 1.0, "final_value": float(equity[-1]),
            "sharpe_ratio": mean / std * annualizer if std > 0.0 else 0.0,
            "sortino_ratio": sortino, "annual_volatility": std * annualizer,
            "max_drawdown": max_drawdown, "cagr": cagr,
            "calmar_ratio": calmar if math.isfinite(calmar) else np.nan}
