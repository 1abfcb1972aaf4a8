"""Invalid strategy output stops the run, naming the strategy, the parameter set,
the bar and what was wrong; valid float targets and indicators NaN only in their
warm-up run as usual (issue "Trust the system", item 4).

- a target other than exactly -1, 0 or 1 (NaN, 0.5, 2.0, -inf) returned for some
  parameter sets only, so the plain-Python rule check (default parameters) passes;
- an indicator that never writes ``out``: NaN on every traded bar;
- an error raised in the strategy's compiled code (ZeroDivisionError under
  ``error_model="python"``, IndexError under ``boundscheck=True``).
"""
import re
import time

import numpy as np
import pandas as pd
import pytest
from numba import njit

import btcore.engine.tasks as engine_tasks
from btcore import MarketData, run_sweep
from btcore.strategies import Indicator, Param, StrategySpec
from conftest import assert_tables_identical

WINDOW, LEVEL = 0, 1  # columns of `params`
FAIL_AT = 1           # column of `params` in the error strategies
#: the level of the one invalid set of each sweep: a rule flags bars closing this far
#: above their trailing mean
BAD_LEVEL = 0.03
SPLIT = {"window": [10], "level": [0.0, BAD_LEVEL]}  # one valid set, one invalid


# --------------------------------------------------------------- indicators
@njit(cache=True, nogil=True, error_model="numpy")
def trailing_mean_nb(close, window, out):
    """Mean of the ``window`` closes up to bar t; NaN in its warm-up only."""
    total = 0.0
    for t in range(close.shape[0]):
        total += close[t]
        if t >= window:
            total -= close[t - window]
        if t >= window - 1:
            out[t] = total / window


@njit(cache=True, nogil=True, error_model="numpy")
def never_writes_nb(close, window, out):
    """The same sums, but the author forgot ``out[t] = ...``: NaN everywhere."""
    total = 0.0
    for t in range(close.shape[0]):
        total += close[t]
        if t >= window:
            total -= close[t - window]


# -------------------------------------------------------------------- rules
# Sets with level > 0 return an invalid target on a bar closing more than `level`
# above the mean; with the default level (0) every target is an int in {-1, 0, 1},
# so the plain-Python check of the rule passes. Numba types each of these rules'
# target as float64 (an int in one branch, a float in another).
@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def nan_rule_nb(values, price, params, options, position, state):
    mean = values[0]
    level = params[LEVEL]
    if np.isnan(mean):
        return 0, state
    if level > 0.0 and price > mean * (1.0 + level):
        return np.nan, state
    return (1 if price > mean else -1), state


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def half_rule_nb(values, price, params, options, position, state):
    mean = values[0]
    level = params[LEVEL]
    if np.isnan(mean):
        return 0, state
    if level > 0.0 and price > mean * (1.0 + level):
        return 0.5, state  # "half a position"
    return (1 if price > mean else -1), state


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def two_rule_nb(values, price, params, options, position, state):
    mean = values[0]
    level = params[LEVEL]
    if np.isnan(mean):
        return 0, state
    if level > 0.0 and price > mean * (1.0 + level):
        return 2.0, state  # "double long"
    return (1 if price > mean else -1), state


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def minus_inf_rule_nb(values, price, params, options, position, state):
    mean = values[0]
    level = params[LEVEL]
    if np.isnan(mean):
        return 0, state
    if level > 0.0 and price > mean * (1.0 + level):
        return -np.inf, state
    return (1 if price > mean else -1), state


# valid twins: the same decisions as floats (1.0, -1.0, 0.0) and as ints
@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def float_rule_nb(values, price, params, options, position, state):
    mean = values[0]
    if np.isnan(mean) or abs(price / mean - 1.0) < params[LEVEL]:
        return 0.0, state
    return (1.0 if price > mean else -1.0), state


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def int_rule_nb(values, price, params, options, position, state):
    mean = values[0]
    if np.isnan(mean) or abs(price / mean - 1.0) < params[LEVEL]:
        return 0, state
    return (1 if price > mean else -1), state


# errors raised in compiled code: not inlined, so each keeps its own error model
# and bounds checking; `state` counts the traded bars, and a set fails at bar fail_at
@njit(cache=True, nogil=True, error_model="python")
def divides_rule_nb(values, price, params, options, position, state):
    state += 1
    # float(): a Python float in debug too, where numpy's float64 would give inf
    weight = 1.0 / float(state - params[FAIL_AT])  # ZeroDivisionError at bar fail_at
    return (1 if weight > 0.0 else 0), state


@njit(cache=True, nogil=True, boundscheck=True, error_model="numpy")
def indexes_rule_nb(values, price, params, options, position, state):
    state += 1
    mean = values[0]
    if state >= params[FAIL_AT]:
        mean = values[1]  # one indicator: IndexError at bar fail_at
    return (1 if price > mean else 0), state


def _spec(name, rule, indicator=trailing_mean_nb):
    return StrategySpec(name=name,
                        params=(Param("window", int, 10, low=2, is_window=True),
                                Param("level", float, 0.0, low=0.0)),
                        indicators=(Indicator(indicator, "window"),), signal_nb=rule)


