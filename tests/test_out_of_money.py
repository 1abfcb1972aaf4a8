"""The out-of-money rule: equity <= 0 closes the account for good (docs/semantics.md)."""
import math

import numpy as np
import pandas as pd

from btcore import MarketData, backtest, run_sweep
from btcore.indicators import rolling_zscore_nb
from reference import METRIC_KEYS, backtest_reference

# lookback 3: the jump to 110 is far above the three closes before it (short),
# the jump to 400 then costs the short 290 a share: more than the account has
CLOSE = np.array([100.0, 101.0, 100.0, 101.0, 110.0, 400.0, 390.0, 380.0, 100.0, 90.0])
PARAMS = {"lookback_period": 3, "entry_threshold": 1.0, "exit_threshold": 0.0,
          "stop_loss_z": 100.0}


def _data(close=CLOSE):
    return MarketData(close, pd.bdate_range("2020-01-01", periods=len(close)), ("X",))


def test_a_short_that_loses_more_than_the_account_is_closed_out():
    data = _data()
    res = backtest(PARAMS, data=data, start=data.index[4], cost_bps=10.0,
                   initial_capital=10_000.0)  # bars 4..9 trade
    fee = 10.0 / 1e4
    # bar 4 (close 110) goes short N = floor(10_000 / (110 * 1.001)) = 90 shares
    shares = math.floor(10_000 / (110 * (1 + fee)))
    assert shares == 90
    cash = 10_000 + shares * 110 - shares * 110 * fee
    assert cash + -shares * 400 <= 0  # bar 5 marks equity below zero: out of money
    assert res.positions.tolist() == [-90.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert res.equity.iloc[0] == cash + -shares * 110.0
    assert res.equity.iloc[1:].tolist() == [0.0] * 5
    assert res.returns.iloc[1] == -1.0 and (res.returns.iloc[2:] == 0.0).all()
    m = res.metrics
    assert m["ruined"] and m["final_value"] == 0.0
    assert m["total_return"] == -1.0 and m["max_drawdown"] == -1.0 and m["cagr"] == -1.0
    assert m["num_trades"] == 2  # the entry and the close-out
    assert m["win_rate"] == 0.0  # the closed-out trip lost
    assert m["exposure"] == 1 / 6
    [trip] = res.trades.itertuples()
    cash_after_close = cash - shares * 400.0 - shares * 400.0 * fee
    assert trip.side == -1 and trip.exit_price == 400.0
    assert math.isclose(trip.pnl, cash_after_close - 10_000.0, rel_tol=1e-12)


def test_ruined_rows_match_the_reference_and_stay_flat(sample):
    """Shorts on volatile real prices with little capital: several rows run out of
    money; every row equals the reference, and ruined rows end at exactly 0."""
    grid = {"lookback_period": [5, 20], "entry_threshold": [0.5, 1.5], "exit_threshold": [0.0],
            "stop_loss_z": [50.0]}
    ruined = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, 120)))
        close[rng.integers(30, 110)] *= 6.0  # one spike that wrecks any open short
        table = run_sweep(grid, data=_data(close), start=_data(close).index[25],
                          progress=False).table
        for row in table.itertuples(index=False):
            z = np.empty_like(close)
            rolling_zscore_nb(close, row.lookback_period, z)
            expected = backtest_reference(close, z, 25, len(close) - 1, row.entry_threshold,
                                          row.exit_threshold, row.stop_loss_z)
            assert row.ruined == expected["ruined"]
            for name in METRIC_KEYS:
                got, want = getattr(row, name), expected[name]
                assert got == want or math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) or \
                    (math.isnan(got) and math.isnan(want)), (seed, name, got, want)
            if row.ruined:
                ruined += 1
                assert row.final_value == 0.0 and row.max_drawdown == -1.0
    assert ruined >= 5, ruined  # the test must exercise the rule


def test_best_skips_ruined_rows(sample):
    grid = {"lookback_period": [5, 10], "entry_threshold": [0.5, 1.0],
            "exit_threshold": [0.0, 0.5], "stop_loss_z": [50.0]}
    result = run_sweep(grid, data=sample, assets=["PEP", "KO"], start="2010-01-01",
                       progress=False)
    table = result.table
    assert table["ruined"].any(), "no ruined row: pick a harsher grid"
    best = result.best()
    assert not best["ruined"]
    assert best["sharpe_ratio"] == table.loc[~table["ruined"], "sharpe_ratio"].max()
    assert result.best(include_ruined=True)["sharpe_ratio"] == table["sharpe_ratio"].max()
