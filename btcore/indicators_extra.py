"""Indicator kernels of the built-in single-asset strategies (plug-in API form).

Each kernel has the plug-in signature ``fn(close, *arguments, out)``: ``close``
is one asset's float64 closes (NaN before the asset lists, finite and > 0
afterwards), ``out`` arrives filled with NaN and each kernel writes ``out[t]``
only where its indicator is defined, from closes up to bar t. All are
O(n_bars). The exact definitions are in ``docs/builtin_strategies.md``.
"""

import numpy as np
from numba import njit

from btcore.indicators import _compensated_add, first_valid_nb

#: ``average`` option of ma_crossover: index of each choice
SMA, EMA = 0, 1


@njit(cache=True, nogil=True, error_model="numpy")
def _compensated_sum(close, start, stop):
    """Sum of close[start:stop] as (total, compensation): compensated, so
    total + compensation is within about one rounding of the exact sum."""
    total = 0.0
    compensation = 0.0
    for i in range(start, stop):
        total, compensation = _compensated_add(total, compensation, close[i])
    return total, compensation


@njit(cache=True, nogil=True, error_model="numpy")
def trailing_sma_nb(close, window, out):
    """Mean of the ``window`` closes ending at bar t (t included).

    Defined from the ``window``-th valid close on. A window of identical closes
    averages to that close exactly. Elsewhere the rolling sum is kept with
    compensated (TwoSum) updates and re-summed from scratch every ``window``
    bars, so the result matches a correctly rounded sum / window to ~1e-15
    relative whatever the price history (jumps, scale).
    """
    n_bars = close.shape[0]
    first = first_valid_nb(close)
    start = first + window - 1  # first bar with a full window
    if start >= n_bars:
        return
    equal_run = 1  # identical closes ending at bar t
    for t in range(first + 1, start + 1):
        equal_run = equal_run + 1 if close[t] == close[t - 1] else 1
    total, compensation = _compensated_sum(close, first, start + 1)
    bars_to_resum = window
    for t in range(start, n_bars):
        if t > start:
            equal_run = equal_run + 1 if close[t] == close[t - 1] else 1
            bars_to_resum -= 1
            if bars_to_resum == 0:  # a countdown, not t % window: division is slow
                bars_to_resum = window
                total, compensation = _compensated_sum(close, t - window + 1, t + 1)
            else:
                total, compensation = _compensated_add(total, compensation, close[t])
                total, compensation = _compensated_add(total, compensation, -close[t - window])
        if equal_run >= window:
            out[t] = close[t]
        else:
            out[t] = (total + compensation) / window


@njit(cache=True, nogil=True, error_model="numpy")
def trailing_ema_nb(close, window, out):
    """Exponential moving average with alpha = 2 / (window + 1).

    Seeded at the ``window``-th valid close with the mean of the first
    ``window`` valid closes (as :func:`trailing_sma_nb`), then
    ``ema_t = ema_{t-1} + alpha * (close_t - ema_{t-1})``; NaN before the seed.
    """
    n_bars = close.shape[0]
    first = first_valid_nb(close)
    start = first + window - 1
    if start >= n_bars:
        return
    alpha = 2.0 / (window + 1.0)
    flat = True
    for t in range(first + 1, start + 1):
        if close[t] != close[first]:
            flat = False
    if flat:
        ema = close[first]
    else:
        total, compensation = _compensated_sum(close, first, start + 1)
        ema = (total + compensation) / window
    out[start] = ema
    for t in range(start + 1, n_bars):
        ema = ema + alpha * (close[t] - ema)
        out[t] = ema


@njit(cache=True, nogil=True, error_model="numpy")
def moving_average_nb(close, window, average, out):
    """ma_crossover's average: ``average`` 0 = SMA (:func:`trailing_sma_nb`),
    1 = EMA (:func:`trailing_ema_nb`)."""
    if average == EMA:
        trailing_ema_nb(close, window, out)
    else:
        trailing_sma_nb(close, window, out)


@njit(cache=True, nogil=True, error_model="numpy")
def _prior_extreme_nb(close, window, sign, out):
    """out[t] = the close maximising sign * close over close[t-window:t] (the
    ``window`` bars before t), where ``window`` valid closes precede t.
    A monotonic deque of bar indices: O(n_bars), and the value is an exact close."""
    n_bars = close.shape[0]
    first = first_valid_nb(close)
    if first + window >= n_bars:
        return
    queue = np.empty(n_bars - first, dtype=np.int64)
    head = 0
    tail = 0  # the deque is queue[head:tail]; sign * close decreasing along it
    for t in range(first, n_bars):
        if t - first >= window:
            out[t] = close[queue[head]]
        value = sign * close[t]
        while tail > head and sign * close[queue[tail - 1]] <= value:
            tail -= 1
        queue[tail] = t
        tail += 1
        if queue[head] <= t - window:  # leaves the window of bar t + 1
            head += 1


@njit(cache=True, nogil=True, error_model="numpy")
def prior_high_nb(close, window, out):
    """Highest close of the ``window`` bars before t (bars t-window .. t-1)."""
    _prior_extreme_nb(close, window, 1.0, out)


@njit(cache=True, nogil=True, error_model="numpy")
def prior_low_nb(close, window, out):
    """Lowest close of the ``window`` bars before t (bars t-window .. t-1)."""
    _prior_extreme_nb(close, window, -1.0, out)


@njit(cache=True, nogil=True, error_model="numpy")
def _rsi_value(average_gain, average_loss):
    """100 * G / (G + L); 50 when both are 0 (no price change at all)."""
    total = average_gain + average_loss
    if total == 0.0:
        return 50.0
    return 100.0 * average_gain / total


@njit(cache=True, nogil=True, error_model="numpy")
def wilder_rsi_nb(close, period, out):
    """Wilder's RSI over ``period`` close-to-close changes.

    With gain_i = max(close_i - close_{i-1}, 0) and loss_i = max(close_{i-1} -
    close_i, 0): G and L start, at the bar of the ``period``-th change (the
    ``period + 1``-th valid close), as the plain means of the first ``period``
    gains and losses; afterwards ``G_t = ((period - 1) * G_{t-1} + gain_t) /
    period`` (likewise L). RSI_t = 100 * G / (G + L): 100 when L = 0 < G, 0 when
    G = 0 < L, and 50 when G = L = 0.
    """
    n_bars = close.shape[0]
    first = first_valid_nb(close)
    start = first + period
    if start >= n_bars:
        return
    gains = 0.0
    gains_comp = 0.0
    losses = 0.0
    losses_comp = 0.0
    for i in range(first + 1, start + 1):
        change = close[i] - close[i - 1]
        if change > 0.0:
            gains, gains_comp = _compensated_add(gains, gains_comp, change)
        elif change < 0.0:
            losses, losses_comp = _compensated_add(losses, losses_comp, -change)
    average_gain = (gains + gains_comp) / period
    average_loss = (losses + losses_comp) / period
    out[start] = _rsi_value(average_gain, average_loss)
    keep = period - 1.0
    for t in range(start + 1, n_bars):
        change = close[t] - close[t - 1]
        gain = change if change > 0.0 else 0.0
        loss = -change if change < 0.0 else 0.0
        average_gain = (keep * average_gain + gain) / period
        average_loss = (keep * average_loss + loss) / period
        out[t] = _rsi_value(average_gain, average_loss)
