"""Execution rules of the single-asset kernel beyond market-on-close
(``docs/semantics.md``, sections 7-10): fill timing, price stops on candles,
sizing, slippage, fixed fees and borrow.

The per-set settings travel as one row of ``execution`` (n_sets,
``N_EXECUTION``), columns named by the slot constants below (a setting that is
off is NaN); the run-level ones (fill timing, fractional shares) as ints. The
blocks here are ``@njit(inline="always")`` pieces :mod:`btcore.kernels.single_exec`
composes (the volatility estimate, rare and loop-heavy, is a plain call).
"""
import math

import numpy as np
from numba import njit

from btcore.kernels.accounting import fee_nb

#: columns of ``execution`` (per parameter set)
(STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, SIZE_FRACTION, TARGET_VOLATILITY, VOLATILITY_LOOKBACK,
 MAX_LEVERAGE, SLIPPAGE_BPS, FEE_PER_TRADE, BORROW_BPS, RISK_FREE_RATE) = range(11)
N_EXECUTION = 11
#: ``fill_mode``: when a target decided at the close of bar t trades
FILL_CLOSE, FILL_NEXT_OPEN, FILL_NEXT_CLOSE = 0, 1, 2
#: why a round trip ended (the trade log's ``TRADE_EXIT_REASON``)
(EXIT_SIGNAL, EXIT_STOP_LOSS, EXIT_TAKE_PROFIT, EXIT_TRAILING_STOP, EXIT_OUT_OF_MONEY,
 EXIT_END) = range(6)
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "out_of_money", "end")
#: columns of the trade log a single-set replay fills (one row per round trip)
(TRADE_ENTRY_BAR, TRADE_EXIT_BAR, TRADE_SIDE, TRADE_SHARES, TRADE_ENTRY_PRICE,
 TRADE_EXIT_PRICE, TRADE_EXIT_REASON, TRADE_FEES, TRADE_BORROW, TRADE_PNL,
 TRADE_ENTRY_CASH) = range(11)
TRADE_FIELDS = 11


@njit(inline="always", error_model="numpy")
def slipped_nb(price, side, slippage):
    """The fill price of a trade of sign ``side`` (1 buys, -1 sells) at ``price``:
    moved against the trade by the fraction ``slippage``."""
    return price * (1.0 + slippage) if side > 0 else price * (1.0 - slippage)


@njit(error_model="numpy")  # a call, not inlined: rare, and its loops would crowd the bar loop
def volatility_fraction_nb(close, decision_bar, lookback, target_volatility, max_leverage,
                           periods_per_year):
    """``min(max_leverage, target / sigma)``, sigma the annualised std (ddof=1) of
    the ``lookback`` simple returns ending at the bar before ``decision_bar``;
    0.0 (no entry) when a close it needs is missing or sigma is 0."""
    first = decision_bar - lookback - 1
    if first < 0:
        return 0.0
    total = 0.0
    for j in range(decision_bar - lookback, decision_bar):
        r = close[j] / close[j - 1] - 1.0
        if not math.isfinite(r):  # NaN closes: not listed yet
            return 0.0
        total += r
    mean = total / lookback
    squares = 0.0
    for j in range(decision_bar - lookback, decision_bar):
        d = close[j] / close[j - 1] - 1.0 - mean
        squares += d * d
    sigma = math.sqrt(squares / (lookback - 1)) * math.sqrt(periods_per_year)
    if not sigma > 0.0:
        return 0.0
    return min(max_leverage, target_volatility / sigma)


@njit(inline="always", error_model="numpy")
def stop_levels_nb(position, entry_price, extreme, settings):
    """The stop-loss, take-profit and trailing levels of a position (NaN: off): for a
    long P(1 - x), P(1 + y), peak(1 - z); a short mirrors them."""
    if position > 0:
        return (entry_price * (1.0 - settings[STOP_LOSS]),
                entry_price * (1.0 + settings[TAKE_PROFIT]),
                extreme * (1.0 - settings[TRAILING_STOP]))
    return (entry_price * (1.0 + settings[STOP_LOSS]),
            entry_price * (1.0 - settings[TAKE_PROFIT]),
            extreme * (1.0 + settings[TRAILING_STOP]))


