"""Execution rules of the single-asset kernel beyond market-on-close
(``docs/semantics.md``, sections 7-10): fill timing, price stops on candles,
sizing, slippage, fixed fees and borrow.

The per-set settings travel as one row of ``execution`` (n_sets,
``N_EXECUTION``), columns named by the slot constants below (a setting that is
off is NaN); the run-level ones (fill timing, fractional shares) as ints. The
blocks here are ``@njit(inline="always")`` pieces :mod:`btcore.kernels.single_exec`
composes.
"""
import math

import numpy as np
from numba import njit

from btcore.kernels.accounting import fee_nb, trade_cost_nb

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


@njit(inline="always", error_model="numpy")
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
def stop_exit_nb(position, bar_open, bar_high, bar_low, entry_price, extreme, stop_loss,
                 take_profit, trailing_stop, gap_only):
    """Whether a price stop closes ``position`` on a bar, at which price, and why.

    Levels are fractions of ``entry_price`` (``extreme``: the peak of a long, the
    trough of a short, for the trailing stop); NaN turns a stop off. The open is
    looked at first (a gap beyond a level exits at the open); otherwise, when the
    bar reaches a level on each side, the stop side fills; of a stop-loss and a
    trailing level both reached, the one nearer the open. ``gap_only``: look at the
    open alone.

    Returns
    -------
    tuple
        ``(hit, price, reason)`` (price before slippage).
    """
    if position > 0:
        loss_level = entry_price * (1.0 - stop_loss)
        profit_level = entry_price * (1.0 + take_profit)
        trail_level = extreme * (1.0 - trailing_stop)
        # the stop-side level nearer the open (NaN levels never compare true)
        loss_hit_open = bar_open <= loss_level
        trail_hit_open = bar_open <= trail_level
        if loss_hit_open or trail_hit_open:
            if loss_hit_open and (not trail_hit_open or loss_level >= trail_level):
                return True, bar_open, 1  # EXIT_STOP_LOSS
            return True, bar_open, 3  # EXIT_TRAILING_STOP
        if bar_open >= profit_level:
            return True, bar_open, 2  # EXIT_TAKE_PROFIT
        if gap_only:
            return False, 0.0, 0
        loss_hit = bar_low <= loss_level
        trail_hit = bar_low <= trail_level
        if loss_hit or trail_hit:
            if loss_hit and (not trail_hit or loss_level >= trail_level):
                return True, loss_level, 1
            return True, trail_level, 3
        if bar_high >= profit_level:
            return True, profit_level, 2
        return False, 0.0, 0
    loss_level = entry_price * (1.0 + stop_loss)
    profit_level = entry_price * (1.0 - take_profit)
    trail_level = extreme * (1.0 + trailing_stop)
    loss_hit_open = bar_open >= loss_level
    trail_hit_open = bar_open >= trail_level
    if loss_hit_open or trail_hit_open:
        if loss_hit_open and (not trail_hit_open or loss_level <= trail_level):
            return True, bar_open, 1
        return True, bar_open, 3
    if bar_open <= profit_level:
        return True, bar_open, 2
    if gap_only:
        return False, 0.0, 0
    loss_hit = bar_high >= loss_level
    trail_hit = bar_high >= trail_level
    if loss_hit or trail_hit:
        if loss_hit and (not trail_hit or loss_level <= trail_level):
            return True, loss_level, 1
        return True, trail_level, 3
    if bar_low <= profit_level:
        return True, profit_level, 2
    return False, 0.0, 0


@njit(inline="always", error_model="numpy")
def trade_to_nb(target, position, shares, cash, entry_cash, price, t, fraction, fractional,
                fee_rate, slippage, fixed_fee, reason, trades, n_logged, trade_fees,
                trade_borrow):
    """Trade from ``position`` to ``target`` at base ``price`` on bar ``t``: the open
    position is closed first (its round trip ends with ``reason``), then a new one
    is sized ``fraction`` of the cash left (whole shares unless ``fractional``).
    Every leg is slipped, pays ``cost_bps`` on the slipped price and ``fixed_fee``.
    A replay (``trades`` has rows) logs each round trip.

    Returns
    -------
    tuple
        ``(position, shares, cash, entry_cash, entry_price, filled, closed_trip,
        closed_pnl, n_logged, trade_fees)``; ``entry_price`` is the new position's
        fill price (0 if none opened).
    """
    filled = False
    closed_trip = False
    closed_pnl = 0.0
    entry_price = 0.0
    logging = trades.shape[0] > 0
    if position != 0:
        fill_price = slipped_nb(price, -position, slippage)
        delta = -shares
        fees = fee_nb(delta, fill_price, fee_rate)
        cash -= trade_cost_nb(delta, fill_price, fee_rate)
        if fixed_fee > 0.0:
            cash -= fixed_fee
            fees += fixed_fee
        closed_trip = True
        closed_pnl = cash - entry_cash
        filled = True
        if logging:
            trades[n_logged, TRADE_EXIT_BAR] = t
            trades[n_logged, TRADE_EXIT_PRICE] = fill_price
            trades[n_logged, TRADE_EXIT_REASON] = reason
            trades[n_logged, TRADE_FEES] = trade_fees + fees
            trades[n_logged, TRADE_BORROW] = trade_borrow
            trades[n_logged, TRADE_PNL] = closed_pnl
            n_logged += 1
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
            trade_fees = fee_nb(delta, fill_price, fee_rate)
            cash -= trade_cost_nb(delta, fill_price, fee_rate)
            if fixed_fee > 0.0:
                cash -= fixed_fee
                trade_fees += fixed_fee
            shares = delta
            position = target
            entry_price = fill_price
            filled = True
            if logging:
                trades[n_logged, TRADE_ENTRY_BAR] = t
                trades[n_logged, TRADE_SIDE] = target
                trades[n_logged, TRADE_SHARES] = size
                trades[n_logged, TRADE_ENTRY_PRICE] = fill_price
                trades[n_logged, TRADE_ENTRY_CASH] = entry_cash
    return (position, shares, cash, entry_cash, entry_price, filled, closed_trip, closed_pnl,
            n_logged, trade_fees)


def no_trades() -> np.ndarray:
    """The (0, TRADE_FIELDS) trade log passed in sweeps."""
    return np.empty((0, TRADE_FIELDS), dtype=np.float64)


__all__ = ["slipped_nb", "volatility_fraction_nb", "stop_exit_nb", "no_trades",
           "N_EXECUTION", "EXIT_REASONS", "TRADE_FIELDS"]
