"""The portfolio kernel: one account, every asset a sleeve of a single-asset strategy.

One call evaluates a batch of parameter sets on a whole universe
(``close`` is time-major, (n_bars, n_assets)):

1. every indicator series the batch needs is computed once per asset, on that
   asset's whole close column (exactly as the single-asset kernel does);
2. each parameter set then makes one pass over time. At each bar every listed
   asset (sleeve) asks the strategy's rule for a target sign and trades with
   ``fill_nb`` of :mod:`btcore.kernels.accounting` from its own sleeve cash;
   the account's equity E_t = sum of sleeve cash + shares * close goes into
   the accounting's metric state (``add_bar_nb``) and is finalised there.

The construction rules (``docs/portfolios.md``) sit around those building
blocks: periodic rebalancing of the sleeves' budgets, gross-exposure and
position-weight caps at entries, a portfolio drawdown stop, and the
out-of-money rule applied to the whole account.

``portfolio_kernel_nb`` takes the strategy's functions as arguments and is
inlined into an ``@njit(cache=True, nogil=True)`` wrapper generated per strategy by
:mod:`btcore.workflows.portfolio` (as ``btcore.kernels.binding`` does for ``batch_kernel_nb``).
Each parameter set is one sequential loop, so results are bit-identical however
sets are split into batches, threads or processes.

Array arguments (C-contiguous float64 unless noted):

- ``close`` (n_bars, n_assets); ``first_bars`` (n_assets,) int64: each asset's
  first traded bar; ``last_bar``: the window's last bar;
- ``series_which``, ``series_values``, ``set_series``, ``params``, ``options``:
  as in ``btcore.kernels.single.batch_kernel_nb``;
- ``construction`` (n_sets, N_CONSTRUCTION): the :data:`CONSTRUCTION` settings,
  rebalance_every (0 = never), max_gross_exposure, max_position_weight,
  portfolio_stop_drawdown (inf = none);
- ``out`` (PORTFOLIO_OUT_ROWS, n_sets): metrics, ruined, invalid_bar, turnover,
  avg_correlation (NaN here: computed from the records by ``portfolio_backtest``);
  a set refused at a target other than -1, 0 or 1 holds it in ``INVALID_VALUE_ROW``;
- ``record_equity`` (n_bars,) and ``record`` (RECORD_LAYERS, n_bars, n_assets):
  per-bar detail of a single-set batch (``record`` with 0 bars in sweeps).
"""
import numpy as np
from numba import njit

from btcore.kernels.accounting import (INVALID_VALUE_ROW, OUT_ROWS, add_bar_nb, close_out_nb,
                                       entry_size_nb, fee_nb, fill_nb, finalize_metrics_nb,
                                       ruin_nb, start_metrics_nb, trade_cost_nb, turnover_nb,
                                       valid_target_nb)

TURNOVER_ROW, AVG_CORRELATION_ROW = OUT_ROWS, OUT_ROWS + 1
PORTFOLIO_OUT_ROWS = OUT_ROWS + 2
#: the construction settings, in the order of ``construction``'s columns; each may
#: be a keyword (one value for the sweep) or a grid column (swept); inf = none
CONSTRUCTION = ("rebalance_every", "max_gross_exposure", "max_position_weight",
                "portfolio_stop_drawdown")
REBALANCE_EVERY, MAX_GROSS_EXPOSURE, MAX_POSITION_WEIGHT, STOP_DRAWDOWN = range(4)
N_CONSTRUCTION = len(CONSTRUCTION)
#: layers of ``record``: shares, sleeve value (cash + shares * close), cash moved
#: into the sleeve by a rebalance, P&L of the round trip(s) closed at the bar (NaN: none)
RECORD_SHARES, RECORD_VALUE, RECORD_TRANSFER, RECORD_TRIP_PNL = 0, 1, 2, 3
RECORD_LAYERS = 4


@njit(inline="always", error_model="numpy")
def capped_size_nb(size, price, fee_rate, equity, other_gross, max_gross, max_weight):
    """The largest whole size <= ``size`` whose entry keeps, with E' = ``equity`` -
    the entry's cost, |size * price| <= max_weight * E' and ``other_gross`` +
    |size * price| <= max_gross * E' (an infinite cap is no cap)."""
    if max_weight < np.inf:
        size = min(size, np.floor(max_weight * equity / (price * (1.0 + max_weight * fee_rate))))
    if max_gross < np.inf:
        size = min(size, np.floor((max_gross * equity - other_gross) /
                                  (price * (1.0 + max_gross * fee_rate))))
    if not size > 0.0:  # also NaN
        return 0.0
    while size > 0.0:  # the formula can be one share off by rounding: check exactly
        value = size * price
        after = equity - value * fee_rate
        if value <= max_weight * after and other_gross + value <= max_gross * after:
            break
        size -= 1.0
    return size


