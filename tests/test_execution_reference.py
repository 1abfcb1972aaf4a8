"""The execution reference (tests/execution_reference.py) against rules 1-6 and by hand.

(a) with every setting at its default it is ``simulate_reference``, bit for bit;
(b) one worked example per execution rule, every expected number derived here
from the inputs (docs/semantics.md, sections 9-12, show the same numbers);
(c) invariants that hold for any valid candles, settings and signals.
"""
import math
import statistics

import numpy as np
import pytest
from hypothesis import assume, find, given, strategies as st

from candles import candles, execution_settings
from execution_reference import excess_returns, simulate_execution_reference
from reference import METRIC_KEYS, mean_reversion_rule, simulate_reference, zscore_reference

STOP_REASONS = ("stop_loss", "take_profit", "trailing_stop")
CORE_TRADE_FIELDS = ("entry_bar", "exit_bar", "side", "shares", "entry_price", "exit_price",
                     "pnl")


def scripted(targets, calls):
    """A rule returning ``targets[t]`` whatever the position; records (t, position)."""
    def rule(t, position):
        calls.append((t, position))
        return targets[t]
    return rule


def run(close, targets, *, open_=None, high=None, low=None, first_bar=0, **settings):
    """The reference over a scripted rule; ``calls`` added to the result."""
    settings.setdefault("initial_capital", 10_000.0)
    settings.setdefault("cost_bps", 0.0)
    calls = []
    as_array = (lambda values: None if values is None else np.array(values, dtype=np.float64))
    result = simulate_execution_reference(
        as_array(open_), as_array(high), as_array(low), as_array(close), first_bar,
        len(close) - 1, scripted(targets, calls), **settings)
    result["calls"] = calls
    return result


def same(a, b):
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


# (a) ---------------------------------------------------------------------------------
@given(data=st.data(),
       log_returns=st.lists(st.floats(-0.15, 0.15, allow_nan=False), min_size=8, max_size=80),
       lookback=st.integers(2, 10), entry=st.floats(0.1, 2.5), exit_=st.floats(0.0, 1.5),
       stop=st.floats(0.5, 4.0), allow_short=st.booleans(), reenter=st.booleans(),
       cost_bps=st.sampled_from([0.0, 5.0, 25.0]),
       capital=st.sampled_from([1_000.0, 1_000_000.0]), with_candles=st.booleans())
def test_defaults_equal_simulate_reference_bit_for_bit(data, log_returns, lookback, entry, exit_,
                                                       stop, allow_short, reenter, cost_bps,
                                                       capital, with_candles):
    if with_candles:  # fill="close" and no stops: the opens, highs and lows are never read
        candle = data.draw(candles(min_bars=8, max_bars=80))
        close, ohlc = candle.close, candle[:3]
    else:
        close, ohlc = 30.0 * np.exp(np.cumsum(log_returns)), (None, None, None)
    z = zscore_reference(close, lookback)
    first_bar = data.draw(st.integers(0, len(close) - 2))
    last_bar = data.draw(st.integers(first_bar + 1, len(close) - 1))

    def rule():
        return mean_reversion_rule(z, entry, exit_, stop, allow_short=allow_short,
                                   reenter_after_stop=reenter)
    settings = {"initial_capital": capital, "cost_bps": cost_bps}
    want = simulate_reference(close, first_bar, last_bar, rule(), **settings)
    got = simulate_execution_reference(*ohlc, close, first_bar, last_bar, rule(), **settings)
    for name in (*METRIC_KEYS, "ruined"):
        assert same(got[name], want[name]), (name, got[name], want[name])
    for name in ("equity", "shares", "returns"):
        assert got[name] == want[name], name
    assert len(got["trades"]) == len(want["trades"])
    for got_trade, want_trade in zip(got["trades"], want["trades"]):
        assert {k: got_trade[k] for k in CORE_TRADE_FIELDS} == want_trade
    assert got["num_round_trips"] == sum(t["exit_bar"] is not None for t in want["trades"])


# (b) rule 7: fill timing -----------------------------------------------------------
TIMING_CLOSE = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
TIMING_OPEN = [10.0, 10.0, 12.5, 12.0, 13.5, 16.0]
TIMING_TARGETS = [0, 1, 1, 0, 0, 1]  # long decided at bar 1, flat at bar 3, long at bar 5


def _timing(fill):
    high = [max(o, c) + 0.5 for o, c in zip(TIMING_OPEN, TIMING_CLOSE)]
    low = [min(o, c) - 0.5 for o, c in zip(TIMING_OPEN, TIMING_CLOSE)]
    return run(TIMING_CLOSE, TIMING_TARGETS, open_=TIMING_OPEN, high=high, low=low,
               initial_capital=1_000.0, fill=fill)


