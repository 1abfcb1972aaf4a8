"""RSI reversion: long when Wilder's RSI is below ``lower``, short above ``upper``.

A long exits when RSI > 50, a short when RSI < 50; an exit bar then applies
the flat rule to the same RSI (so RSI > upper reverses a long to short).
``lower`` is in [0, 50] and ``upper`` in [50, 100], so lower <= upper always.
Exact rules: docs/builtin_strategies.md.
"""
from numba import njit

from btcore.indicators_extra import wilder_rsi_nb
from btcore.strategies.base import Indicator, Param, StrategySpec

RSI_PERIOD, LOWER, UPPER = 0, 1, 2  # columns of the params row
RSI = 0  # indicator value
ALLOW_SHORT = 0  # options
MIDDLE = 50.0  # exit level


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def signal_nb(values, price, params, options, position, state):
    """Target sign from the RSI at this bar (state unused); NaN RSI (warm-up)
    compares false: no entry."""
    rsi = values[RSI]
    lower = params[LOWER]
    upper = params[UPPER]
    allow_short = options[ALLOW_SHORT] != 0.0
    target = position
    if position > 0 and rsi > MIDDLE:
        target = 0
    elif position < 0 and rsi < MIDDLE:
        target = 0
    if target == 0:  # flat, or exited at this bar: the entry rule
        if rsi < lower:
            target = 1
        elif rsi > upper and allow_short:
            target = -1
    return target, state


SPEC = StrategySpec(
    name="rsi_reversion",
    params=(
        Param("rsi_period", int, 14, low=1, is_window=True,
              description="close-to-close changes in Wilder's smoothing"),
        Param("lower", float, 30.0, low=0.0, high=50.0,
              description="RSI below which a long opens"),
        Param("upper", float, 70.0, low=50.0, high=100.0,
              description="RSI above which a short opens"),
    ),
    indicators=(Indicator(wilder_rsi_nb, "rsi_period"),),
    signal_nb=signal_nb,
    options={"allow_short": True},
    description=__doc__.splitlines()[0],
)
