"""run_sweep / backtest / SweepResult behaviour on the public API."""
import numpy as np
import pandas as pd
import pytest

from btcore import MarketData, backtest, run_sweep
from btcore.metrics import METRIC_NAMES
from conftest import assert_tables_identical


def test_table_has_one_row_per_set_and_asset(small_data, grid):
    result = run_sweep(grid, data=small_data, progress=False)
    n_sets = np.prod([len(v) for v in grid.values()])
    assert len(result.table) == n_sets * small_data.n_assets
    assert list(result.table.columns) == [*grid, "asset", *METRIC_NAMES, "benchmark_return",
                                          "excess_return", "benchmark_sharpe", "ruined"]
    pairs = result.table[[*grid, "asset"]].drop_duplicates()
    assert len(pairs) == len(result.table)
    sharpe = result.table["sharpe_ratio"].to_numpy()
    assert (np.diff(sharpe) <= 0).all(), "sorted by Sharpe, best first"
    assert result.table["lookback_period"].dtype == np.int64
    assert result.table["num_trades"].dtype == np.int64


def test_single_asset_table_has_no_asset_column(small_data, grid):
    result = run_sweep(grid, data=small_data, assets="SYN001", progress=False)
    assert "asset" in result.table.columns  # multi-asset data keeps the column
    one = MarketData(small_data.close[:, 0], small_data.index, ("ONLY",))
    assert "asset" not in run_sweep(grid, data=one, progress=False).table.columns


def test_assets_subset_equals_rows_of_full_universe(small_data, grid):
    full = run_sweep(grid, data=small_data, progress=False).table
    sub = run_sweep(grid, data=small_data, assets=["SYN002"], progress=False).table
    expected = full[full["asset"] == "SYN002"].reset_index(drop=True)
    assert_tables_identical(sub, expected)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 1000])
def test_results_do_not_depend_on_batch_size(small_data, grid, batch_size):
    auto = run_sweep(grid, data=small_data, progress=False)
    fixed = run_sweep(grid, data=small_data, batch_size=batch_size, progress=False)
    assert_tables_identical(auto.table, fixed.table)
    assert fixed.stats["batch_size"] == batch_size


def test_grid_order_only_permutes_rows(small_data, grid):
    from btcore import Grid
    frame = Grid(grid).to_frame()
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a = run_sweep(frame, data=small_data, progress=False).table
    b = run_sweep(shuffled, data=small_data, progress=False).table
    key = [*grid, "asset"]
    assert_tables_identical(a.sort_values(key).reset_index(drop=True),
                            b.sort_values(key).reset_index(drop=True))


def test_debug_mode_equals_compiled(small_data):
    grid = {"lookback_period": [5, 12], "entry_threshold": [1.5], "exit_threshold": [0.3],
            "stop_loss_z": [2.5]}
    data = MarketData(small_data.close[:120, :2], small_data.index[:120], small_data.symbols[:2])
    compiled = run_sweep(grid, data=data, progress=False, reenter_after_stop=False)
    debugged = run_sweep(grid, data=data, progress=False, debug=True, reenter_after_stop=False)
    assert_tables_identical(compiled.table, debugged.table)


def test_debug_mode_runs_strategy_as_python(small_data, monkeypatch):
    """In debug mode the signal rule is the plain Python function (prints work)."""
    from btcore.strategies import mean_reversion
    calls = []
    original = mean_reversion.signal_nb.py_func

    def spy(*args):
        calls.append(args[1])
        return original(*args)

    monkeypatch.setattr(mean_reversion.signal_nb, "py_func", spy)
    data = MarketData(small_data.close[:60, 0], small_data.index[:60], ("A",))
    run_sweep({"lookback_period": [5], "entry_threshold": [1.0], "exit_threshold": [0.5],
               "stop_loss_z": [3.0]}, data=data, debug=True, progress=False)
    # one call per bar with that bar's close (after any plain-Python rule check)
    assert calls[-60:] == list(data.close[:, 0])


