"""The cross-sectional strategy: kernel vs the pure-Python reference, executors,
hand-checked cases and input validation (``docs/cross_sectional.md``)."""
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

import btcore.workflows.cross_sectional as cs
from btcore import MarketData
from btcore.workflows.cross_sectional import (cross_sectional_backtest, prepare_cross_sectional,
                                    run_cross_sectional_sweep, run_cross_sectional_task)
from btcore.engine import Task, plan_tasks
from btcore.kernels.cross_sectional import CS_OUT_ROWS, PARAM_NAMES, TURNOVER_ROW
from conftest import assert_tables_identical
from btcore.kernels.single import RUINED_ROW
from btcore.metrics import METRIC_NAMES
from cross_sectional_reference import cross_sectional_reference

REL = 1e-9


def _market(close):
    close = np.asarray(close, dtype=np.float64)
    index = pd.bdate_range("2020-01-01", periods=close.shape[0])
    return MarketData(close, index, tuple(f"A{i}" for i in range(close.shape[1])))


@st.composite
def universes(draw):
    n_assets = draw(st.integers(2, 6))
    n_bars = draw(st.integers(6, 50))
    steps = draw(st.lists(st.lists(st.floats(-0.4, 0.4), min_size=n_assets, max_size=n_assets),
                          min_size=n_bars, max_size=n_bars))
    ties = draw(st.booleans())  # rounded steps: equal trailing returns happen
    steps = np.array(steps)
    if ties:
        steps = np.round(steps, 1)
    close = 50.0 * np.exp(np.cumsum(steps, axis=0))
    listings = [draw(st.integers(0, n_bars - 3)) for _ in range(n_assets)]
    listings[draw(st.integers(0, n_assets - 1))] = 0  # somebody lists at the start
    for a, bar in enumerate(listings):
        close[:bar, a] = np.nan
    start = draw(st.integers(0, n_bars - 3))
    return close, start


@st.composite
def cases(draw):
    close, start = draw(universes())
    n_assets = close.shape[1]
    long_only = draw(st.booleans())
    direction = draw(st.sampled_from(["reversal", "momentum"]))
    limit = n_assets if long_only else n_assets // 2
    sets = draw(st.lists(st.tuples(st.integers(1, 8), st.integers(1, limit), st.integers(1, 5),
                                   st.sampled_from([0.5, 1.0, 2.0, 4.0, 9.0])),
                         min_size=1, max_size=4, unique=True))
    cost_bps = draw(st.sampled_from([0.0, 5.0, 50.0]))
    costs = {}
    if draw(st.booleans()):  # the costs beyond cost_bps (docs/semantics.md)
        costs = {"slippage_bps": draw(st.sampled_from([0.0, 3.0, 40.0])),
                 "fee_per_trade": draw(st.sampled_from([0.0, 1.0, 25.0])),
                 "borrow_bps": draw(st.sampled_from([0.0, 100.0, 2000.0])),
                 "risk_free_rate": draw(st.sampled_from([0.0, 0.03]))}
    return close, start, long_only, direction, sets, cost_bps, costs


def _kernel(cjob):
    """Every set of ``cjob`` in one call, in grid order."""
    out = run_cross_sectional_task(cjob.payload(), Task(0, 0, 0, 0, cjob.n_sets, 0.0))
    return cjob.to_grid_order(out)


def _assert_close(name, got, want):
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), (name, got, want)
    elif isinstance(want, float) and math.isinf(want):
        assert got == want, (name, got, want)
    else:
        assert got == pytest.approx(want, rel=REL, abs=1e-12), (name, got, want)


@given(cases())
def test_kernel_matches_reference(case):
    close, start, long_only, direction, sets, cost_bps, costs = case
    market = _market(close)
    grid = pd.DataFrame(sets, columns=list(PARAM_NAMES))
    cjob = prepare_cross_sectional(grid, market, direction=direction, long_only=long_only,
                                   start=market.index[start], end=None,
                                   initial_capital=100_000.0, cost_bps=cost_bps,
                                   periods_per_year=252, assets=None, costs=costs)
    out = _kernel(cjob)
    assert out.shape == (CS_OUT_ROWS, len(sets))
    for k, (lookback, top_k, every, gross) in enumerate(sets):
        ref = cross_sectional_reference(
            close, list(cjob.first_valid), list(cjob.first_bars), cjob.last_bar,
            lookback_period=lookback, top_k=top_k, rebalance_every=every,
            gross_leverage=gross, direction=direction, long_only=long_only,
            initial_capital=100_000.0, cost_bps=cost_bps, **costs)
        for m, name in enumerate(METRIC_NAMES):
            if name == "num_trades":
                assert out[m, k] == ref[name]
            else:
                _assert_close(name, float(out[m, k]), ref[name])
        _assert_close("turnover", float(out[TURNOVER_ROW, k]), ref["turnover"])
        assert bool(out[RUINED_ROW, k]) == ref["ruined"]


