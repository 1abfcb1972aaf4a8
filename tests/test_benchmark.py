"""A benchmark beside every result, and counts and units that say what they are.

Buy-and-hold of the same asset over the same traded bars (``docs/semantics.md``,
"Benchmark"), computed here by hand from the closes; ``alpha``/``beta`` against a
``benchmark=`` series checked against ``numpy.linalg.lstsq``; ``num_round_trips``
against the trade list; the trade list's ``return`` a fraction.
"""
import math

import numpy as np
import pandas as pd
import pytest

from btcore import MarketData, backtest, run_portfolio_sweep, run_sweep, walk_forward
from btcore.benchmark import BENCHMARK_COLUMNS, alpha_beta, equal_weight_buy_and_hold
from reference import sharpe_ratio_ref

PARAMS = {"lookback_period": 10, "entry_threshold": 1.0, "exit_threshold": 0.0,
          "stop_loss_z": 3.0}
GRID = {"lookback_period": [10, 20], "entry_threshold": [1.0, 2.0]}
DATA = MarketData.synthetic(n_assets=2, start="2019-01-01", end="2021-12-31", seed=11)


def hold_by_hand(close, first, last, ppy):
    """(return, Sharpe) of buying at close[first] and holding to close[last]."""
    prices = [float(x) for x in close[first:last + 1]]
    returns = [0.0] + [prices[t] / prices[t - 1] - 1.0 for t in range(1, len(prices))]
    return prices[-1] / prices[0] - 1.0, sharpe_ratio_ref(returns, ppy)


def test_sweep_rows_carry_buy_and_hold_of_their_asset_over_the_window():
    result = run_sweep(GRID, data=DATA, start="2020-01-01", end="2021-06-30", progress=False)
    table = result.table
    first, last = DATA.window("2020-01-01", "2021-06-30")
    for asset in DATA.symbols:
        rows = table[table["asset"] == asset]
        column = list(DATA.symbols).index(asset)
        expected_return, expected_sharpe = hold_by_hand(DATA.close[:, column], first, last,
                                                        result.settings["periods_per_year"])
        assert rows["benchmark_return"].to_numpy() == pytest.approx(expected_return, rel=1e-12)
        assert rows["benchmark_sharpe"].to_numpy() == pytest.approx(expected_sharpe, rel=1e-9)
        np.testing.assert_array_equal(rows["excess_return"].to_numpy(),
                                      rows["total_return"].to_numpy() - rows["benchmark_return"]
                                      .to_numpy())
    # the columns follow the metrics; ruined stays last
    assert list(table.columns[-4:]) == [*BENCHMARK_COLUMNS, "ruined"]


def test_backtest_metrics_and_equity_match_the_sweep_row():
    sweep = run_sweep({k: [v] for k, v in PARAMS.items()}, data=DATA, assets=["SYN000"],
                      progress=False)
    row = sweep.table.iloc[0]
    one = backtest(PARAMS, data=DATA, asset="SYN000")
    for name in BENCHMARK_COLUMNS:
        assert one.metrics[name] == row[name]
    close = DATA.close[:, 0]
    np.testing.assert_allclose(one.benchmark.to_numpy(), 1e6 * close / close[0], rtol=1e-15)
    assert one.benchmark.index.equals(one.equity.index)


def test_a_benchmark_series_gives_alpha_and_beta_as_ols():
    index = DATA.index
    rng = np.random.default_rng(4)
    level = pd.Series(3000 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index)))), index=index,
                      name="INDEX")
    one = backtest(PARAMS, data=DATA, asset="SYN000", benchmark=level)
    r = one.returns.to_numpy()[1:]
    b = level.to_numpy()[1:] / level.to_numpy()[:-1] - 1.0
    design = np.column_stack([np.ones_like(b), b])
    (intercept, slope), *_ = np.linalg.lstsq(design, r, rcond=None)
    ppy = 252.0
    assert one.metrics["beta"] == pytest.approx(slope, rel=1e-9, abs=1e-12)
    assert one.metrics["alpha"] == pytest.approx(intercept * ppy, rel=1e-9, abs=1e-12)
    expected_return, _ = hold_by_hand(level.to_numpy(), 0, len(index) - 1, ppy)
    assert one.metrics["benchmark_return"] == pytest.approx(expected_return, rel=1e-12)
    # the sweep uses the same series for its benchmark columns
    sweep = run_sweep({k: [v] for k, v in PARAMS.items()}, data=DATA, assets=["SYN000"],
                      benchmark=level, progress=False)
    assert sweep.table["benchmark_return"].iloc[0] == one.metrics["benchmark_return"]
    assert "INDEX" in sweep.settings["benchmark"]


