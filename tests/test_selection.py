"""Plateau selection (btcore.selection, SweepResult.best/plateau, walk_forward's
select="plateau", the heatmap's outline) against a from-scratch neighbourhood loop."""
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from btcore import run_sweep, walk_forward
from btcore.selection import neighbourhood, plateau_table


def reference(scores: np.ndarray, radius: int):
    """Mean, worst and size by visiting every cell's neighbours one by one."""
    finite = np.isfinite(scores)
    floor = scores[finite].min()
    filled = np.where(finite, scores, floor)
    mean, worst = np.empty(scores.shape), np.empty(scores.shape)
    size = np.empty(scores.shape, dtype=np.int64)
    for cell in itertools.product(*map(range, scores.shape)):
        values = [filled[other] for other in itertools.product(*map(range, scores.shape))
                  if all(abs(a - b) <= radius for a, b in zip(cell, other))]
        mean[cell], worst[cell], size[cell] = np.mean(values), min(values), len(values)
    return mean, worst, size


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       radius=st.integers(0, 2), seed=st.integers(0, 2 ** 32 - 1))
def test_neighbourhood_equals_the_loop(shape, radius, seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=shape)
    scores[rng.random(shape) < 0.2] = np.nan
    if np.isnan(scores).all():
        scores.flat[0] = 1.0
    mean, worst, size = neighbourhood(scores, radius)
    expected = reference(scores, radius)
    np.testing.assert_allclose(mean, expected[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(worst, expected[1])
    np.testing.assert_array_equal(size, expected[2])


def test_a_lone_peak_loses_to_a_plateau():
    #          a=1   a=2   a=3   a=4   a=5
    sharpe = [0.1, 3.0, 0.1, 1.0, 1.1,   # b=1
              0.1, 0.1, 0.1, 1.0, 1.0]   # b=2
    table = pd.DataFrame({"a": [1, 2, 3, 4, 5] * 2, "b": [1] * 5 + [2] * 5,
                          "sharpe_ratio": sharpe, "ruined": False})
    ranked = plateau_table(table.sample(frac=1, random_state=1), ["a", "b"])
    top = ranked.iloc[0]
    # centre (a=5, b=1): neighbours a 4..5 x b 1..2 = 1.0, 1.1, 1.0, 1.0
    assert (top["a"], top["b"], top["plateau_size"]) == (5, 1, 4)
    assert top["plateau_mean"] == pytest.approx(4.1 / 4) and top["plateau_worst"] == 1.0
    # the peak's neighbourhood: 0.1, 3.0, 0.1, 0.1 x3 -> mean 3.5 / 6
    peak = ranked[(ranked["a"] == 2) & (ranked["b"] == 1)].iloc[0]
    assert peak["plateau_mean"] == pytest.approx(3.5 / 6)


def test_ruined_neighbours_count_as_worst_and_are_never_chosen():
    table = pd.DataFrame({"a": [1, 2, 3], "sharpe_ratio": [2.0, 5.0, 1.0],
                          "ruined": [False, True, False]})
    ranked = plateau_table(table, ["a"])
    # the ruined 5.0 counts as the worst (1.0): a=1 -> (2 + 1) / 2, a=3 -> (1 + 1) / 2
    assert ranked["a"].tolist()[:2] == [1, 3] and ranked["a"].iloc[-1] == 2
    assert ranked.iloc[0]["plateau_mean"] == 1.5 and ranked.iloc[0]["plateau_worst"] == 1.0
    # include_ruined: values as they are, a=1 -> (2 + 5) / 2 beats a=2 -> 8 / 3
    top = plateau_table(table, ["a"], include_ruined=True).iloc[0]
    assert top["a"] == 1 and top["plateau_mean"] == 3.5


def test_lower_is_better_metric_picks_the_calmest_plateau():
    table = pd.DataFrame({"a": [1, 2, 3, 4], "annual_volatility": [0.3, 0.1, 0.2, 0.05],
                          "ruined": False})
    top = plateau_table(table, ["a"], "annual_volatility").iloc[0]
    # a=4: (0.2 + 0.05) / 2 = 0.125 beats a=3: 0.35 / 3, a=2: 0.2; worst = the highest
    assert top["a"] == 3 and top["plateau_worst"] == 0.2
    assert top["plateau_mean"] == pytest.approx(0.35 / 3)


def test_a_non_product_table_is_refused():
    table = pd.DataFrame({"a": [1, 2, 2], "b": [1, 1, 2], "sharpe_ratio": [1.0, 2.0, 3.0],
                          "ruined": False})
    with pytest.raises(ValueError, match="full product grid.*3 rows hold 3 of the 4"):
        plateau_table(table, ["a", "b"])
    with pytest.raises(ValueError, match="radius"):
        plateau_table(table, ["a"], radius=-1)


@pytest.fixture(scope="module")
def sweep(small_data):
    return run_sweep({"fast_window": [3, 5, 8, 13], "slow_window": [20, 30, 40]},
                     "ma_crossover", small_data, assets=["A0"] if "A0" in
                     small_data.symbols else small_data.symbols[:1])


def test_sweep_best_plateau_matches_the_reference(sweep):
    table = sweep.table
    grid = table.pivot(index="fast_window", columns="slow_window", values="sharpe_ratio")
    scores = np.where(table.pivot(index="fast_window", columns="slow_window",
                                  values="ruined").to_numpy(), np.nan, grid.to_numpy())
    mean, worst, _ = reference(scores, 1)
    mean = np.where(np.isnan(scores), -np.inf, mean)
    i, j = np.unravel_index(np.argmax(mean), mean.shape)
    chosen = sweep.best(select="plateau")
    assert (chosen["fast_window"], chosen["slow_window"]) == (grid.index[i], grid.columns[j])
    assert chosen["plateau_mean"] == pytest.approx(mean[i, j], rel=1e-12)
    assert sweep.best()["sharpe_ratio"] == table["sharpe_ratio"].max()
    with pytest.raises(ValueError, match="select must be"):
        sweep.best(select="argmax")


def test_plateau_needs_every_row(small_data):
    kept = run_sweep({"fast_window": [3, 5, 8], "slow_window": [20, 30]}, "ma_crossover",
                     small_data, assets=small_data.symbols[:1], keep=2)
    with pytest.raises(ValueError, match="keep="):
        kept.best(select="plateau")
    table = run_sweep([{"fast_window": 3, "slow_window": 20},
                       {"fast_window": 5, "slow_window": 30}], "ma_crossover", small_data,
                      assets=small_data.symbols[:1])
    with pytest.raises(ValueError, match="full product grid"):
        table.plateau()


def test_walk_forward_plateau_chooses_each_folds_in_sample_plateau(small_data):
    grid = {"fast_window": [3, 5, 8], "slow_window": [15, 25, 40]}
    asset = small_data.symbols[:1]
    wf = walk_forward(grid, "ma_crossover", small_data, n_splits=2, select="plateau",
                      assets=asset)
    assert wf.settings["select"] == "plateau" and wf.settings["radius"] == 1
    for _, fold in wf.folds.iterrows():
        inside = run_sweep(grid, "ma_crossover", small_data, assets=asset,
                           start=fold["is_start"], end=fold["is_end"])
        expected = inside.best(select="plateau")
        assert (fold["fast_window"], fold["slow_window"]) == \
            (expected["fast_window"], expected["slow_window"])
        assert fold["is_sharpe_ratio"] == expected["sharpe_ratio"]


def test_walk_forward_plateau_refuses_a_table_grid_before_work(small_data, no_kernel_runs):
    with pytest.raises(ValueError, match="select='plateau' needs a product grid"):
        walk_forward([{"fast_window": 3, "slow_window": 20},
                      {"fast_window": 5, "slow_window": 30}], "ma_crossover", small_data,
                     n_splits=2, select="plateau", assets=small_data.symbols[:1])
    with pytest.raises(ValueError, match="select must be"):
        walk_forward({"fast_window": [3]}, "ma_crossover", small_data, select="best")


def test_heatmap_outlines_the_plateau(sweep):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.patches import Rectangle
    figure = sweep.plot_heatmap("slow_window", "fast_window", plateau=1)
    frames = [p for p in figure.axes[0].patches if isinstance(p, Rectangle)]
    chosen = sweep.best(select="plateau")
    column = [20, 30, 40].index(chosen["slow_window"])
    row = [3, 5, 8, 13].index(chosen["fast_window"])
    outline, centre = frames
    assert centre.get_xy() == pytest.approx((column - 0.45, row - 0.45))
    assert outline.get_x() == max(column - 1, 0) - 0.5
    assert outline.get_width() == min(column + 1, 2) - max(column - 1, 0) + 1
    import matplotlib.pyplot as plt
    plt.close(figure)
