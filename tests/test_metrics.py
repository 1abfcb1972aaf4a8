"""Each metric against an independent formula on the per-bar equity of a backtest."""
import math

import numpy as np
import pandas as pd
import pytest

from btcore import backtest

PARAMS = {"lookback_period": 30, "entry_threshold": 1.5, "exit_threshold": 0.25,
          "stop_loss_z": 3.0}


@pytest.fixture(scope="module", params=["KO", "AMD", "JPM"])
def run(request, sample):
    return backtest(PARAMS, data=sample, asset=request.param, start="2008-01-01",
                    end="2014-12-31")


def returns_of(result):
    equity = result.equity.to_numpy()
    return np.diff(np.concatenate([[1_000_000.0], equity])) / np.concatenate(
        [[1_000_000.0], equity[:-1]])


def test_sharpe_volatility_sortino(run):
    r = returns_of(run)
    assert run.metrics["sharpe_ratio"] == pytest.approx(
        r.mean() / r.std(ddof=1) * math.sqrt(252), rel=1e-9)
    assert run.metrics["annual_volatility"] == pytest.approx(
        r.std(ddof=1) * math.sqrt(252), rel=1e-9)
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * math.sqrt(252)
    assert run.metrics["sortino_ratio"] == pytest.approx(r.mean() * 252 / downside, rel=1e-9)


def test_drawdown_cagr_calmar(run):
    equity = run.equity.to_numpy()
    peaks = np.maximum.accumulate(np.concatenate([[1_000_000.0], equity]))[1:]
    max_drawdown = (equity / peaks - 1.0).min()
    assert run.metrics["max_drawdown"] == pytest.approx(max_drawdown, rel=1e-12)
    years = len(equity) / 252
    cagr = (equity[-1] / 1_000_000.0) ** (1 / years) - 1
    assert run.metrics["cagr"] == pytest.approx(cagr, rel=1e-9)
    assert run.metrics["calmar_ratio"] == pytest.approx(cagr / abs(max_drawdown), rel=1e-9)
    assert run.metrics["total_return"] == pytest.approx(equity[-1] / 1e6 - 1, rel=1e-12)


def test_trade_counts_exposure_win_rate(run):
    shares = run.positions.to_numpy()
    changes = np.count_nonzero(np.diff(np.concatenate([[0.0], shares])))
    assert run.metrics["num_trades"] == changes
    assert run.metrics["exposure"] == pytest.approx(np.mean(shares != 0), rel=1e-12)
    closed = run.trades.dropna(subset=["pnl"])
    assert run.metrics["win_rate"] == pytest.approx(np.mean(closed["pnl"] > 0), rel=1e-12)


def test_costs_are_charged_on_both_legs(sample):
    """Replay every round trip from its two legs (docs/semantics.md sections 3-4):
    the entry leg costs shares * entry_price * fee, the exit leg shares *
    exit_price * fee; the kernel's trip P&L, its equity after each exit and its
    final equity must equal that cash, so dropping either leg's fee fails."""
    capital, fee = 1_000_000.0, 10.0 / 1e4
    free = backtest(PARAMS, data=sample, asset="KO", start="2010-01-01", cost_bps=0.0)
    costly = backtest(PARAMS, data=sample, asset="KO", start="2010-01-01", cost_bps=10.0)
    first = free.trades.iloc[0]
    # N = floor(cash / (price * (1 + fee))): with no fee, floor(1e6 / price)
    assert first["shares"] == math.floor(capital / first["entry_price"])
    assert not costly.metrics["ruined"]
    trades = costly.trades
    closed = trades.dropna(subset=["exit_time"])
    assert len(closed) >= 5 and set(closed["side"]) == {-1, 1}
    cash = capital  # cash before the next entry
    for trip in trades.itertuples():
        shares, side, entry_price = trip.shares, trip.side, trip.entry_price
        assert shares == math.floor(cash / (entry_price * (1.0 + fee)))
        entry_fee = shares * entry_price * fee
        if pd.isna(trip.exit_time):  # open at the end: marked, no exit fee
            last_close = sample.close[sample.index.get_loc(costly.equity.index[-1]),
                                      sample.symbols.index("KO")]
            marked = cash - entry_fee + side * shares * (last_close - entry_price)
            assert costly.equity.iloc[-1] == pytest.approx(marked, rel=0, abs=1e-6)
            break
        exit_fee = shares * trip.exit_price * fee
        after_exit = cash - entry_fee - exit_fee + side * shares * (trip.exit_price -
                                                                     entry_price)
        assert trip.pnl == pytest.approx(after_exit - cash, rel=0, abs=1e-6)
        if not (trades["entry_time"] == trip.exit_time).any():  # flat after the exit bar
            assert costly.equity.loc[trip.exit_time] == pytest.approx(after_exit, rel=0,
                                                                      abs=1e-6)
        cash = after_exit
    else:
        assert costly.equity.iloc[-1] == pytest.approx(cash, rel=0, abs=1e-6)
    assert costly.metrics["final_value"] == costly.equity.iloc[-1]
    # without costs the same replay has no fees at all
    for trip in free.trades.dropna(subset=["exit_time"]).itertuples():
        assert trip.pnl == pytest.approx(
            trip.side * trip.shares * (trip.exit_price - trip.entry_price), rel=0, abs=1e-6)
