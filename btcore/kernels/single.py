"""The single-asset batch kernel: one strategy's parameter sets on one price column.

One call evaluates a batch of parameter sets on one price column:

1. each indicator *series* the batch needs is computed once (a series is one
   indicator function at one set of argument values, so a 50 x 50 crossover
   grid computes 100 moving averages, not 2,500 pairs), and marked if it is NaN
   on every traded bar;
2. each parameter set then makes one sequential pass over the traded bars,
   asking the strategy's rule for a target position sign; sizing, fills,
   costs, equity, out-of-money close-out and metric accumulation are the
   account's (``docs/semantics.md``), so every strategy gets the same tested
   bookkeeping.

A set is refused, not run further, at its first target other than exactly -1,
0 or 1 (NaN, 0.5, 2, -inf: ``INVALID_BAR_ROW`` holds the bar and
``INVALID_VALUE_ROW`` the target), and from the start when one of its
indicators is NaN on every traded bar (``INVALID_BAR_ROW`` = ``EMPTY_INDICATOR``,
``INVALID_VALUE_ROW`` the indicator's position); ``btcore.engine.check_targets``
turns either into an error.

:func:`batch_kernel_nb` composes the ``@njit(inline="always")`` blocks of
:mod:`btcore.kernels.accounting`: ``fill_nb`` (one bar's trading),
``close_out_nb`` / ``ruin_nb`` (out of money) and the metric state
(``start_metrics_nb``, ``add_bar_nb``, ``finalize_metrics_nb``).

``batch_kernel_nb`` takes the strategy's functions as arguments and is inlined
into a module-level ``@njit(cache=True, nogil=True)`` function that btcore
generates per strategy (``btcore.kernels.binding``): a kernel that *takes* a jitted
function cannot be cached on disk, one that calls it by name can. Each
parameter set's arithmetic is one sequential loop, so results are
bit-identical however sets are split into batches, threads or processes.

Array arguments (all C-contiguous float64 unless noted):

- ``close`` (n_bars,): one price column;
- ``checkpoints`` (n_checks,) int64: bars at which metrics are finalised
  (sorted; the last one is the window's last bar);
- ``series_which`` (n_series,) int64 and ``series_values`` (n_series, n_values):
  which indicator function computes each series, with which argument values;
- ``set_series`` (n_sets, n_indicators) int64: the series of each indicator
  of each set;
- ``params`` (n_sets, n_params); ``options`` (n_options,);
- ``bar_block`` (n_bars,) int64 and ``block_sums`` (n_sets, n_blocks, 2): per-block
  sums of r and r^2 (empty arrays when not wanted);
- ``out`` (n_checks, OUT_ROWS, n_sets): metrics, ``ruined`` and ``invalid_bar``
  (a refused set's ``INVALID_VALUE_ROW`` holds what was wrong);
- ``record`` (RECORD_ROWS, n_bars): per-bar equity, shares and closed round-trip
  P&L of a single-set batch (empty in sweeps).
"""
import numpy as np
from numba import njit

from btcore.kernels.accounting import (EMPTY_INDICATOR, INVALID_BAR_ROW, INVALID_VALUE_ROW,
                                       OUT_ROWS, RUINED_ROW, add_bar_nb, close_out_nb, fill_nb,
                                       finalize_metrics_nb, ruin_nb, start_metrics_nb,
                                       valid_target_nb)

#: rows of ``record``: equity, shares, P&L of the round trip closed at the bar (NaN if none)
RECORD_EQUITY, RECORD_SHARES, RECORD_TRIP_PNL = 0, 1, 2
RECORD_ROWS = 3


@njit(inline="always", error_model="numpy")
def empty_series_nb(series, first_bar, last_bar):
    """``empty[s]``: series ``s`` is NaN on every traded bar."""
    n_series = series.shape[0]
    empty = np.empty(n_series, dtype=np.bool_)
    for s in range(n_series):
        empty[s] = True
        for t in range(first_bar, last_bar + 1):  # stops at the first value (usually at once)
            if not np.isnan(series[s, t]):
                empty[s] = False
                break
    return empty


