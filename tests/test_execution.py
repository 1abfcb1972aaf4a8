"""Execution settings (fill timing, price stops, sizing, slippage, fees, borrow,
risk-free rate): defaults bit-identical, grid columns, replays, executors, bad input.
The kernel against the independent reference is in tests/properties/."""
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from btcore import MarketData, backtest, run_sweep
from executor_fixtures import executor_params

SEED_GRID = {"lookback_period": [10, 20], "entry_threshold": [1.0, 2.0],
             "exit_threshold": [0.25], "stop_loss_z": [3.0]}


def candles(n_bars=400, seed=3, gap=0.02):
    """A random OHLC series (valid candles, with gaps between bars)."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.015, n_bars)))
    previous = np.concatenate(([close[0]], close[:-1]))
    bar_open = previous * np.exp(rng.normal(0.0, gap, n_bars))
    high = np.maximum(bar_open, close) * np.exp(np.abs(rng.normal(0.0, 0.01, n_bars)))
    low = np.minimum(bar_open, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, n_bars)))
    index = pd.bdate_range("2015-01-01", periods=n_bars)
    return MarketData(close, index, ("X",), open=bar_open, high=high, low=low)


@pytest.fixture(scope="module")
def ohlc():
    return candles()


def quiet_sweep(grid, data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return run_sweep(grid, data=data, progress=False, **kwargs)


# ----------------------------------------------------------- defaults
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), cost_bps=st.sampled_from([0.0, 5.0, 40.0]),
       capital=st.sampled_from([1_000.0, 1e6]), allow_short=st.booleans(),
       start=st.integers(0, 150))
def test_defaults_in_the_execution_kernel_equal_the_close_kernel(seed, cost_bps, capital,
                                                                 allow_short, start):
    """A grid column at its default runs the execution kernel: every metric equals
    the market-on-close kernel's bit for bit, on candles too."""
    data = candles(300, seed)
    plain = quiet_sweep(SEED_GRID, data, cost_bps=cost_bps, initial_capital=capital,
                        allow_short=allow_short, start=data.index[start])
    executed = quiet_sweep({**SEED_GRID, "slippage_bps": [0.0]}, data, cost_bps=cost_bps,
                           initial_capital=capital, allow_short=allow_short,
                           start=data.index[start])
    assert "slippage_bps" in executed.table.columns
    pd.testing.assert_frame_equal(executed.table.drop(columns="slippage_bps"), plain.table,
                                  check_exact=True)


def test_default_keywords_keep_the_close_kernel_and_the_settings(ohlc):
    plain = quiet_sweep(SEED_GRID, ohlc)
    same = quiet_sweep(SEED_GRID, ohlc, fill="close", stop_loss=None, slippage_bps=0.0,
                       size_fraction=1.0, risk_free_rate=0.0)
    pd.testing.assert_frame_equal(plain.table, same.table, check_exact=True)
    assert same.settings == plain.settings  # defaults are not recorded
    changed = quiet_sweep(SEED_GRID, ohlc, fill="next_open", stop_loss=0.05)
    assert changed.settings["fill"] == "next_open" and changed.settings["stop_loss"] == 0.05
    assert not changed.table[["sharpe_ratio"]].equals(plain.table[["sharpe_ratio"]])


# ----------------------------------------------------------- grid columns
def test_settings_as_grid_columns_equal_one_run_per_value(ohlc):
    grid = {**SEED_GRID, "stop_loss": [0.0, 0.03], "slippage_bps": [0.0, 10.0]}
    swept = quiet_sweep(grid, ohlc, fill="next_open").table
    assert {"stop_loss", "slippage_bps"} <= set(swept.columns)
    assert len(swept) == 4 * 4
    for stop_loss in (0.0, 0.03):
        for slippage in (0.0, 10.0):
            one = quiet_sweep(SEED_GRID, ohlc, fill="next_open", stop_loss=stop_loss or None,
                              slippage_bps=slippage).table
            part = swept[(swept.stop_loss == stop_loss) & (swept.slippage_bps == slippage)]
            keys = list(SEED_GRID)
            merged = part.merge(one, on=keys, suffixes=("", "_one"))
            assert len(merged) == 4
            for name in ("sharpe_ratio", "final_value", "num_trades", "max_drawdown"):
                np.testing.assert_array_equal(merged[name], merged[name + "_one"])


def test_stops_slippage_and_fees_change_results_in_the_expected_direction(ohlc):
    base = quiet_sweep(SEED_GRID, ohlc, fill="next_open").table.set_index(list(SEED_GRID))
    costly = quiet_sweep(SEED_GRID, ohlc, fill="next_open", slippage_bps=20.0,
                         fee_per_trade=5.0).table.set_index(list(SEED_GRID))
    # same signals, every fill worse: never more money
    assert (costly.final_value <= base.final_value).all()
    assert (costly.num_trades > 0).any()


