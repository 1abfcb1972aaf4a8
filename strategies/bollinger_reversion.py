"""Bollinger-band reversion on the ``window`` closes before each bar.

With m and s the mean and sample std (ddof=1) of closes t-window .. t-1, as
mean_reversion's z-score: flat -> long when close < m - width*s, short when
close > m + width*s (``allow_short``); a long exits when close >= m, a short
when close <= m; an exit bar then applies the flat rule to the same close.
The rule reads z = (close - m) / s, which is 0 during warm-up and for a flat
window (no band). Exact rules: docs/builtin_strategies.md.
"""
from numba import njit

from btcore.indicators import rolling_zscore_nb
from btcore.strategies.base import Indicator, Param, StrategySpec

WINDOW, WIDTH = 0, 1  # columns of the params row
ZSCORE = 0  # indicator value
ALLOW_SHORT = 0  # options


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def signal_nb(values, price, params, options, position, state):
    """Target sign from the z-score at this bar (state unused).

    close < m - width*s  <=>  z < -width, close >= m  <=>  z >= 0 (s > 0), and
    mirror; z = 0 (no band) never opens a position and ends one.
    """
    z = values[ZSCORE]
    width = params[WIDTH]
    allow_short = options[ALLOW_SHORT] != 0.0
    target = position
    if position > 0 and z >= 0.0:
        target = 0
    elif position < 0 and z <= 0.0:
        target = 0
    if target == 0:  # flat, or exited at this bar: the entry rule
        if z < -width:
            target = 1
        elif z > width and allow_short:
            target = -1
    return target, state


SPEC = StrategySpec(
    name="bollinger_reversion",
    params=(
        Param("window", int, 20, low=2, is_window=True,
              description="closes before the bar in the band's mean and std"),
        Param("width", float, 2.0, low=0.0, low_inclusive=False,
              description="band half-width in standard deviations"),
    ),
    indicators=(Indicator(rolling_zscore_nb, "window"),),
    signal_nb=signal_nb,
    options={"allow_short": True},
    description=__doc__.splitlines()[0],
)
