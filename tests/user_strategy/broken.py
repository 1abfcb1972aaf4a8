"""Strategies that break the plug-in contract, one way each (``tests/test_registry.py``).

Every spec here declares 3 parameters, 1 option and 2 indicators; only its rule
(or, for DICT_INDICATOR, its first indicator) differs. They must live in a real
file: btcore binds them into a cached kernel module that imports them from here,
and numba's error points at this file.
"""
from numba import njit

from btcore.strategies import Indicator, Param, StrategySpec

#: a module-level dict: plain Python handles it, numba cannot type it
SIDES = {"long": 1, "flat": 0}


@njit(cache=True, nogil=True, error_model="numpy")
def close_nb(close, window, out):
    """The close itself, from bar ``window - 1`` on."""
    for t in range(window - 1, close.shape[0]):
        out[t] = close[t]


@njit(cache=True, nogil=True, error_model="numpy")
def previous_close_nb(close, window, out):
    """The close ``window`` bars earlier."""
    for t in range(window, close.shape[0]):
        out[t] = close[t - window]


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def target_two_nb(values, price, params, options, position, state):
    return 2, state


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def three_values_nb(values, price, params, options, position, state):
    return 1, state, 0


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def reads_params_3_nb(values, price, params, options, position, state):
    return (1 if params[3] > 0.0 else 0), state


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def reads_options_1_nb(values, price, params, options, position, state):
    return (1 if options[1] > 0.0 else 0), state


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def reads_values_2_nb(values, price, params, options, position, state):
    return (1 if values[2] > price else 0), state


def python_side(price):
    """A plain Python helper: fine for check_rule, unknown to numba."""
    return 1 if price > 0.0 else 0


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def calls_python_helper_nb(values, price, params, options, position, state):
    return python_side(price), state


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def uses_python_dict_nb(values, price, params, options, position, state):
    return SIDES["long"], state


# the same two mistakes without inline="always": numba compiles the rule on its own
@njit(cache=True, nogil=True, error_model="numpy")
def calls_python_helper_not_inlined_nb(values, price, params, options, position, state):
    return python_side(price), state


@njit(cache=True, nogil=True, error_model="numpy")
def uses_python_dict_not_inlined_nb(values, price, params, options, position, state):
    return SIDES["long"], state


@njit(cache=True, nogil=True, error_model="numpy")
def dict_indicator_nb(close, window, out):
    """An indicator numba cannot compile (plain Python runs it)."""
    for t in range(close.shape[0]):
        out[t] = close[t] * SIDES["long"]


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def valid_rule_nb(values, price, params, options, position, state):
    return (1 if values[0] > values[1] * (1.0 + params[1]) else 0), state


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def two_above_1e5_nb(values, price, params, options, position, state):
    """Valid on every ordinary price (and so on check_rule's synthetic series),
    target 2 once the close exceeds 100,000."""
    if price > 1e5:
        return 2, state
    if values[0] > values[1] * (1.0 + params[1]):
        return 1, state
    return 0, state


def make_spec(name, signal_nb, first_indicator=close_nb):
    return StrategySpec(
        name=name,
        params=(Param("window", int, 5, low=1, is_window=True),
                Param("up", float, 0.0, low=0.0), Param("down", float, 0.0, low=0.0)),
        indicators=(Indicator(first_indicator, "window"),
                    Indicator(previous_close_nb, "window")),
        signal_nb=signal_nb,
        options={"allow_short": True},
    )


TARGET_TWO = make_spec("broken_target_two", target_two_nb)
THREE_VALUES = make_spec("broken_three_values", three_values_nb)
READS_PARAMS_3 = make_spec("broken_reads_params_3", reads_params_3_nb)
READS_OPTIONS_1 = make_spec("broken_reads_options_1", reads_options_1_nb)
READS_VALUES_2 = make_spec("broken_reads_values_2", reads_values_2_nb)
CALLS_PYTHON_HELPER = make_spec("broken_calls_python_helper", calls_python_helper_nb)
USES_PYTHON_DICT = make_spec("broken_uses_python_dict", uses_python_dict_nb)
CALLS_PYTHON_HELPER_NOT_INLINED = make_spec("broken_calls_python_helper_not_inlined",
                                            calls_python_helper_not_inlined_nb)
USES_PYTHON_DICT_NOT_INLINED = make_spec("broken_uses_python_dict_not_inlined",
                                         uses_python_dict_not_inlined_nb)
DICT_INDICATOR = make_spec("broken_dict_indicator", valid_rule_nb, dict_indicator_nb)
TWO_ABOVE_1E5 = make_spec("broken_two_above_1e5", two_above_1e5_nb)
