"""The execution kernel (fills, stops on candles, sizing, slippage, fees, borrow,
risk-free rate) equals the independent plain-Python reference
(tests/execution_reference.py) on random candles, settings, grids and windows,
with the settings given as keywords or as grid columns; replays' trades equal
the reference's round trips."""
import math
import warnings

import numpy as np
import pandas as pd
from hypothesis import assume, given, settings, strategies as st

import btcore.strategies as strategies
from btcore import MarketData, backtest, run_sweep
from candles import candles, execution_settings
from execution_reference import simulate_execution_reference
from reference import METRIC_KEYS, spec_rule
from test_kernel_reference import assert_metric_close

NUMERIC = ("stop_loss", "take_profit", "trailing_stop", "size_fraction", "target_volatility",
           "volatility_lookback", "max_leverage", "slippage_bps", "fee_per_trade",
           "borrow_bps", "risk_free_rate")


def ohlc_data(bars) -> MarketData:
    index = pd.bdate_range("2003-01-01", periods=len(bars.close))
    return MarketData(bars.close, index, ("X",), open=bars.open, high=bars.high, low=bars.low)


def grid_value(name, value):
    """A setting as a grid column value: off stops and targets are 0."""
    return 0.0 if isinstance(value, float) and math.isnan(value) else value


@st.composite
def grids(draw):
    return {"lookback_period": draw(st.lists(st.integers(2, 8), min_size=1, max_size=2,
                                             unique=True)),
            "entry_threshold": draw(st.lists(st.sampled_from([0.3, 0.8, 1.2]), min_size=1,
                                             max_size=2, unique=True)),
            "exit_threshold": [draw(st.sampled_from([0.0, 0.2, 0.5]))],
            "stop_loss_z": [draw(st.sampled_from([1.5, 3.0]))]}


def check_rows(table, bars, first, last, drawn, capital, allow_short):
    spec = strategies.get("mean_reversion")
    options = spec.option_values({"allow_short": allow_short})
    for row in table.to_dict("records"):
        params = [row[name] for name in spec.param_names]
        settings_of_row = {**drawn, **{n: row[n] for n in NUMERIC if n in row}}
        for name in ("stop_loss", "take_profit", "trailing_stop", "target_volatility"):
            if settings_of_row[name] == 0.0:
                settings_of_row[name] = math.nan
        rule = spec_rule(spec, bars.close, params, options)
        expected = simulate_execution_reference(
            bars.open, bars.high, bars.low, bars.close, first, last, rule,
            initial_capital=capital, **settings_of_row)
        for name in METRIC_KEYS:
            assert_metric_close(name, row[name], expected[name])
        assert row["ruined"] == expected["ruined"]


@settings(max_examples=60, deadline=None)
@given(bars=candles(min_bars=12, max_bars=70), drawn=execution_settings(), grid=grids(),
       as_columns=st.sets(st.sampled_from(NUMERIC), max_size=4), data=st.data(),
       capital=st.sampled_from([1_000.0, 1e6]), allow_short=st.booleans())
def test_kernel_equals_reference(bars, drawn, grid, as_columns, data, capital, allow_short):
    n_bars = len(bars.close)
    start = data.draw(st.integers(0, n_bars - 3))
    end = data.draw(st.integers(start + 1, n_bars - 1))
    assume(max(grid["lookback_period"]) < end + 1)
    lookback = drawn["volatility_lookback"]
    assume(math.isnan(drawn["target_volatility"]) or lookback + 1 < end + 1)
    market = ohlc_data(bars)
    keywords = dict(drawn)  # btcore takes NaN as off
    for name in as_columns:  # the same settings, as one-value grid columns
        grid[name] = [grid_value(name, keywords.pop(name))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = run_sweep(grid, data=market, start=market.index[start], end=market.index[end],
                           initial_capital=capital, allow_short=allow_short, progress=False,
                           **keywords)
    check_rows(result.table, bars, start, end, drawn, capital, allow_short)


@settings(max_examples=30, deadline=None)
@given(bars=candles(min_bars=20, max_bars=60), drawn=execution_settings(),
       allow_short=st.booleans())
def test_replayed_trades_equal_the_reference_round_trips(bars, drawn, allow_short):
    market = ohlc_data(bars)
    params = {"lookback_period": 3, "entry_threshold": 0.5, "exit_threshold": 0.1,
              "stop_loss_z": 2.5}
    assume(math.isnan(drawn["target_volatility"]) or drawn["volatility_lookback"] + 2 < 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        replay = backtest(params, data=market, allow_short=allow_short, **drawn)
    spec = strategies.get("mean_reversion")
    rule = spec_rule(spec, bars.close, list(params.values()),
                     spec.option_values({"allow_short": allow_short}))
    expected = simulate_execution_reference(bars.open, bars.high, bars.low, bars.close, 0,
                                            len(bars.close) - 1, rule, **drawn)
    trades = replay.trades
    assert len(trades) == len(expected["trades"])
    for got, want in zip(trades.itertuples(), expected["trades"]):
        assert market.index.get_loc(got.entry_time) == want["entry_bar"]
        assert got.side == want["side"]
        assert got.exit_reason == want["exit_reason"]
        assert math.isclose(got.shares, want["shares"], rel_tol=1e-12)
        assert math.isclose(got.entry_price, want["entry_price"], rel_tol=1e-12)
        if want["exit_bar"] is None:
            assert pd.isna(got.exit_time)
            continue
        assert market.index.get_loc(got.exit_time) == want["exit_bar"]
        assert math.isclose(got.exit_price, want["exit_price"], rel_tol=1e-12)
        assert math.isclose(got.fees, want["fees"], rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(got.borrow, want["borrow"], rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(got.pnl, want["pnl"], rel_tol=1e-9, abs_tol=1e-6)
    np.testing.assert_allclose(replay.equity.to_numpy(), expected["equity"], rtol=1e-9,
                               atol=1e-6)