@njit(inline="always", error_model="numpy")
def stop_exit_nb(position, bar_open, bar_high, bar_low, loss_level, profit_level, trail_level,
                 gap_only):
    """Whether a price stop closes ``position`` on a bar, at which price, and why.

    The levels come from :func:`stop_levels_nb` (NaN never compares true: a stop
    that is off). The open is looked at first (a gap beyond a level exits at the
    open); otherwise, when the bar reaches a level on each side, the stop side
    fills; of a stop-loss and a trailing level both reached, the one nearer the
    open. ``gap_only``: look at the open alone.

    Returns
    -------
    tuple
        ``(hit, price, reason)`` (price before slippage).
    """
    if position > 0:
        loss_hit_open = bar_open <= loss_level
        trail_hit_open = bar_open <= trail_level
        if loss_hit_open or trail_hit_open:
            if loss_hit_open and (not trail_hit_open or loss_level >= trail_level):
                return True, bar_open, EXIT_STOP_LOSS
            return True, bar_open, EXIT_TRAILING_STOP
        if bar_open >= profit_level:
            return True, bar_open, EXIT_TAKE_PROFIT
        if gap_only:
            return False, 0.0, EXIT_SIGNAL
        loss_hit = bar_low <= loss_level
        trail_hit = bar_low <= trail_level
        if loss_hit or trail_hit:
            if loss_hit and (not trail_hit or loss_level >= trail_level):
                return True, loss_level, EXIT_STOP_LOSS
            return True, trail_level, EXIT_TRAILING_STOP
        if bar_high >= profit_level:
            return True, profit_level, EXIT_TAKE_PROFIT
        return False, 0.0, EXIT_SIGNAL
    loss_hit_open = bar_open >= loss_level
    trail_hit_open = bar_open >= trail_level
    if loss_hit_open or trail_hit_open:
        if loss_hit_open and (not trail_hit_open or loss_level <= trail_level):
            return True, bar_open, EXIT_STOP_LOSS
        return True, bar_open, EXIT_TRAILING_STOP
    if bar_open <= profit_level:
        return True, bar_open, EXIT_TAKE_PROFIT
    if gap_only:
        return False, 0.0, EXIT_SIGNAL
    loss_hit = bar_high >= loss_level
    trail_hit = bar_high >= trail_level
    if loss_hit or trail_hit:
        if loss_hit and (not trail_hit or loss_level <= trail_level):
            return True, loss_level, EXIT_STOP_LOSS
        return True, trail_level, EXIT_TRAILING_STOP
    if bar_low <= profit_level:
        return True, profit_level, EXIT_TAKE_PROFIT
    return False, 0.0, EXIT_SIGNAL


#: the open round trip's fields, kept in a small array (``trip``) rather than in
#: locals: they change only at fills, and the bar loop keeps its registers
(TRIP_EXTREME, TRIP_FEES, TRIP_BORROW, TRIP_ENTRY_BAR, TRIP_LOGGED, TRIP_LOSS_LEVEL,
 TRIP_PROFIT_LEVEL, TRIP_TRAIL_LEVEL) = range(8)
TRIP_FIELDS = 8


@njit(inline="always", error_model="numpy")
def start_trip_nb(trip):
    """Reset ``trip`` for a new parameter set (no position, nothing logged)."""
    trip[:] = 0.0
    trip[TRIP_ENTRY_BAR] = -1.0


@njit(inline="always", error_model="numpy")
def entry_fraction_nb(close, decision_bar, settings, periods_per_year):
    """The fraction of cash a new position takes (rule 9): ``size_fraction``, or
    with a volatility target, :func:`volatility_fraction_nb`."""
    target_volatility = settings[TARGET_VOLATILITY]
    if np.isnan(target_volatility):
        return settings[SIZE_FRACTION]
    return volatility_fraction_nb(close, decision_bar, int(settings[VOLATILITY_LOOKBACK]),
                                  target_volatility, settings[MAX_LEVERAGE], periods_per_year)


