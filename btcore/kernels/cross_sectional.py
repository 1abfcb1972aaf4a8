"""The cross-sectional kernel: rank a universe, hold the extremes, one account.

One call evaluates a batch of parameter sets (``params`` rows: lookback_period,
top_k, rebalance_every, gross_leverage) on a whole universe. ``close`` is
time-major (n_bars, n_assets), NaN before each asset's listing. Each set makes
one sequential pass over the traded bars ``first_bar .. last_bar`` (``first_bar``
= the earliest of ``first_bars``):

- E_t = cash + sum(shares * close_t), summed in asset order, before trading;
- every ``rebalance_every`` bars from ``first_bar`` (``first_bar`` included) the
  eligible assets (listed in the window at t and with ``lookback_period`` bars of
  data before t) are ranked by close_t / close_{t-L} - 1 in (return, asset)
  order, so ties rank by asset order; only the ``top_k`` at each end matter,
  so they are picked by an O(n) selection (:func:`kth_smallest_nb`, the value
  ``np.partition`` would put at that position, for the threshold, then a pass
  in asset order), which chooses exactly the assets a stable
  argsort would (and is ~4x cheaper on 500 assets); the chosen assets get
  target shares trunc(weight * E_t / close_t), every other asset 0, and the
  differences trade at close_t with costs on |delta shares|;
- trade costs, the account's return, drawdown and metrics are those of
  :mod:`btcore.kernels.accounting`; E <= 0 after a bar closes every position at
  close_t and leaves the account at 0 (ruined, r = -1).

No user function is involved, so this is a plain ``@njit(nogil=True)`` function,
cached on disk through its generated wrapper module (:mod:`btcore.kernels.binding`,
whose name covers this file and ``accounting.py``). Each set is one loop: results
are bit-identical however sets are split into tasks, threads or processes.

Arguments: ``first_bars`` (n_assets,) int64 each asset's first traded bar
(max(window start, listing)); ``first_valid`` (n_assets,) int64 each asset's
listing bar; ``params`` (n_sets, N_PARAMS) float64; ``costs`` (4,) float64, the
:data:`COST_NAMES` settings (all 0: today's arithmetic, bit for bit: fills slipped
against the trade, a fixed fee per asset traded, borrow on shorts at each close,
Sharpe and Sortino against the risk-free rate); ``out`` (CS_OUT_ROWS, n_sets);
``record_equity`` (n_bars,) and ``record_shares`` (n_bars, n_assets): per-bar
detail of a one-set batch (0 bars in sweeps).
"""
import numpy as np
from numba import njit

from btcore.kernels.accounting import (OUT_ROWS, add_bar_nb, fee_nb, finalize_metrics_nb,
                                       ruin_nb, start_metrics_nb, trade_cost_nb, turnover_nb)

PARAM_NAMES = ("lookback_period", "top_k", "rebalance_every", "gross_leverage")
LOOKBACK, TOP_K, REBALANCE_EVERY, GROSS_LEVERAGE = range(4)
N_PARAMS = len(PARAM_NAMES)
#: ``costs`` (run settings beyond cost_bps; 0 = none): slippage in bps of the fill price,
#: a cash fee per asset traded, annual borrow bps of a short's value, the annual
#: risk-free rate of Sharpe and Sortino (``docs/cross_sectional.md``)
COST_SLIPPAGE_BPS, COST_FEE_PER_TRADE, COST_BORROW_BPS, COST_RISK_FREE_RATE = range(4)
COST_NAMES = ("slippage_bps", "fee_per_trade", "borrow_bps", "risk_free_rate")
TURNOVER_ROW = OUT_ROWS
CS_OUT_ROWS = OUT_ROWS + 1


@njit(inline="always", error_model="numpy")
def _sorts_before(a, b) -> bool:
    """Ascending order with NaN last (``np.sort``'s)."""
    return a < b or (a == a and b != b)