def _failing_spec(name, rule):
    return StrategySpec(name=name,
                        params=(Param("window", int, 10, low=2, is_window=True),
                                Param("fail_at", int, 1_000_000, low=1)),
                        indicators=(Indicator(trailing_mean_nb, "window"),), signal_nb=rule)


NAN = _spec("returns_nan", nan_rule_nb)
HALF = _spec("returns_half", half_rule_nb)
TWO = _spec("returns_two", two_rule_nb)
MINUS_INF = _spec("returns_minus_inf", minus_inf_rule_nb)
FLOATS = _spec("returns_floats", float_rule_nb)
INTS = _spec("returns_ints", int_rule_nb)
NEVER_WRITES = _spec("never_writes", int_rule_nb, never_writes_nb)
DIVIDES = _failing_spec("divides_by_zero", divides_rule_nb)
INDEXES = _failing_spec("indexes_out_of_bounds", indexes_rule_nb)

MODES = pytest.mark.parametrize("mode", [{}, {"executor": "threads", "batch_size": 1}],
                                ids=["serial", "threads"])


@pytest.fixture(scope="module")
def data():
    return MarketData.synthetic(n_assets=1, start="2018-01-01", end="2020-12-31", seed=5)


def first_flagged_bar(data, window, level, first=0) -> int:
    """The first traded bar closing more than ``level`` above its trailing mean."""
    close = data.close[:, 0]
    mean = np.full(close.shape[0], np.nan)
    trailing_mean_nb.py_func(close, window, mean)
    flagged = np.flatnonzero(close[first:] > mean[first:] * (1.0 + level))
    assert flagged.size, "the synthetic data never trips the rule: pick another level"
    return first + int(flagged[0])


# ------------------------------------------------------------ invalid targets
@MODES
@pytest.mark.parametrize("spec, shown, advice", [
    (NAN, "nan", "NaN usually comes from an indicator that is undefined"),
    (HALF, "0.5", "round or sign your signal"),
    (TWO, "2", "sign or clip your signal"),
    (MINUS_INF, "-inf", "sign your signal"),
], ids=["nan", "half", "two", "minus_inf"])
def test_an_invalid_target_stops_the_sweep_naming_set_bar_and_value(data, spec, shown, advice,
                                                                     mode):
    """Today these sets run: NaN and 0.5 pass ``target > 1 or target < -1``, and
    their rows (Sharpe 0 or a half position) rank among the real ones."""
    bar = first_flagged_bar(data, 10, BAD_LEVEL)
    with pytest.raises(ValueError) as info:
        run_sweep(SPLIT, spec, data, progress=False, **mode)
    message = str(info.value)
    assert message.startswith(f"strategy {spec.name!r}: signal_nb returned a target outside "
                              "{-1, 0, 1}")
    assert f" at {data.index[bar]} for parameters {{'window': 10, 'level': {BAD_LEVEL}}}" \
        in message
    assert f"it returned {shown} (a target is -1 (short), 0 (flat) or 1 (long): " in message
    assert advice in message


def test_an_invalid_target_after_start_is_found_there(data):
    start = 200
    bar = first_flagged_bar(data, 10, BAD_LEVEL, first=start)
    with pytest.raises(ValueError, match=re.escape(f"at {data.index[bar]} for parameters")):
        run_sweep(SPLIT, HALF, data, start=data.index[start], progress=False)


@pytest.mark.slow  # ~25 s on a cold cache: a portfolio kernel for a test-only strategy
def test_a_portfolio_refuses_an_invalid_target_too():
    data = MarketData.synthetic(n_assets=2, start="2018-01-01", end="2020-12-31", seed=5)
    from btcore import run_portfolio_sweep
    with pytest.raises(ValueError, match=r"signal_nb returned a target outside \{-1, 0, 1\} "
                                         r"at .* for parameters \{'window': 10, 'level': "
                                         rf"{BAD_LEVEL}\}}: it returned 0.5 "):
        run_portfolio_sweep(SPLIT, HALF, data, progress=False)


def test_the_rule_check_names_a_non_integral_target_before_any_work(no_kernel_runs, data):
    """With default parameters that trip it, the plain-Python check of the rule on
    synthetic data refuses 0.5 first (today it says only "target 0.5")."""
    eager = StrategySpec(name="half_by_default", params=(
        Param("window", int, 10, low=2, is_window=True), Param("level", float, 0.001)),
        indicators=(Indicator(trailing_mean_nb, "window"),), signal_nb=half_rule_nb)
    with pytest.raises(ValueError, match=re.escape(
            "strategy 'half_by_default': signal_nb returned target 0.5 at bar ")) as info:
        run_sweep({"window": [10], "level": [0.0]}, eager, data, progress=False)
    assert str(info.value).endswith("; a target is -1 (short), 0 (flat) or 1 (long): round "
                                    "or sign your signal")