def test_fill_at_the_close():
    res = _timing("close")
    # bar 1 buys floor(1000 / 11) = 90 at 11 (cash 10); bar 3 sells at 13 (cash 1180);
    # bar 5 buys floor(1180 / 15) = 78 at 15 (cash 10)
    assert res["equity"] == [1000.0, 10 + 90 * 11.0, 10 + 90 * 12.0, 1180.0, 1180.0,
                             10 + 78 * 15.0]
    assert res["shares"] == [0.0, 90.0, 90.0, 0.0, 0.0, 78.0]
    assert res["num_trades"] == 3 and res["num_round_trips"] == 1
    first, last = res["trades"]
    assert (first["entry_bar"], first["exit_bar"], first["entry_price"],
            first["exit_price"], first["pnl"]) == (1, 3, 11.0, 13.0, 1180.0 - 1000.0)
    assert last["exit_bar"] is None and last["exit_reason"] == "end"


def test_fill_at_the_next_open():
    res = _timing("next_open")
    # decided at bar 1 -> buys floor(1000 / 12.5) = 80 at O_2 = 12.5 (cash 0);
    # decided at bar 3 -> sells at O_4 = 13.5 (cash 1080); bar 5's order is never filled
    assert res["equity"] == [1000.0, 1000.0, 80 * 12.0, 80 * 13.0, 80 * 13.5, 80 * 13.5]
    assert res["num_trades"] == 2 and res["total_return"] == 1080.0 / 1000 - 1
    [trip] = res["trades"]
    assert (trip["entry_bar"], trip["exit_bar"], trip["entry_price"],
            trip["exit_price"]) == (2, 4, 12.5, 13.5)
    # the rule sees the position after the bar's fills
    assert res["calls"] == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 0), (5, 0)]


def test_fill_at_the_next_close():
    res = _timing("next_close")
    # buys floor(1000 / 12) = 83 at C_2 (cash 1000 - 996 = 4); sells at C_4 = 14
    assert res["equity"] == [1000.0, 1000.0, 4 + 83 * 12.0, 4 + 83 * 13.0, 4 + 83 * 14.0,
                             4 + 83 * 14.0]
    assert res["num_trades"] == 2 and res["trades"][0]["pnl"] == 4 + 83 * 14.0 - 1000


# (b) rule 8: price stops -----------------------------------------------------------
@pytest.mark.parametrize("bar_open, exit_price", [
    (90.0, 90.0),                # the open gaps below the level: filled at the open
    (96.0, 100 * (1 - 0.05)),    # the low crosses the level: filled at the level
])
def test_stop_loss_gap_fills_at_the_open(bar_open, exit_price):
    # long 100 shares at C_0 = 100 (cash 0), stop-loss 5%: level 95
    res = run([100.0, 91.0, 93.0], [1, 1, 0], open_=[100.0, bar_open, 92.0],
              high=[100.0, bar_open + 2, 94.0], low=[100.0, 88.0, 91.0], stop_loss=0.05)
    [trip] = res["trades"]
    assert (trip["exit_bar"], trip["exit_reason"], trip["exit_price"]) == (1, "stop_loss",
                                                                           exit_price)
    assert trip["pnl"] == 100 * exit_price - 10_000
    assert res["equity"] == [10_000.0, 100 * exit_price, 100 * exit_price]
    # the rule is still called on the stop bar (with the position after the stop);
    # its target 1 there is ignored
    assert res["calls"] == [(0, 0), (1, 0), (2, 0)]
    assert res["shares"] == [100.0, 0.0, 0.0] and res["num_trades"] == 2


@pytest.mark.parametrize("side, high, low, exit_price, reason", [
    (1, 112.0, 94.0, 100 * (1 - 0.05), "stop_loss"),    # both reached: the stop fills
    (1, 112.0, 99.0, 100 * (1 + 0.10), "take_profit"),  # only the take-profit
    (-1, 106.0, 88.0, 100 * (1 + 0.05), "stop_loss"),   # short: stop 105 and target 90
    (-1, 101.0, 88.0, 100 * (1 - 0.10), "take_profit"),
])
def test_a_bar_reaching_both_levels_fills_the_stop(side, high, low, exit_price, reason):
    res = run([100.0, 100.0], [side, side], open_=[100.0, 100.0], high=[100.0, high],
              low=[100.0, low], stop_loss=0.05, take_profit=0.10)
    [trip] = res["trades"]
    assert (trip["exit_reason"], trip["exit_price"]) == (reason, exit_price)
    # 100 shares each way: long cash 0 then 100 * exit; short cash 20000 then - 100 * exit
    final = 100 * exit_price if side == 1 else 20_000 - 100 * exit_price
    assert res["final_value"] == final and trip["pnl"] == final - 10_000


