"""Walk-forward: fold arithmetic, choices and OOS runs equal plain sweeps."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

from btcore import MarketData, run_sweep, walk_forward
from btcore.metrics import METRIC_NAMES
from btcore.workflows.walk_forward import fold_windows, walk_forward_efficiency
from conftest import assert_tables_identical

GRID = {"lookback_period": [5, 10, 20], "entry_threshold": [1.0, 2.0],
        "exit_threshold": [0.0, 0.5], "stop_loss_z": [3.0]}


def time_series_split(n_samples, n_splits, test_size=None, gap=0, max_train_size=None):
    """scikit-learn's TimeSeriesSplit, written out: (train indices, test indices)."""
    test_size = n_samples // (n_splits + 1) if test_size is None else test_size
    for test_start in range(n_samples - n_splits * test_size, n_samples, test_size):
        train_end = test_start - gap
        train_start = 0 if max_train_size is None else max(0, train_end - max_train_size)
        yield list(range(train_start, train_end)), list(range(test_start, test_start + test_size))


@given(n_bars=st.integers(30, 400), n_splits=st.integers(2, 8), gap=st.integers(0, 5),
       anchored=st.booleans(), offset=st.integers(0, 50), data=st.data())
def test_folds_follow_time_series_split(n_bars, n_splits, gap, anchored, offset, data):
    test_bars = data.draw(st.none() | st.integers(1, n_bars // (n_splits + 1) or 1))
    size = n_bars // (n_splits + 1) if test_bars is None else test_bars
    first_train = n_bars - n_splits * size - gap
    if first_train < 2:
        with pytest.raises(ValueError, match="in-sample bar"):
            fold_windows(offset, offset + n_bars - 1, n_splits, test_bars=test_bars, gap=gap,
                         anchored=anchored)
        return
    folds = fold_windows(offset, offset + n_bars - 1, n_splits, test_bars=test_bars, gap=gap,
                         anchored=anchored)
    expected = time_series_split(n_bars, n_splits, test_bars, gap,
                                 None if anchored else first_train)
    for (is_start, is_end, oos_start, oos_end), (train, test) in zip(folds, expected):
        assert list(range(is_start - offset, is_end - offset + 1)) == train
        assert list(range(oos_start - offset, oos_end - offset + 1)) == test


@pytest.fixture(scope="module")
def data():
    return MarketData.synthetic(n_assets=2, start="2015-01-01", end="2020-12-31", seed=11)


def _metric_equal(left, right):
    return left == right or (np.isnan(left) and np.isnan(right))


@pytest.mark.parametrize("anchored", [False, True])
def test_each_fold_equals_plain_sweeps(data, anchored):
    result = walk_forward(GRID, data=data, n_splits=4, gap=3, anchored=anchored,
                          start="2016-01-01", progress=False)
    assert len(result.folds) == 4 * 2
    for row in result.folds.itertuples(index=False):
        in_sample = run_sweep(GRID, data=data, assets=[row.asset], start=row.is_start,
                              end=row.is_end, progress=False)
        best = in_sample.best("sharpe_ratio")
        assert (row.lookback_period, row.entry_threshold, row.exit_threshold) == \
            (best.lookback_period, best.entry_threshold, best.exit_threshold)
        chosen = {name: [getattr(row, name)] for name in GRID}
        oos = run_sweep(chosen, data=data, assets=[row.asset], start=row.oos_start,
                        end=row.oos_end, progress=False).table.iloc[0]
        for name in METRIC_NAMES:
            assert _metric_equal(getattr(row, f"is_{name}"), best[name]), name
            assert _metric_equal(getattr(row, f"oos_{name}"), oos[name]), name
        if anchored:
            assert row.is_start == result.folds["is_start"].iloc[0]


def test_stitched_equity_compounds_the_folds(data):
    result = walk_forward(GRID, data=data, n_splits=3, start="2016-01-01", progress=False)
    for asset in data.symbols:
        folds = result.folds[result.folds.asset == asset]
        growth = np.prod(1.0 + folds["oos_total_return"].to_numpy())
        assert result.oos_equity[asset].iloc[-1] == pytest.approx(1e6 * growth, rel=1e-12)
        assert result.oos_equity.index[0] == folds["oos_start"].iloc[0]
        assert result.oos_metrics.loc[asset, "final_value"] == result.oos_equity[asset].iloc[-1]


def test_lower_is_better_objectives_and_callables(data):
    by_vol = walk_forward(GRID, data=data, n_splits=2, objective="annual_volatility",
                          assets=[data.symbols[0]], progress=False)
    for row in by_vol.folds.itertuples(index=False):
        sweep = run_sweep(GRID, data=data, assets=[data.symbols[0]], start=row.is_start,
                          end=row.is_end, progress=False).table
        assert row.is_annual_volatility == sweep.loc[~sweep.ruined, "annual_volatility"].min()
    by_fn = walk_forward(GRID, data=data, n_splits=2, assets=[data.symbols[0]],
                         objective=lambda table: -table["annual_volatility"], progress=False)
    assert_tables_identical(by_fn.folds, by_vol.folds)


def test_universe_selection_picks_one_set_for_all_assets(data):
    result = walk_forward(GRID, data=data, n_splits=3, select="universe", progress=False)
    per_fold = result.folds.groupby("fold")["lookback_period"].nunique()
    assert (per_fold == 1).all()


def test_every_executor_gives_the_same_folds(all_executors, data):
    tables = {name: walk_forward(GRID, data=data, n_splits=3, executor=executor,
                                 batch_size=5, progress=False).folds
              for name, executor in all_executors.items()}
    for name, table in tables.items():
        assert_tables_identical(table, tables["serial"])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_splits": 5000}, ValueError, "too few for 5000 folds"),
    ({"n_splits": 10, "test_bars": 200}, ValueError, "in-sample bar"),
    ({"n_splits": 1}, ValueError, "n_splits must be >= 2"),
    ({"n_splits": 2.5}, TypeError, "n_splits must be an int"),
    ({"gap": -1}, ValueError, "gap must be >= 0"),
    ({"train_bars": 100_000}, ValueError, "train_bars=100000 does not fit"),
    ({"train_bars": 50, "anchored": True}, ValueError, "anchored folds"),
    ({"objective": "sharpe"}, ValueError, "unknown objective 'sharpe'"),
    ({"select": "all"}, ValueError, "select must be"),
    ({"train_bars": 25, "grid": {**GRID, "lookback_period": [30]}}, ValueError,
     "not shorter than the"),
])
def test_bad_input_fails_before_work(data, kwargs, error, message, no_kernel_runs):
    kwargs = dict(kwargs)
    grid = kwargs.pop("grid", GRID)
    with pytest.raises(error, match=message):
        walk_forward(grid, data=data, **kwargs)