# ----------------------------------------------------------- replays
def test_replay_equals_the_sweep_row_and_names_exit_reasons(ohlc):
    grid = {**SEED_GRID, "stop_loss": [0.02], "take_profit": [0.04], "trailing_stop": [0.03]}
    result = quiet_sweep(grid, ohlc, fill="next_open", slippage_bps=5.0, fee_per_trade=1.0)
    for position in range(3):
        row = result.table.iloc[position]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            replay = result.backtest(row, data=ohlc)
        for name, value in replay.metrics.items():
            assert value == row[name] or (np.isnan(value) and np.isnan(row[name])), name
        trades = replay.trades
        assert set(trades.exit_reason.dropna()) <= {"signal", "stop_loss", "take_profit",
                                                   "trailing_stop", "out_of_money", "end"}
        closed = trades[trades.exit_reason != "end"]
        if len(closed):
            assert (closed.pnl > 0).mean() == row["win_rate"]
        assert (closed.fees > 0).all()
        if (trades.exit_reason != "end").all():  # flat at the end: cash = C0 + every P&L
            assert np.isclose(replay.equity.iloc[-1], 1e6 + closed.pnl.sum(), rtol=1e-12)
    stops = pd.concat([result.backtest(i, data=ohlc).trades for i in range(4)])
    assert {"stop_loss", "take_profit", "trailing_stop"} & set(stops.exit_reason)


def test_stop_exits_fill_at_the_level_or_a_worse_open(ohlc):
    replay = backtest({"lookback_period": 10, "entry_threshold": 1.0, "exit_threshold": 0.25,
                       "stop_loss_z": 3.0}, data=ohlc, fill="next_open", stop_loss=0.02)
    trades = replay.trades
    stopped = trades[trades.exit_reason == "stop_loss"]
    assert len(stopped) > 0
    for trade in stopped.itertuples():
        level = trade.entry_price * (1 - 0.02 * trade.side)
        bar = ohlc.index.get_loc(trade.exit_time)
        if trade.side > 0:
            assert trade.exit_price == min(level, ohlc.open[bar, 0])
        else:
            assert trade.exit_price == max(level, ohlc.open[bar, 0])


# ----------------------------------------------------------- executors
@pytest.mark.parametrize("executor", executor_params())
def test_every_executor_and_batch_split_agrees_with_serial(request, executor, ohlc):
    grid = {**SEED_GRID, "stop_loss": [0.0, 0.02], "size_fraction": [0.5, 1.0],
            "borrow_bps": [0.0, 300.0]}
    kwargs = dict(fill="next_open", take_profit=0.05, slippage_bps=3.0, risk_free_rate=0.02)
    serial = quiet_sweep(grid, ohlc, batch_size=64, **kwargs).table
    runner = request.getfixturevalue(f"{executor}_executor") if executor in (
        "joblib", "ray", "dask") else executor
    other = quiet_sweep(grid, ohlc, executor=runner, batch_size=5, **kwargs).table
    pd.testing.assert_frame_equal(other, serial, check_exact=True)