def test_reference_sees_ruin_and_kernel_agrees():
    """A short book on assets that explode runs out of money."""
    steps = np.zeros((30, 4))
    steps[1:10] = [-0.05, -0.04, 0.0, 0.01]  # A0 falls most: the best is A3
    steps[10:] = [0.0, 0.0, 0.0, 0.6]  # then A3 (shorted by reversal) explodes
    close = 100.0 * np.exp(np.cumsum(steps, axis=0))
    market = _market(close)
    cjob = prepare_cross_sectional({"lookback_period": [5], "top_k": [1],
                                    "rebalance_every": [100], "gross_leverage": [4.0]}, market,
                                   direction="reversal", long_only=False, start=market.index[6],
                                   end=None, initial_capital=1e5, cost_bps=5.0,
                                   periods_per_year=252, assets=None)
    out = _kernel(cjob)
    ref = cross_sectional_reference(close, list(cjob.first_valid), list(cjob.first_bars),
                                    cjob.last_bar, lookback_period=5, top_k=1,
                                    rebalance_every=100, gross_leverage=4.0)
    assert ref["ruined"] and out[RUINED_ROW, 0] == 1.0
    assert out[METRIC_NAMES.index("final_value"), 0] == 0.0
    assert out[METRIC_NAMES.index("total_return"), 0] == -1.0
    assert out[METRIC_NAMES.index("num_trades"), 0] == ref["num_trades"] == 4  # 2 in, 2 out


def test_ties_rank_by_asset_order_and_weights():
    close = np.full((12, 4), 10.0)  # every trailing return is 0: a four-way tie
    market = _market(close)
    res = cross_sectional_backtest({"lookback_period": 2, "top_k": 1, "rebalance_every": 5,
                                    "gross_leverage": 1.0}, market, cost_bps=0.0,
                                   initial_capital=1000.0)
    # ranking (0.0, 0) < (0.0, 1) < ...: A0 is the "worst" (long), A3 the "best" (short)
    first = res.positions.iloc[2]  # bar 2: first bar with 2 prior bars
    assert res.positions.iloc[0].abs().sum() == 0.0  # no asset has 2 bars of history yet
    assert res.positions.iloc[1].abs().sum() == 0.0
    # rebalances at bars 0, 5, 10: at 0 nobody is eligible, so the book opens at bar 5
    assert first.abs().sum() == 0.0
    assert list(res.positions.iloc[5]) == [50.0, 0.0, 0.0, -50.0]  # 0.5 * 1000 / 10
    momentum = cross_sectional_backtest({"lookback_period": 2, "top_k": 1, "rebalance_every": 5},
                                        market, direction="momentum", cost_bps=0.0,
                                        initial_capital=1000.0)
    assert list(momentum.positions.iloc[5]) == [-50.0, 0.0, 0.0, 50.0]
    long_only = cross_sectional_backtest({"lookback_period": 2, "top_k": 2,
                                          "rebalance_every": 5}, market, long_only=True,
                                         cost_bps=0.0, initial_capital=1000.0)
    assert list(long_only.positions.iloc[5]) == [50.0, 50.0, 0.0, 0.0]  # 1 / 2 each
    assert long_only.weights.iloc[5].sum() == pytest.approx(1.0)


def test_too_few_eligible_assets_means_flat():
    close = 10.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.02, (40, 4)), axis=0))
    close[:30, 2:] = np.nan  # two assets list late
    market = _market(close)
    res = cross_sectional_backtest({"lookback_period": 3, "top_k": 2, "rebalance_every": 1},
                                   market)
    held = res.positions.abs().sum(axis=1)
    assert (held.iloc[:33] == 0.0).all()  # 2 * top_k eligible only from bar 33
    assert (held.iloc[33:] > 0.0).all()


