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
                                      FILL_CLOSE, FILL_NEXT_CLOSE, FILL_NEXT_OPEN,
                                      RISK_FREE_RATE, STOP_LOSS, TAKE_PROFIT, TRADE_BORROW,
                                      TRADE_EXIT_REASON, TRADE_FEES, TRAILING_STOP, TRIP_BORROW,
                                      TRIP_ENTRY_BAR, TRIP_EXTREME, TRIP_FEES,
                                      TRIP_FIELDS, TRIP_LOGGED, TRIP_LOSS_LEVEL,
                                      TRIP_PROFIT_LEVEL, TRIP_TRAIL_LEVEL, entry_fraction_nb,
                                      stop_levels_nb, start_trip_nb,
                                      stop_exit_nb, trade_to_nb)
from btcore.kernels.single import (RECORD_EQUITY, RECORD_SHARES, RECORD_TRIP_PNL,
                                   empty_series_nb)

NO_ORDER = 9  # no pending next-bar order


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
    trip = np.empty(TRIP_FIELDS, dtype=np.float64)
    for k in range(n_sets):
        selected = select_series_nb(series, set_series[k])
        set_params = params[k]
        settings = execution[k]
        stops = not (np.isnan(settings[STOP_LOSS]) and np.isnan(settings[TAKE_PROFIT]) and
                     np.isnan(settings[TRAILING_STOP]))
        trailing = not np.isnan(settings[TRAILING_STOP])
        borrowing = settings[BORROW_BPS] > 0.0
        risk_free = settings[RISK_FREE_RATE] / periods_per_year
        start_trip_nb(trip)
        cash = initial_capital
        shares = 0.0
        position = 0
        state = 0
        entry_cash = 0.0
        pending = NO_ORDER
        metrics = start_metrics_nb(initial_capital)
        num_trades = 0
        round_trips = 0
        winning_round_trips = 0
        stopped = False
        ruined = False
        closed_out = False
        stop_bar = last_bar
        bar_filled = False
        closed_trip = False
        closed_pnl = 0.0
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
                # 1. before the close: a gap through a stop and the pending order at
                # the open, stops over the bar's range, the pending order at the close
                if fill_mode == FILL_NEXT_OPEN and pending != NO_ORDER:
                    if position != 0 and stops:  # held from before: a gap at the open
                        hit, level, reason = stop_exit_nb(
                            position, open_[t], high[t], low[t], trip[TRIP_LOSS_LEVEL],
                            trip[TRIP_PROFIT_LEVEL], trip[TRIP_TRAIL_LEVEL], True)
                        if hit:
                            stop_hit = True
                            position, shares, cash, entry_cash, _, closed_trip, closed_pnl = \
                                trade_to_nb(0, position, shares, cash, entry_cash, level, t,
                                            0.0, fractional, fee_rate, settings, stops, reason,
                                            trades, trip)
                    if not stop_hit:
                        fraction = 0.0 if pending == 0 else entry_fraction_nb(
                            close, t - 1, settings, periods_per_year)
                        position, shares, cash, entry_cash, bar_filled, closed_trip, \
                            closed_pnl = trade_to_nb(pending, position, shares, cash,
                                                     entry_cash, open_[t], t, fraction,
                                                     fractional, fee_rate, settings, stops,
                                                     EXIT_SIGNAL, trades, trip)
                        if closed_trip:
                            round_trips += 1
                            winning_round_trips += closed_pnl > 0.0
                    pending = NO_ORDER
                # held from before (the gap is looked at again: it did not fire), or
                # entered at this open (the rest of its entry bar can stop it out)
                if position != 0 and stops and not stop_hit:
                    hit, level, reason = stop_exit_nb(
                        position, open_[t], high[t], low[t], trip[TRIP_LOSS_LEVEL],
                        trip[TRIP_PROFIT_LEVEL], trip[TRIP_TRAIL_LEVEL], False)
                    if hit:
                        stop_hit = True
                        position, shares, cash, entry_cash, _, closed_trip, closed_pnl = \
                            trade_to_nb(0, position, shares, cash, entry_cash, level, t, 0.0,
                                        fractional, fee_rate, settings, stops, reason, trades, trip)
                if stop_hit:
                    bar_filled = True
                    pending = NO_ORDER  # a bar with a stop exit makes no other trade
                    round_trips += 1
                    winning_round_trips += closed_pnl > 0.0
                elif fill_mode == FILL_NEXT_CLOSE and pending != NO_ORDER:
                    fraction = 0.0 if pending == 0 else entry_fraction_nb(
                        close, t - 1, settings, periods_per_year)
                    position, shares, cash, entry_cash, bar_filled, closed_trip, closed_pnl = \
                        trade_to_nb(pending, position, shares, cash, entry_cash, price, t,
                                    fraction, fractional, fee_rate, settings, stops, EXIT_SIGNAL,
                                    trades, trip)
                    pending = NO_ORDER
                    if closed_trip:
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
                        pass  # its target is not acted on
                    elif fill_mode != FILL_CLOSE:
                        pending = int(target)
                    else:
                        fraction = 0.0 if target == 0 else entry_fraction_nb(
                            close, t, settings, periods_per_year)
                        position, shares, cash, entry_cash, filled, closed, pnl = \
                            trade_to_nb(target, position, shares, cash, entry_cash, price, t,
                                        fraction, fractional, fee_rate, settings, stops,
                                        EXIT_SIGNAL, trades, trip)
                        bar_filled = bar_filled or filled
                        if closed:
                            closed_trip, closed_pnl = True, pnl
                            round_trips += 1
                            winning_round_trips += pnl > 0.0
                # 3. at the close: borrow, equity, out of money (after the loop), metrics
                if shares < 0.0 and borrowing:
                    charge = -shares * price * (settings[BORROW_BPS] / 1e4) / periods_per_year
                    cash -= charge
                    trip[TRIP_BORROW] += charge
                if bar_filled or position != 0:  # else flat and untouched: r = 0
                    equity = cash + shares * price
                    if equity <= 0.0:
                        ruined = True
                        stopped = True
                        stop_bar = t
                        break
                    num_trades += bar_filled
                    metrics, period_return = add_bar_nb(metrics, equity, position != 0,
                                                        risk_free)
                    if blocks:
                        block = bar_block[t]
                        block_sums[k, block, 0] += period_return
                        block_sums[k, block, 1] += period_return * period_return
                if trailing and position != 0 and trip[TRIP_ENTRY_BAR] < t:  # peak / trough
                    extreme = trip[TRIP_EXTREME]
                    extreme = max(extreme, high[t]) if position > 0 else min(extreme, low[t])
                    if extreme != trip[TRIP_EXTREME]:
                        trip[TRIP_EXTREME] = extreme
                        trip[TRIP_TRAIL_LEVEL] = stop_levels_nb(position, 0.0, extreme,
                                                                settings)[2]
                if recording:
                    record[RECORD_EQUITY, t] = metrics.equity
                    record[RECORD_SHARES, t] = shares
                    record[RECORD_TRIP_PNL, t] = closed_pnl if closed_trip else np.nan
            if ruined and not closed_out:
                closed_out = True
                t = stop_bar
                if position != 0:  # closed out at this close (rule 6)
                    position, shares, cash, entry_cash, _, closed_trip, closed_pnl = \
                        trade_to_nb(0, position, shares, cash, entry_cash, close[t], t, 0.0,
                                    fractional, fee_rate, settings, stops, EXIT_OUT_OF_MONEY, trades,
                                    trip)
                    round_trips += 1
                    bar_filled = True
                num_trades += bar_filled
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
            finalize_metrics_nb(out[check], k, checkpoints[check] - first_bar + 1, metrics,
                                num_trades, round_trips, winning_round_trips, initial_capital,
                                periods_per_year, ruined, invalid_bar, risk_free)
            if invalid_bar != -1:
                out[check, INVALID_VALUE_ROW, k] = invalid_value[0]
            segment_start = checkpoints[check] + 1
        if logging and position != 0:  # still open at the end: marked, not closed
            row = int(trip[TRIP_LOGGED])
            trades[row, TRADE_EXIT_REASON] = EXIT_END
            trades[row, TRADE_FEES] = trip[TRIP_FEES]
            trades[row, TRADE_BORROW] = trip[TRIP_BORROW]


__all__ = ["exec_batch_kernel_nb"]
