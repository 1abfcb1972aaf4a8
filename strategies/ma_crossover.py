"""Moving-average crossover: long while the fast average is above the slow one.

Both averages are simple (``average="sma"``) or exponential (``"ema"``) over
the closes up to and including each bar. fast > slow -> long; fast < slow ->
short (flat when ``allow_short=False``); fast == slow keeps the position;
flat while either average is undefined. Exact rules: docs/builtin_strategies.md.
"""
import numpy as np
from numba import njit

from btcore.indicators_extra import moving_average_nb
from btcore.strategies.base import Indicator, Param, StrategySpec

FAST_WINDOW, SLOW_WINDOW = 0, 1  # columns of the params row
FAST, SLOW = 0, 1  # indicator values
AVERAGE, ALLOW_SHORT = 0, 1  # options


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def signal_nb(values, price, params, options, position, state):
    """Target sign from the two averages at this bar (state unused)."""
    fast = values[FAST]
    slow = values[SLOW]
    allow_short = options[ALLOW_SHORT] != 0.0
    target = position
    if np.isnan(fast) or np.isnan(slow):
        target = 0
    elif fast > slow:
        target = 1
    elif fast < slow:
        target = -1 if allow_short else 0
    return target, state


SPEC = StrategySpec(
    name="ma_crossover",
    params=(
        Param("fast_window", int, 10, low=1, is_window=True,
              description="closes in the fast average (bar t included)"),
        Param("slow_window", int, 50, low=1, is_window=True,
              description="closes in the slow average (bar t included)"),
    ),
    indicators=(Indicator(moving_average_nb, "fast_window", "average"),
                Indicator(moving_average_nb, "slow_window", "average")),
    signal_nb=signal_nb,
    options={"average": ("sma", "ema"), "allow_short": True},
    description=__doc__.splitlines()[0],
)