@njit(inline="always", error_model="numpy")
def trade_to_nb(target, position, shares, cash, entry_cash, price, t, fraction, fractional,
                fee_rate, settings, stops, reason, trades, trip):
    """Trade from ``position`` to ``target`` at base ``price`` on bar ``t``: the open
    position is closed first (its round trip ends with ``reason``), then a new one
    is sized ``fraction`` of the cash left (whole shares unless ``fractional``).
    Every leg is slipped, pays ``cost_bps`` on the slipped price and the fixed fee
    (``settings`` is the set's row of ``execution``). ``trip`` follows the open
    round trip (its stop levels when ``stops``); a replay (``trades`` has rows)
    logs each one.

    Returns
    -------
    tuple
        ``(position, shares, cash, entry_cash, filled, closed_trip, closed_pnl)``.
    """
    filled = False
    closed_trip = False
    closed_pnl = 0.0
    slippage = settings[SLIPPAGE_BPS] / 1e4
    fixed_fee = settings[FEE_PER_TRADE]
    logging = trades.shape[0] > 0
    if position != 0:
        fill_price = slipped_nb(price, -position, slippage)
        delta = -shares
        fees = fee_nb(delta, fill_price, fee_rate)
        cash -= delta * fill_price + fees  # trade_cost_nb, its fee computed once
        if fixed_fee > 0.0:
            cash -= fixed_fee
            fees += fixed_fee
        closed_trip = True
        closed_pnl = cash - entry_cash
        filled = True
        if logging:
            row = int(trip[TRIP_LOGGED])
            trades[row, TRADE_EXIT_BAR] = t
            trades[row, TRADE_EXIT_PRICE] = fill_price
            trades[row, TRADE_EXIT_REASON] = reason
            trades[row, TRADE_FEES] = trip[TRIP_FEES] + fees
            trades[row, TRADE_BORROW] = trip[TRIP_BORROW]
            trades[row, TRADE_PNL] = closed_pnl
            trip[TRIP_LOGGED] += 1.0
        shares = 0.0
        position = 0
    if target != 0 and fraction > 0.0:
        fill_price = slipped_nb(price, target, slippage)
        size = fraction * cash / (fill_price * (1.0 + fee_rate))
        if not fractional:
            size = np.floor(size)
        if size > 0.0:
            entry_cash = cash
            delta = target * size
            fees = fee_nb(delta, fill_price, fee_rate)
            cash -= delta * fill_price + fees
            if fixed_fee > 0.0:
                cash -= fixed_fee
                fees += fixed_fee
            shares = delta
            position = target
            filled = True
            trip[TRIP_EXTREME] = fill_price
            trip[TRIP_FEES] = fees
            trip[TRIP_BORROW] = 0.0
            trip[TRIP_ENTRY_BAR] = t
            if stops:
                trip[TRIP_LOSS_LEVEL], trip[TRIP_PROFIT_LEVEL], trip[TRIP_TRAIL_LEVEL] = \
                    stop_levels_nb(target, fill_price, fill_price, settings)
            if logging:
                row = int(trip[TRIP_LOGGED])
                trades[row, TRADE_ENTRY_BAR] = t
                trades[row, TRADE_SIDE] = target
                trades[row, TRADE_SHARES] = size
                trades[row, TRADE_ENTRY_PRICE] = fill_price
                trades[row, TRADE_ENTRY_CASH] = entry_cash
    return position, shares, cash, entry_cash, filled, closed_trip, closed_pnl


def no_trades() -> np.ndarray:
    """The (0, TRADE_FIELDS) trade log passed in sweeps."""
    return np.empty((0, TRADE_FIELDS), dtype=np.float64)


__all__ = ["slipped_nb", "volatility_fraction_nb", "stop_levels_nb", "stop_exit_nb",
           "trade_to_nb",
           "entry_fraction_nb", "start_trip_nb", "no_trades", "TRIP_FIELDS",
           "N_EXECUTION", "EXIT_REASONS", "TRADE_FIELDS"]