def assert_same_bits(got: dict, row, names=(*METRIC_NAMES, "ruined")):
    """Every metric equal bit for bit (NaN counts as equal to NaN)."""
    for name in names:
        a, b = np.float64(got[name]), np.float64(row[name])
        assert (np.isnan(a) and np.isnan(b)) or a.view(np.int64) == b.view(np.int64), \
            (name, got[name], row[name])


def test_backtest_metrics_equal_sweep_row(sample):
    """A row of the table, passed as it is, replays to the same metric bits, by
    ``backtest(row)`` and by ``SweepResult.backtest(i)``, on every row."""
    grid = {"lookback_period": [20, 40], "entry_threshold": [2.0], "exit_threshold": [0.25],
            "stop_loss_z": [3.0, 3.5]}
    sweep = run_sweep(grid, data=sample, assets=["UNH", "BBY", "KO"], start="2010-01-01",
                      cost_bps=7.5, progress=False, allow_short=False)
    assert len(sweep.table) == 12
    for i, row in sweep.table.iterrows():
        replay = sweep.backtest(i)
        assert replay.asset == row["asset"]
        assert replay.params == {name: row[name] for name in grid}
        assert_same_bits(replay.metrics, row)
        # the bare function, given the row and the sweep's settings
        single = backtest(row, data=sample, start="2010-01-01", cost_bps=7.5, allow_short=False)
        assert_same_bits(single.metrics, row)
        assert single.equity.index[0] >= pd.Timestamp("2010-01-01")
        assert single.equity.iloc[-1] == single.metrics["final_value"]
        assert (single.positions >= 0).all()
    as_dict = sweep.table.iloc[3].to_dict()
    assert_same_bits(backtest(as_dict, data=sample, start="2010-01-01", cost_bps=7.5,
                              allow_short=False).metrics, as_dict)
    # the bits change with the settings: the replay really uses the sweep's
    other = sweep.backtest(0, cost_bps=5.0)
    assert other.metrics["final_value"] != sweep.table["final_value"].iloc[0]


def test_backtest_trades_reconcile_with_equity(sample):
    params = {"lookback_period": 20, "entry_threshold": 2.0, "exit_threshold": 0.5,
              "stop_loss_z": 3.0}
    result = backtest(params, data=sample, asset="KO", start="2012-01-01", end="2016-12-31")
    trades = result.trades
    closed = trades.dropna(subset=["exit_time"])
    assert len(closed) > 5
    assert set(trades["side"]) <= {-1, 1}
    assert (trades["shares"] > 0).all()
    assert result.metrics["win_rate"] == pytest.approx((closed["pnl"] > 0).mean())
    # P&L of all closed trades adds up to the equity change up to the last exit
    last_exit = closed["exit_time"].max()
    change = result.equity.loc[last_exit] - 1_000_000.0
    assert closed["pnl"].sum() == pytest.approx(change, rel=1e-9)


def test_backtest_debug_equals_compiled(small_data):
    params = {"lookback_period": 10, "entry_threshold": 1.0, "exit_threshold": 0.2,
              "stop_loss_z": 2.0}
    a = backtest(params, data=small_data, asset="SYN000")
    b = backtest(params, data=small_data, asset="SYN000", debug=True)
    assert a.metrics["num_trades"] > 0
    assert_same_bits(a.metrics, b.metrics)
    pd.testing.assert_series_equal(a.equity, b.equity, check_exact=True)


def test_strategy_that_never_trades_has_zero_return(small_data):
    grid = {"lookback_period": [10], "entry_threshold": [1e9], "exit_threshold": [0.5],
            "stop_loss_z": [3.0]}
    table = run_sweep(grid, data=small_data, progress=False).table
    assert (table["num_trades"] == 0).all()
    assert (table["total_return"] == 0.0).all()
    assert (table["final_value"] == 1_000_000.0).all()
    assert (table["sharpe_ratio"] == 0.0).all()
    assert (table["max_drawdown"] == 0.0).all()
    assert (table["exposure"] == 0.0).all()
    assert table["win_rate"].isna().all()


