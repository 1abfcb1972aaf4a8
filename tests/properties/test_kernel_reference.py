"""The fused kernel equals the pure-Python reference (tests/reference.py)."""
import math

import numpy as np
from hypothesis import assume, given, strategies as st

from btcore import run_sweep
from btcore.indicators import rolling_zscore_nb
from generators import market, mean_reversion_grids, price_paths, windows
from reference import METRIC_KEYS, backtest_reference, zscore_reference

MONEY_RTOL = 1e-9


def assert_metric_close(name, kernel_value, reference_value):
    if name == "num_trades":
        assert kernel_value == reference_value, name
    elif math.isnan(reference_value) or math.isinf(reference_value):
        assert kernel_value == reference_value or (math.isnan(kernel_value)
                                                   and math.isnan(reference_value)), name
    else:
        assert math.isclose(kernel_value, reference_value, rel_tol=MONEY_RTOL,
                            abs_tol=1e-12), (name, kernel_value, reference_value)


@given(close=price_paths(), lookback=st.integers(2, 40))
def test_rolling_zscore_matches_two_pass(close, lookback):
    out = np.empty_like(close)
    rolling_zscore_nb(close, lookback, out)
    expected = zscore_reference(close, lookback)
    # warm-up bars and exactly flat windows are exactly 0 (decisions depend on it);
    # elsewhere the two agree to ~1e-12 (z near 0 may be 0 in one, 1e-14 in the other)
    first = int(np.argmax(~np.isnan(close)))
    for t in range(len(close)):
        window = close[t - lookback:t]
        if t - first < lookback or (window == window[0]).all():
            assert out[t] == 0.0 and expected[t] == 0.0, t
    # a window whose std is tiny against its mean is ill-conditioned for any
    # method (two-pass included): allow error growing with mean / std
    for t in range(first + lookback, len(close)):
        window = close[t - lookback:t]
        conditioning = window.mean() / max(window.std(ddof=1), 1e-300)
        rtol = max(2e-12, 1e-14 * conditioning)
        assert math.isclose(out[t], expected[t], rel_tol=rtol, abs_tol=1e-11), (t, rtol)


@given(data=st.data(), close=price_paths(), grid=mean_reversion_grids(),
       allow_short=st.booleans(), reenter=st.booleans(),
       cost_bps=st.sampled_from([0.0, 1.0, 5.0, 25.0]),
       capital=st.sampled_from([1_000.0, 1_000_000.0, 1e9]))
def test_sweep_matches_reference(data, close, grid, allow_short, reenter, cost_bps, capital):
    first_valid = int(np.argmax(~np.isnan(close)))
    assume(len(close) - first_valid >= 3)
    assume(max(grid["lookback_period"]) < len(close))
    start, end = data.draw(windows(len(close)))
    assume(end - max(start, first_valid) >= 1)
    assume(max(grid["lookback_period"]) < end + 1 - first_valid)  # else a clear ValueError
    prices = market(close)
    result = run_sweep(grid, data=prices, start=prices.index[start], end=prices.index[end],
                       allow_short=allow_short, reenter_after_stop=reenter, cost_bps=cost_bps,
                       initial_capital=capital, progress=False)
    assert len(result.table) == np.prod([len(v) for v in grid.values()])
    for row in result.table.itertuples(index=False):
        z = np.empty_like(close)
        rolling_zscore_nb(close, row.lookback_period, z)
        expected = backtest_reference(
            close, z, max(start, first_valid), end, row.entry_threshold, row.exit_threshold,
            row.stop_loss_z, allow_short=allow_short, reenter_after_stop=reenter,
            initial_capital=capital, cost_bps=cost_bps)
        for name in METRIC_KEYS:
            assert_metric_close(name, getattr(row, name), expected[name])
        assert row.ruined == expected["ruined"]


@given(data=st.data(), close=price_paths(leading_nan=False), grid=mean_reversion_grids(),
       allow_short=st.booleans(), reenter=st.booleans())
def test_sweep_matches_reference_end_to_end(data, close, grid, allow_short, reenter):
    """Reference z-score (two-pass) too; cases where a z lands within 1e-9 of a
    threshold are skipped, since ~1e-12 differences may rightly flip them."""
    assume(max(grid["lookback_period"]) < len(close) - 1)
    start, end = data.draw(windows(len(close)))
    assume(end + 1 > max(grid["lookback_period"]))
    prices = market(close)
    result = run_sweep(grid, data=prices, start=prices.index[start], end=prices.index[end],
                       allow_short=allow_short, reenter_after_stop=reenter, progress=False)
    thresholds = np.array([*grid["entry_threshold"], *grid["exit_threshold"],
                           *grid["stop_loss_z"]])
    for row in result.table.itertuples(index=False):
        z = zscore_reference(close, row.lookback_period)
        distance = np.abs(np.abs(z[start:end + 1])[:, None] - thresholds[None, :])
        assume(distance.min() > 1e-9)
        expected = backtest_reference(
            close, z, start, end, row.entry_threshold, row.exit_threshold, row.stop_loss_z,
            allow_short=allow_short, reenter_after_stop=reenter)
        for name in METRIC_KEYS:
            assert_metric_close(name, getattr(row, name), expected[name])


def test_reference_agrees_on_real_data(sample):
    """End to end on real prices with the reference's own two-pass z-score."""
    close = sample.close[:, sample.symbols.index("KO")]
    grid = {"lookback_period": [20, 60], "entry_threshold": [1.5, 2.5],
            "exit_threshold": [0.5], "stop_loss_z": [3.0]}
    first, last = sample.window("2015-01-01", "2019-12-31")
    result = run_sweep(grid, data=sample, assets="KO", start="2015-01-01", end="2019-12-31",
                       allow_short=True, progress=False)
    for row in result.table.itertuples(index=False):
        z = zscore_reference(close, row.lookback_period)
        expected = backtest_reference(close, z, first, last, row.entry_threshold,
                                      row.exit_threshold, row.stop_loss_z)
        assert expected["num_trades"] > 10
        for name in METRIC_KEYS:
            assert_metric_close(name, getattr(row, name), expected[name])
