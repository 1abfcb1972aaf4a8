"""SweepResult.pbo() from the kernel's block sums == CSCV on the return matrix;
deflated_sharpe() fills its inputs from the sweep."""
import numpy as np
import pytest

from btcore import Grid, backtest, run_sweep
from btcore.stats import deflated_sharpe_ratio, probability_of_backtest_overfitting

GRID = {"lookback_period": [5, 10, 20], "entry_threshold": [0.5, 1.0, 2.0],
        "exit_threshold": [0.0, 0.5], "stop_loss_z": [3.0]}


@pytest.fixture(scope="module")
def sweep(sample):
    return run_sweep(GRID, data=sample, assets=["KO"], start="2012-01-01", blocks=8,
                     progress=False)


def _returns_matrix(sample):
    grid = Grid(GRID)
    columns = [backtest({n: grid.columns[n][i] for n in GRID}, data=sample, asset="KO",
                        start="2012-01-01").returns.to_numpy() for i in range(len(grid))]
    return np.column_stack(columns)


def test_pbo_from_block_sums_equals_the_matrix_version(sweep, sample):
    from_blocks = sweep.pbo()
    from_matrix = probability_of_backtest_overfitting(_returns_matrix(sample), n_blocks=8)
    assert from_blocks.pbo == from_matrix.pbo
    np.testing.assert_array_equal(from_blocks.logits, from_matrix.logits)


def test_block_sums_do_not_change_the_table(sweep, sample):
    plain = run_sweep(GRID, data=sample, assets=["KO"], start="2012-01-01", progress=False)
    # blocks= adds the stability columns (tests/test_stability.py), nothing else changes
    assert plain.table.equals(sweep.table.drop(columns=["stability_positive_share",
                                                        "worst_block_sharpe"]))
    with pytest.raises(ValueError, match="run the sweep with blocks="):
        plain.pbo()


def test_deflated_sharpe_uses_the_sweeps_trials(sweep, sample):
    table = sweep.table
    per_period = table["sharpe_ratio"].to_numpy() / np.sqrt(252)
    returns = sweep.backtest(0, data=sample).returns.to_numpy()
    centred = returns - returns.mean()
    skew = (centred ** 3).mean() / returns.std() ** 3
    kurtosis = (centred ** 4).mean() / returns.std() ** 4
    expected = deflated_sharpe_ratio(per_period.max(), per_period.std(ddof=1), len(table),
                                     len(returns), skew, kurtosis)
    assert sweep.deflated_sharpe(data=sample) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("blocks, error", [(3, ValueError), (0, ValueError), (2.0, TypeError)])
def test_bad_blocks(blocks, error, no_kernel_runs):
    with pytest.raises(error, match="blocks must be"):
        run_sweep(GRID, blocks=blocks)
