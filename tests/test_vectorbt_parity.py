"""btcore's execution kernel against vectorbt ``Portfolio.from_signals`` (the ``bench``
extra; skipped without it): identical trades on real-looking candles, and each
documented rule difference shown on a minimal hand-made example.

The comparison code is ``benchmarks/compare_execution_vectorbt.py`` (its
docstring lists the differences); these tests run it.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("vectorbt")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import compare_execution_vectorbt as compare  # noqa: E402

from btcore import MarketData  # noqa: E402

pytestmark = pytest.mark.slow

SLIP = compare.SETTINGS["slippage_bps"] / 1e4
#: fast 1 / slow 2: "above" means the close rose, so the crossings are easy to place
CROSS = {"fast_window": 1, "slow_window": 2}


def test_identical_trades_on_aapl_candles():
    candles = compare.Candles(compare.aapl_candles())
    report = compare.parity(candles, compare.parity_sets(), min_parity=20)
    assert report["full"] >= 20
    assert report["largest"] < 1e-9
    # every kind of exit took part, and flagged sets really differ
    for reason in ("signal", "stop_loss", "take_profit", "trailing_stop"):
        assert report["reasons"][reason] > 20, report
    assert report["diverged"] > 0


def candles_of(bars):
    """Candles from rows (open, high, low, close), one per day."""
    bars = np.array(bars, dtype=float)
    index = pd.date_range("2024-01-01", periods=len(bars), freq="D")
    data = MarketData(bars[:, 3], index, ("X",), open=bars[:, 0], high=bars[:, 1],
                      low=bars[:, 2])
    return compare.Candles(data, start=index[0])


def both(bars, one_set):
    candles = candles_of(bars)
    portfolio = compare.vectorbt_portfolio(candles, [one_set])
    ours = compare.btcore_trades(candles, one_set)
    theirs = compare.vectorbt_trades(candles, portfolio, 0, one_set)
    return candles, ours, theirs


# bars 0-2: closes 10, 10, 11 -> an upward crossing at the close of bar 2, so both
# engines buy at the open of bar 3 (11 * (1 + slippage))
LEAD = [(10, 10, 10, 10), (10, 10, 10, 10), (10.5, 11, 10.5, 11)]
ENTRY = 11 * (1 + SLIP)
STOP = ENTRY * (1 - 0.05)  # the 5% stop-loss level, about 10.45


def test_difference_1_stop_on_the_entry_bar():
    bars = LEAD + [(11, 11.5, 10.0, 11.2),  # entry at the open, the low reaches the stop
                   (11.3, 11.6, 11.1, 11.5), (11.5, 11.8, 11.4, 11.7)]
    one_set = {**CROSS, "stop_loss": 0.05}
    candles, ours, theirs = both(bars, one_set)
    assert [t[:3] + (t[6],) for t in ours] == [(3, 3, 1, "stop_loss")]
    assert ours[0][5] == pytest.approx(STOP * (1 - SLIP), rel=1e-12)
    # vectorbt checks stops from the bar after the entry: still long at the end
    assert [t[:3] + (t[6],) for t in theirs] == [(3, -1, 1, "end")]
    assert compare.first_difference(candles, ours, one_set) == (3, 1)


# bar 3 holds; bar 4 closes lower -> a downward crossing, an exit order for bar 5
HOLD = [(11, 11.3, 10.9, 11.2), (11.2, 11.4, 11.0, 11.1)]


def test_difference_2_exit_order_at_the_open_of_a_stop_bar():
    bars = LEAD + HOLD + [(11.0, 11.0, 10.0, 10.2), (10.2, 10.4, 10.1, 10.3)]
    one_set = {**CROSS, "stop_loss": 0.05}
    candles, ours, theirs = both(bars, one_set)
    # btcore: the order fills at the open, before the low
    assert [t[:3] + (t[6],) for t in ours] == [(3, 5, 1, "signal")]
    assert ours[0][5] == pytest.approx(11.0 * (1 - SLIP), rel=1e-12)
    # vectorbt: the stop over the whole bar first, at its level
    assert [t[:3] + (t[6],) for t in theirs] == [(3, 5, 1, "stop_loss")]
    assert theirs[0][5] == pytest.approx(STOP * (1 - SLIP), rel=1e-12)
    assert compare.first_difference(candles, ours, one_set) == (5, 2)


def test_difference_3_gap_beyond_the_take_profit_with_the_stop_inside():
    bars = LEAD + [(11, 11.3, 10.9, 11.2), (12.0, 12.1, 10.0, 11.4),
                   (11.4, 11.6, 11.3, 11.5)]
    one_set = {**CROSS, "stop_loss": 0.05, "take_profit": 0.06}
    candles, ours, theirs = both(bars, one_set)
    assert [t[:3] + (t[6],) for t in ours] == [(3, 4, 1, "take_profit")]
    assert ours[0][5] == pytest.approx(12.0 * (1 - SLIP), rel=1e-12)
    assert [t[:3] + (t[6],) for t in theirs] == [(3, 4, 1, "stop_loss")]
    assert theirs[0][5] == pytest.approx(STOP * (1 - SLIP), rel=1e-12)
    assert compare.first_difference(candles, ours, one_set) == (4, 3)


def test_difference_4_entry_decided_at_the_close_of_a_stop_bar():
    # bar 5 gaps below the stop (exit at the open), then closes higher: an upward
    # crossing at the close of the stop bar
    bars = LEAD + HOLD + [(10.0, 11.6, 10.0, 11.5), (11.6, 11.8, 11.5, 11.7),
                          (11.7, 11.9, 11.6, 11.8)]
    one_set = {**CROSS, "stop_loss": 0.05}
    candles, ours, theirs = both(bars, one_set)
    assert [t[:3] + (t[6],) for t in ours] == [(3, 5, 1, "stop_loss")]
    assert ours[0][5] == pytest.approx(10.0 * (1 - SLIP), rel=1e-12)  # at the open
    # btcore drops that entry (a stop bar makes no other trade); vectorbt buys at bar 6
    assert [t[:3] + (t[6],) for t in theirs] == [(3, 5, 1, "stop_loss"), (6, -1, 1, "end")]
    assert compare.first_difference(candles, ours, one_set) == (6, 4)


def test_difference_5_fixed_fee_in_sizing():
    fee_rate = compare.COST_BPS / 1e4
    cash = compare.INITIAL_CAPITAL
    # an open where cash / (q * (1 + fee)) is 90845.05 shares: the fee of 1 reserved
    # by vectorbt (worth 0.09 share) costs it the last whole share
    bar_open = cash / (90845.05 * (1 + fee_rate) * (1 + SLIP))
    bars = LEAD + [(bar_open, 11.3, 10.9, 11.2)] + HOLD[1:] + [(11.0, 11.1, 10.9, 11.0)]
    candles = candles_of(bars)
    ours = compare.btcore_trades(candles, CROSS, fixed_fee=1.0)
    portfolio = compare.vectorbt_portfolio(candles, [CROSS], fixed_fee=1.0)
    theirs = compare.vectorbt_trades(candles, portfolio, 0, CROSS)
    assert [t[:3] for t in ours] == [t[:3] for t in theirs] == [(3, 5, 1)]
    assert ours[0][4] == pytest.approx(theirs[0][4], rel=1e-15)
    price = ours[0][4]
    assert ours[0][3] == math.floor(cash / (price * (1 + fee_rate))) == 90845
    assert theirs[0][3] == math.floor((cash - 1.0) / (1 + fee_rate) / price) == 90844
