"""Hypothesis strategies for OHLC candles and execution settings.

``candles()`` draws valid candles (float64, > 0, low <= min(open, close),
high >= max(open, close)) from a random walk of realistic bars mixed with the
cases the execution rules must get right: gaps (an open far from the previous
close, through any nearby stop), wide bars whose range reaches both a stop-loss
and a take-profit of a recent entry, bars whose open is the high or whose close
is the low, and flat runs (open = high = low = close = the previous close).
``execution_settings()`` draws valid settings for
``execution_reference.simulate_execution_reference`` and the kernel.
"""
import math
from collections import namedtuple

import numpy as np
from hypothesis import strategies as st

FILL_MODES = ("close", "next_open", "next_close")

Candles = namedtuple("Candles", ["open", "high", "low", "close"])

#: bar kinds, "normal" drawn most often
BAR_KINDS = ("normal", "normal", "normal", "gap", "wide", "open_is_high", "low_is_close",
             "flat")

_MIN_PRICE = 0.5  # below this a bar's moves are mirrored upwards (prices stay > 0)


def _unit(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def _bar_specs(draw):
    """(kind, open gap, open-to-close move, upper wick, lower wick, run length)."""
    kind = draw(st.sampled_from(BAR_KINDS))
    sign = draw(st.sampled_from([-1.0, 1.0]))
    if kind == "gap":
        gap = sign * draw(_unit(0.03, 0.3))
    else:
        gap = draw(_unit(-0.005, 0.005))
    move = draw(_unit(-0.05, 0.05))
    if kind == "wide":  # reaches stops a few percent away on both sides
        upper, lower = draw(_unit(0.04, 0.35)), draw(_unit(0.04, 0.35))
    else:
        upper, lower = draw(_unit(0.0, 0.03)), draw(_unit(0.0, 0.03))
    run = draw(st.integers(1, 6)) if kind == "flat" else 1
    return kind, gap, move, upper, lower, run


def _bar(kind, previous_close, gap, move, upper, lower):
    """One candle (open, high, low, close) from its spec."""
    if kind == "flat":
        return (previous_close,) * 4
    bar_open = previous_close * (1 + gap)
    if kind in ("open_is_high", "low_is_close"):
        bar_close = bar_open * (1 - abs(move))
        if kind == "open_is_high":
            return bar_open, bar_open, bar_close * (1 - lower), bar_close
        return bar_open, bar_open * (1 + upper), bar_close, bar_close
    bar_close = bar_open * (1 + move)
    return (bar_open, max(bar_open, bar_close) * (1 + upper),
            min(bar_open, bar_close) * (1 - lower), bar_close)


@st.composite
def candles(draw, min_bars=2, max_bars=60, leading_nan=False):
    """Valid random OHLC candles as a ``Candles(open, high, low, close)`` of float64 arrays.

    Parameters
    ----------
    min_bars, max_bars : int
        Length range.
    leading_nan : bool
        May start with NaN bars (an asset listed late); the rest is valid.
    """
    n_bars = draw(st.integers(min_bars, max_bars))
    price = draw(st.sampled_from([1.0, 20.0, 100.0, 2500.0])) * draw(_unit(0.8, 1.25))
    tick = draw(st.sampled_from([None, 0.01, 0.25]))  # ties: open == close, levels hit exactly
    rows = []
    while len(rows) < n_bars:
        kind, gap, move, upper, lower, run = draw(_bar_specs())
        for _ in range(run):
            bar = _bar(kind, price, gap, move, upper, lower)
            if min(bar) < _MIN_PRICE:  # mirror the moves: the walk stays well above 0
                bar = _bar("normal", price, abs(gap), abs(move), upper, 0.0)
            if tick is not None:
                bar = tuple(max(round(value / tick) * tick, tick) for value in bar)
            bar_open, bar_high, bar_low, bar_close = bar
            rows.append((bar_open, max(bar_high, bar_open, bar_close),
                         min(bar_low, bar_open, bar_close), bar_close))
            price = bar_close
    ohlc = np.array(rows[:n_bars], dtype=np.float64).reshape(n_bars, 4)
    if leading_nan and n_bars > 2 and draw(st.booleans()):
        ohlc[:draw(st.integers(1, n_bars // 3))] = np.nan
    return Candles(*(np.ascontiguousarray(ohlc[:, i]) for i in range(4)))


def _off_or(values):
    """NaN (the setting is off) or one of ``values``."""
    return st.one_of(st.just(math.nan), values)


@st.composite
def execution_settings(draw, fills=FILL_MODES, fractional_shares=None):
    """A valid settings dict for ``simulate_execution_reference`` (every setting drawn).

    Each numeric setting is either at its default / off (often) or on, with round
    values (ties between levels) and arbitrary ones. ``fill`` is drawn from
    ``fills``; ``fractional_shares`` is drawn unless given.
    """
    max_leverage = draw(st.one_of(st.just(1.0), _unit(1.0, 3.0)))
    size_fraction = draw(st.one_of(st.just(1.0), st.sampled_from([0.25, 0.5]),
                                   _unit(0.01, 1.0)))
    if draw(st.booleans()):  # leverage: a fraction above 1 within the cap
        size_fraction = max_leverage * draw(_unit(0.01, 1.0))
    if fractional_shares is None:
        fractional_shares = draw(st.booleans())
    return {
        "fill": draw(st.sampled_from(fills)),
        "stop_loss": draw(_off_or(st.one_of(st.sampled_from([0.01, 0.05, 0.1]),
                                            _unit(0.001, 0.5)))),
        "take_profit": draw(_off_or(st.one_of(st.sampled_from([0.02, 0.05, 0.1]),
                                              _unit(0.001, 1.0)))),
        "trailing_stop": draw(_off_or(st.one_of(st.sampled_from([0.05, 0.1]),
                                                _unit(0.001, 0.5)))),
        "size_fraction": size_fraction,
        "fractional_shares": fractional_shares,
        "target_volatility": draw(_off_or(_unit(0.02, 1.0))),
        "volatility_lookback": draw(st.integers(2, 10)),
        "max_leverage": max_leverage,
        "slippage_bps": draw(st.one_of(st.just(0.0), _unit(0.0, 50.0))),
        "fee_per_trade": draw(st.one_of(st.just(0.0), _unit(0.0, 20.0))),
        "borrow_bps": draw(st.one_of(st.just(0.0), _unit(0.0, 500.0))),
        "risk_free_rate": draw(st.one_of(st.just(0.0), _unit(0.0, 0.1))),
        "cost_bps": draw(st.one_of(st.sampled_from([0.0, 5.0]), _unit(0.0, 30.0))),
    }
