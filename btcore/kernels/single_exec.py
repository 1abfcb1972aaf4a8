"""The single-asset batch kernel with the execution rules of ``docs/semantics.md``
sections 7-10: fills at the close, the next open or the next close; stop-loss,
take-profit and trailing stops on candles; sizing by fraction or target
volatility; slippage, a fixed fee per fill, borrow on shorts and a risk-free
rate in Sharpe and Sortino.

It is :func:`btcore.kernels.single.batch_kernel_nb` (same arguments, same
indicator series, same refusal of invalid targets, same out-of-money rule, same
metric state) plus:

- ``open_``, ``high``, ``low`` (n_bars,): the candles (close-only data passes the
  closes three times: stops then act on closes);
- ``execution`` (n_sets, ``N_EXECUTION``): each set's settings
  (:mod:`btcore.kernels.execution` names the columns; NaN turns a stop or the
  volatility target off); ``fill_mode`` and ``fractional`` for the run;
- ``trades`` (max round trips, ``TRADE_FIELDS``): the round trips of a
  single-set replay, filled in order (empty in sweeps).

With every setting at its default the arithmetic is the market-on-close
kernel's, so results are bit-identical to it; a run with default settings uses
that kernel (it is leaner), this one is compiled only when a run needs it.
"""
import numpy as np
from numba import njit

from btcore.kernels.accounting import (EMPTY_INDICATOR, INVALID_VALUE_ROW, add_bar_nb,
                                       finalize_metrics_nb, ruin_nb, start_metrics_nb,
                                       valid_target_nb)
from btcore.kernels.execution import (BORROW_BPS, EXIT_END, EXIT_OUT_OF_MONEY, EXIT_SIGNAL,
                                      FEE_PER_TRADE, FILL_CLOSE, FILL_NEXT_OPEN, MAX_LEVERAGE,
                                      RISK_FREE_RATE, SIZE_FRACTION, SLIPPAGE_BPS, STOP_LOSS,
                                      TAKE_PROFIT, TARGET_VOLATILITY, TRADE_BORROW,
                                      TRADE_EXIT_REASON, TRADE_FEES, TRAILING_STOP,
                                      VOLATILITY_LOOKBACK, stop_exit_nb, trade_to_nb,
                                      volatility_fraction_nb)
from btcore.kernels.single import (RECORD_EQUITY, RECORD_SHARES, RECORD_TRIP_PNL,
                                   empty_series_nb)

NO_ORDER = 9  # no pending next-bar order


@njit(inline="always", error_model="numpy")
def entry_fraction_nb(close, decision_bar, size_fraction, target_volatility, lookback,
                      max_leverage, periods_per_year):
    """The fraction of cash a new position takes (rule 9)."""
    if np.isnan(target_volatility):
        return size_fraction
    return volatility_fraction_nb(close, decision_bar, lookback, target_volatility,
                                  max_leverage, periods_per_year)


