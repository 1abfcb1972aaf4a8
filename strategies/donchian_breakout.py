"""Donchian channel breakout on closes, with a separate exit channel.

Flat: close above the highest of the previous ``entry_window`` closes -> long;
below their lowest -> short (``allow_short``). A long exits on a close below
the lowest of the previous ``exit_window`` closes, a short on a close above
their highest. An exit bar then applies the flat rule to the same close, so a
bar that exits a long and breaks the entry low reverses to short (and the
mirror). Exact rules: docs/builtin_strategies.md.
"""
from numba import njit

from btcore.indicators_extra import prior_high_nb, prior_low_nb
from btcore.strategies.base import Indicator, Param, StrategySpec

ENTRY_WINDOW, EXIT_WINDOW = 0, 1  # columns of the params row
ENTRY_HIGH, ENTRY_LOW, EXIT_LOW, EXIT_HIGH = 0, 1, 2, 3  # indicator values
ALLOW_SHORT = 0  # options


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def signal_nb(values, price, params, options, position, state):
    """Target sign from the close and the four prior-close channels (state unused).

    Comparisons with an undefined (NaN) channel are false: no entry before the
    entry channel is defined, no exit before the exit channel is.
    """
    entry_high = values[ENTRY_HIGH]
    entry_low = values[ENTRY_LOW]
    exit_low = values[EXIT_LOW]
    exit_high = values[EXIT_HIGH]
    allow_short = options[ALLOW_SHORT] != 0.0
    target = position
    if position > 0 and price < exit_low:
        target = 0
    elif position < 0 and price > exit_high:
        target = 0
    if target == 0:  # flat, or exited at this bar: the entry rule
        if price > entry_high:
            target = 1
        elif price < entry_low and allow_short:
            target = -1
    return target, state


SPEC = StrategySpec(
    name="donchian_breakout",
    params=(
        Param("entry_window", int, 20, low=1, is_window=True,
              description="closes before the bar whose high / low a close must break to enter"),
        Param("exit_window", int, 10, low=1, is_window=True,
              description="closes before the bar whose low (long) / high (short) ends a position"),
    ),
    indicators=(Indicator(prior_high_nb, "entry_window"),
                Indicator(prior_low_nb, "entry_window"),
                Indicator(prior_low_nb, "exit_window"),
                Indicator(prior_high_nb, "exit_window")),
    signal_nb=signal_nb,
    options={"allow_short": True},
    description=__doc__.splitlines()[0],
)