@pytest.mark.parametrize("stop_loss, trailing, bar1, bar2, exit_price, reason", [
    # peak 110 after bar 1: trailing 110 * 0.95 = 104.5 above the stop-loss 90
    (0.10, 0.05, (101.0, 110.0, 99.0), (105.0, 106.0, 85.0), 110 * (1 - 0.05), "trailing_stop"),
    # the same levels reached at the open: filled at the open, reason the nearer level
    (0.10, 0.05, (101.0, 110.0, 99.0), (89.0, 90.0, 85.0), 89.0, "trailing_stop"),
    # peak 102: trailing 102 * 0.9 = 91.8 below the stop-loss 95
    (0.05, 0.10, (101.0, 102.0, 99.0), (99.0, 100.0, 90.0), 100 * (1 - 0.05), "stop_loss"),
    # no new high: both levels are 95; equal levels count as the stop-loss
    (0.05, 0.05, (99.0, 100.0, 96.0), (97.0, 98.0, 94.0), 100 * (1 - 0.05), "stop_loss"),
])
def test_stop_loss_and_trailing_both_reached(stop_loss, trailing, bar1, bar2, exit_price,
                                             reason):
    res = run([100.0, 100.0, 90.0], [1, 1, 1], open_=[100.0, bar1[0], bar2[0]],
              high=[100.0, bar1[1], bar2[1]], low=[100.0, bar1[2], bar2[2]],
              stop_loss=stop_loss, trailing_stop=trailing)
    [trip] = res["trades"]
    assert (trip["exit_bar"], trip["exit_reason"], trip["exit_price"]) == (2, reason,
                                                                           exit_price)


def test_trailing_peak_leaves_out_the_entry_bars_high():
    # long at C_0 = 100 in a bar whose high is 120. Bar 1: level 100 * 0.9 = 90 (not
    # 120 * 0.9 = 108, which its low of 95 would reach); bar 2: peak 101 -> 90.9
    res = run([100.0, 97.0, 92.0], [1, 1, 1], open_=[100.0, 100.0, 97.0],
              high=[120.0, 101.0, 98.0], low=[99.0, 95.0, 90.5], trailing_stop=0.10)
    [trip] = res["trades"]
    assert (trip["exit_bar"], trip["exit_price"]) == (2, 101 * (1 - 0.10))


def test_trailing_peak_leaves_out_the_high_of_an_entry_at_the_open():
    # next_open: bought at O_1 = 100; bar 1's high 120 does not count, so bar 2's level
    # is 100 * 0.9 = 90 (its low 105 holds); bar 3's is 111 * 0.9 = 99.9
    res = run([100.0, 110.0, 106.0, 100.0], [1, 1, 1, 1], open_=[100.0, 100.0, 110.0, 106.0],
              high=[100.0, 120.0, 111.0, 107.0], low=[100.0, 99.0, 105.0, 99.0],
              trailing_stop=0.10, fill="next_open")
    [trip] = res["trades"]
    assert (trip["entry_bar"], trip["exit_bar"], trip["exit_price"]) == (1, 3, 111 * (1 - 0.10))


def test_entry_at_the_open_and_its_stop_on_the_same_bar():
    res = run([50.0, 51.0, 52.0, 53.0], [1, 1, 1, 1], open_=[50.0, 50.0, 52.0, 52.0],
              high=[50.0, 52.0, 53.0, 54.0], low=[50.0, 47.0, 51.0, 51.0], stop_loss=0.05,
              fill="next_open")
    # bar 1: buys 10000 / 50 = 200 at the open, its low 47 reaches 50 * 0.95 = 47.5
    # (cash 200 * 47.5 = 9500); bar 1's target is ignored, bar 2 orders again and
    # bar 3 buys floor(9500 / 52) = 182 at 52 (cash 9500 - 9464 = 36)
    first, second = res["trades"]
    assert (first["entry_bar"], first["exit_bar"], first["exit_price"]) == (1, 1, 50 * 0.95)
    assert second["entry_bar"] == 3 and second["shares"] == 182.0
    assert res["equity"] == [10_000.0, 200 * 47.5, 200 * 47.5, 36 + 182 * 53.0]
    assert res["num_trades"] == 2  # bar 1 (two fills) and bar 3


@pytest.mark.parametrize("fill", ["next_open", "next_close"])
def test_a_stop_drops_the_pending_order_only_when_it_comes_first(fill):
    # entered at bar 1 (at 100 either way), bar 1 decides to reverse to a short
    res = run([100.0, 100.0, 96.0, 96.0], [1, -1, -1, -1], open_=[100.0, 100.0, 99.0, 96.0],
              high=[100.0, 101.0, 99.5, 97.0], low=[100.0, 99.0, 94.0, 95.0], stop_loss=0.05,
              fill=fill)
    if fill == "next_open":
        # O_2 = 99 is above the stop (95): the reversal fills at the open (cash 9900,
        # short floor(9900 / 99) = 100, cash 19800); the short's stop 99 * 1.05 = 103.95
        # is not reached
        assert [t["exit_reason"] for t in res["trades"]] == ["signal", "end"]
        assert res["equity"] == [10_000.0, 10_000.0, 19_800 - 9_600.0, 19_800 - 9_600.0]
    else:
        # the long's stop (low 94 <= 95) comes first: the reversal is dropped
        [trip] = res["trades"]
        assert (trip["exit_bar"], trip["exit_reason"]) == (2, "stop_loss")
        assert res["shares"] == [0.0, 100.0, 0.0, 0.0]