@njit(inline="always", error_model="numpy")
def exec_batch_kernel_nb(close, open_, high, low, first_bar, checkpoints, series_which,
                         series_values, set_series, params, options, execution, fill_mode,
                         fractional, initial_capital, cost_bps, periods_per_year, bar_block,
                         block_sums, out, record, trades, compute_indicator_nb,
                         select_series_nb, load_values_nb, signal_nb):
    """Backtest every row of ``params`` with its row of ``execution`` (see the module
    docstring; the strategy's functions as in ``batch_kernel_nb``)."""
    n_checks = checkpoints.shape[0]
    last_bar = checkpoints[n_checks - 1]
    series = np.full((series_which.shape[0], close.shape[0]), np.nan)
    # each series once; inline here, as debug=True passes a Python compute_indicator_nb
    for s in range(series_which.shape[0]):
        compute_indicator_nb(series_which[s], close, series_values[s], series[s])
    empty = empty_series_nb(series, first_bar, last_bar)
    fee_rate = cost_bps / 1e4
    recording = record.shape[1] > 0
    logging = trades.shape[0] > 0
    blocks = block_sums.shape[1] > 0
    n_indicators = set_series.shape[1]
    n_sets = params.shape[0]
    values = np.empty(n_indicators, dtype=np.float64)
    invalid_value = np.empty(1, dtype=np.float64)
    for k in range(n_sets):
        selected = select_series_nb(series, set_series[k])
        set_params = params[k]
        stop_loss = execution[k, STOP_LOSS]
        take_profit = execution[k, TAKE_PROFIT]
        trailing_stop = execution[k, TRAILING_STOP]
        stops = not (np.isnan(stop_loss) and np.isnan(take_profit) and np.isnan(trailing_stop))
        size_fraction = execution[k, SIZE_FRACTION]
        target_volatility = execution[k, TARGET_VOLATILITY]
        lookback = int(execution[k, VOLATILITY_LOOKBACK])
        max_leverage = execution[k, MAX_LEVERAGE]
        slippage = execution[k, SLIPPAGE_BPS] / 1e4
        fixed_fee = execution[k, FEE_PER_TRADE]
        borrow_rate = execution[k, BORROW_BPS] / 1e4
        risk_free = execution[k, RISK_FREE_RATE] / periods_per_year
        cash = initial_capital
        shares = 0.0
        position = 0
        state = 0
        entry_cash = 0.0
        entry_price = 0.0
        extreme = 0.0  # a long's peak, a short's trough (trailing stop)
        entry_bar = -1
        pending = NO_ORDER
        n_logged = 0
        trade_fees = 0.0
        trade_borrow = 0.0
        metrics = start_metrics_nb(initial_capital)
        num_trades = 0
        round_trips = 0
        winning_round_trips = 0
        stopped = False
        ruined = False
        invalid_bar = -1
        for i in range(n_indicators):
            if empty[set_series[k, i]]:
                invalid_bar = EMPTY_INDICATOR
                invalid_value[0] = i
                stopped = True
                break
        segment_start = first_bar
        for check in range(n_checks):
            for t in range(segment_start, checkpoints[check] + 1):
                if stopped:
                    break
                price = close[t]
                bar_filled = False
                stop_hit = False
                closed_trip = False
                closed_pnl = 0.0
                # 1. at the open (next_open) or before the close: stops, pending order
                if position != 0 and stops and entry_bar < t:
                    hit, level, reason = stop_exit_nb(
                        position, open_[t], high[t], low[t], entry_price, extreme, stop_loss,
                        take_profit, trailing_stop, fill_mode == FILL_NEXT_OPEN)
                    if hit:
                        (position, shares, cash, entry_cash, _, _, closed_trip, closed_pnl,
                         n_logged, trade_fees) = trade_to_nb(
                            0, position, shares, cash, entry_cash, level, t, 0.0, fractional,
                            fee_rate, slippage, fixed_fee, reason, trades, n_logged,
                            trade_fees, trade_borrow)
                        stop_hit = True
                        bar_filled = True
                        pending = NO_ORDER
                        round_trips += 1
                        winning_round_trips += closed_pnl > 0.0
                if pending != NO_ORDER:
                    fill_price = open_[t] if fill_mode == FILL_NEXT_OPEN else price
                    fraction = entry_fraction_nb(close, t - 1, size_fraction, target_volatility,
                                                 lookback, max_leverage, periods_per_year)
                    (position, shares, cash, entry_cash, new_price, filled, closed, pnl,
                     n_logged, trade_fees) = trade_to_nb(
                        pending, position, shares, cash, entry_cash, fill_price, t, fraction,
                        fractional, fee_rate, slippage, fixed_fee, EXIT_SIGNAL, trades,
                        n_logged, trade_fees, trade_borrow)
                    pending = NO_ORDER
                    bar_filled = bar_filled or filled
                    if closed:
                        closed_trip, closed_pnl = True, pnl
                        round_trips += 1
                        winning_round_trips += pnl > 0.0
                    if new_price > 0.0:
                        entry_price = new_price
                        extreme = new_price
                        entry_bar = t
                        trade_borrow = 0.0
                        if fill_mode == FILL_NEXT_OPEN and stops:
                            # entered at this open: the rest of the bar can stop it out
                            hit, level, reason = stop_exit_nb(
                                position, open_[t], high[t], low[t], entry_price, extreme,
                                stop_loss, take_profit, trailing_stop, False)
                            if hit:
                                (position, shares, cash, entry_cash, _, _, closed_trip,
                                 closed_pnl, n_logged, trade_fees) = trade_to_nb(
                                    0, position, shares, cash, entry_cash, level, t, 0.0,
                                    fractional, fee_rate, slippage, fixed_fee, reason, trades,
                                    n_logged, trade_fees, trade_borrow)
                                stop_hit = True
                                round_trips += 1
                                winning_round_trips += closed_pnl > 0.0
                if fill_mode == FILL_NEXT_OPEN and not stop_hit and position != 0 and stops \
                        and entry_bar < t:
                    # held from before and not gapped out: the rest of the bar
                    hit, level, reason = stop_exit_nb(
                        position, open_[t], high[t], low[t], entry_price, extreme, stop_loss,
                        take_profit, trailing_stop, False)
                    if hit:
                        (position, shares, cash, entry_cash, _, _, closed_trip, closed_pnl,
                         n_logged, trade_fees) = trade_to_nb(
                            0, position, shares, cash, entry_cash, level, t, 0.0, fractional,
                            fee_rate, slippage, fixed_fee, reason, trades, n_logged,
                            trade_fees, trade_borrow)
                        stop_hit = True
                        bar_filled = True
                        round_trips += 1
                        winning_round_trips += closed_pnl > 0.0
                # 2. the rule at the close (always asked: stateful rules see every bar)
                load_values_nb(values, selected, t)
                target, state = signal_nb(values, price, set_params, options, position, state)
                if target != position:
                    if not valid_target_nb(target):
                        invalid_bar = t
                        invalid_value[0] = target
                        stopped = True
                        break
                    if stop_hit:
                        pass  # a bar with a stop exit makes no other trade
                    elif fill_mode == FILL_CLOSE:
                        fraction = entry_fraction_nb(close, t, size_fraction, target_volatility,
                                                     lookback, max_leverage, periods_per_year)
                        (position, shares, cash, entry_cash, new_price, filled, closed, pnl,
                         n_logged, trade_fees) = trade_to_nb(
                            target, position, shares, cash, entry_cash, price, t, fraction,
                            fractional, fee_rate, slippage, fixed_fee, EXIT_SIGNAL, trades,
                            n_logged, trade_fees, trade_borrow)
                        bar_filled = bar_filled or filled
                        if closed:
                            closed_trip, closed_pnl = True, pnl
                            round_trips += 1
                            winning_round_trips += pnl > 0.0
                        if new_price > 0.0:
                            entry_price = new_price
                            extreme = new_price
                            entry_bar = t
                            trade_borrow = 0.0
                    else:
                        pending = int(target)
                # 3. at the close: borrow, equity, out of money, metrics
                if shares < 0.0 and borrow_rate > 0.0:
                    charge = -shares * price * borrow_rate / periods_per_year
                    cash -= charge
                    trade_borrow += charge
                if bar_filled or position != 0:  # else flat and untouched: r = 0
                    equity = cash + shares * price
                    if equity <= 0.0:
                        if position != 0:  # closed out at this close (rule 6)
                            (position, shares, cash, entry_cash, _, _, closed_trip, closed_pnl,
                             n_logged, trade_fees) = trade_to_nb(
                                0, position, shares, cash, entry_cash, price, t, 0.0,
                                fractional, fee_rate, slippage, fixed_fee, EXIT_OUT_OF_MONEY,
                                trades, n_logged, trade_fees, trade_borrow)
                            round_trips += 1
                            bar_filled = True
                        num_trades += bar_filled
                        ruined = True
                        stopped = True
                        cash = 0.0
                        shares = 0.0
                        metrics = ruin_nb(metrics, risk_free)
                        if blocks:
                            block_sums[k, bar_block[t], 0] += -1.0
                            block_sums[k, bar_block[t], 1] += 1.0
                        if recording:
                            record[RECORD_EQUITY, t:last_bar + 1] = 0.0
                            record[RECORD_SHARES, t:last_bar + 1] = 0.0
                            record[RECORD_TRIP_PNL, t + 1:last_bar + 1] = np.nan
                            record[RECORD_TRIP_PNL, t] = closed_pnl if closed_trip else np.nan
                        break
                    num_trades += bar_filled
                    metrics, period_return = add_bar_nb(metrics, equity, position != 0,
                                                        risk_free)
                    if blocks:
                        block = bar_block[t]
                        block_sums[k, block, 0] += period_return
                        block_sums[k, block, 1] += period_return * period_return
                if position != 0 and entry_bar < t:  # the trailing stop's peak / trough
                    if position > 0:
                        extreme = max(extreme, high[t])
                    else:
                        extreme = min(extreme, low[t])
                if recording:
                    record[RECORD_EQUITY, t] = metrics.equity
                    record[RECORD_SHARES, t] = shares
                    record[RECORD_TRIP_PNL, t] = closed_pnl if closed_trip else np.nan
            finalize_metrics_nb(out[check], k, checkpoints[check] - first_bar + 1, metrics,
                                num_trades, round_trips, winning_round_trips, initial_capital,
                                periods_per_year, ruined, invalid_bar, risk_free)
            if invalid_bar != -1:
                out[check, INVALID_VALUE_ROW, k] = invalid_value[0]
            segment_start = checkpoints[check] + 1
        if logging and position != 0:  # still open at the end: marked, not closed
            trades[n_logged, TRADE_EXIT_REASON] = EXIT_END
            trades[n_logged, TRADE_FEES] = trade_fees
            trades[n_logged, TRADE_BORROW] = trade_borrow


__all__ = ["exec_batch_kernel_nb"]