@njit(inline="always", error_model="numpy")
def record_trip_nb(record, t, a, pnl):
    """Add a closed round trip's P&L to sleeve ``a``'s record at bar ``t`` (a bar
    can close two: a rebalance or drawdown stop and the rule's exit)."""
    previous = record[RECORD_TRIP_PNL, t, a]
    record[RECORD_TRIP_PNL, t, a] = pnl if np.isnan(previous) else previous + pnl


@njit(inline="always", error_model="numpy")
def portfolio_kernel_nb(close, first_bars, last_bar, series_which, series_values, set_series,
                        params, options, construction, initial_capital, cost_bps,
                        periods_per_year, out, record_equity, record,
                        compute_indicator_nb, select_series_nb, load_values_nb, signal_nb):
    """Backtest every row of ``params`` as one account over the universe ``close``.

    The strategy's functions are those of ``btcore.kernels.single.batch_kernel_nb``;
    ``load_values_nb`` here copies a bar's row of every asset (series are laid out
    (n_bars, n_assets)).
    """
    n_bars, n_assets = close.shape
    n_series = series_which.shape[0]
    # indicators: each series on each asset's whole column (as the single-asset kernel)
    series = np.empty((n_series, n_bars, n_assets), dtype=np.float64)
    for job in range(n_series * n_assets):
        s = job // n_assets
        a = job - s * n_assets
        column = np.empty(n_bars, dtype=np.float64)
        for t in range(n_bars):
            column[t] = close[t, a]
        buffer = np.full(n_bars, np.nan)
        compute_indicator_nb(series_which[s], column, series_values[s], buffer)
        for t in range(n_bars):
            series[s, t, a] = buffer[t]
    fee_rate = cost_bps / 1e4
    recording = record.shape[1] > 0
    first_bar = last_bar
    for a in range(n_assets):
        first_bar = min(first_bar, first_bars[a])
    n_traded = last_bar - first_bar + 1
    n_indicators = set_series.shape[1]
    sleeve_capital = initial_capital / n_assets
    n_sets = params.shape[0]
    # per-set buffers, reused by every set
    row_values = np.empty((n_indicators, n_assets), dtype=np.float64)
    values = np.empty(n_indicators, dtype=np.float64)
    cash = np.empty(n_assets, dtype=np.float64)
    shares = np.empty(n_assets, dtype=np.float64)
    entry_cash = np.empty(n_assets, dtype=np.float64)
    position = np.empty(n_assets, dtype=np.int64)
    state = np.empty(n_assets, dtype=np.int64)
    last_fill = np.empty(n_assets, dtype=np.int64)  # last bar with a fill, per sleeve
    for k in range(n_sets):
        selected = select_series_nb(series, set_series[k])
        set_params = params[k]
        rebalance_every = int(construction[k, REBALANCE_EVERY])
        max_gross = construction[k, MAX_GROSS_EXPOSURE]
        max_weight = construction[k, MAX_POSITION_WEIGHT]
        stop_drawdown = construction[k, STOP_DRAWDOWN]
        capped = max_gross < np.inf or max_weight < np.inf
        for a in range(n_assets):
            cash[a] = sleeve_capital
            shares[a] = 0.0
            entry_cash[a] = 0.0
            position[a] = 0
            state[a] = 0
            last_fill[a] = -1
        n_open = 0
        metrics = start_metrics_nb(initial_capital)
        num_trades = 0
        round_trips = 0
        winning_round_trips = 0
        traded_value = 0.0
        sum_equity = 0.0
        ruined = False
        halted = False  # the drawdown stop closed everything
        invalid_bar = -1
        invalid_value = 0.0
        stop_bar = last_bar
        for t in range(first_bar, last_bar + 1):
            load_values_nb(row_values, selected, t)
            rebalance = rebalance_every > 0 and t > first_bar and \
                (t - first_bar) % rebalance_every == 0
            budget = 0.0
            running = 0.0  # equity during the bar (caps): marked at close_t, less costs
            gross = 0.0  # sum |shares * close_t| during the bar (caps)
            if rebalance or capped:
                for a in range(n_assets):
                    if t >= first_bars[a]:
                        price = close[t, a]
                        running += cash[a] + shares[a] * price
                        gross += abs(shares[a] * price)
                    else:
                        running += cash[a]
                if rebalance:
                    if running > 0.0:
                        budget = running / n_assets
                    else:  # the account is out of money: the check below ends it
                        rebalance = False
            any_fill = False
            new_equity = 0.0
            for a in range(n_assets):
                if t < first_bars[a]:  # not listed yet: the sleeve holds cash
                    if rebalance:
                        if recording:
                            record[RECORD_TRANSFER, t, a] = budget - cash[a]
                        cash[a] = budget
                    new_equity += cash[a]
                    continue
                price = close[t, a]
                filled = False
                if rebalance:
                    value = cash[a] + shares[a] * price
                    transfer = budget - value
                    if recording:
                        record[RECORD_TRANSFER, t, a] = transfer
                    if shares[a] != 0.0:
                        size = np.floor(budget / price)
                        held = abs(shares[a])
                        if capped and size > held:  # an increase is capped as an entry
                            size = max(held, capped_size_nb(size, price, fee_rate, running,
                                                            gross - held * price, max_gross,
                                                            max_weight))
                        resized = position[a] * size
                        delta = resized - shares[a]
                        entry_cash[a] += transfer
                        cash[a] = cash[a] + transfer - trade_cost_nb(delta, price, fee_rate)
                        if delta != 0.0:
                            filled = True
                            traded_value += abs(delta) * price
                            if capped:
                                running -= fee_nb(delta, price, fee_rate)
                                gross += abs(resized) * price - abs(shares[a]) * price
                        shares[a] = resized
                        if resized == 0.0:  # the budget buys no share: the trip ends
                            pnl = cash[a] - entry_cash[a]
                            round_trips += 1
                            winning_round_trips += pnl > 0.0
                            if recording:
                                record[RECORD_TRIP_PNL, t, a] = pnl
                            position[a] = 0
                            n_open -= 1
                    else:
                        cash[a] = budget
                for i in range(n_indicators):
                    values[i] = row_values[i, a]
                target, new_state = signal_nb(values, price, set_params, options,
                                              position[a], state[a])
                state[a] = new_state
                if target != position[a]:
                    if not valid_target_nb(target):  # NaN, 0.5, 2, -inf...
                        invalid_bar = t
                        invalid_value = target
                        break
                    old_shares = shares[a]
                    was_open = position[a] != 0
                    if capped and target != 0:
                        closed_trip = False
                        pnl = 0.0
                        if was_open:
                            position[a], shares[a], cash[a], entry_cash[a], _, \
                                closed_trip, pnl = fill_nb(0, position[a], shares[a],
                                                           cash[a], price, fee_rate,
                                                           entry_cash[a])
                            running -= fee_nb(old_shares, price, fee_rate)
                            gross -= abs(old_shares) * price
                            filled = True
                        size = capped_size_nb(entry_size_nb(cash[a], price, fee_rate), price,
                                              fee_rate, running, gross, max_gross, max_weight)
                        if size > 0.0:
                            entry_cash[a] = cash[a]
                            delta = target * size
                            cash[a] = cash[a] - trade_cost_nb(delta, price, fee_rate)
                            shares[a] = delta
                            position[a] = target
                            running -= fee_nb(size, price, fee_rate)
                            gross += size * price
                            filled = True
                    else:
                        position[a], shares[a], cash[a], entry_cash[a], fill_done, \
                            closed_trip, pnl = fill_nb(target, position[a], shares[a],
                                                       cash[a], price, fee_rate,
                                                       entry_cash[a])
                        filled = filled or fill_done
                        if capped and was_open:  # an exit (capped sets enter above)
                            running -= fee_nb(old_shares, price, fee_rate)
                            gross -= abs(old_shares) * price
                    traded_value += (abs(old_shares) + abs(shares[a])) * price
                    if closed_trip:
                        round_trips += 1
                        winning_round_trips += pnl > 0.0
                        if recording:
                            record_trip_nb(record, t, a, pnl)
                    n_open += int(position[a] != 0) - int(was_open)  # ints: plain Python too
                if filled:
                    any_fill = True
                    if last_fill[a] != t:
                        num_trades += 1
                        last_fill[a] = t
                new_equity += cash[a] + shares[a] * price
            if invalid_bar >= 0:
                stop_bar = t
                break
            if any_fill or n_open > 0 or rebalance:  # else untouched: r = 0 exactly
                equity = new_equity
                if equity <= 0.0:
                    ruined = True
                    stop_bar = t
                    break
                if stop_drawdown < np.inf and \
                        equity / max(metrics.peak, equity) - 1.0 <= -stop_drawdown:
                    halted = True  # close everything at close_t; flat to the end
                    equity = 0.0
                    for a in range(n_assets):
                        if shares[a] != 0.0:
                            price = close[t, a]
                            traded_value += abs(shares[a]) * price
                            position[a], shares[a], cash[a], entry_cash[a], _, \
                                closed_trip, pnl = fill_nb(0, position[a], shares[a],
                                                           cash[a], price, fee_rate,
                                                           entry_cash[a])
                            round_trips += 1
                            winning_round_trips += pnl > 0.0
                            if recording:
                                record_trip_nb(record, t, a, pnl)
                            if last_fill[a] != t:
                                num_trades += 1
                                last_fill[a] = t
                        equity += cash[a]
                    n_open = 0
                    if equity <= 0.0:  # the closing costs took the last of it
                        ruined = True
                        stop_bar = t
                        break
                metrics, _ = add_bar_nb(metrics, equity, n_open > 0)
            sum_equity += metrics.equity
            if recording:
                record_equity[t] = metrics.equity
                for a in range(n_assets):
                    record[RECORD_SHARES, t, a] = shares[a]
                    record[RECORD_VALUE, t, a] = cash[a] + shares[a] * close[t, a] \
                        if t >= first_bars[a] else cash[a]
            if halted:
                stop_bar = t
                break
        if ruined:
            # out of money at stop_bar: close every sleeve out, account at 0, r = -1
            t = stop_bar
            for a in range(n_assets):
                if t < first_bars[a]:
                    continue
                price = close[t, a]
                traded_value += abs(shares[a]) * price
                out_filled, out_closed, out_pnl = close_out_nb(shares[a], cash[a], price,
                                                               fee_rate, entry_cash[a])
                if out_closed:
                    round_trips += 1
                    if recording:
                        record_trip_nb(record, t, a, out_pnl)
                if out_filled and last_fill[a] != t:
                    num_trades += 1
                    last_fill[a] = t
                cash[a] = 0.0
                shares[a] = 0.0
                position[a] = 0
            metrics = ruin_nb(metrics)
            if recording:
                record_equity[t] = 0.0
                record[RECORD_SHARES, t] = 0.0
                record[RECORD_VALUE, t] = 0.0
        if recording and stop_bar < last_bar:  # flat to the end
            for u in range(stop_bar + 1, last_bar + 1):
                record_equity[u] = metrics.equity
                for a in range(n_assets):
                    record[RECORD_SHARES, u, a] = 0.0
                    record[RECORD_VALUE, u, a] = cash[a]
        # bars after a stop: E constant (0 when ruined), r = 0 (finalize adds them)
        sum_equity += metrics.equity * (last_bar - stop_bar)
        finalize_metrics_nb(out, k, n_traded, metrics, num_trades, round_trips,
                            winning_round_trips, initial_capital, periods_per_year, ruined,
                            invalid_bar)
        if invalid_bar != -1:  # a refused set: what the rule returned
            out[INVALID_VALUE_ROW, k] = invalid_value
        out[TURNOVER_ROW, k] = turnover_nb(traded_value, sum_equity, n_traded,
                                           periods_per_year)
        out[AVG_CORRELATION_ROW, k] = np.nan


def empty_portfolio_record(n_assets: int = 0) -> tuple:
    """``(record_equity, record)`` passed in sweeps (no per-bar detail)."""
    return (np.empty(0, dtype=np.float64),
            np.empty((RECORD_LAYERS, 0, n_assets), dtype=np.float64))


__all__ = ["portfolio_kernel_nb", "capped_size_nb", "empty_portfolio_record", "CONSTRUCTION",
           "PORTFOLIO_OUT_ROWS", "TURNOVER_ROW", "AVG_CORRELATION_ROW", "N_CONSTRUCTION",
           "REBALANCE_EVERY", "MAX_GROSS_EXPOSURE", "MAX_POSITION_WEIGHT", "STOP_DRAWDOWN",
           "RECORD_LAYERS", "RECORD_SHARES", "RECORD_VALUE", "RECORD_TRANSFER",
           "RECORD_TRIP_PNL"]