@njit(nogil=True, error_model="numpy")
def kth_smallest_nb(values, kth):
    """The value ``np.partition(values, kth)[kth]`` holds (NaN sorts last): Hoare's
    selection on a copy. Written out because Numba's ``np.partition`` takes ~11 s
    to compile (its shape checks' message formatting included), most of a cold
    cross-sectional sweep; equal values are interchangeable in the callers."""
    work = values.copy()
    lo, hi = 0, work.size - 1
    while lo < hi:
        pivot = work[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while _sorts_before(work[i], pivot):
                i += 1
            while _sorts_before(pivot, work[j]):
                j -= 1
            if i <= j:
                work[i], work[j] = work[j], work[i]
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            return work[kth]
    return work[kth]


@njit(inline="always", error_model="numpy")
def select_worst_nb(values, n, k, chosen):
    """Positions of the first ``k`` of ``values[:n]`` in the stable ascending order of
    (value, position), written into ``chosen`` (in position order); returns k.
    An O(n) selection instead of a sort: only the set matters."""
    threshold = kth_smallest_nb(values, k - 1)  # the k-th smallest value
    below = 0
    for j in range(n):
        below += values[j] < threshold
    ties = k - below  # equal values rank by position: the lowest positions are "worse"
    m = 0
    for j in range(n):
        if values[j] < threshold:
            chosen[m] = j
            m += 1
        elif values[j] == threshold and ties > 0:
            chosen[m] = j
            m += 1
            ties -= 1
    return m


@njit(inline="always", error_model="numpy")
def select_best_nb(values, n, k, chosen):
    """Positions of the last ``k`` of ``values[:n]`` in the stable ascending order of
    (value, position) (the ``k`` best; equal values: the highest positions)."""
    threshold = kth_smallest_nb(values, n - k)  # the k-th largest value
    above = 0
    for j in range(n):
        above += values[j] > threshold
    skip = 0  # equal values left out: the lowest positions
    for j in range(n):
        skip += values[j] == threshold
    skip -= k - above
    m = 0
    for j in range(n):
        if values[j] > threshold:
            chosen[m] = j
            m += 1
        elif values[j] == threshold:
            if skip > 0:
                skip -= 1
            else:
                chosen[m] = j
                m += 1
    return m


@njit(nogil=True, error_model="numpy")
def cross_sectional_kernel_nb(close, first_bars, first_valid, last_bar, params, long_only,
                              momentum, initial_capital, cost_bps, costs, periods_per_year, out,
                              record_equity, record_shares):
    """Backtest every row of ``params`` as one account over the universe ``close``.

    Arguments and rules: the module docstring. ``out`` rows: the metrics,
    ``RUINED_ROW``, ``INVALID_BAR_ROW`` (always -1: no user rule) and
    ``TURNOVER_ROW``.
    """
    n_assets = close.shape[1]
    fee = cost_bps / 1e4
    slippage = costs[COST_SLIPPAGE_BPS] / 1e4
    fixed_fee = costs[COST_FEE_PER_TRADE]
    borrow_rate = costs[COST_BORROW_BPS] / 1e4
    risk_free = costs[COST_RISK_FREE_RATE] / periods_per_year
    recording = record_equity.shape[0] > 0
    first_bar = last_bar
    for a in range(n_assets):
        first_bar = min(first_bar, first_bars[a])
    n_traded = last_bar - first_bar + 1
    shares = np.empty(n_assets, dtype=np.float64)
    target = np.empty(n_assets, dtype=np.float64)
    trip_cash = np.empty(n_assets, dtype=np.float64)  # cash flow of the open round trip
    filled_at = np.empty(n_assets, dtype=np.int64)
    eligible = np.empty(n_assets, dtype=np.int64)
    trailing = np.empty(n_assets, dtype=np.float64)
    worst = np.empty(n_assets, dtype=np.int64)
    best = np.empty(n_assets, dtype=np.int64)
    held = np.empty(n_assets, dtype=np.int64)  # the n_open assets with shares, ascending
    for k in range(params.shape[0]):
        lookback = int(params[k, LOOKBACK])
        top_k = int(params[k, TOP_K])
        every = int(params[k, REBALANCE_EVERY])
        gross = params[k, GROSS_LEVERAGE]
        weight = gross / top_k if long_only else gross / (2 * top_k)
        needed = top_k if long_only else 2 * top_k
        for a in range(n_assets):
            shares[a] = 0.0
            trip_cash[a] = 0.0
            filled_at[a] = -1
        cash = initial_capital
        n_open = 0
        metrics = start_metrics_nb(initial_capital)
        num_trades = 0
        round_trips = 0
        winning_round_trips = 0
        traded_value = 0.0
        sum_equity = 0.0
        ruined = False
        for t in range(first_bar, last_bar + 1):
            marked = cash
            for i in range(n_open):  # held assets in asset order
                a = held[i]
                marked += shares[a] * close[t, a]
            any_fill = False
            if (t - first_bar) % every == 0 and marked > 0.0:
                n_eligible = 0
                for a in range(n_assets):
                    target[a] = 0.0
                    if t >= first_bars[a] and t - lookback >= first_valid[a]:
                        eligible[n_eligible] = a
                        trailing[n_eligible] = close[t, a] / close[t - lookback, a] - 1.0
                        n_eligible += 1
                if n_eligible >= needed:
                    values = trailing[:n_eligible]
                    if long_only:
                        if momentum:
                            n_best = select_best_nb(values, n_eligible, top_k, best)
                            for j in range(n_best):
                                a = eligible[best[j]]
                                target[a] = np.trunc(weight * marked / close[t, a])
                        else:
                            n_worst = select_worst_nb(values, n_eligible, top_k, worst)
                            for j in range(n_worst):
                                a = eligible[worst[j]]
                                target[a] = np.trunc(weight * marked / close[t, a])
                    else:
                        n_worst = select_worst_nb(values, n_eligible, top_k, worst)
                        n_best = select_best_nb(values, n_eligible, top_k, best)
                        side = -1.0 if momentum else 1.0  # the worst are bought on reversal
                        for j in range(n_worst):
                            a = eligible[worst[j]]
                            target[a] = np.trunc(side * weight * marked / close[t, a])
                        for j in range(n_best):
                            a = eligible[best[j]]
                            target[a] = np.trunc(-side * weight * marked / close[t, a])
                for a in range(n_assets):
                    old = shares[a]
                    new = target[a]
                    delta = new - old
                    if delta == 0.0:
                        continue
                    # the fill price, slipped against the trade (p * 1.0 = p: no slippage)
                    price = close[t, a] * (1.0 + slippage if delta > 0.0 else 1.0 - slippage)
                    cost = trade_cost_nb(delta, price, fee)
                    if fixed_fee > 0.0:  # one fee per asset traded at a rebalance
                        cost += fixed_fee
                    cash -= cost
                    traded_value += abs(delta) * price
                    if old != 0.0 and (new == 0.0 or (new > 0.0) != (old > 0.0)):
                        # the round trip ends (close or flip); a flip opens the next.
                        # (trip cash + old * price) - fee, in this order: bit-identical
                        # to trip cash - trade_cost_nb(-old, ...) only up to rounding
                        pnl = trip_cash[a] + old * price - fee_nb(old, price, fee)
                        if fixed_fee > 0.0:
                            pnl -= fixed_fee
                        round_trips += 1
                        winning_round_trips += pnl > 0.0
                        trip_cash[a] = -trade_cost_nb(new, price, fee)
                    else:
                        trip_cash[a] -= cost
                    n_open += int(new != 0.0) - int(old != 0.0)  # ints: plain Python too
                    shares[a] = new if new != 0.0 else 0.0
                    num_trades += 1
                    filled_at[a] = t
                    any_fill = True
            if any_fill:
                n_held = 0
                marked = cash
                for a in range(n_assets):
                    if shares[a] != 0.0:
                        held[n_held] = a
                        n_held += 1
                        marked += shares[a] * close[t, a]
                n_open = n_held
            if borrow_rate > 0.0:  # shorts pay borrow at the close
                for i in range(n_open):
                    a = held[i]
                    if shares[a] < 0.0:
                        charge = -shares[a] * close[t, a] * borrow_rate / periods_per_year
                        cash -= charge
                        marked -= charge
                        trip_cash[a] -= charge
            if marked <= 0.0:  # out of money: close everything at close_t
                for a in range(n_assets):
                    if shares[a] != 0.0:
                        traded_value += abs(shares[a]) * close[t, a]
                        round_trips += 1
                        if filled_at[a] != t:
                            num_trades += 1
                            filled_at[a] = t
                        shares[a] = 0.0
                n_open = 0
                cash = 0.0
                ruined = True
                metrics = ruin_nb(metrics, risk_free)
                if recording:
                    for u in range(t, last_bar + 1):
                        record_equity[u] = 0.0
                        for a in range(n_assets):
                            record_shares[u, a] = 0.0
                break
            if any_fill or n_open > 0:  # else untouched: r = 0 exactly
                metrics, _ = add_bar_nb(metrics, marked, n_open > 0, risk_free)
            sum_equity += metrics.equity
            if recording:
                record_equity[t] = metrics.equity
                for a in range(n_assets):
                    record_shares[t, a] = shares[a]
        finalize_metrics_nb(out, k, n_traded, metrics, num_trades, round_trips,
                            winning_round_trips, initial_capital, periods_per_year, ruined, -1,
                            risk_free)
        out[TURNOVER_ROW, k] = turnover_nb(traded_value, sum_equity, n_traded,
                                           periods_per_year)