def test_a_reversal_at_the_open_then_a_take_profit_on_the_same_bar():
    # next_open: short 1000 at O_1 = 1 (cash 2000); bar 1 orders a long. Bar 2: the
    # order fills at O_2 = 1 (buy back: cash 1000; long 1000: cash 0), then the new
    # long's take-profit 1 * 1.02 is reached by the high 1.03125: sold at 1.02
    res = run([1.0, 1.0, 1.03125, 1.03], [-1, 1, 1, 0], open_=[1.0, 1.0, 1.0, 1.03],
              high=[1.0, 1.0, 1.03125, 1.04], low=[1.0, 1.0, 1.0, 1.02], take_profit=0.02,
              initial_capital=1_000.0, fill="next_open")
    short, long_ = res["trades"]
    assert (short["entry_bar"], short["exit_bar"], short["exit_reason"]) == (1, 2, "signal")
    assert (long_["entry_bar"], long_["exit_bar"], long_["exit_reason"],
            long_["exit_price"]) == (2, 2, "take_profit", 1 * (1 + 0.02))
    assert res["equity"] == [1_000.0, 1_000.0, 1_000 * 1.02, 1_000 * 1.02]
    assert res["num_trades"] == 2  # bar 1; bar 2 (three fills)
    assert res["calls"] == [(0, 0), (1, -1), (2, 0), (3, 0)]


def test_a_gap_stop_at_the_open_drops_the_pending_reversal():
    # next_open: bought 100 at O_1 = 100; bar 1 decides to go short; O_2 = 90 is below
    # the stop (95): the long exits at the open and the short is never entered
    res = run([100.0, 100.0, 91.0, 91.0], [1, -1, -1, 0], open_=[100.0, 100.0, 90.0, 91.0],
              high=[100.0, 101.0, 92.0, 92.0], low=[100.0, 99.0, 89.0, 90.0], stop_loss=0.05,
              fill="next_open")
    [trip] = res["trades"]
    assert (trip["exit_bar"], trip["exit_price"], trip["exit_reason"]) == (2, 90.0,
                                                                           "stop_loss")
    assert res["shares"] == [0.0, 100.0, 0.0, 0.0]  # bar 2's -1 is ignored, bar 3 says 0
    assert res["calls"] == [(0, 0), (1, 1), (2, 0), (3, 0)]


# (b) rule 9: sizing ----------------------------------------------------------------
def test_size_fraction():
    res = run([100.0, 100.0], [1, 1], cost_bps=5.0, size_fraction=0.5)
    # floor(0.5 * 10000 / (100 * 1.0005)) = floor(49.975) = 49
    assert res["shares"] == [49.0, 49.0]
    cash = 10_000 - 49 * 100.0 - 49 * 100.0 * 0.0005  # 5097.55
    assert res["final_value"] == pytest.approx(cash + 49 * 100.0, rel=1e-15)


def test_fractional_shares():
    res = run([100.0, 100.0], [1, 1], cost_bps=5.0, fractional_shares=True)
    size = 10_000 / (100 * (1 + 0.0005))  # 99.95002...: all the cash, no floor
    assert res["shares"][0] == pytest.approx(size, rel=1e-15)
    assert res["final_value"] == pytest.approx(size * 100, rel=1e-12)  # cash ~ 0


def _sigma(*closes):
    """sqrt(ppy) * std(ddof=1) of the simple returns of ``closes``, by hand."""
    simple = [b / a - 1 for a, b in zip(closes, closes[1:])]
    mean = sum(simple) / len(simple)
    return math.sqrt(sum((r - mean) ** 2 for r in simple) / (len(simple) - 1)) * math.sqrt(252)


@pytest.mark.parametrize("target, max_leverage", [(0.5, 1.0), (5.0, 1.5)])
def test_target_volatility_sizing(target, max_leverage):
    res = run([100.0, 110.0, 99.0, 100.0, 104.0], [0, 0, 1, 1, 1], target_volatility=target,
              volatility_lookback=2, max_leverage=max_leverage)
    # bar 2's window needs C_{-1}: no entry. Bar 3: returns 110/100 - 1 and 99/110 - 1
    # (sigma ~ 2.245): 0.5 / sigma ~ 0.2227 -> floor(22.27) = 22 shares;
    # 5 / sigma ~ 2.23 is capped at 1.5 -> 150 shares, cash 10000 - 15000 < 0
    fraction = min(max_leverage, target / _sigma(100.0, 110.0, 99.0))
    size = float(math.floor(fraction * 10_000 / 100.0))
    assert size == (22.0 if target == 0.5 else 150.0)
    assert res["shares"] == [0.0, 0.0, 0.0, size, size]
    assert res["final_value"] == 10_000 - size * 100 + size * 104


