"""The fused batch kernel: shared accounting and online metrics for every strategy.

One call evaluates a batch of parameter sets on one asset:

1. indicators are computed once per *unique* indicator key (e.g. one z-score
   series per unique lookback), by the strategy's ``indicator_nb``;
2. each parameter set then makes one sequential pass over the traded bars,
   asking the strategy's ``signal_nb`` for a target position sign and doing
   sizing, fills, costs, equity and metric accumulation here, so every strategy
   gets the same tested bookkeeping (DESIGN.md "Reference semantics").

Array conventions: ``close`` (n_bars,) float64 of one asset; ``key_values``
(n_keys, n_key_params) float64; ``combo_key`` (n_sets,) int64 row of
``key_values`` for each set; ``params`` (n_sets, n_params) float64 in the
strategy's parameter order; ``options`` (n_options,) float64; ``out``
(N_METRICS, n_sets) float64. ``record_equity`` / ``record_shares`` are
(n_bars,) arrays filled per bar for a single-set batch (``backtest``), or
empty in a sweep.

Strategy contract::

    indicator_nb(close, key_row, out)            # out: (n_bars, n_outputs)
    signal_nb(indicators, t, params_row, options, position, state)
        -> (target_sign in {-1, 0, 1}, new_state)

``sweep_batch_nb`` is ``inline="always"``: each strategy module wraps it in two
module-level ``@njit(cache=True)`` functions (serial and ``parallel=True``),
which keeps Numba's on-disk cache working (a kernel that *takes* a jitted
function as an argument cannot be cached across processes) and turns the
``prange`` loops into threads only in the parallel wrapper. Each parameter
set's arithmetic is one sequential loop, so results are bit-identical however
the sets are split into batches or spread over threads and processes.
"""
import numpy as np
from numba import njit, prange

from btcore.metrics import N_METRICS, finalize_metrics_nb

TROUGH_SLACK = 1.0 + 1e-12


@njit(inline="always", error_model="numpy")
def sweep_batch_nb(close, first_bar, last_bar, key_values, combo_key, params, options,
                   initial_capital, cost_bps, periods_per_year, out, record_equity,
                   record_shares, n_lanes, n_indicator_outputs, indicator_nb, signal_nb):
    """Backtest every row of ``params`` on ``close[first_bar:last_bar + 1]``.

    ``n_lanes`` = threads of the parallel wrapper (1 in the serial one).
    """
    n_bars = close.shape[0]
    indicators = np.empty((key_values.shape[0], n_bars, n_indicator_outputs), dtype=np.float64)
    for key in prange(key_values.shape[0]):
        indicator_nb(close, key_values[key], indicators[key])
    fee_rate = cost_bps / 1e4
    recording = record_equity.shape[0] > 0
    n_traded = last_bar - first_bar + 1
    # round-robin lanes, not prange's contiguous halves: neighbouring (key-sorted)
    # sets cost alike, so contiguous chunks leave one thread idle at the end
    n_sets = params.shape[0]
    n_lanes = max(1, min(n_lanes, n_sets))
    for lane in prange(n_lanes):
        for k in range(lane, n_sets, n_lanes):
            set_indicators = indicators[combo_key[k]]
            set_params = params[k]
            cash = initial_capital
            shares = 0.0
            position = 0
            state = 0
            equity = initial_capital
            peak = initial_capital
            min_equity_to_peak = 1.0
            # moments of r - return_shift (the first non-zero-bar return): exact for
            # flat bars (r = 0, skipped) and well conditioned even when r is nearly constant
            active_bars = 0
            return_shift = 0.0
            sum_shifted = 0.0
            sum_shifted_squares = 0.0
            sum_downside_squares = 0.0
            num_trades = 0
            bars_in_market = 0
            round_trips = 0
            winning_round_trips = 0
            cash_before_entry = 0.0
            for t in range(first_bar, last_bar + 1):
                price = close[t]
                target, state = signal_nb(set_indicators, t, set_params, options, position, state)
                old_position = position
                if target != position:
                    if position != 0:  # close the open position: delta = -shares
                        delta = -shares
                        cash -= delta * price + abs(delta) * price * fee_rate
                        round_trips += 1
                        if cash > cash_before_entry:
                            winning_round_trips += 1
                        shares = 0.0
                        position = 0
                    if target != 0:
                        size = np.floor(cash / (price * (1.0 + fee_rate)))
                        if size > 0.0:
                            cash_before_entry = cash
                            delta = target * size
                            cash -= delta * price + abs(delta) * price * fee_rate
                            shares = delta
                            position = target
                if position != old_position:
                    num_trades += 1
                elif position == 0:
                    # flat and untouched: equity, peak and drawdown are unchanged, r = 0
                    if recording:
                        record_equity[t] = equity
                        record_shares[t] = 0.0
                    continue
                previous_equity = equity
                equity = cash + shares * price
                period_return = equity / previous_equity - 1.0
                if active_bars == 0:
                    return_shift = period_return
                active_bars += 1
                shifted = period_return - return_shift
                sum_shifted += shifted
                sum_shifted_squares += shifted * shifted
                downside = min(period_return, 0.0)  # branch-free: signs are unpredictable
                sum_downside_squares += downside * downside
                peak = max(peak, equity)
                # a new trough is rare: divide only when one is possible; the slack
                # covers rounding, so the kept minimum is exactly min(equity / peak)
                if equity < peak * min_equity_to_peak * TROUGH_SLACK:
                    min_equity_to_peak = min(min_equity_to_peak, equity / peak)
                if position != 0:
                    bars_in_market += 1
                if recording:
                    record_equity[t] = equity
                    record_shares[t] = shares
            finalize_metrics_nb(out, k, n_traded, active_bars, return_shift, sum_shifted,
                                sum_shifted_squares, sum_downside_squares,
                                min_equity_to_peak, equity, initial_capital, periods_per_year,
                                num_trades, bars_in_market, round_trips, winning_round_trips)


def empty_record() -> np.ndarray:
    """The zero-length array passed as ``record_equity``/``record_shares`` in sweeps."""
    return np.empty(0, dtype=np.float64)


__all__ = ["sweep_batch_nb", "empty_record", "N_METRICS"]
