"""Portfolios of one account (``btcore.workflows.portfolio``, ``docs/portfolios.md``)."""
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from btcore import MarketData, backtest, run_sweep
from btcore.metrics import METRIC_NAMES
from btcore.workflows.portfolio import CONSTRUCTION, portfolio_backtest, run_portfolio_sweep
from conftest import assert_tables_identical
from portfolio_reference import portfolio_reference
from reference import spec_rule

MR_GRID = {"lookback_period": [5, 12], "entry_threshold": [1.0, 1.8],
           "exit_threshold": [0.25], "stop_loss_z": [3.0]}
PARAMS = ["lookback_period", "entry_threshold", "exit_threshold", "stop_loss_z"]


def staggered(n_assets=4, n_bars=300, seed=0, listings=None, vol=0.02):
    """Random walks; asset j lists at ``listings[j]`` (NaN before)."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, vol, size=(n_bars, n_assets)), axis=0))
    for j, bar in enumerate(listings or [0] * n_assets):
        close[:bar, j] = np.nan
    index = pd.bdate_range("2015-01-01", periods=n_bars)
    return MarketData(close, index, tuple(f"A{j}" for j in range(n_assets)))


@pytest.fixture(scope="module")
def universe():
    return staggered(4, 320, seed=11, listings=[0, 0, 40, 120])


def metric_rows(table):
    return table.sort_values(PARAMS + list(CONSTRUCTION)).reset_index(drop=True)


# ------------------------------------------------------------------ identities
@pytest.mark.parametrize("allow_short", [True, False])
def test_one_asset_equals_single_asset_run_exactly(small_data, allow_short):
    single = run_sweep(MR_GRID, data=small_data, assets=["SYN001"], allow_short=allow_short)
    port = run_portfolio_sweep(MR_GRID, data=small_data, assets=["SYN001"],
                               allow_short=allow_short)
    left = single.table.sort_values(PARAMS).reset_index(drop=True)
    right = port.table.sort_values(PARAMS).reset_index(drop=True)
    pd.testing.assert_frame_equal(left[list(METRIC_NAMES) + ["ruined"]],
                                  right[list(METRIC_NAMES) + ["ruined"]], check_exact=True)


def test_one_asset_late_listing_equals_single_asset(universe):
    single = run_sweep(MR_GRID, data=universe, assets=["A3"])
    port = run_portfolio_sweep(MR_GRID, data=universe, assets=["A3"])
    left = single.table.sort_values(PARAMS).reset_index(drop=True)
    right = port.table.sort_values(PARAMS).reset_index(drop=True)
    pd.testing.assert_frame_equal(left[list(METRIC_NAMES)], right[list(METRIC_NAMES)],
                                  check_exact=True)


def test_equity_is_the_sum_of_single_asset_runs(universe):
    params = {"lookback_period": 8, "entry_threshold": 1.2, "exit_threshold": 0.3,
              "stop_loss_z": 3.0}
    capital = 1_000_000.0
    port = portfolio_backtest(params, data=universe, allow_short=False,
                              initial_capital=capital)
    n = universe.n_assets
    total = pd.Series(0.0, index=port.equity.index)
    trades = 0
    for symbol in universe.symbols:
        single = backtest(params, data=universe, asset=symbol, allow_short=False,
                          initial_capital=capital / n)
        sleeve = single.equity.reindex(port.equity.index).fillna(capital / n)
        total += sleeve
        trades += single.metrics["num_trades"]
        np.testing.assert_array_equal(
            port.positions[symbol].reindex(single.positions.index).to_numpy(),
            single.positions.to_numpy())
    np.testing.assert_allclose(port.equity.to_numpy(), total.to_numpy(), rtol=1e-9, atol=0)
    assert port.metrics["num_trades"] == trades  # fills are counted per sleeve and bar


def test_backtest_metrics_equal_the_sweep_row(universe):
    res = run_portfolio_sweep(MR_GRID, data=universe, rebalance_every=20,
                              max_position_weight=0.3)
    for position in range(len(res.table)):
        row = res.table.iloc[position]
        replay = res.backtest(row)
        for name in METRIC_NAMES:
            assert replay.metrics[name] == row[name] or (
                math.isnan(replay.metrics[name]) and math.isnan(row[name])), name
        assert replay.metrics["turnover"] == row["turnover"]
        assert replay.metrics["ruined"] == row["ruined"]
        assert replay.weights.shape == (len(replay.equity), universe.n_assets)
        assert -1.0 <= replay.metrics["avg_correlation"] <= 1.0


def test_construction_as_grid_columns_equals_keyword_runs(universe):
    grid = dict(MR_GRID, rebalance_every=[math.inf, 15], max_gross_exposure=[math.inf, 0.6])
    swept = run_portfolio_sweep(grid, data=universe)
    assert len(swept.table) == 16
    for rebalance in (math.inf, 15):
        for gross in (math.inf, 0.6):
            alone = run_portfolio_sweep(
                MR_GRID, data=universe,
                rebalance_every=None if rebalance == math.inf else rebalance,
                max_gross_exposure=None if gross == math.inf else gross)
            part = swept.table[(swept.table["rebalance_every"] == rebalance) &
                               (swept.table["max_gross_exposure"] == gross)]
            assert_tables_identical(metric_rows(part), metric_rows(alone.table))


# ----------------------------------------------------------------- reference
def _check_against_reference(data, params, options, construction, capital=100_000.0):
    import btcore.strategies as strategies
    spec = strategies.get("mean_reversion")
    keywords = {k: (None if v == math.inf else v) for k, v in construction.items()}
    result = portfolio_backtest(params, data=data, initial_capital=capital, **keywords,
                                **options)
    first_bars = [int(b) for b in data.first_valid]
    last_bar = data.n_bars - 1
    row = np.array([float(params[n]) for n in spec.param_names])
    option_values = spec.option_values(options)
    rules = [spec_rule(spec, data.close[:, a], row, option_values)
             for a in range(data.n_assets)]
    ref = portfolio_reference(data.close, first_bars, last_bar, rules,
                              initial_capital=capital, **construction)
    np.testing.assert_allclose(result.equity.to_numpy(), ref["equity"], rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(result.positions.to_numpy(), np.array(ref["shares"]))
    for name in METRIC_NAMES:
        expected, got = ref[name], result.metrics[name]
        if isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(got), name
        elif name == "num_trades":
            assert got == expected
        else:
            assert got == pytest.approx(expected, rel=1e-8, abs=1e-10), name
    assert result.metrics["ruined"] == ref["ruined"]
    assert result.metrics["turnover"] == pytest.approx(ref["turnover"], rel=1e-9, nan_ok=True)
    return result, ref


@st.composite
def cases(draw):
    n_assets = draw(st.integers(1, 4))
    n_bars = draw(st.integers(40, 140))
    listings = [draw(st.integers(0, n_bars - 25)) for _ in range(n_assets)]
    data = staggered(n_assets, n_bars, seed=draw(st.integers(0, 10_000)), listings=listings,
                     vol=draw(st.sampled_from([0.01, 0.03, 0.08])))
    params = {"lookback_period": draw(st.integers(2, 12)),
              "entry_threshold": draw(st.sampled_from([0.5, 1.0, 1.5])),
              "exit_threshold": draw(st.sampled_from([0.0, 0.3, 0.8])),
              "stop_loss_z": draw(st.sampled_from([2.0, 3.5]))}
    options = {"allow_short": draw(st.booleans())}
    construction = {
        "rebalance_every": draw(st.sampled_from([math.inf, 1, 5, 17])),
        "max_gross_exposure": draw(st.sampled_from([math.inf, 0.3, 0.9, 1.5])),
        "max_position_weight": draw(st.sampled_from([math.inf, 0.1, 0.4])),
        "portfolio_stop_drawdown": draw(st.sampled_from([math.inf, 0.03, 0.15])),
    }
    return data, params, options, construction


@settings(max_examples=60)
@given(cases())
def test_kernel_matches_the_reference(case):
    data, params, options, construction = case
    _check_against_reference(data, params, options, construction)


@settings(max_examples=40)
@given(cases())
def test_caps_never_exceeded_at_an_entry(case):
    data, params, options, construction = case
    construction["max_gross_exposure"] = 0.5
    construction["max_position_weight"] = 0.2
    result, ref = _check_against_reference(data, params, options, construction)
    for bar, asset, value, gross, equity in ref["entries"]:
        assert value <= 0.2 * equity
        assert gross <= 0.5 * equity
    # and the kernel's own end-of-bar weights at entry bars (later costs only)
    weights = result.weights.to_numpy()
    first = min(int(b) for b in data.first_valid)
    for bar, asset, *_ in ref["entries"]:
        assert abs(weights[bar - first, asset]) <= 0.2 * (1 + 1e-3)
        assert np.abs(weights[bar - first]).sum() <= 0.5 * (1 + 1e-3) + 1e-12


def test_cap_binds_and_scales_entries_down(universe):
    free = portfolio_backtest(dict(zip(PARAMS, [8, 1.0, 0.3, 3.0])), data=universe)
    capped = portfolio_backtest(dict(zip(PARAMS, [8, 1.0, 0.3, 3.0])), data=universe,
                                max_position_weight=0.05)
    assert free.weights.abs().to_numpy().max() > 0.2
    assert capped.weights.abs().to_numpy().max() < 0.06
    assert (capped.trades["shares"] > 0).all()


@settings(max_examples=30)
@given(cases(), st.sampled_from([0.01, 0.03, 0.1]))
def test_drawdown_stop_leaves_the_account_flat(case, stop):
    data, params, options, construction = case
    construction["portfolio_stop_drawdown"] = stop
    result, ref = _check_against_reference(data, params, options, construction)
    equity = result.equity.to_numpy()
    peak = np.maximum.accumulate(np.maximum(equity, 100_000.0))
    hit = np.flatnonzero(equity / peak - 1.0 <= -stop)
    if ref["halted"]:
        assert hit.size
        t = hit[0]
        assert (result.positions.to_numpy()[t:] == 0.0).all()
        assert (equity[t:] == equity[t]).all()
    elif not ref["ruined"]:
        assert not hit.size


def test_drawdown_stop_triggers(universe):
    result = portfolio_backtest(dict(zip(PARAMS, [5, 0.5, 0.0, 3.0])), data=universe,
                                portfolio_stop_drawdown=0.02)
    positions = result.positions.to_numpy()
    open_bars = np.flatnonzero(np.abs(positions).sum(axis=1) > 0)
    assert open_bars.size and open_bars[-1] < len(positions) - 1
    assert (positions[open_bars[-1] + 1:] == 0).all()


def test_out_of_money_applies_to_the_whole_account():
    rng = np.random.default_rng(3)
    n_bars = 120
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, size=(n_bars, 2)), axis=0))
    # A0 trends up (mean reversion shorts it), then explodes: only A0's sleeve loses
    close[:, 0] = 50.0 * np.exp(np.cumsum(np.where(np.arange(n_bars) < 70, 0.005, 0.35)))
    data = MarketData(close, pd.bdate_range("2015-01-01", periods=n_bars), ("A0", "A1"))
    params = dict(zip(PARAMS, [5, 0.3, 0.0, 50.0]))
    result, ref = _check_against_reference(data, params, {"allow_short": True},
                                           {"rebalance_every": math.inf,
                                            "max_gross_exposure": math.inf,
                                            "max_position_weight": math.inf,
                                            "portfolio_stop_drawdown": math.inf})
    assert result.metrics["ruined"] and ref["ruined"]
    assert result.metrics["final_value"] == 0.0
    assert result.metrics["total_return"] == result.metrics["max_drawdown"] == -1.0
    t = int(np.argmax(result.equity.to_numpy() == 0.0))
    assert (result.equity.to_numpy()[t:] == 0.0).all()
    assert (result.positions.to_numpy()[t:] == 0.0).all()
    assert result.returns.iloc[t] == -1.0


# ----------------------------------------------------------------- executors
def test_executors_and_batch_sizes_agree_bit_for_bit(universe, joblib_executor):
    grid = dict(MR_GRID, rebalance_every=[math.inf, 10], max_gross_exposure=[math.inf, 0.7])
    base = run_portfolio_sweep(grid, data=universe, batch_size=16)
    for executor, batch_size in (("serial", 1), ("serial", 3), ("threads", 2),
                                 ("threads", "auto"), (joblib_executor, 3)):
        other = run_portfolio_sweep(grid, data=universe, executor=executor,
                                    batch_size=batch_size)
        assert_tables_identical(base.table, other.table)


# --------------------------------------------------------------- bad input
@pytest.fixture
def no_portfolio_runs(no_kernel_runs, monkeypatch):
    """No kernel, calibration or run starts (every workflow runs through one template)."""
    import btcore.workflows.portfolio_job as portfolio_job
    monkeypatch.setattr(portfolio_job, "run_portfolio_task", no_kernel_runs)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_gross_exposure": 0.0}, "max_gross_exposure must be > 0"),
    ({"max_gross_exposure": -1.0}, "max_gross_exposure must be > 0"),
    ({"max_position_weight": 0}, "max_position_weight must be > 0"),
    ({"rebalance_every": 0}, "rebalance_every must be a whole number"),
    ({"rebalance_every": 2.5}, "rebalance_every must be a whole number"),
    ({"portfolio_stop_drawdown": 0.0}, "portfolio_stop_drawdown"),
    ({"portfolio_stop_drawdown": 1.5}, "portfolio_stop_drawdown"),
    ({"assets": ["A0", "NOPE"]}, "NOPE"),
])
def test_bad_input_is_refused_before_work(universe, no_portfolio_runs, kwargs, message):
    with pytest.raises((ValueError, KeyError), match=message):
        run_portfolio_sweep(MR_GRID, data=universe, **kwargs)


def test_bad_grid_columns_are_refused_before_work(universe, no_portfolio_runs):
    with pytest.raises(ValueError, match="max_position_weight must be > 0"):
        run_portfolio_sweep(dict(MR_GRID, max_position_weight=[0.1, -0.2]), data=universe)
    with pytest.raises(ValueError, match="both a grid column and a keyword"):
        run_portfolio_sweep(dict(MR_GRID, rebalance_every=[5]), data=universe,
                            rebalance_every=5)
    with pytest.raises(ValueError, match="unknown parameter"):
        run_portfolio_sweep(dict(MR_GRID, rebalance=[5]), data=universe)
    with pytest.raises(TypeError, match="max_gross_exposure must be a number"):
        run_portfolio_sweep(MR_GRID, data=universe, max_gross_exposure="1")
    with pytest.raises(TypeError, match="unknown argument"):
        run_portfolio_sweep(MR_GRID, data=universe, rebalance_evry=5)


def test_debug_runs_the_portfolio_kernel_as_plain_python_with_the_same_bits(small_data):
    grid = {"lookback_period": [5, 10], "entry_threshold": [1.0, 2.0], "rebalance_every": [5]}
    compiled = run_portfolio_sweep(grid, data=small_data, progress=False)
    plain = run_portfolio_sweep(grid, data=small_data, progress=False, debug=True)
    assert plain.stats["executor"] == "serial"
    assert_tables_identical(plain.table, compiled.table)
