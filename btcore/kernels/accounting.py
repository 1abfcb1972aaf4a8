"""The account's bookkeeping, written once for every kernel.

The single-asset, portfolio and cross-sectional kernels differ in how they
decide what to hold; they share how a trade is paid for, how an account that
runs out of money is closed out, and how the metrics are accumulated
(``docs/semantics.md``). Those rules live here as ``@njit(inline="always")``
blocks the kernels compose:

- :func:`trade_cost_nb` (the cash a trade costs, the one cost formula),
  :func:`fee_nb`, :func:`entry_size_nb` and :func:`fill_nb` (one bar's
  trading of a position held as a sign), :func:`valid_target_nb` (the rule's
  target is exactly -1, 0 or 1);
- :func:`close_out_nb` (a position closed because the account is out of money)
  and :func:`ruin_nb` (the account's last return, -1, and equity 0 after);
- the metric accumulator :class:`MetricState`, a named tuple of the return
  path's running sums (vectorbt's ``ProcessOrderState`` pattern) started by
  :func:`start_metrics_nb`, advanced by :func:`add_bar_nb` and turned into
  metrics, with the kernel's three trade counters (``num_trades``,
  ``round_trips``, ``winning_round_trips``: plain ints, measured faster than
  tuple fields), by :func:`finalize_metrics_nb`.

Every formula keeps the floating-point operation order of the kernels it was
taken from, so results are bit-identical to them.
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit

from btcore.metrics import (CAGR, CALMAR, EXPOSURE, FINAL_VALUE, MAX_DRAWDOWN, N_METRICS,
                            NUM_ROUND_TRIPS, NUM_TRADES, SHARPE, SORTINO, TOTAL_RETURN,
                            VOLATILITY, WIN_RATE)

#: rows of every kernel's ``out`` after the metrics: 1.0 if the account ran out of
#: money; the first bar whose target was not exactly -1, 0 or 1 (-1: none;
#: ``EMPTY_INDICATOR``: one of the set's indicators is NaN on every traded bar)
RUINED_ROW, INVALID_BAR_ROW = N_METRICS, N_METRICS + 1
OUT_ROWS = N_METRICS + 2
EMPTY_INDICATOR = -2
#: a set the kernel refused (``INVALID_BAR_ROW`` != -1) has no metrics: this row of
#: it holds what was wrong instead, the target the rule returned (a bar >= 0) or the
#: position of the indicator in the strategy's ``indicators`` (``EMPTY_INDICATOR``)
INVALID_VALUE_ROW = TOTAL_RETURN
TROUGH_SLACK = 1.0 + 1e-12


# ------------------------------------------------------------------ trading
@njit(inline="always", error_model="numpy")
def fee_nb(delta, price, fee_rate):
    """The fee of trading ``delta`` shares at ``price``: |delta| * price * fee_rate."""
    return abs(delta) * price * fee_rate


@njit(inline="always", error_model="numpy")
def trade_cost_nb(delta, price, fee_rate):
    """Cash a trade costs, fee included: delta * price + |delta| * price * fee_rate.

    The one trade-cost formula of every kernel: ``cash -= trade_cost_nb(...)``.

    Parameters
    ----------
    delta : float
        Shares bought (> 0) or sold (< 0).
    price : float
        The fill price.
    fee_rate : float
        ``cost_bps / 1e4``.

    Returns
    -------
    float
        The cash spent (negative when the trade raises cash).
    """
    return delta * price + fee_nb(delta, price, fee_rate)


@njit(inline="always", error_model="numpy")
def entry_size_nb(cash, price, fee_rate):
    """Shares an all-in entry buys: floor(cash / (price * (1 + fee_rate)))."""
    return np.floor(cash / (price * (1.0 + fee_rate)))


@njit(inline="always", error_model="numpy")
def fill_nb(target, position, shares, cash, price, fee_rate, entry_cash):
    """Trade from ``position`` to ``target`` at ``price`` (both signs in {-1, 0, 1}).

    An open position is closed first (its round trip ends: ``closed_pnl`` = cash
    after the exit - cash before the entry); a new one is sized
    :func:`entry_size_nb` from the cash left, and skipped if that is 0.

    Parameters
    ----------
    target, position : int
        The wanted and the held position sign.
    shares, cash : float
        Shares held (signed) and cash before the trade.
    price, fee_rate : float
    entry_cash : float
        Cash before the open position's entry.

    Returns
    -------
    tuple
        ``(position, shares, cash, entry_cash, filled, closed_trip, closed_pnl)``.
    """
    filled = False
    closed_trip = False
    closed_pnl = 0.0
    if position != 0:
        delta = -shares
        cash -= trade_cost_nb(delta, price, fee_rate)
        closed_trip = True
        closed_pnl = cash - entry_cash
        filled = True
        shares = 0.0
        position = 0
    if target != 0:
        size = entry_size_nb(cash, price, fee_rate)
        if size > 0.0:
            entry_cash = cash
            delta = target * size
            cash -= trade_cost_nb(delta, price, fee_rate)
            shares = delta
            position = target
            filled = True
    return position, shares, cash, entry_cash, filled, closed_trip, closed_pnl


@njit(inline="always", error_model="numpy")
def valid_target_nb(target):
    """Whether a rule's ``target`` is exactly -1, 0 or 1 (an int or a float).

    Written as equalities so that NaN, 0.5, 2 and -inf all fail: a range test such
    as ``abs(target) > 1`` lets NaN and 0.5 through. Kernels test it only when
    ``target != position``: a valid position never equals an invalid target.
    """
    return target == 0 or target == 1 or target == -1


@njit(inline="always", error_model="numpy")
def close_out_nb(shares, cash, price, fee_rate, entry_cash):
    """Close a position because the account is out of money (equity <= 0 after
    marking); the caller then leaves the account with nothing (:func:`ruin_nb`).

    Returns
    -------
    tuple
        ``(filled, closed_trip, closed_pnl)``: closing is a fill and ends a losing
        round trip (P&L = cash after closing - cash before the entry, as any exit).
    """
    if shares != 0.0:
        cash -= trade_cost_nb(-shares, price, fee_rate)
        return True, True, cash - entry_cash
    return False, False, 0.0


# ------------------------------------------------------------ metric state
class MetricState(NamedTuple):
    """The running sums of one account's return path (no per-bar arrays).

    Returns enter as d = r - ``return_shift`` (the first accumulated return):
    exact for the flat bars that are never added (r = 0; finalisation adds them
    in bulk) and well conditioned even when r is nearly constant. The trade
    counters stay plain ints in the kernels: as tuple fields, rebuilt at every
    fill, they cost 5-10 % of the single-asset kernel's speed
    (``benchmarks/bench_kernel.py``, one thread).
    """

    equity: float  #: E after the last accumulated bar
    peak: float  #: max(initial, E so far)
    min_equity_to_peak: float  #: min over bars of E / peak
    active_bars: int  #: bars with a fill or a position
    return_shift: float
    sum_shifted: float  #: sum of d
    sum_shifted_squares: float  #: sum of d^2
    sum_downside_squares: float  #: sum of min(r, 0)^2
    bars_in_market: int  #: bars ending with a position


@njit(inline="always", error_model="numpy")
def start_metrics_nb(initial_capital):
    """The :class:`MetricState` of an account holding ``initial_capital`` in cash."""
    return MetricState(initial_capital, initial_capital, 1.0, 0, 0.0, 0.0, 0.0, 0.0, 0)


@njit(inline="always", error_model="numpy")
def _add_return_nb(m, period_return, equity, in_market, downside_shift):
    """``m`` after a bar with return ``period_return`` that ends at ``equity``;
    the downside sum takes min(r - ``downside_shift``, 0) (the risk-free rate per bar)."""
    active_bars = m.active_bars
    return_shift = m.return_shift
    if active_bars == 0:
        return_shift = period_return
    shifted = period_return - return_shift
    downside = min(period_return - downside_shift, 0.0)  # branch-free: signs are unpredictable
    peak = max(m.peak, equity)
    min_equity_to_peak = m.min_equity_to_peak
    # a new trough is rare: divide only when one is possible; the slack covers
    # rounding, so the kept minimum is exactly min(equity / peak)
    if equity < peak * min_equity_to_peak * TROUGH_SLACK:
        min_equity_to_peak = min(min_equity_to_peak, equity / peak)
    return MetricState(equity, peak, min_equity_to_peak, active_bars + 1, return_shift,
                       m.sum_shifted + shifted, m.sum_shifted_squares + shifted * shifted,
                       m.sum_downside_squares + downside * downside,
                       m.bars_in_market + in_market)


@njit(inline="always", error_model="numpy")
def add_bar_nb(m, equity, in_market, downside_shift=0.0):
    """Account for a bar that ends with equity ``equity`` (> 0).

    Call it only for bars with a fill or a position: any other bar has r = 0
    exactly and is left to :func:`finalize_metrics_nb`.

    Parameters
    ----------
    m : MetricState
    equity : float
        E after the bar (cash + shares * close).
    in_market : bool
        A position is open at the bar's end.
    downside_shift : float
        The risk-free rate per bar (Sortino's downside is below it); 0 by default.

    Returns
    -------
    tuple
        ``(state, r)`` with r = equity / previous equity - 1.
    """
    period_return = equity / m.equity - 1.0
    return _add_return_nb(m, period_return, equity, in_market, downside_shift), period_return


@njit(inline="always", error_model="numpy")
def ruin_nb(m, downside_shift=0.0):
    """The account is out of money: this bar's return is -1, equity is 0 from here
    on (the following bars are flat, r = 0)."""
    return _add_return_nb(m, -1.0, 0.0, False, downside_shift)


@njit(cache=True, nogil=True, error_model="numpy")
def finalize_metrics_nb(out, k, n_bars, m, num_trades, round_trips, winning_round_trips,
                        initial_capital, periods_per_year, ruined, invalid_bar,
                        risk_free_per_bar=0.0):
    """Write the metrics of parameter set ``k`` into ``out[:, k]`` from its state.

    Parameters
    ----------
    out : ndarray
        (>= OUT_ROWS, n_sets): rows ``btcore.metrics.METRIC_NAMES``, then
        ``RUINED_ROW`` and ``INVALID_BAR_ROW``.
    k : int
    n_bars : int
        Traded bars so far; the ``n_bars - m.active_bars`` bars never accumulated
        had r = 0 exactly and are added here in bulk.
    m : MetricState
    num_trades : int
        Bars with at least one fill (per asset in a portfolio).
    round_trips, winning_round_trips : int
        Closed round trips, and those with a positive P&L (costs included).
    initial_capital, periods_per_year : float
    ruined : bool
    invalid_bar : int
        The first bar with a target other than -1, 0 or 1, -1 if none (or
        ``EMPTY_INDICATOR``); the kernel then writes ``INVALID_VALUE_ROW`` itself.
    risk_free_per_bar : float
        ``risk_free_rate / periods_per_year``: Sharpe and Sortino use r - it (the
        accumulated downside sums must have used the same shift).

    Notes
    -----
    Definitions: ``btcore.metrics`` and ``docs/semantics.md``.
    """
    flat_bars = n_bars - m.active_bars
    total = m.sum_shifted - flat_bars * m.return_shift
    squares = m.sum_shifted_squares + flat_bars * (m.return_shift * m.return_shift)
    mean = m.return_shift + total / n_bars
    excess = mean - risk_free_per_bar
    variance = (squares - total * (total / n_bars)) / (n_bars - 1)
    std = math.sqrt(variance) if variance > 0.0 else 0.0
    annualizer = math.sqrt(periods_per_year)
    out[SHARPE, k] = excess / std * annualizer if std > 0.0 else 0.0
    out[VOLATILITY, k] = std * annualizer
    flat_downside = min(-risk_free_per_bar, 0.0)  # a flat bar's r = 0, below rf when rf > 0
    downside_squares = m.sum_downside_squares + flat_bars * (flat_downside * flat_downside)
    downside = math.sqrt(downside_squares / n_bars) * annualizer
    if downside > 0.0:
        out[SORTINO, k] = excess * periods_per_year / downside
    elif excess != 0.0:  # a downside that underflowed to 0: the sign of the mean
        out[SORTINO, k] = np.inf if excess > 0.0 else -np.inf
    else:
        out[SORTINO, k] = np.nan
    growth = m.equity / initial_capital
    out[TOTAL_RETURN, k] = growth - 1.0
    out[FINAL_VALUE, k] = m.equity
    max_drawdown = m.min_equity_to_peak - 1.0
    out[MAX_DRAWDOWN, k] = max_drawdown
    years = n_bars / periods_per_year
    if growth > 0.0:
        cagr = growth ** (1.0 / years) - 1.0
    else:  # all capital lost: -100 % a year (empyrical); below zero it is undefined
        cagr = -1.0 if growth == 0.0 else np.nan  # (< 0 cannot happen: out of money)
    out[CAGR, k] = cagr
    calmar = cagr / abs(max_drawdown) if max_drawdown < 0.0 else np.nan
    out[CALMAR, k] = calmar if math.isfinite(calmar) else np.nan
    out[NUM_TRADES, k] = num_trades
    out[NUM_ROUND_TRIPS, k] = round_trips
    out[EXPOSURE, k] = m.bars_in_market / n_bars
    out[WIN_RATE, k] = winning_round_trips / round_trips if round_trips > 0 else np.nan
    out[RUINED_ROW, k] = 1.0 if ruined else 0.0
    out[INVALID_BAR_ROW, k] = invalid_bar


@njit(inline="always", error_model="numpy")
def turnover_nb(traded_value, sum_equity, n_bars, periods_per_year):
    """Annual turnover: traded value / mean equity / years (NaN if the mean is 0)."""
    mean_equity = sum_equity / n_bars
    years = n_bars / periods_per_year
    return traded_value / mean_equity / years if mean_equity > 0.0 else np.nan


__all__ = ["fee_nb", "trade_cost_nb", "entry_size_nb", "fill_nb", "valid_target_nb",
           "close_out_nb",
           "MetricState", "start_metrics_nb", "add_bar_nb", "ruin_nb", "finalize_metrics_nb",
           "turnover_nb", "OUT_ROWS", "RUINED_ROW", "INVALID_BAR_ROW", "INVALID_VALUE_ROW",
           "EMPTY_INDICATOR", "TROUGH_SLACK"]