def test_backtest_equals_sweep_row():
    data = MarketData.synthetic(n_assets=8, start="2018-01-01", end="2020-01-01", seed=5)
    res = run_cross_sectional_sweep({"lookback_period": [5, 20], "top_k": [1, 3],
                                     "rebalance_every": [1, 10]}, data)
    assert len(res.table) == 8
    for row in (0, 5):
        replay = res.backtest(row)
        for name in METRIC_NAMES + ("turnover", "ruined"):
            assert replay.metrics[name] == res.table.iloc[row][name]
        assert replay.equity.iloc[-1] == res.table.iloc[row]["final_value"]


def test_executors_agree_bit_for_bit(joblib_executor):
    data = MarketData.synthetic(n_assets=12, start="2019-01-01", end="2021-01-01", seed=9)
    grid = {"lookback_period": [3, 10, 40], "top_k": [1, 2, 6], "rebalance_every": [1, 7],
            "gross_leverage": [1.0, 2.5]}
    serial = run_cross_sectional_sweep(grid, data, direction="momentum")
    for executor, batch_size in (("threads", 5), ("threads", "auto"), (joblib_executor, 3)):
        other = run_cross_sectional_sweep(grid, data, direction="momentum", executor=executor,
                                          batch_size=batch_size)
        pd.testing.assert_frame_equal(serial.table, other.table, check_exact=True)


def test_auto_tasks_cover_every_set_once_costliest_first():
    data = MarketData.synthetic(n_assets=30, start="2015-01-01", end="2020-01-01", seed=2)
    grid = {"lookback_period": [5, 20, 60], "top_k": [2, 5], "rebalance_every": [126, 21, 5, 1],
            "gross_leverage": [1.0, 2.0]}
    cjob = prepare_cross_sectional(grid, data, direction="reversal", long_only=False,
                                   start=None, end=None, initial_capital=1e6, cost_bps=5.0,
                                   periods_per_year=None, assets=None)
    assert (np.diff(cjob.params[:, 2]) >= 0).all()  # frequent rebalancing first
    for batch_size in ("auto", 7):
        tasks, _ = plan_tasks(cjob, batch_size, throughput=5e7, slots=2)
        covered = np.zeros(cjob.n_sets, dtype=int)
        for task in tasks:
            covered[task.start:task.stop] += 1
        assert (covered == 1).all()
        assert [t.cost for t in tasks] == sorted((t.cost for t in tasks), reverse=True)
    res = run_cross_sectional_sweep(grid, data, executor="threads")
    assert res.stats["backtests"] == len(res.table) == 48


def test_table_layout(small_data):
    res = run_cross_sectional_sweep({"top_k": [1], "lookback_period": [5, 10]}, small_data)
    assert list(res.table.columns) == (list(PARAM_NAMES) + list(METRIC_NAMES)
                                       + ["turnover", "benchmark_return", "excess_return",
                                          "benchmark_sharpe", "ruined"])
    assert res.table["top_k"].dtype == np.int64 and res.table["num_trades"].dtype == np.int64
    assert (res.table["rebalance_every"] == 21).all()  # the default
    assert res.strategy == "cross_sectional" and res.settings["direction"] == "reversal"


@pytest.fixture
def forbid_work(no_kernel_runs, monkeypatch):
    """No kernel, calibration or run starts (every workflow runs through one template)."""
    monkeypatch.setattr(cs, "run_cross_sectional_task", no_kernel_runs)


@pytest.mark.parametrize("grid, kwargs, message", [
    ({"top_k": [6]}, {}, "exceeds half"),
    ({"top_k": [11]}, {"long_only": True}, "exceeds all"),
    ({"top_k": [1]}, {"assets": ["SYN000"]}, "ranks several assets"),
    ({"top_k": [1]}, {"direction": "contrarian"}, "direction must be one of"),
    ({"lookback_period": [0]}, {}, "whole number >= 1"),
    ({"rebalance_every": [2.5]}, {}, "whole number >= 1"),
    ({"gross_leverage": [0.0]}, {}, "gross_leverage must be > 0"),
    ({"gross_leverage": [np.inf]}, {}, "must be finite"),
    ({"lookback": [5]}, {}, "unknown parameter"),
    ({"top_k": [1]}, {"cost_bps": -1.0}, "cost_bps"),
])
def test_bad_inputs_refused_before_work(forbid_work, grid, kwargs, message):
    data = MarketData.synthetic(n_assets=10, start="2020-01-01", end="2021-01-01")
    with pytest.raises(ValueError, match=message):
        run_cross_sectional_sweep(grid, data, **kwargs)


