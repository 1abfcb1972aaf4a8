"""The worked example of docs/semantics.md, section 8, bar by bar (numbers derived
there by hand from the rules)."""
import math

import pandas as pd
import pytest

from btcore import MarketData, backtest

PARAMS = {"lookback_period": 2, "entry_threshold": 1.0, "exit_threshold": 0.5,
          "stop_loss_z": 3.0}


def _run(closes):
    data = MarketData(closes, pd.bdate_range("2021-01-04", periods=len(closes)), ("X",))
    return backtest(PARAMS, data=data, start=data.index[2], initial_capital=10_000.0,
                    cost_bps=5.0)


def test_worked_example():
    res = _run([100.0, 102.0, 99.0, 98.0, 98.6, 99.5])
    assert res.positions.tolist() == [100.0, 100.0, 0.0, -99.0]
    assert res.equity.tolist() == pytest.approx([9995.05, 9895.05, 9950.12, 9945.19475],
                                                rel=1e-12)
    m = res.metrics
    assert m["final_value"] == pytest.approx(9945.19475, rel=1e-12)
    assert m["num_trades"] == 3 and m["exposure"] == 0.75 and m["win_rate"] == 0.0
    assert m["num_round_trips"] == 1
    assert m["benchmark_return"] == pytest.approx(99.5 / 99 - 1, rel=1e-12)
    assert m["excess_return"] == pytest.approx(-0.0054805 - (99.5 / 99 - 1), abs=5e-8)
    assert m["max_drawdown"] == pytest.approx(9895.05 / 10_000 - 1, rel=1e-12)
    assert m["cagr"] == pytest.approx((9945.19475 / 10_000) ** (252 / 4) - 1, rel=1e-9)
    assert m["sharpe_ratio"] == pytest.approx(-3.3490, abs=5e-5)
    assert m["sortino_ratio"] == pytest.approx(-4.2969, abs=5e-5)
    assert m["annual_volatility"] == pytest.approx(0.10214, abs=5e-6)
    assert m["calmar_ratio"] == pytest.approx(-27.884, abs=5e-4)
    assert not m["ruined"]
    [closed, still_open] = res.trades.itertuples()
    assert closed.pnl == pytest.approx(9950.12 - 10_000, rel=1e-12)
    assert math.isnan(still_open.pnl) and still_open.side == -1


def test_worked_example_out_of_money():
    res = _run([100.0, 102.0, 99.0, 98.0, 98.6, 99.5, 200.0])
    m = res.metrics
    assert res.equity.iloc[-1] == 0.0 and res.returns.iloc[-1] == -1.0
    assert m["num_trades"] == 4 and m["num_round_trips"] == 2 and m["win_rate"] == 0.0
    assert m["final_value"] == 0.0
    assert m["total_return"] == m["max_drawdown"] == m["cagr"] == m["calmar_ratio"] == -1.0
    assert m["ruined"]
    last = res.trades.iloc[-1]
    # stopped out by the rule: buying back 99 shares at 200 leaves cash at -14.21
    assert last.pnl == pytest.approx((19795.69475 - 99 * 200 * 1.0005) - 9950.12, rel=1e-12)