@pytest.mark.parametrize("oos_cagr, is_cagr, expected, note", [
    (0.05, 0.10, 0.5, ""),                   # IS > 0, OOS > 0: half the in-sample growth
    (0.02, 0.08, 0.25, ""),
    (-0.05, 0.10, -0.5, ""),                 # IS > 0, OOS < 0: negative, reads correctly
    (-0.152, -0.019, np.nan, "in-sample cagr <= 0"),  # IS < 0, OOS < 0: was +8.0
    (0.144, -0.011, np.nan, "in-sample cagr <= 0"),   # IS < 0, OOS > 0: was -13.09
    (0.05, 0.0, np.nan, "in-sample cagr <= 0"),       # IS = 0: no ratio
    (0.05, np.nan, np.nan, "cagr not finite"),
    (np.nan, 0.10, np.nan, "cagr not finite"),
    (0.05, np.inf, np.nan, "cagr not finite"),
])
def test_efficiency_sign_cases(oos_cagr, is_cagr, expected, note):
    value, reason = walk_forward_efficiency(oos_cagr, is_cagr)
    assert reason == note
    if np.isnan(expected):
        assert np.isnan(value)
    else:
        assert value == pytest.approx(expected, rel=1e-15)


def test_efficiency_and_stability_follow_their_definitions(data):
    result = walk_forward(GRID, data=data, n_splits=4, start="2016-01-01", progress=False)
    folds = result.folds
    negative = folds["is_cagr"] <= 0
    assert negative.any()  # this data has a losing in-sample fold: the guarded case
    assert folds.loc[negative, "efficiency"].isna().all()
    assert (folds.loc[negative, "efficiency_note"] == "in-sample cagr <= 0").all()
    positive = folds[~negative]
    assert (positive["efficiency"] == positive["oos_cagr"] / positive["is_cagr"]).all()
    assert (positive["efficiency_note"] == "").all()
    spans = {name: max(values) - min(values) or 1.0 for name, values in GRID.items()}
    for asset in data.symbols:
        own = folds[folds.asset == asset].sort_values("fold")
        mean_is = own["is_cagr"].mean()
        oos_cagr = result.oos_metrics.loc[asset, "cagr"]
        assert mean_is > 0 and result.efficiency_note[asset] == ""
        assert result.efficiency[asset] == oos_cagr / mean_is
        picks = [tuple(row) for row in own[list(GRID)].itertuples(index=False)]
        changed = [a != b for a, b in zip(picks, picks[1:])]
        assert result.stability.loc[asset, "changes"] == pytest.approx(np.mean(changed))
        steps = [abs(b[i] - a[i]) / spans[name] for a, b in zip(picks, picks[1:])
                 for i, name in enumerate(GRID)]
        assert result.stability.loc[asset, "mean_step"] == pytest.approx(np.mean(steps))