@njit(inline="always", error_model="numpy")
def batch_kernel_nb(close, first_bar, checkpoints, series_which, series_values, set_series,
                    params, options, initial_capital, cost_bps, periods_per_year, bar_block,
                    block_sums, out, record, compute_indicator_nb, select_series_nb,
                    load_values_nb, signal_nb):
    """Backtest every row of ``params`` on ``close[first_bar:checkpoints[-1] + 1]``.

    ``compute_indicator_nb(which, close, values, out)`` fills one series;
    ``select_series_nb(series, rows)`` returns a set's series as a tuple of views
    and ``load_values_nb(values, selected, t)`` copies their bar-t values (both
    generated per strategy with the indicator count unrolled: ~20 % faster than
    a loop over ``rows``); ``signal_nb(values, price, params_row, options,
    position, state)`` returns ``(target, state)``.
    """
    n_checks = checkpoints.shape[0]
    last_bar = checkpoints[n_checks - 1]
    series = np.full((series_which.shape[0], close.shape[0]), np.nan)
    # each series once; inline here, as debug=True passes a Python compute_indicator_nb
    for s in range(series_which.shape[0]):
        compute_indicator_nb(series_which[s], close, series_values[s], series[s])
    empty = empty_series_nb(series, first_bar, last_bar)
    fee_rate = cost_bps / 1e4
    recording = record.shape[1] > 0
    blocks = block_sums.shape[1] > 0
    n_indicators = set_series.shape[1]
    n_sets = params.shape[0]
    values = np.empty(n_indicators, dtype=np.float64)
    # what a refused set returned, kept in memory: a loop-carried variable slows the bar loop
    invalid_value = np.empty(1, dtype=np.float64)
    for k in range(n_sets):
        selected = select_series_nb(series, set_series[k])
        set_params = params[k]
        cash = initial_capital
        shares = 0.0
        position = 0
        state = 0
        entry_cash = 0.0
        metrics = start_metrics_nb(initial_capital)
        num_trades = 0
        round_trips = 0
        winning_round_trips = 0
        filled = False
        stopped = False  # out of money, an invalid target or indicator: no more bars
        ruined = False
        closed_out = False
        invalid_bar = -1
        for i in range(n_indicators):
            if empty[set_series[k, i]]:
                invalid_bar = EMPTY_INDICATOR
                invalid_value[0] = i
                stopped = True
                break
        stop_bar = last_bar
        segment_start = first_bar
        for check in range(n_checks):
            # bars up to this checkpoint; the hot loop leaves the rare events
            # (out of money, invalid target) to the code after it
            for t in range(segment_start, checkpoints[check] + 1):
                if stopped:
                    break
                price = close[t]
                load_values_nb(values, selected, t)
                target, state = signal_nb(values, price, set_params, options, position,
                                          state)
                filled = False
                closed_trip = False
                closed_pnl = 0.0
                if target != position:
                    if not valid_target_nb(target):  # NaN, 0.5, 2, -inf...
                        invalid_bar = t
                        invalid_value[0] = target
                        stopped = True
                        break
                    position, shares, cash, entry_cash, filled, closed_trip, closed_pnl = \
                        fill_nb(target, position, shares, cash, price, fee_rate, entry_cash)
                    if closed_trip:
                        round_trips += 1
                        winning_round_trips += closed_pnl > 0.0
                if filled or position != 0:  # else flat and untouched: r = 0
                    equity = cash + shares * price
                    if equity <= 0.0:
                        ruined = True
                        stopped = True
                        stop_bar = t
                        break
                    num_trades += filled
                    metrics, period_return = add_bar_nb(metrics, equity, position != 0)
                    if blocks:
                        block = bar_block[t]
                        block_sums[k, block, 0] += period_return
                        block_sums[k, block, 1] += period_return * period_return
                if recording:
                    record[RECORD_EQUITY, t] = metrics.equity
                    record[RECORD_SHARES, t] = shares
                    record[RECORD_TRIP_PNL, t] = closed_pnl if closed_trip else np.nan
            if ruined and not closed_out:
                closed_out = True
                # out of money at stop_bar: close out, account at 0, r = -1
                t = stop_bar
                out_filled, out_closed, out_pnl = close_out_nb(shares, cash, close[t],
                                                               fee_rate, entry_cash)
                if out_closed:
                    round_trips += 1
                    closed_trip = True
                    closed_pnl = out_pnl
                if filled or out_filled:
                    num_trades += 1
                cash = 0.0
                shares = 0.0
                position = 0
                metrics = ruin_nb(metrics)
                if blocks:
                    block_sums[k, bar_block[t], 0] += -1.0
                    block_sums[k, bar_block[t], 1] += 1.0
                if recording:
                    record[RECORD_EQUITY, t:last_bar + 1] = 0.0
                    record[RECORD_SHARES, t:last_bar + 1] = 0.0
                    record[RECORD_TRIP_PNL, t + 1:last_bar + 1] = np.nan
                    record[RECORD_TRIP_PNL, t] = closed_pnl if closed_trip else np.nan
            # the bars after a stop are flat (r = 0): finalize adds them in bulk
            finalize_metrics_nb(out[check], k, checkpoints[check] - first_bar + 1, metrics,
                                num_trades, round_trips, winning_round_trips, initial_capital,
                                periods_per_year, ruined, invalid_bar)
            if invalid_bar != -1:
                out[check, INVALID_VALUE_ROW, k] = invalid_value[0]
            segment_start = checkpoints[check] + 1


def empty_record() -> np.ndarray:
    """The (RECORD_ROWS, 0) array passed as ``record`` in sweeps."""
    return np.empty((RECORD_ROWS, 0), dtype=np.float64)


def no_blocks(n_sets: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(bar_block, block_sums)`` for a batch that keeps no per-block sums."""
    return np.empty(0, dtype=np.int64), np.empty((n_sets, 0, 2), dtype=np.float64)


__all__ = ["batch_kernel_nb", "empty_series_nb", "empty_record", "no_blocks", "OUT_ROWS", "RUINED_ROW",
           "INVALID_BAR_ROW", "INVALID_VALUE_ROW", "EMPTY_INDICATOR", "RECORD_ROWS", "RECORD_EQUITY", "RECORD_SHARES",
           "RECORD_TRIP_PNL"]