def test_target_volatility_needs_valid_closes_and_uses_the_decision_bar():
    # bar 0 not listed: bar 3's window (closes 0..2) has a NaN, bar 4's does not
    res = run([math.nan, 110.0, 99.0, 100.0, 104.0], [0, 0, 1, 1, 1], first_bar=1,
              target_volatility=0.5, volatility_lookback=2)
    fraction = 0.5 / _sigma(110.0, 99.0, 100.0)
    assert res["shares"] == [0.0, 0.0, 0.0, float(math.floor(fraction * 10_000 / 104.0))]
    # next_open: decided at bar 3 (window closes 0..2), filled at O_4 = 101
    res = run([100.0, 110.0, 99.0, 100.0, 104.0], [0, 0, 0, 1, 1],
              open_=[100.0, 110.0, 99.0, 100.0, 101.0], target_volatility=0.5,
              volatility_lookback=2, fill="next_open")
    fraction = 0.5 / _sigma(100.0, 110.0, 99.0)
    assert res["shares"][-1] == float(math.floor(fraction * 10_000 / 101.0))


# (b) rule 10: slippage, fees, borrow, risk-free rate -------------------------------
def test_slippage_moves_both_fills_against_the_trade():
    res = run([100.0, 110.0], [1, 0], slippage_bps=10.0)
    buy, sell = 100 * (1 + 0.001), 110 * (1 - 0.001)  # 100.1 and 109.89
    size = math.floor(10_000 / buy)  # 99
    [trip] = res["trades"]
    assert (trip["shares"], trip["entry_price"], trip["exit_price"]) == (size, buy, sell)
    assert res["final_value"] == pytest.approx(10_000 - size * buy + size * sell, rel=1e-15)


def test_slippage_on_a_stop_exit_and_the_level_from_the_slipped_entry():
    res = run([100.0, 96.0], [1, 1], open_=[100.0, 97.0], high=[100.0, 98.0],
              low=[100.0, 94.0], slippage_bps=10.0, stop_loss=0.05)
    level = 100 * (1 + 0.001) * (1 - 0.05)  # 100.1 * 0.95 = 95.095
    assert res["trades"][0]["exit_price"] == pytest.approx(level * (1 - 0.001), rel=1e-15)


def test_fee_per_trade_on_a_reversal():
    res = run([100.0, 105.0, 105.0], [1, -1, -1], fee_per_trade=2.0)
    # bar 0: floor(10000 / 100) = 100 shares (F is not in the sizing): cash -2
    # bar 1: sell 100 at 105, F: cash 10496; short floor(10496 / 105) = 99, F: cash 20889
    assert res["equity"] == [-2 + 100 * 100.0, 20_889 - 99 * 105.0, 20_889 - 99 * 105.0]
    first, second = res["trades"]
    assert (first["fees"], first["pnl"]) == (4.0, 10_496 - 10_000.0)
    assert (second["shares"], second["fees"]) == (99.0, 2.0)
    assert res["num_trades"] == 2


def test_borrow_on_a_short():
    res = run([100.0, 90.0, 95.0], [-1, -1, 0], borrow_bps=100.0)
    # short 100 at 100 (cash 20000); borrow at the close of bars 0 and 1 (not bar 2: flat)
    borrow = [100 * 100.0 * 0.01 / 252, 100 * 90.0 * 0.01 / 252]
    assert res["equity"][:2] == pytest.approx(
        [20_000 - borrow[0] - 100 * 100.0, 20_000 - borrow[0] - borrow[1] - 100 * 90.0],
        rel=1e-15)
    [trip] = res["trades"]
    assert trip["borrow"] == pytest.approx(sum(borrow), rel=1e-15)
    assert trip["pnl"] == pytest.approx(20_000 - sum(borrow) - 9_500 - 10_000, rel=1e-13)


def test_risk_free_rate_in_sharpe_and_sortino_only():
    # all in (100 shares, cash 0): equity 1000, 1100, 1200, 1050
    close, rf = [10.0, 11.0, 12.0, 10.5], 0.05
    res = run(close, [1, 1, 1, 1], initial_capital=1_000.0, risk_free_rate=rf)
    plain = run(close, [1, 1, 1, 1], initial_capital=1_000.0)
    excess = [r - rf / 252 for r in (0.0, 1100 / 1000 - 1, 1200 / 1100 - 1, 1050 / 1200 - 1)]
    mean = statistics.mean(excess)
    assert res["sharpe_ratio"] == pytest.approx(mean / statistics.stdev(excess)
                                                * math.sqrt(252), rel=1e-12)
    downside = math.sqrt(statistics.mean([min(e, 0.0) ** 2 for e in excess])) * math.sqrt(252)
    assert res["sortino_ratio"] == pytest.approx(mean * 252 / downside, rel=1e-12)
    for name in set(METRIC_KEYS) - {"sharpe_ratio", "sortino_ratio"}:
        assert same(res[name], plain[name]), name