def test_a_benchmark_on_another_calendar_takes_its_last_value_and_bad_ones_are_refused():
    weekly = pd.Series(np.linspace(100.0, 200.0, 200),
                       index=pd.date_range("2018-12-28", periods=200, freq="W-FRI"))
    one = backtest(PARAMS, data=DATA, asset="SYN000", benchmark=weekly)
    first_value = weekly[weekly.index <= DATA.index[0]].iloc[-1]
    last_value = weekly[weekly.index <= DATA.index[-1]].iloc[-1]
    assert one.metrics["benchmark_return"] == pytest.approx(last_value / first_value - 1.0)
    with pytest.raises(ValueError, match="after the first traded bar"):
        backtest(PARAMS, data=DATA, asset="SYN000", benchmark=weekly[weekly.index > "2020"])
    with pytest.raises(TypeError, match="benchmark must be a pandas Series"):
        backtest(PARAMS, data=DATA, asset="SYN000", benchmark=[1.0, 2.0])
    with pytest.raises(ValueError, match="not a return"):
        backtest(PARAMS, data=DATA, asset="SYN000", benchmark=weekly - 150.0)


def test_alpha_beta_of_exact_lines_and_a_flat_benchmark():
    b = np.array([0.01, -0.02, 0.03, 0.0])
    alpha, beta = alpha_beta(0.001 + 1.5 * b, b, 252.0)
    assert beta == pytest.approx(1.5) and alpha == pytest.approx(0.252)
    assert all(math.isnan(v) for v in alpha_beta(b, np.zeros(4), 252.0))


def test_walk_forward_compares_the_stitched_equity_with_buy_and_hold():
    result = walk_forward(GRID, data=DATA, n_splits=3, progress=False)
    for asset in DATA.symbols:
        hold = result.oos_benchmark[asset]
        column = list(DATA.symbols).index(asset)
        first = DATA.index.get_loc(hold.index[0])
        last = DATA.index.get_loc(hold.index[-1])
        expected_return, expected_sharpe = hold_by_hand(DATA.close[:, column], first, last, 252)
        row = result.oos_metrics.loc[asset]
        assert row["benchmark_return"] == pytest.approx(expected_return, rel=1e-12)
        assert row["benchmark_sharpe"] == pytest.approx(expected_sharpe, rel=1e-9)
        assert row["excess_return"] == row["total_return"] - row["benchmark_return"]
        assert hold.index.equals(result.oos_equity[asset].dropna().index)


def test_portfolio_benchmark_is_equal_weight_buy_and_hold():
    result = run_portfolio_sweep(GRID, data=DATA, progress=False)
    close = DATA.close
    by_hand = sum(0.5 * close[-1, a] / close[0, a] for a in range(2)) - 1.0
    assert result.table["benchmark_return"].to_numpy() == pytest.approx(by_hand, rel=1e-12)
    one = result.backtest(0)
    assert one.metrics["benchmark_return"] == result.table["benchmark_return"].iloc[0]
    np.testing.assert_allclose(one.benchmark.to_numpy(),
                               equal_weight_buy_and_hold(close, [0, 0], len(close) - 1, 1e6))


def test_equal_weight_keeps_an_unlisted_assets_share_in_cash():
    close = np.array([[10.0, np.nan], [20.0, np.nan], [20.0, 5.0], [40.0, 10.0]])
    equity = equal_weight_buy_and_hold(close, [0, 2], 3, 100.0)
    np.testing.assert_allclose(equity, [100.0, 150.0, 150.0, 300.0])