# ------------------------------------------------------------- valid targets
@pytest.mark.parametrize("mode", [{}, {"executor": "threads", "batch_size": 2},
                                  {"debug": True}], ids=["serial", "threads", "debug"])
def test_float_targets_and_warm_up_nan_give_the_integer_twins_table(data, mode):
    """1.0, -1.0 and 0.0 are targets (a numba rule may return floats); an indicator
    NaN only in its warm-up (the first 9 traded bars here) is fine."""
    grid = {"window": [10, 30], "level": [0.0, 0.01, 0.02]}
    start = data.index[1]
    floats = run_sweep(grid, FLOATS, data, start=start, progress=False, **mode).table
    ints = run_sweep(grid, INTS, data, start=start, progress=False, **mode).table
    assert_tables_identical(floats, ints)
    assert (floats["num_trades"] > 0).all() and (floats["exposure"] < 1.0).all()


# ---------------------------------------------------------------- indicators
@MODES
def test_an_indicator_nan_on_every_traded_bar_is_refused(data, mode):
    """Today every row shows 0 trades without a word."""
    with pytest.raises(ValueError) as info:
        run_sweep({"window": [10, 20], "level": [0.0]}, NEVER_WRITES, data, progress=False,
                  **mode)
    message = str(info.value)
    assert re.match(r"strategy 'never_writes': indicator never_writes_nb with window=(10|20) "
                    rf"is NaN on every traded bar \(first traded bar {re.escape(str(data.index[0]))}"
                    r"\): does it write out\[t\]\? \(parameters \{'window': (10|20), "
                    r"'level': 0.0\}\)$", message), message


# ------------------------------------------------------ errors in the rule
@pytest.mark.slow  # seconds a case, warm too (a failing strategy is never remembered)
@pytest.mark.parametrize("mode", [{}, {"executor": "threads", "batch_size": 3},
                                  {"debug": True}], ids=["serial", "threads", "debug"])
@pytest.mark.parametrize("spec, error, text", [
    (DIVIDES, ZeroDivisionError, "division by zero"),
    (INDEXES, IndexError, "index is out of bounds"),
], ids=["ZeroDivisionError", "IndexError"])
def test_an_error_in_the_rule_names_strategy_set_and_bar(data, spec, error, text, mode):
    fail_at = 40
    grid = {"window": [10, 20], "fail_at": [1_000_000, fail_at, 999_999]}
    if mode.get("debug") and error is IndexError:
        text = "index 1 is out of bounds"  # numpy's words in plain Python
    with pytest.raises((error, ValueError)) as info:
        run_sweep(grid, spec, data, progress=False, **mode)
    message = str(info.value)
    if type(info.value) is not error:
        # a pre-flight run of a new strategy's compiled code in a child process (with
        # bounds checking) may see an IndexError first: it must quote the same words
        assert error is IndexError and type(info.value).__name__ == "PreflightError", message
        message = message[message.index("(IndexError: ") + len("(IndexError: "):]
    bar = data.index[fail_at - 1]  # state counts bars from the first traded one
    assert re.match(rf"strategy {spec.name!r}, parameters \{{'window': (10|20), 'fail_at': "
                    rf"{fail_at}\}}, at {re.escape(str(bar))}: .*{text}", message), message


# ------------------------------------------------------------ reported early
@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_a_refused_task_stops_the_tasks_still_to_run(data, executor, monkeypatch):
    """The check runs as each task finishes: the first one refused raises, and the
    executor starts no task after it (threads finish the one they are running)."""
    grid = pd.DataFrame({"window": [10] + list(range(11, 51)),
                         "level": [BAD_LEVEL] + [0.0] * 40})  # the bad set sorts first
    ran = []
    original = engine_tasks.run_task

    def slow_task(shared, task, record=None):
        if task.task_id >= 0:  # not the driver's compile run
            ran.append(task.task_id)
            if task.start > 0:
                time.sleep(0.02)  # a real task's work
        return original(shared, task, record)

    monkeypatch.setattr(engine_tasks, "run_task", slow_task)
    with pytest.raises(ValueError, match="signal_nb returned a target outside"):
        run_sweep(grid, HALF, data, executor=executor, batch_size=1, progress=False)
    assert 1 <= len(ran) <= (1 if executor == "serial" else 4), ran


def test_walk_forward_refuses_an_invalid_target_out_of_sample():
    """Prices that trip the 0.5 target only in the last fold's out-of-sample bars:
    every in-sample window is clean, and the out-of-sample replay refuses it."""
    n_bars = 400
    calm = 100.0 * (1.0 + 0.002 * np.sin(np.arange(n_bars) / 3.0))
    calm[-30:] *= 1.10  # a jump the in-sample windows never see
    data = MarketData.from_pandas(pd.Series(calm, name="close",
                                            index=pd.bdate_range("2018-01-01",
                                                                 periods=n_bars)))
    from btcore import walk_forward
    with pytest.raises(ValueError, match=r"at 2019-\S+ .*it returned 0\.5"):
        walk_forward({"window": [10], "level": [BAD_LEVEL]}, HALF, data, n_splits=3,
                     progress=False)
