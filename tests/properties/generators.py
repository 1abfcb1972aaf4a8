"""Named hypothesis strategies for prices, grids and windows (not the btcore `strategies`)."""
import numpy as np
import pandas as pd
from hypothesis import strategies as st

from btcore import MarketData


@st.composite
def price_paths(draw, min_bars=20, max_bars=160, leading_nan=True):
    """A positive close series: random walk with jumps, flat stretches, any scale."""
    n_bars = draw(st.integers(min_bars, max_bars))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    volatility = draw(st.sampled_from([0.0005, 0.01, 0.05, 0.2]))
    scale = draw(st.sampled_from([1e-4, 1.0, 37.5, 1e6]))
    log_returns = rng.normal(0.0, volatility, n_bars)
    if draw(st.booleans()):  # flat stretches where the rolling std is exactly 0
        for _ in range(draw(st.integers(1, 3))):
            start = draw(st.integers(0, n_bars - 1))
            length = draw(st.integers(2, 40))
            log_returns[start:start + length] = 0.0
    if draw(st.booleans()):  # a jump
        log_returns[draw(st.integers(0, n_bars - 1))] += draw(st.sampled_from([-1.5, 0.7, 3.0]))
    close = scale * np.exp(np.cumsum(log_returns))
    if draw(st.booleans()):  # round to a tick: repeated prices and exact ties
        close = np.maximum(np.round(close, 2), 0.01)
    if leading_nan and draw(st.booleans()):
        close[:draw(st.integers(1, n_bars // 3))] = np.nan
    return close


def market(close: np.ndarray, symbol="X") -> MarketData:
    index = pd.bdate_range("2001-01-01", periods=len(close))
    return MarketData(close, index, (symbol,))


@st.composite
def mean_reversion_grids(draw, max_lookback=30):
    lookbacks = draw(st.lists(st.integers(2, max_lookback), min_size=1, max_size=3, unique=True))
    thresholds = st.floats(0.05, 3.5, allow_nan=False, allow_subnormal=False)
    return {
        "lookback_period": lookbacks,
        "entry_threshold": draw(st.lists(thresholds, min_size=1, max_size=2, unique=True)),
        "exit_threshold": draw(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=2, unique=True)),
        "stop_loss_z": draw(st.lists(thresholds, min_size=1, max_size=2, unique=True)),
    }


@st.composite
def windows(draw, n_bars):
    """(start_bar, end_bar) with at least 2 bars."""
    start = draw(st.integers(0, n_bars - 2))
    end = draw(st.integers(start + 1, n_bars - 1))
    return start, end
