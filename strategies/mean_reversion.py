"""Mean reversion on the rolling z-score of the close (``docs/semantics.md``).

z_t compares close_t with the ``lookback_period`` closes before it. Flat:
z < -entry -> long, z > entry -> short (``allow_short``). Long exits when
|z| < exit or z < -stop (stop-loss); short exits when |z| < exit or z > stop.
An exit is a stop-loss exit whenever the stop condition holds. With
``reenter_after_stop=False`` a stopped-out strategy stays flat until
|z| <= entry again.
"""
from numba import njit

from btcore.indicators import rolling_zscore_nb
from btcore.strategies.base import Indicator, Param, StrategySpec

# column of each parameter in the params row, and of each option
LOOKBACK, ENTRY, EXIT, STOP = 0, 1, 2, 3
ZSCORE = 0  # the one indicator value
ALLOW_SHORT, REENTER_AFTER_STOP = 0, 1
# strategy state
ARMED, STOPPED_OUT = 0, 1


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def signal_nb(values, price, params, options, position, state):
    """Target position sign at this bar and the new stop-out state."""
    # read every array element up front: an array read only in some branches
    # keeps a reference-count pair on every bar and runs ~8x slower
    z = values[ZSCORE]
    entry = params[ENTRY]
    exit_ = params[EXIT]
    stop = params[STOP]
    allow_short = options[ALLOW_SHORT] != 0.0
    reenter = options[REENTER_AFTER_STOP] != 0.0
    target = position
    if position == 0:
        if state == STOPPED_OUT:
            if abs(z) <= entry:
                state = ARMED
        elif z < -entry:
            target = 1
        elif z > entry and allow_short:
            target = -1
    elif (z < -stop) if position > 0 else (z > stop):
        target = 0
        if not reenter:
            state = STOPPED_OUT
    elif abs(z) < exit_:
        target = 0
    return target, state


SPEC = StrategySpec(
    name="mean_reversion",
    params=(
        Param("lookback_period", int, 20, low=2, is_window=True,
              description="closes in the rolling window before each bar"),
        Param("entry_threshold", float, 2.0, low=0.0, low_inclusive=False,
              description="|z| beyond which a position opens"),
        Param("exit_threshold", float, 0.5, low=0.0,
              description="|z| under which a position closes"),
        Param("stop_loss_z", float, 3.0, low=0.0, low_inclusive=False,
              description="z against the position at which it is stopped out"),
    ),
    indicators=(Indicator(rolling_zscore_nb, "lookback_period"),),
    signal_nb=signal_nb,
    options={"allow_short": True, "reenter_after_stop": True},
    description=__doc__.splitlines()[0],
)