def test_allow_short_false_never_holds_short(sample):
    params = {"lookback_period": 20, "entry_threshold": 1.5, "exit_threshold": 0.5,
              "stop_loss_z": 3.0}
    longs = backtest(params, data=sample, asset="XOM", allow_short=False, start="2015-01-01")
    both = backtest(params, data=sample, asset="XOM", start="2015-01-01")
    assert (longs.positions >= 0).all()
    assert (both.positions < 0).any()


def _sides_and_stops(result, z, stop):
    """Position sign after each traded bar, the sign before it, and the stop-loss
    exits: long -> flat with z < -stop, short -> flat with z > stop."""
    side = np.sign(result.positions.to_numpy()).astype(np.int64)
    before = np.concatenate([[0], side[:-1]])
    stops = np.flatnonzero(((before == 1) & (side == 0) & (z < -stop))
                           | ((before == -1) & (side == 0) & (z > stop)))
    return side, before, stops


def _rearm_bar(z, after, entry):
    """First bar after ``after`` with |z| <= entry (len(z) if none)."""
    later = np.flatnonzero(np.abs(z[after + 1:]) <= entry)
    return after + 1 + int(later[0]) if len(later) else len(z)


def test_reenter_after_stop_false_stays_flat_after_stop(sample):
    """docs/semantics.md: after a stop-loss exit the strategy stays flat, and does
    not enter, until a bar with |z| <= entry (which re-arms it, still flat); the
    default re-enters at once. Checked bar by bar against the kernel's z-score."""
    from btcore.indicators import rolling_zscore_nb
    params = {"lookback_period": 20, "entry_threshold": 1.0, "exit_threshold": 0.1,
              "stop_loss_z": 1.5}
    entry, stop = params["entry_threshold"], params["stop_loss_z"]
    armed = backtest(params, data=sample, asset="AAPL", start="2010-01-01")
    cautious = backtest(params, data=sample, asset="AAPL", start="2010-01-01",
                        reenter_after_stop=False)
    close = np.ascontiguousarray(sample.close[:, sample.symbols.index("AAPL")])
    z_all = np.zeros_like(close)
    rolling_zscore_nb(close, params["lookback_period"], z_all)
    z = z_all[sample.index.get_indexer(cautious.positions.index)]
    assert (sample.index.get_indexer(cautious.positions.index) >= 0).all()

    side, before, stops = _sides_and_stops(cautious, z, stop)
    assert len(stops) >= 3
    blocked = 0  # bars where an armed, flat strategy would have entered
    for s in stops:
        rearm = _rearm_bar(z, s, entry)
        assert (side[s + 1:rearm + 1] == 0).all(), f"entered before |z| <= entry after {s}"
        blocked += int(np.count_nonzero(np.abs(z[s + 1:rearm]) > entry))
    assert blocked > 0, "no stop-loss was followed by a bar the rule had to block"
    # every entry is an ordinary one: flat, armed, |z| beyond entry on that bar
    entries = np.flatnonzero((before == 0) & (side != 0))
    assert len(entries) > len(stops)  # it does re-arm and trade again
    for t in entries:
        assert (side[t] == 1 and z[t] < -entry) or (side[t] == -1 and z[t] > entry), t
        assert not any(s < t <= _rearm_bar(z, s, entry) for s in stops if s < t)

    # the default re-opens right after a stop while |z| is still beyond entry
    side, before, stops = _sides_and_stops(armed, z, stop)
    reentries = [s for s in stops if s + 1 < len(side) and side[s + 1] != 0]
    assert reentries
    for s in reentries:
        assert abs(z[s + 1]) > entry


def test_sweep_result_api(small_data, grid):
    result = run_sweep(grid, data=small_data, progress=False)
    best = result.best()
    assert best["sharpe_ratio"] == result.table["sharpe_ratio"].max()
    assert result.best("annual_volatility")["annual_volatility"] == \
        result.table["annual_volatility"].min()
    with pytest.raises(ValueError, match="unknown metric"):
        result.best("sharp")
    stats = result.stats
    assert stats["backtests"] == len(result.table)
    assert stats["executor"] == "serial" and stats["workers"] == 1
    assert stats["param_bars_per_s"] > 0 and stats["batches"] >= 1
    text = repr(result)
    assert "backtests" in text and "sharpe_ratio" in text
    assert result.settings["assets"] == list(small_data.symbols)