def test_risk_free_rate_on_a_flat_account():
    # e_t = -0.05 / 252 on every bar: no spread (Sharpe 0), all downside
    res = run([10.0, 11.0, 12.0, 10.5], [0, 0, 0, 0], risk_free_rate=0.05)
    assert res["sharpe_ratio"] == 0.0
    assert res["sortino_ratio"] == pytest.approx(-math.sqrt(252), rel=1e-12)


# (b) out of money --------------------------------------------------------------------
def test_a_short_gapping_through_its_stop_into_out_of_money():
    # short 10 at 100 (cash 2000, equity 1000); stop-loss 50%: level 150; bar 1 opens
    # at 250: the stop fills at the open (cash 2000 - 2500 = -500), equity <= 0
    res = run([100.0, 260.0, 250.0, 240.0], [-1, -1, -1, -1], initial_capital=1_000.0,
              open_=[100.0, 250.0, 250.0, 240.0], high=[100.0, 270.0, 255.0, 245.0],
              low=[100.0, 245.0, 245.0, 235.0], stop_loss=0.5)
    [trip] = res["trades"]
    assert (trip["exit_bar"], trip["exit_price"], trip["exit_reason"]) == (1, 250.0,
                                                                           "stop_loss")
    assert trip["pnl"] == -500.0 - 1_000.0
    assert res["ruined"] and res["equity"] == [1_000.0, 0.0, 0.0, 0.0]
    assert res["returns"] == [0.0, -1.0, 0.0, 0.0]
    assert res["num_trades"] == 2 and res["win_rate"] == 0.0
    assert res["calls"] == [(0, 0), (1, 0)]  # never called again once out of money


def test_out_of_money_close_out_is_a_slipped_fill_with_its_fee():
    res = run([100.0, 210.0], [-1, -1], initial_capital=1_000.0, slippage_bps=10.0,
              fee_per_trade=1.0)
    # short floor(1000 / 99.9) = 10 at 99.9 (cash 1000 + 999 - 1 = 1998); bar 1 marks
    # 1998 - 2100 < 0: bought back at 210 * 1.001 = 210.21 with F (cash -105.1)
    [trip] = res["trades"]
    assert trip["exit_reason"] == "out_of_money"
    assert trip["exit_price"] == 210 * (1 + 0.001) and trip["fees"] == 2.0
    cash = 1_000 + 10 * 100 * (1 - 0.001) - 1 - 10 * 210 * (1 + 0.001) - 1
    assert trip["pnl"] == pytest.approx(cash - 1_000, rel=1e-13)
    assert res["ruined"] and res["final_value"] == 0.0 and res["num_trades"] == 2


# (c) invariants --------------------------------------------------------------------
@st.composite
def scripts(draw, n_bars):
    """Targets per bar in runs (positions last a few bars, reversals happen)."""
    targets = []
    while len(targets) < n_bars:
        targets += [draw(st.sampled_from([-1, 0, 1]))] * draw(st.integers(1, 8))
    return targets[:n_bars]


@st.composite
def cases(draw, close_only=None):
    """(candles as (open, high, low, close), first_bar, targets, settings, capital)."""
    candle = draw(candles(min_bars=3, max_bars=60, leading_nan=True))
    first_valid = int(np.argmax(~np.isnan(candle.close)))
    assume(len(candle.close) - first_valid >= 2)
    first_bar = draw(st.integers(first_valid, len(candle.close) - 2))
    if close_only is None:
        close_only = draw(st.booleans())
    ohlc = (candle.close,) * 3 + (candle.close,) if close_only else tuple(candle)
    settings = draw(execution_settings())
    capital = draw(st.sampled_from([1_000.0, 100_000.0]))
    return ohlc, first_bar, draw(scripts(len(candle.close))), settings, capital


def _simulate(ohlc, first_bar, targets, settings, capital, close_only=False):
    calls = []
    candle = (None, None, None) if close_only else ohlc[:3]
    res = simulate_execution_reference(*candle, ohlc[3], first_bar, len(ohlc[3]) - 1,
                                       scripted(targets, calls), initial_capital=capital,
                                       **settings)
    return res, calls


def _near(a, b, scale):
    return abs(a - b) <= 1e-9 * scale


