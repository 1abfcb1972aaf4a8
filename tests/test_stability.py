"""Per-block Sharpe ratios and the stability columns of a blocks= sweep, against each
row's replayed returns split by hand (calendar years or numpy.array_split)."""
import numpy as np
import pandas as pd
import pytest

from btcore import run_sweep
from btcore.stability import block_sharpe, stability_columns

GRID = {"fast_window": [5, 10, 20], "slow_window": [30, 60]}
START, END = "2015-06-01", "2020-12-31"


def sharpe_of(returns: np.ndarray) -> float:
    if len(returns) < 2:
        return np.nan
    std = returns.std(ddof=1)
    return 0.0 if std == 0 else returns.mean() / std * np.sqrt(252)


@pytest.fixture(scope="module")
def by_year(sample):
    return run_sweep(GRID, "ma_crossover", sample, assets=["KO", "MSFT"], start=START,
                     end=END, blocks="year")


def test_year_blocks_equal_each_rows_returns_split_by_calendar_year(by_year, sample):
    frame = by_year.block_sharpe()
    assert list(frame.columns) == [2015, 2016, 2017, 2018, 2019, 2020]
    for position in (0, 4, 11):
        row = by_year.table.iloc[position]
        returns = by_year.backtest(position, data=sample, asset=row["asset"]).returns
        expected = [sharpe_of(returns[returns.index.year == year].to_numpy())
                    for year in frame.columns]
        np.testing.assert_allclose(frame.iloc[position].to_numpy(), expected, rtol=1e-9,
                                   atol=1e-12)
        assert row["worst_block_sharpe"] == pytest.approx(min(expected), rel=1e-9)
        assert row["stability_positive_share"] == np.mean(np.array(expected) > 0)


def test_equal_blocks_follow_array_split(sample):
    res = run_sweep(GRID, "ma_crossover", sample, assets=["KO"], start=START, end=END,
                    blocks=4)
    returns = res.backtest(2, data=sample).returns.to_numpy()
    expected = [sharpe_of(part) for part in np.array_split(returns, 4)]
    np.testing.assert_allclose(res.block_sharpe().iloc[2].to_numpy(), expected, rtol=1e-9)
    assert list(res.block_sharpe().columns) == [0, 1, 2, 3]


def test_stability_columns_skip_empty_blocks():
    sharpe = np.array([[1.0, -2.0, np.nan, 0.5], [np.nan, np.nan, np.nan, np.nan]])
    columns = stability_columns(sharpe)
    np.testing.assert_array_equal(columns["stability_positive_share"], [2 / 3, np.nan])
    np.testing.assert_array_equal(columns["worst_block_sharpe"], [-2.0, np.nan])


def test_block_sharpe_of_a_flat_block_is_zero_and_of_one_bar_nan():
    sum_r = np.array([[0.003, 0.001, 0.002]])
    sum_r2 = np.array([[3e-6, 1e-6, 4e-6]])
    values = block_sharpe(sum_r, sum_r2, np.array([3, 1, 2]), 252)
    # block 0: three returns of 0.001 (flat); block 2: 0.0, 0.002 -> mean 0.001, std 0.0014
    assert values[0, 0] == 0.0 and np.isnan(values[0, 1])
    assert values[0, 2] == pytest.approx(0.001 / np.sqrt(2e-6) * np.sqrt(252))


def test_pbo_refuses_an_odd_number_of_years(by_year):
    by_year_one = run_sweep(GRID, "ma_crossover", by_year._data, assets=["KO"], start=START,
                            end="2019-12-31", blocks="year")
    with pytest.raises(ValueError, match="5 calendar years"):
        by_year_one.pbo()
    even = by_year.pbo(asset="KO")  # 6 years
    assert even.n_blocks == 6


def test_heatmap_of_a_stability_column(by_year):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure = by_year.plot_heatmap("fast_window", "slow_window", metric="worst_block_sharpe",
                                  agg="min")
    assert "worst_block_sharpe" in figure.axes[1].get_ylabel()
    plt.close(figure)


def test_bad_blocks_and_no_blocks(sample, no_kernel_runs):
    with pytest.raises(TypeError, match="'year'"):
        run_sweep(GRID, "ma_crossover", sample, blocks="month")


def test_block_sharpe_needs_blocks(sample):
    res = run_sweep({"fast_window": [5], "slow_window": [30]}, "ma_crossover", sample,
                    assets=["KO"], start=START, end=END)
    assert "worst_block_sharpe" not in res.table
    with pytest.raises(ValueError, match="blocks='year'"):
        res.block_sharpe()
    assert isinstance(res.table, pd.DataFrame)
