"""CPCV: split index sets as skfolio's, and every number equal to plain runs."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from btcore import MarketData, backtest, cpcv, run_sweep
from btcore.workflows.cpcv import cpcv_path_splits, cpcv_split_indices

GRID = {"lookback_period": [5, 10, 20], "entry_threshold": [1.0, 2.0],
        "exit_threshold": [0.0, 0.5], "stop_loss_z": [3.0]}
PARAMS = list(GRID)


def reference_splits(n_bars, n_groups, n_test, purge, embargo):
    """CPCV splits from scratch (itertools.combinations), bar by bar: a train bar is
    dropped when a test group starts within ``purge`` bars after it, or a test group
    ended within ``purge + embargo`` bars before it (skfolio's convention)."""
    size = n_bars // n_groups
    group = np.minimum(np.arange(n_bars) // size, n_groups - 1)
    out = []
    for test in itertools.combinations(range(n_groups), n_test):
        is_test = np.isin(group, test)
        train = []
        for t in range(n_bars):
            if is_test[t]:
                continue
            ahead = is_test[t + 1:t + 1 + purge]
            behind = is_test[max(0, t - purge - embargo):t]
            if not ahead.any() and not behind.any():
                train.append(t)
        out.append((train, [list(np.flatnonzero(group == g)) for g in test]))
    return out


@settings(max_examples=60, deadline=None)
@given(n_bars=st.integers(12, 200), n_groups=st.integers(2, 7), data=st.data())
def test_splits_equal_a_from_scratch_reference(n_bars, n_groups, data):
    n_test = data.draw(st.integers(1, n_groups - 1))
    size = n_bars // n_groups
    if size < 4:
        return
    purge = data.draw(st.integers(0, size - 2))
    embargo = data.draw(st.integers(0, size - 2 - purge))
    mine = cpcv_split_indices(n_bars, n_groups, n_test, purge, embargo)
    expected = reference_splits(n_bars, n_groups, n_test, purge, embargo)
    assert len(mine) == math.comb(n_groups, n_test)
    for (train, tests), (ref_train, ref_tests) in zip(mine, expected):
        assert train.tolist() == ref_train
        assert [t.tolist() for t in tests] == ref_tests


@pytest.mark.parametrize("n_bars, n_groups, n_test, purge, embargo",
                         [(120, 6, 2, 0, 0), (123, 6, 2, 3, 2), (100, 5, 3, 2, 0),
                          (97, 4, 2, 0, 5), (200, 10, 8, 4, 4)])
def test_splits_and_paths_equal_skfolio(n_bars, n_groups, n_test, purge, embargo):
    model_selection = pytest.importorskip("skfolio.model_selection")
    cv = model_selection.CombinatorialPurgedCV(n_folds=n_groups, n_test_folds=n_test,
                                               purged_size=purge, embargo_size=embargo)
    theirs = list(cv.split(np.zeros((n_bars, 1))))
    mine = cpcv_split_indices(n_bars, n_groups, n_test, purge, embargo)
    assert len(theirs) == len(mine)
    for (train, tests), (their_train, their_tests) in zip(mine, theirs):
        assert train.tolist() == their_train.tolist()
        assert [t.tolist() for t in tests] == [t.tolist() for t in their_tests]
    assert cpcv_path_splits(n_groups, n_test).tolist() == cv.recombined_paths.T.tolist()


def test_paths_take_each_group_once_from_a_split_testing_it():
    paths = cpcv_path_splits(6, 2)
    tests = list(itertools.combinations(range(6), 2))
    assert paths.shape == (math.comb(5, 1), 6)
    for path in paths:
        for group, split in enumerate(path):
            assert group in tests[split]
    # every (split, test group) is used by exactly one path
    used = sorted((int(split), group) for path in paths for group, split in enumerate(path))
    assert used == sorted((c, g) for c, test in enumerate(tests) for g in test)


@pytest.fixture(scope="module")
def data():
    return MarketData.synthetic(n_assets=1, start="2016-01-01", end="2019-12-31", seed=5)


@pytest.fixture(scope="module")
def returns(data):
    """Per-bar returns of every grid row on every group's window, by plain backtests."""
    result = cpcv(GRID, data=data, n_groups=4, n_test_groups=2, progress=False)
    sets = [dict(zip(PARAMS, values)) for values in itertools.product(*GRID.values())]
    by_group = {}
    for g, group in result.groups.iterrows():
        by_group[g] = [backtest(p, data=data, start=group.start, end=group.end).returns
                       .to_numpy() for p in sets]
    return result, sets, by_group


def _sharpe(r, ppy=252):
    return r.mean() / r.std(ddof=1) * np.sqrt(ppy)


def test_group_windows_equal_run_sweep(data, returns):
    result, sets, by_group = returns
    for g, group in result.groups.iterrows():
        table = run_sweep(GRID, data=data, start=group.start, end=group.end,
                          progress=False).table.sort_values(PARAMS)
        sharpe = [_sharpe(by_group[g][i]) for i in range(len(sets))]
        ordered = pd.DataFrame(sets).assign(sharpe=sharpe).sort_values(PARAMS)
        np.testing.assert_allclose(table["sharpe_ratio"], ordered["sharpe"], rtol=1e-9)


def test_choices_and_sharpe_ratios_equal_naive_unions(returns):
    result, sets, by_group = returns
    assert len(result.splits) == 6 and result.paths.shape == (3, 1)
    logits = []
    for row in result.splits.itertuples(index=False):
        train = [np.concatenate([by_group[g][i] for g in row.train_groups])
                 for i in range(len(sets))]
        test = [np.concatenate([by_group[g][i] for g in row.test_groups])
                for i in range(len(sets))]
        is_sharpe = np.array([_sharpe(r) for r in train])
        oos_sharpe = np.array([_sharpe(r) for r in test])
        best = int(np.argmax(is_sharpe))
        assert [getattr(row, p) for p in PARAMS] == list(sets[best].values())
        assert row.is_sharpe_ratio == pytest.approx(is_sharpe[best], rel=1e-9)
        assert row.oos_sharpe_ratio == pytest.approx(oos_sharpe[best], rel=1e-9)
        rank = (oos_sharpe < oos_sharpe[best]).sum() + \
            (np.isclose(oos_sharpe, oos_sharpe[best], rtol=1e-12).sum() + 1) / 2
        assert row.oos_rank == rank
        logits.append(np.log(rank / (len(sets) + 1 - rank)))
    np.testing.assert_allclose(result.splits["logit"], logits, rtol=1e-12)
    assert result.pbo.iloc[0] == np.mean(np.array(logits) <= 0)
    chosen = {tuple(getattr(r, p) for p in PARAMS): r for r in result.splits.itertuples()}
    counts = result.chosen_counts
    assert counts["count"].sum() == 6
    assert len(counts) == len(chosen)
    # each path: the chosen sets' returns on the groups it takes, stitched
    path_splits = cpcv_path_splits(4, 2)
    for p, by_split in enumerate(path_splits):
        pieces = []
        for g, split in enumerate(by_split):
            row = result.splits.iloc[split]
            index = sets.index({name: row[name] for name in PARAMS})
            pieces.append(by_group[g][index])
        assert result.paths.iloc[p, 0] == pytest.approx(_sharpe(np.concatenate(pieces)),
                                                       rel=1e-9)


def test_purge_and_embargo_drop_train_bars(data, returns):
    result, sets, by_group = returns
    purged = cpcv(GRID, data=data, n_groups=4, n_test_groups=2, purge=5, embargo=3,
                  progress=False)
    n_bars = sum(len(by_group[g][0]) for g in by_group)
    splits = cpcv_split_indices(n_bars, 4, 2, 5, 3)
    flat = [np.concatenate([by_group[g][i] for g in range(4)]) for i in range(len(sets))]
    for row, (train, _) in zip(purged.splits.itertuples(index=False), splits):
        is_sharpe = np.array([_sharpe(r[train]) for r in flat])
        best = int(np.argmax(is_sharpe))
        assert [getattr(row, p) for p in PARAMS] == list(sets[best].values())
        assert row.is_sharpe_ratio == pytest.approx(is_sharpe[best], rel=1e-9)
    # out of sample is untouched by purging
    same = (purged.splits[PARAMS] == result.splits[PARAMS]).all(axis=1)
    np.testing.assert_allclose(purged.splits.oos_sharpe_ratio[same],
                               result.splits.oos_sharpe_ratio[same], rtol=1e-12)


def test_plateau_selection_equals_neighbourhood_means(data, returns):
    from btcore.selection import neighbourhood
    _, sets, by_group = returns
    plateau = cpcv(GRID, data=data, n_groups=4, select="plateau", progress=False)
    shape = tuple(len(v) for v in GRID.values())
    for row in plateau.splits.itertuples(index=False):
        sharpe = np.array([_sharpe(np.concatenate([by_group[g][i] for g in row.train_groups]))
                           for i in range(len(sets))])
        mean, _, _ = neighbourhood(sharpe.reshape(shape), 1)
        best = int(np.argmax(mean.reshape(-1)))
        assert [getattr(row, p) for p in PARAMS] == list(sets[best].values())


def test_other_objectives_average_the_train_groups(data):
    by_vol = cpcv(GRID, data=data, n_groups=4, objective="annual_volatility", progress=False)
    tables = [run_sweep(GRID, data=data, start=group.start, end=group.end, progress=False)
              .table.sort_values(PARAMS, ignore_index=True)  # grid order: ascending values
              for _, group in by_vol.groups.iterrows()]
    for row in by_vol.splits.itertuples(index=False):
        vol = np.mean([tables[g]["annual_volatility"].to_numpy() for g in row.train_groups],
                      axis=0)
        ruined = np.any([tables[g]["ruined"].to_numpy() for g in row.train_groups], axis=0)
        vol[ruined] = np.inf
        best = tables[0].iloc[int(np.argmin(vol))]
        assert [getattr(row, p) for p in PARAMS] == [best[p] for p in PARAMS]
        assert row.is_score == pytest.approx(-vol.min(), rel=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_groups": 6, "n_test_groups": 6}, "must be below"),
    ({"n_groups": 3, "n_test_groups": 0}, "n_test_groups"),
    ({"n_groups": 300}, "at least 4"),
    ({"n_groups": 6, "purge": 200}, "purge"),
    ({"objective": "nope"}, "objective"),
    ({"objective": len}, "objective"),
    ({"select": "per_asset"}, "select"),
])
def test_bad_input_is_refused_before_work(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cpcv(GRID, data=data, progress=False, **kwargs)


def test_plateau_needs_a_product_grid(data):
    grid = [{"lookback_period": 5, "entry_threshold": 1.0, "exit_threshold": 0.0,
             "stop_loss_z": 3.0},
            {"lookback_period": 10, "entry_threshold": 2.0, "exit_threshold": 0.5,
             "stop_loss_z": 3.0}]
    with pytest.raises(ValueError, match="product grid"):
        cpcv(pd.DataFrame(grid), data=data, select="plateau", progress=False)


def test_cli_prints_and_saves_the_splits(tmp_path, capsys):
    from btcore.cli import main
    out = tmp_path / "splits.parquet"
    argv = ["cpcv", "--grid", "lookback_period=20,40", "entry_threshold=1.5,2.0",
            "--assets", "KO", "--n-groups", "5", "--n-test-groups", "2", "--purge", "3",
            "--embargo", "2", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    expected = cpcv({"lookback_period": [20, 40], "entry_threshold": [1.5, 2.0]},
                    assets="KO", n_groups=5, n_test_groups=2, purge=3, embargo=2,
                    progress=False)
    saved = pd.read_parquet(out)
    np.testing.assert_array_equal(saved["oos_sharpe_ratio"], expected.splits["oos_sharpe_ratio"])
    assert "10 splits, 4 paths" in printed and "pbo" in printed
    assert main(["cpcv", "--assets", "KO", "--n-groups", "4", "--n-test-groups", "4"]) == 2
    assert "--n-test-groups=4 must be below --n-groups=4" in capsys.readouterr().err


def test_several_assets_equal_one_asset_runs():
    data = MarketData.synthetic(n_assets=2, start="2017-01-01", end="2019-12-31", seed=3)
    both = cpcv(GRID, data=data, n_groups=4, n_test_groups=1, purge=2, progress=False)
    assert both.paths.shape == (1, 2) and len(both.splits) == 2 * 4
    for symbol in data.symbols:
        alone = cpcv(GRID, data=data, assets=[symbol], n_groups=4, n_test_groups=1, purge=2,
                     progress=False)
        mine = both.splits[both.splits.asset == symbol].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone.splits)
        assert both.paths[symbol].tolist() == alone.paths[symbol].tolist()
        assert both.pbo[symbol] == alone.pbo[symbol]


def test_threads_equal_serial(data):
    serial = cpcv(GRID, data=data, n_groups=5, n_test_groups=2, purge=2, embargo=1,
                  progress=False)
    threads = cpcv(GRID, data=data, n_groups=5, n_test_groups=2, purge=2, embargo=1,
                   executor="threads", batch_size=3, progress=False)
    pd.testing.assert_frame_equal(serial.splits, threads.splits)
    pd.testing.assert_frame_equal(serial.paths, threads.paths)
    pd.testing.assert_frame_equal(serial.chosen_counts, threads.chosen_counts)
    assert serial.stats["splits"] == 10 and serial.stats["paths"] == 4


def test_half_and_half_cpcv_is_cscv(returns):
    """With n_test_groups = n_groups / 2 the splits are CSCV's (train = the in-sample
    blocks of split n - 1 - c): same PBO and logits as btcore.stats on the groups'
    sums of the naive returns."""
    from btcore.stats import pbo_from_block_sums
    result, sets, by_group = returns
    sum_r = np.array([[by_group[g][i].sum() for g in range(4)] for i in range(len(sets))])
    sum_r2 = np.array([[(by_group[g][i] ** 2).sum() for g in range(4)]
                       for i in range(len(sets))])
    counts = np.array([len(by_group[g][0]) for g in range(4)])
    cscv = pbo_from_block_sums(sum_r, sum_r2, counts)
    np.testing.assert_allclose(result.splits["logit"], cscv.logits[::-1], rtol=1e-12)
    assert result.pbo.iloc[0] == cscv.pbo