def _check_trade_prices(trade, ohlc, settings, ruin_bar):
    """Fill prices: each at the base price its rule names, slipped against the trade."""
    opens, highs, lows, closes = ohlc
    fill, slip, side = settings["fill"], settings["slippage_bps"] / 1e4, trade["side"]
    entry, exit_bar, reason = trade["entry_bar"], trade["exit_bar"], trade["exit_reason"]
    base = opens if fill == "next_open" else closes
    assert trade["entry_price"] == base[entry] * (1 + slip if side > 0 else 1 - slip)
    if exit_bar is None:
        return
    exit_slip = 1 - slip if side > 0 else 1 + slip
    if reason == "signal":
        assert exit_bar > entry and trade["exit_price"] == base[exit_bar] * exit_slip
    elif reason == "out_of_money":
        assert exit_bar == ruin_bar and trade["exit_price"] == closes[exit_bar] * exit_slip
    elif reason in STOP_REASONS:
        assert exit_bar > entry or (fill == "next_open" and exit_bar == entry)
        fraction = settings[reason]
        assert not math.isnan(fraction), reason  # only a stop that is on fires
        price = trade["entry_price"]
        if reason == "trailing_stop":  # the entry bar's high / low never counts
            held = range(entry + 1, exit_bar)
            price = (max([price] + [highs[t] for t in held]) if side > 0
                     else min([price] + [lows[t] for t in held]))
        against = -1 if reason == "take_profit" else 1
        level = price * (1 - side * against * fraction)
        at_level = trade["exit_price"] == level * exit_slip
        gap = (trade["exit_price"] == opens[exit_bar] * exit_slip
               and side * against * (opens[exit_bar] - level) <= 0)
        assert at_level or gap, (trade, level)
        # a stop never fills better than its level, a take-profit never worse
        assert side * against * (trade["exit_price"] - level * exit_slip) <= 1e-12 * level
    else:
        raise AssertionError(reason)


@given(case=cases())
def test_invariants(case):
    ohlc, first_bar, targets, settings, capital = case
    res, calls = _simulate(ohlc, first_bar, targets, settings, capital)
    closes = ohlc[3]
    bars = list(range(first_bar, len(closes)))
    equity, shares, trades = res["equity"], res["shares"], res["trades"]
    fee, fixed = settings["cost_bps"] / 1e4, settings["fee_per_trade"]
    assert len(equity) == len(shares) == len(res["returns"]) == len(bars)
    # out of money: the first bar with E <= 0 ends everything
    ruined_at = [i for i, e in enumerate(equity) if e <= 0]
    assert res["ruined"] == bool(ruined_at)
    last_called = ruined_at[0] if ruined_at else len(bars) - 1
    ruin_bar = bars[ruined_at[0]] if ruined_at else None
    assert [t for t, _ in calls] == bars[:last_called + 1]  # once per bar, in order
    if ruined_at:
        k = ruined_at[0]
        assert equity[k:] == [0.0] * (len(bars) - k) and shares[k:] == [0.0] * (len(bars) - k)
        assert res["returns"][k] == -1.0 and res["returns"][k + 1:] == [0.0] * (len(bars) - k - 1)
    # the rule sees the position after the bar's fills so far
    stop_bars = {t["exit_bar"] for t in trades if t["exit_reason"] in STOP_REASONS}
    for i, (t, position) in enumerate(calls):
        if settings["fill"] == "close":
            before = 0 if i == 0 or t in stop_bars else shares[i - 1]
            assert position == (before > 0) - (before < 0)
        elif t != ruin_bar:
            assert position == (shares[i] > 0) - (shares[i] < 0)
    # trades: counts, order, the shares each bar, who decided each fill
    fill_bars = {t["entry_bar"] for t in trades} | {t["exit_bar"] for t in trades}
    assert res["num_trades"] == len(fill_bars - {None})
    closed = [t for t in trades if t["exit_bar"] is not None]
    assert res["num_round_trips"] == len(closed) and trades[:len(closed)] == closed
    assert same(res["win_rate"], sum(t["pnl"] > 0 for t in closed) / len(closed)
                if closed else math.nan)
    for before, after in zip(trades, trades[1:]):
        assert before["exit_bar"] <= after["entry_bar"]
        if before["exit_reason"] in STOP_REASONS:  # no entry after a stop on its bar
            assert after["entry_bar"] > before["exit_bar"]
    decision_lag = 0 if settings["fill"] == "close" else 1
    for i, t in enumerate(bars):
        held = [trade["side"] * trade["shares"] for trade in trades if trade["entry_bar"] <= t
                and (trade["exit_bar"] is None or trade["exit_bar"] > t)]
        assert shares[i] == (held[0] if held else 0.0)
    assert res["exposure"] == sum(s != 0 for s in shares) / len(bars)
    scale = capital
    for trade in trades:
        side, size = trade["side"], trade["shares"]
        assert side in (-1, 1) and size > 0
        assert settings["fractional_shares"] or size == math.floor(size)
        assert targets[trade["entry_bar"] - decision_lag] == side
        if trade["exit_reason"] == "signal":
            assert targets[trade["exit_bar"] - decision_lag] != side
        _check_trade_prices(trade, ohlc, settings, ruin_bar)
        gross = size * (trade["entry_price"] + (trade["exit_price"] or 0.0))
        scale = max(scale, gross)
        legs = 1 if trade["exit_bar"] is None else 2
        assert _near(trade["fees"], gross * fee + legs * fixed, gross)
        # borrow at the close of every bar that ends short (the out-of-money bar too)
        end = trade["exit_bar"] if trade["exit_bar"] is not None else bars[-1] + 1
        if trade["exit_reason"] == "out_of_money":
            end += 1
        borrow = math.fsum(size * closes[t] * settings["borrow_bps"] / 1e4 / 252
                           for t in range(trade["entry_bar"], end)) if side < 0 else 0.0
        assert _near(trade["borrow"], borrow, gross)
        if trade["exit_bar"] is not None:  # P&L = price move - costs - borrow
            move = side * size * (trade["exit_price"] - trade["entry_price"])
            assert _near(trade["pnl"], move - trade["fees"] - trade["borrow"], gross)
    # cash bookkeeping: the account is the capital plus every round trip's P&L
    account = capital + math.fsum(t["pnl"] for t in closed)
    if res["ruined"]:
        assert account <= 1e-9 * scale and res["final_value"] == 0.0
    else:
        if trades and trades[-1]["exit_bar"] is None:
            open_trade = trades[-1]
            account += (open_trade["side"] * open_trade["shares"]
                        * (closes[-1] - open_trade["entry_price"])
                        - open_trade["fees"] - open_trade["borrow"])
        assert _near(res["final_value"], account, scale) and min(equity) > 0
    if res["ruined"] or not trades:
        assert res["final_value"] == equity[-1]


