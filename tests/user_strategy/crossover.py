"""A user strategy written from docs/strategies.md alone (the worked example)."""
import numpy as np
from numba import njit

from btcore.strategies import Indicator, Param, StrategySpec, register

FAST, SLOW, BAND = 0, 1, 2      # columns of `params`, in declaration order
ALLOW_SHORT = 0                  # columns of `options`


@njit(cache=True, nogil=True, error_model="numpy")
def trailing_mean_nb(close, window, out):
    """Mean of the `window` closes up to and including each bar; NaN before."""
    total = 0.0
    for t in range(close.shape[0]):
        total += close[t]
        if t >= window:
            total -= close[t - window]
        if t >= window - 1:
            out[t] = total / window


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def crossover_signal_nb(values, price, params, options, position, state):
    fast = values[0]
    slow = values[1]
    band = params[BAND]
    allow_short = options[ALLOW_SHORT] != 0.0
    target = position
    if np.isnan(fast) or np.isnan(slow):
        target = 0
    elif fast > slow * (1.0 + band):
        target = 1
    elif fast < slow * (1.0 - band):
        target = -1 if allow_short else 0
    return target, state


SPEC = register(StrategySpec(
    name="test_sma_crossover",
    params=(Param("fast_window", int, 10, low=2, is_window=True),
            Param("slow_window", int, 50, low=2, is_window=True),
            Param("band", float, 0.0, low=0.0)),
    indicators=(Indicator(trailing_mean_nb, "fast_window"),
                Indicator(trailing_mean_nb, "slow_window")),
    signal_nb=crossover_signal_nb,
    options={"allow_short": True},
), clobber=True)