# ----------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, message", [
    (dict(fill="next_bar"), "fill must be one of"),
    (dict(stop_loss=1.5), "stop_loss must be"),
    (dict(stop_loss=-0.1), "stop_loss must be"),
    (dict(trailing_stop=1.0), "trailing_stop must be"),
    (dict(take_profit=-1.0), "take_profit must be"),
    (dict(size_fraction=0.0), "size_fraction must be"),
    (dict(size_fraction=1.5), "max_leverage"),
    (dict(slippage_bps=-1.0), "slippage_bps must be"),
    (dict(fee_per_trade=-1.0), "fee_per_trade must be"),
    (dict(borrow_bps=-5.0), "borrow_bps must be"),
    (dict(volatility_lookback=1, target_volatility=0.1), "volatility_lookback must be"),
    (dict(fractional_shares="yes"), "fractional_shares must be True or False"),
    (dict(stop_loss="5%"), "stop_loss must be a number"),
    (dict(stop_los=0.05), "did you mean 'stop_loss'"),
    (dict(fill=1), "fill must be one of"),
])
def test_bad_settings_are_refused_before_work(monkeypatch, kwargs, message, ohlc):
    from btcore.workflows import base
    monkeypatch.setattr(base, "run_job", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises((ValueError, TypeError), match=message):
        quiet_sweep(SEED_GRID, ohlc, **kwargs)


def test_leverage_allows_larger_sizes(ohlc):
    table = quiet_sweep(SEED_GRID, ohlc, size_fraction=1.5, max_leverage=2.0).table
    assert len(table) == 4


def test_unknown_grid_setting_names_the_closest(ohlc):
    with pytest.raises(ValueError, match="did you mean 'take_profit'"):
        quiet_sweep({**SEED_GRID, "take_proft": [0.05]}, ohlc)
    with pytest.raises(ValueError, match="pass them as keywords"):
        quiet_sweep({**SEED_GRID, "fill": [0]}, ohlc)
    with pytest.raises(ValueError, match="both as a keyword and as a grid column"):
        quiet_sweep({**SEED_GRID, "stop_loss": [0.05]}, ohlc, stop_loss=0.02)
    with pytest.raises(ValueError, match="size_fraction=2 is above max_leverage=1"):
        quiet_sweep({**SEED_GRID, "size_fraction": [1.0, 2.0]}, ohlc)


def test_next_open_needs_open_prices_and_close_only_stops_warn():
    close_only = MarketData(candles().close, candles().index, ("X",))
    with pytest.raises(ValueError, match="needs open prices"):
        run_sweep(SEED_GRID, data=close_only, fill="next_open")
    with pytest.warns(UserWarning, match="stops are checked against closes only"):
        run_sweep(SEED_GRID, data=close_only, stop_loss=0.05, progress=False)


def test_volatility_target_needs_history(ohlc):
    with pytest.raises(ValueError, match="window parameter"):
        quiet_sweep(SEED_GRID, ohlc, target_volatility=0.1, volatility_lookback=len(ohlc.index))


@pytest.mark.parametrize("field, value, message", [
    ("high", 0.5, "the high must be at least the larger"),
    ("low", 1e9, "the low must be at most the smaller"),
    ("open", np.nan, "open of asset 'X' is nan"),
    ("low", -1.0, "low of asset 'X' is -1.0"),
])
def test_bad_candles_are_refused_naming_asset_date_and_values(field, value, message):
    data = candles(50)
    arrays = {name: np.array(getattr(data, name)[:, 0]) for name in ("open", "high", "low")}
    arrays[field][17] = value
    with pytest.raises(ValueError, match=message) as error:
        MarketData(data.close, data.index, ("X",), **arrays)
    assert str(data.index[17].date()) in str(error.value)


def test_monte_carlo_resamples_whole_candles_and_each_path_replays_as_data(ohlc):
    """On OHLC data each path carries whole candles: path k's row equals a sweep of
    those candles as data (stops act on the simulated highs and lows)."""
    from btcore import monte_carlo
    from btcore.workflows.paths import PathGenerator
    params = {name: values[0] for name, values in SEED_GRID.items()}
    settings = dict(fill="next_open", stop_loss=0.02, trailing_stop=0.04, slippage_bps=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = monte_carlo(params, data=ohlc, n_paths=6, seed=11, method="block", **settings)
    generator = PathGenerator.fit(ohlc.close[:, 0], "block", 11, open=ohlc.open[:, 0],
                                  high=ohlc.high[:, 0], low=ohlc.low[:, 0])
    for k in (0, 5):
        bar_open, high, low, close = generator.candles(k)
        assert np.all(low <= np.minimum(bar_open, close)) and np.all(high >= np.maximum(
            bar_open, close))
        path = MarketData(close, ohlc.index, ("X",), open=bar_open, high=high, low=low)
        row = quiet_sweep({n: [v] for n, v in params.items()}, path, **settings).table.iloc[0]
        simulated = result.table[result.table.path == k].iloc[0]
        for name in ("sharpe_ratio", "final_value", "num_trades", "max_drawdown"):
            assert simulated[name] == row[name], (k, name)


# ----------------------------------------------------------- command line
def test_cli_takes_execution_flags_and_grid_columns(capsys, tmp_path, ohlc):
    from btcore.cli import main
    path = tmp_path / "ohlc.csv"
    pd.DataFrame({"Open": ohlc.open[:, 0], "High": ohlc.high[:, 0], "Low": ohlc.low[:, 0],
                  "Close": ohlc.close[:, 0]}, index=ohlc.index.rename("Date")).to_csv(path)
    status = main(["sweep", "--data", str(path), "--grid", "lookback_period=10,20",
                   "stop_loss=0,0.02", "--fill", "next_open", "--slippage-bps", "3",
                   "--no-progress", "--out", str(tmp_path / "table.csv")])
    out, err = capsys.readouterr()
    assert status == 0, err
    table = pd.read_csv(tmp_path / "table.csv")
    expected = quiet_sweep({"lookback_period": [10, 20], "stop_loss": [0.0, 0.02]},
                           MarketData.from_csv(path), fill="next_open",
                           slippage_bps=3.0).table
    np.testing.assert_allclose(table.sort_values(["lookback_period", "stop_loss"])
                               .sharpe_ratio.to_numpy(),
                               expected.sort_values(["lookback_period", "stop_loss"])
                               .sharpe_ratio.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["--fill", "next_bar"], "invalid choice: 'next_bar'"),
    (["--stop-loss", "abc"], "--stop-loss"),
    (["--stop-loss", "2"], "stop_loss must be"),
    (["--fill", "next_open"], "needs open prices"),
])
def test_cli_refuses_bad_execution_flags_in_one_line(capsys, argv, message):
    from btcore.cli import main
    status = main(["sweep", "--grid", "lookback_period=20", "--no-progress", *argv])
    out, err = capsys.readouterr()
    assert status == 2 and message in err, err
    assert "Traceback" not in err