# ------------------------------------------------------------ counts and units
def test_round_trips_are_the_closed_trades_and_win_rate_is_over_them():
    one = backtest(PARAMS, data=DATA, asset="SYN000")
    closed = one.trades.dropna(subset=["exit_time"])
    assert one.metrics["num_round_trips"] == len(closed) > 0
    assert one.metrics["win_rate"] == (closed["pnl"] > 0).sum() / len(closed)
    # num_trades counts bars with a fill: each entry and each exit bar, a reversal once
    fill_bars = set(one.trades["entry_time"]) | set(closed["exit_time"])
    assert one.metrics["num_trades"] == len(fill_bars)
    assert isinstance(one.metrics["num_round_trips"], int)


def test_trade_return_is_a_fraction_of_the_cash_before_the_entry():
    one = backtest(PARAMS, data=DATA, asset="SYN000")
    trades = one.trades
    assert "return_pct" not in trades.columns
    first = trades.iloc[0]
    entry = one.equity.index.get_loc(first["entry_time"])
    cash_before = one.equity.iloc[entry - 1] if entry else 1e6
    assert first["return"] == pytest.approx(first["pnl"] / cash_before, rel=1e-12)
    assert trades["return"].abs().max() < 1.0  # fractions, not percent


def test_walk_forward_against_a_series_adds_alpha_and_beta():
    rng = np.random.default_rng(8)
    level = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, DATA.n_bars))),
                      index=DATA.index)
    result = walk_forward(GRID, data=DATA, n_splits=3, progress=False, benchmark=level,
                          assets="SYN000")
    equity = result.oos_equity["SYN000"].to_numpy()
    returns = equity / np.concatenate(([1e6], equity[:-1])) - 1.0
    prices = level.reindex(result.oos_equity.index).to_numpy()
    b = prices[1:] / prices[:-1] - 1.0
    design = np.column_stack([np.ones_like(b), b])
    (intercept, slope), *_ = np.linalg.lstsq(design, returns[1:], rcond=None)
    row = result.oos_metrics.loc["SYN000"]
    assert row["beta"] == pytest.approx(slope, rel=1e-9, abs=1e-12)
    assert row["alpha"] == pytest.approx(intercept * 252, rel=1e-9, abs=1e-12)
    assert row["benchmark_return"] == pytest.approx(prices[-1] / prices[0] - 1, rel=1e-12)


# ------------------------------------------------------------ docs that match behaviour
def test_readme_metrics_line_is_true():
    res = run_sweep(GRID, data=DATA, progress=False)
    one = res.backtest(0, data=DATA)
    assert one.metrics == res.table.iloc[0][list(one.metrics)].to_dict()


def test_a_parameter_left_out_of_the_grid_runs_at_its_default_and_is_shown():
    import btcore.strategies as strategies
    default = next(p.default for p in strategies.get("mean_reversion").params
                   if p.name == "stop_loss_z")
    table = run_sweep({"lookback_period": [10, 20]}, data=DATA, progress=False).table
    assert (table["stop_loss_z"] == default).all()


def test_newest_first_data_is_turned_around_and_other_orders_refused():
    close = pd.Series([3.0, 2.0, 1.0], index=pd.to_datetime(["2020-01-03", "2020-01-02",
                                                             "2020-01-01"]))
    data = MarketData.from_pandas(close)
    assert list(data.close[:, 0]) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="timestamps are not sorted"):
        MarketData.from_pandas(close.iloc[[0, 2, 1]])


def test_a_cross_sectional_book_is_compared_with_equal_weight_buy_and_hold():
    from btcore import run_cross_sectional_sweep
    result = run_cross_sectional_sweep({"lookback_period": [20], "top_k": [1]}, data=DATA,
                                       start="2020-01-01", progress=False)
    first, last = DATA.window("2020-01-01", None)
    close = DATA.close
    by_hand = sum(0.5 * close[last, a] / close[first, a] for a in range(2)) - 1.0
    row = result.table.iloc[0]
    assert row["benchmark_return"] == pytest.approx(by_hand, rel=1e-12)
    assert row["excess_return"] == row["total_return"] - row["benchmark_return"]