def test_threads_executor_matches_serial(sample, seed_grid):
    serial = run_sweep(seed_grid, data=sample, start="2015-01-01", progress=False)
    threads = run_sweep(seed_grid, data=sample, start="2015-01-01", progress=False,
                        executor="threads")
    assert_tables_identical(serial.table, threads.table)
    assert threads.stats["executor"] == "threads"


def test_indicator_warm_up_uses_history_before_start(sample):
    """Bars before `start` feed the z-score; data that starts at `start` must warm up."""
    params = {"lookback_period": 60, "entry_threshold": 0.5, "exit_threshold": 0.1,
              "stop_loss_z": 4.0}
    warm = backtest(params, data=sample, asset="WMT", start="2005-01-03")
    first = sample.index.get_loc(pd.Timestamp("2005-01-03"))
    cold_data = MarketData(sample.close[first:], sample.index[first:], sample.symbols)
    cold = backtest(params, data=cold_data, asset="WMT")
    assert (cold.positions.iloc[:60] == 0).all()  # z = 0 until 60 closes exist
    assert (warm.positions.iloc[:60] != 0).any()
    # the z-score at bar t reads the 60 closes before it and nothing earlier, so
    # exactly 60 bars of history before start give the same run as 15 years
    enough = MarketData(sample.close[first - 60:], sample.index[first - 60:], sample.symbols)
    short = backtest(params, data=enough, asset="WMT", start="2005-01-03")
    pd.testing.assert_series_equal(short.positions, warm.positions, check_exact=True)
    pd.testing.assert_series_equal(short.equity, warm.equity, check_exact=True)
    assert_same_bits(short.metrics, warm.metrics)


def test_result_round_trips_through_parquet(small_data, grid, tmp_path):
    from btcore import SweepResult
    result = run_sweep(grid, data=small_data, progress=False)
    result.to_parquet(tmp_path / "sweep.parquet")
    loaded = SweepResult.read_parquet(tmp_path / "sweep.parquet")
    assert_tables_identical(result.table, loaded.table)
    assert loaded.strategy == "mean_reversion"
    assert loaded.stats["backtests"] == result.stats["backtests"]
    assert loaded.settings["assets"] == result.settings["assets"]
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not written by SweepResult"):
        SweepResult.read_parquet(tmp_path / "other.parquet")


def test_ruined_runs_are_flagged_and_skipped_by_best(sample):
    """Unhedged shorts can drive equity below zero (DESIGN accounting); such rows are
    flagged and best() ignores them."""
    grid = {"lookback_period": [100], "entry_threshold": [1.5, 2.5], "exit_threshold": [0.25],
            "stop_loss_z": [3.5]}
    result = run_sweep(grid, assets=["BBY", "KO"], progress=False)
    one = backtest({"lookback_period": 100, "entry_threshold": 1.5, "exit_threshold": 0.25,
                    "stop_loss_z": 3.5}, asset="BBY")
    assert one.metrics["ruined"] and (one.equity <= 0).any()
    ruined = result.table[result.table["ruined"]]
    assert len(ruined) >= 1 and (ruined["max_drawdown"] <= -1).all()
    assert not result.best()["ruined"]
    healthy = result.table[~result.table["ruined"]]
    assert result.best()["sharpe_ratio"] == healthy["sharpe_ratio"].max()


def test_progress_bar_shows_backtests_per_second(small_data, grid, capsys):
    run_sweep(grid, data=small_data, progress=True, batch_size=4)
    err = capsys.readouterr().err
    assert "mean_reversion [serial]" in err
    assert "bt/s" in err and f"{len(grid['lookback_period']) * 8 * 3}/" in err
    run_sweep(grid, data=small_data, progress=False)
    assert "bt/s" not in capsys.readouterr().err