# ----------------------------------------------------------- fragility
def test_fragility_reruns_the_top_rows_with_a_delay_and_more_costs(ohlc):
    result = quiet_sweep(SEED_GRID, ohlc, cost_bps=3.0)
    table = result.fragility(rows=3, data=ohlc)
    assert list(table.columns[:4]) == list(SEED_GRID)
    assert len(table) == 3
    for position in range(3):
        row = result.table.iloc[position]
        one = {name: [row[name]] for name in SEED_GRID}
        for suffix, changed in (("next_close", dict(fill="next_close", cost_bps=3.0)),
                                ("next_open", dict(fill="next_open", cost_bps=3.0)),
                                ("cost_x2", dict(cost_bps=6.0)), ("cost_x4", dict(cost_bps=12.0))):
            direct = quiet_sweep(one, ohlc, **changed).table.iloc[0]
            assert table[f"sharpe_ratio_{suffix}"].iloc[position] == direct["sharpe_ratio"]
            assert table[f"total_return_{suffix}"].iloc[position] == direct["total_return"]
        assert table["sharpe_ratio"].iloc[position] == row["sharpe_ratio"]


def test_fragility_leaves_next_open_out_without_opens_and_checks_its_arguments():
    data = MarketData(candles().close, candles().index, ("X",))
    result = quiet_sweep(SEED_GRID, data)
    table = result.fragility(rows=2, metrics="sharpe_ratio", data=data)
    assert list(table.columns) == [*SEED_GRID, "sharpe_ratio", "sharpe_ratio_next_close",
                                   "sharpe_ratio_cost_x2", "sharpe_ratio_cost_x4"]
    with pytest.raises(ValueError, match="rows must be a positive int"):
        result.fragility(rows=0, data=data)
    with pytest.raises(ValueError, match="unknown metric"):
        result.fragility(metrics=["sharp"], data=data)


# ----------------------------------------------------------- cross-sectional costs
def test_cross_sectional_costs_are_checked_and_recorded(small_data):
    from btcore import run_cross_sectional_sweep
    grid = {"lookback_period": [5], "top_k": [1]}
    plain = run_cross_sectional_sweep(grid, data=small_data, progress=False)
    costly = run_cross_sectional_sweep(grid, data=small_data, progress=False, slippage_bps=10.0,
                                       fee_per_trade=5.0, borrow_bps=200.0)
    assert costly.settings["slippage_bps"] == 10.0 and "slippage_bps" not in plain.settings
    assert costly.table.final_value.iloc[0] < plain.table.final_value.iloc[0]
    replay = costly.backtest(0)
    assert replay.metrics["final_value"] == costly.table.final_value.iloc[0]
    with pytest.raises(ValueError, match="slippage_bps must be"):
        run_cross_sectional_sweep(grid, data=small_data, slippage_bps=-1.0)
    with pytest.raises(TypeError, match="fill"):
        run_cross_sectional_sweep(grid, data=small_data, fill="next_open")


def test_volatility_lookback_needs_history_only_when_targeting():
    """A lookback column without a volatility target (or with targets of 0) reads no
    history; with a target it needs lookback + 1 closes before the window's end."""
    data = candles(12)
    grid = {"lookback_period": [2], "entry_threshold": [0.5], "volatility_lookback": [11]}
    assert len(quiet_sweep(grid, data).table) == 1
    assert len(quiet_sweep({**grid, "target_volatility": [0.0]}, data).table) == 1
    with pytest.raises(ValueError, match="window parameter of 12 bars"):
        quiet_sweep({**grid, "target_volatility": [0.0, 0.2]}, data)


def test_walk_forward_with_settings_runs_each_fold_as_run_sweep_would(ohlc):
    from btcore import walk_forward
    settings = dict(fill="next_open", slippage_bps=3.0, take_profit=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = walk_forward({**SEED_GRID, "stop_loss": [0.0, 0.03]}, data=ohlc, n_splits=3,
                              progress=False, **settings)
    for fold in result.folds.itertuples():
        one = {name: [getattr(fold, name)] for name in (*SEED_GRID, "stop_loss")}
        direct = quiet_sweep(one, ohlc, start=fold.oos_start, end=fold.oos_end,
                             **settings).table.iloc[0]
        assert fold.oos_sharpe_ratio == direct["sharpe_ratio"]
        assert fold.oos_final_value == direct["final_value"]
