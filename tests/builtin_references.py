"""Pure-Python references for the four built-in single-asset strategies.

Written from docs/builtin_strategies.md, independently of the Numba kernels in
btcore/indicators_extra.py: every indicator value is recomputed from its own
explicit window with ``math.fsum`` (or plain max / min), and every rule is a
``rule(t, position) -> target`` for ``reference.simulate_reference``.

Indicator functions take a 1-D close array (NaN before the asset lists) and
return float lists of the same length with ``nan`` where undefined.
"""
import math

import numpy as np

NAN = math.nan
#: a window's std at or below this fraction of its mean is flat (no band)
FLAT_STD_TOLERANCE = 1e-12


def _prices(close):
    return [float(x) for x in np.asarray(close, dtype=np.float64)]


def _first_listed(prices):
    for t, price in enumerate(prices):
        if not math.isnan(price):
            return t
    return len(prices)


def _mean(window):
    """A window's mean: exactly the close for identical closes, else fsum / n."""
    if all(x == window[0] for x in window):
        return window[0]
    return math.fsum(window) / len(window)


# ------------------------------------------------------------------- indicators
def sma_reference(close, window):
    """Mean of closes t-window+1 .. t, from the window-th valid close on."""
    prices = _prices(close)
    first = _first_listed(prices)
    out = [NAN] * len(prices)
    for t in range(first + window - 1, len(prices)):
        out[t] = _mean(prices[t - window + 1:t + 1])
    return out


def ema_reference(close, window):
    """alpha = 2 / (window + 1); seed = mean of the first window valid closes, at
    the window-th of them; then ema_t = ema_{t-1} + alpha * (close_t - ema_{t-1})."""
    prices = _prices(close)
    first = _first_listed(prices)
    out = [NAN] * len(prices)
    start = first + window - 1
    if start >= len(prices):
        return out
    alpha = 2.0 / (window + 1.0)
    ema = _mean(prices[first:start + 1])
    out[start] = ema
    for t in range(start + 1, len(prices)):
        ema = ema + alpha * (prices[t] - ema)
        out[t] = ema
    return out


def moving_average_reference(close, window, average):
    return {"sma": sma_reference, "ema": ema_reference}[average](close, window)


def prior_high_reference(close, window):
    """max of closes t-window .. t-1, where window valid closes precede t."""
    prices = _prices(close)
    first = _first_listed(prices)
    return [max(prices[t - window:t]) if t - first >= window else NAN
            for t in range(len(prices))]


def prior_low_reference(close, window):
    """min of closes t-window .. t-1, where window valid closes precede t."""
    prices = _prices(close)
    first = _first_listed(prices)
    return [min(prices[t - window:t]) if t - first >= window else NAN
            for t in range(len(prices))]


def rsi_reference(close, period):
    """Wilder's RSI: seed G, L = fsum of the first ``period`` gains, losses / period
    at bar first + period; then G_t = ((period - 1) G_{t-1} + gain_t) / period;
    RSI = 100 G / (G + L), 50 when G = L = 0."""
    prices = _prices(close)
    first = _first_listed(prices)
    out = [NAN] * len(prices)
    start = first + period
    if start >= len(prices):
        return out
    changes = [prices[i] - prices[i - 1] for i in range(first + 1, start + 1)]
    gain = math.fsum(max(c, 0.0) for c in changes) / period
    loss = math.fsum(max(-c, 0.0) for c in changes) / period

    def rsi(g, l):
        return 50.0 if g + l == 0.0 else 100.0 * g / (g + l)

    out[start] = rsi(gain, loss)
    for t in range(start + 1, len(prices)):
        change = prices[t] - prices[t - 1]
        gain = ((period - 1) * gain + max(change, 0.0)) / period
        loss = ((period - 1) * loss + max(-change, 0.0)) / period
        out[t] = rsi(gain, loss)
    return out


def bollinger_reference(close, window):
    """(mean, std, z) of closes t-window .. t-1 (two-pass, ddof=1), where window
    valid closes precede t (NaN, NaN, 0 before). A flat window (std <= 1e-12 *
    mean, see :func:`has_band`) has no band and z = 0 there."""
    prices = _prices(close)
    first = _first_listed(prices)
    n = len(prices)
    mean, std, z = [NAN] * n, [NAN] * n, [0.0] * n
    for t in range(first + window, n):
        values = prices[t - window:t]
        m = math.fsum(values) / window
        s = math.sqrt(math.fsum((x - m) ** 2 for x in values) / (window - 1))
        mean[t], std[t] = m, s
        if has_band(m, s):
            z[t] = (prices[t] - m) / s
    return mean, std, z


def has_band(mean, std):
    """A defined window whose std is more than 1e-12 of its mean."""
    return not math.isnan(mean) and std > FLAT_STD_TOLERANCE * mean


# -------------------------------------------------------------------- the rules
def ma_crossover_rule(fast, slow, *, allow_short=True):
    """fast > slow -> 1; fast < slow -> -1 (0 if not allow_short); equal -> keep;
    either undefined -> 0."""
    def rule(t, position):
        f, s = fast[t], slow[t]
        if math.isnan(f) or math.isnan(s):
            return 0
        if f > s:
            return 1
        if f < s:
            return -1 if allow_short else 0
        return position
    return rule


def donchian_rule(close, entry_high, entry_low, exit_low, exit_high, *, allow_short=True):
    """Exit (long: close < exit_low; short: close > exit_high), then, if flat,
    enter (close > entry_high -> 1; close < entry_low -> -1 if allowed).
    An undefined channel (NaN) never triggers."""
    prices = _prices(close)

    def rule(t, position):
        c = prices[t]
        if position == 1 and not math.isnan(exit_low[t]) and c < exit_low[t]:
            position = 0
        elif position == -1 and not math.isnan(exit_high[t]) and c > exit_high[t]:
            position = 0
        if position == 0 and not math.isnan(entry_high[t]):
            if c > entry_high[t]:
                return 1
            if allow_short and c < entry_low[t]:
                return -1
        return position
    return rule


def rsi_rule(rsi, lower, upper, *, allow_short=True):
    """Exit (long: RSI > 50; short: RSI < 50), then, if flat, enter
    (RSI < lower -> 1; RSI > upper -> -1 if allowed). Undefined RSI: flat."""
    def rule(t, position):
        r = rsi[t]
        if math.isnan(r):
            assert position == 0
            return 0
        if position == 1 and r > 50.0:
            position = 0
        elif position == -1 and r < 50.0:
            position = 0
        if position == 0:
            if r < lower:
                return 1
            if allow_short and r > upper:
                return -1
        return position
    return rule


def bollinger_rule(close, mean, std, width, *, allow_short=True):
    """Bands m -+ width * s. Exit (long: close >= m; short: close <= m; either
    when there is no band), then, if flat and there is a band, enter
    (close < m - width s -> 1; close > m + width s -> -1 if allowed)."""
    prices = _prices(close)

    def rule(t, position):
        c, m, s = prices[t], mean[t], std[t]
        band = has_band(m, s)
        if position == 1 and (not band or c >= m):
            position = 0
        elif position == -1 and (not band or c <= m):
            position = 0
        if position == 0 and band:
            if c < m - width * s:
                return 1
            if allow_short and c > m + width * s:
                return -1
        return position
    return rule