#: top_k at its inclusive limits on 10 assets: (top_k, long_only, longs and shorts held
#: after every rebalance that trades, whether any round trip closes)
TOP_K_LIMITS = [
    (5, False, 5, 5, True),     # half the universe on each side: every asset in the book
    (10, True, 10, 0, False),   # long only, the whole universe: every asset long, for good
]


@pytest.mark.parametrize("top_k, long_only, longs, shorts, trips_close", TOP_K_LIMITS)
def test_top_k_limits_are_inclusive(top_k, long_only, longs, shorts, trips_close):
    """The largest top_k (n/2 with shorts, n long only) is accepted and holds every
    asset. Defaults: lookback 20 and a rebalance every 21 bars from bar 0, where no
    asset has 20 bars of history (flat); so the book opens at bar 21 and is rebalanced
    at 21, 42, ..., 252 of the 263 bars."""
    data = MarketData.synthetic(n_assets=10, start="2020-01-01", end="2021-01-01")
    res = run_cross_sectional_sweep({"top_k": [top_k]}, data, long_only=long_only)
    [row] = res.table.to_dict("records")
    assert {name: row[name] for name in PARAM_NAMES} == {
        "lookback_period": 20, "top_k": top_k, "rebalance_every": 21, "gross_leverage": 1.0}
    replay = res.backtest(0)
    shares = replay.positions
    n_bars, opened = len(shares), 21
    assert n_bars == 263 and list(shares.columns) == list(data.symbols)
    assert (shares.iloc[:opened] == 0.0).all(axis=None)
    held = shares.iloc[opened:]
    assert ((held > 0).sum(axis=1) == longs).all() and ((held < 0).sum(axis=1) == shorts).all()
    assert row["exposure"] == (n_bars - opened) / n_bars  # 242 of 263 bars hold positions
    # num_trades: asset-bars whose shares changed; every asset enters at bar 21, and at
    # most every asset is resized at each of the 12 rebalances
    fills = int((shares.diff().fillna(shares) != 0.0).sum(axis=None))
    assert row["num_trades"] == fills
    rebalances = list(range(opened, n_bars, 21))
    assert len(rebalances) == 12 and 10 < fills <= 10 * len(rebalances)
    changed = shares.diff().fillna(shares) != 0.0
    assert not changed.drop(index=shares.index[rebalances]).any(axis=None)  # held between
    # weights at the rebalances: gross G = 1 (less what whole shares and costs leave),
    # net 1 long only and about 0 with both sides
    weights = replay.weights.iloc[rebalances]
    assert weights.abs().sum(axis=1).to_numpy() == pytest.approx(1.0, abs=2e-3)
    assert weights.sum(axis=1).to_numpy() == pytest.approx(1.0 if long_only else 0.0, abs=1e-2)
    # a round trip closes only when an asset goes flat or flips side: long only at
    # top_k = n every asset stays long to the end, so there is no win rate
    flips = (np.sign(held).diff().fillna(0.0) != 0.0).any(axis=None)
    assert flips == trips_close
    assert math.isnan(row["win_rate"]) != trips_close
    if trips_close:
        assert 0.0 <= row["win_rate"] <= 1.0
    assert not row["ruined"] and row["final_value"] > 0.0 and row["turnover"] > 0.0
    finite = [name for name in METRIC_NAMES if name != "win_rate"]
    assert all(math.isfinite(row[name]) for name in finite), row
    # the mirror image: momentum holds the opposite book; long only over the whole
    # universe both directions hold the same equal-weight book, bit for bit
    momentum = run_cross_sectional_sweep({"top_k": [top_k]}, data, long_only=long_only,
                                         direction="momentum")
    if long_only:
        assert_tables_identical(momentum.table, res.table)
    else:
        first = momentum.backtest(0).positions.iloc[opened]
        assert (first == -shares.iloc[opened]).all()  # same equity at bar 21, sides swapped


def test_long_only_must_be_bool(forbid_work):
    with pytest.raises(TypeError, match="long_only"):
        run_cross_sectional_sweep({"top_k": [1]}, long_only="yes")


@pytest.mark.slow  # the kernel as plain Python: seconds
def test_debug_runs_the_kernel_as_plain_python_with_the_same_bits(small_data):
    grid = {"lookback_period": [5, 10], "top_k": [1], "rebalance_every": [3, 7]}
    compiled = run_cross_sectional_sweep(grid, small_data, progress=False)
    plain = run_cross_sectional_sweep(grid, small_data, progress=False, debug=True)
    assert_tables_identical(plain.table, compiled.table)