@given(case=cases())
def test_the_risk_free_rate_changes_only_sharpe_and_sortino(case):
    ohlc, first_bar, targets, settings, capital = case
    with_rate, _ = _simulate(ohlc, first_bar, targets, settings, capital)
    without, _ = _simulate(ohlc, first_bar, targets, {**settings, "risk_free_rate": 0.0},
                           capital)
    for name in set(METRIC_KEYS) - {"sharpe_ratio", "sortino_ratio"}:
        assert same(with_rate[name], without[name]), name
    excess = excess_returns(without["returns"], settings["risk_free_rate"], 252)
    if statistics.stdev(excess) > 0:
        assert with_rate["sharpe_ratio"] == pytest.approx(
            statistics.mean(excess) / statistics.stdev(excess) * math.sqrt(252), rel=1e-9)


@given(case=cases(close_only=False))
def test_without_stops_only_the_fill_price_is_read(case):
    """Stops off: the highs and lows are never read, nor the opens unless filling at them;
    on close-only data next_open fills where next_close does."""
    ohlc, first_bar, targets, settings, capital = case
    settings = {**settings, "stop_loss": math.nan, "take_profit": math.nan,
                "trailing_stop": math.nan}
    got, _ = _simulate(ohlc, first_bar, targets, settings, capital)
    candle = (ohlc[0] if settings["fill"] == "next_open" else ohlc[3], ohlc[3], ohlc[3], ohlc[3])
    want, _ = _simulate(candle, first_bar, targets, settings, capital)
    assert got["equity"] == want["equity"] and got["trades"] == want["trades"]
    on_closes = {**settings, "fill": "next_close" if settings["fill"] == "next_open"
                 else settings["fill"]}
    want, _ = _simulate(ohlc, first_bar, targets, on_closes, capital, close_only=True)
    got, _ = _simulate(ohlc, first_bar, targets, settings, capital, close_only=True)
    assert got["equity"] == want["equity"] and got["trades"] == want["trades"]


@given(candle=candles(min_bars=1, max_bars=80))
def test_candles_are_valid(candle):
    open_, high, low, close = candle
    assert all(a.dtype == np.float64 for a in candle)
    assert (low > 0).all() and np.isfinite(high).all()
    assert (low <= np.minimum(open_, close)).all() and (high >= np.maximum(open_, close)).all()


@pytest.mark.parametrize("name, condition", [
    ("gap", lambda o, h, lo, c: (np.abs(o[1:] / c[:-1] - 1) > 0.1).any()),
    ("range reaching 5% on both sides of the previous close",
     lambda o, h, lo, c: ((h[1:] >= 1.05 * c[:-1]) & (lo[1:] <= 0.95 * c[:-1])).any()),
    ("open == high", lambda o, h, lo, c: ((o == h) & (c < o)).any()),
    ("low == close", lambda o, h, lo, c: ((lo == c) & (c < o)).any()),
    ("flat run", lambda o, h, lo, c: ((o[1:] == h[1:]) & (lo[1:] == c[1:])
                                      & (c[1:] == c[:-1]) & (o[:-1] == c[:-1])).any()),
])
def test_candles_include_the_edge_cases(name, condition):
    assert find(candles(min_bars=2, max_bars=20), lambda c: condition(*c)) is not None
