"""btcore.overfitting and SweepResult.certificate() against independent computations:
the full sets x sets correlation matrix, arch's SPA (the `stats` extra), the papers'
worked examples and the PSR identity behind MinTRL."""
import math

import numpy as np
import pytest

from btcore import run_sweep
from btcore.overfitting import (effective_trials, min_backtest_length,
                                min_track_record_length, spa_test)
from btcore.stats import probabilistic_sharpe_ratio


def li_ji_from_the_matrix(block_returns):
    """Li and Ji's M_eff from every eigenvalue of the sets x sets correlation matrix."""
    eigenvalues = np.clip(np.linalg.eigvalsh(np.corrcoef(block_returns)), 0.0, None)
    return max(1.0, float(np.sum((eigenvalues >= 1.0) + eigenvalues - np.floor(eigenvalues))))


def test_effective_trials_equals_the_full_matrix():
    rng = np.random.default_rng(5)
    factors = rng.standard_normal((3, 24))
    returns = rng.standard_normal((40, 3)) @ factors + 0.5 * rng.standard_normal((40, 24))
    assert effective_trials(returns) == pytest.approx(li_ji_from_the_matrix(returns),
                                                      rel=1e-9)


def test_effective_trials_of_copies_and_of_uncorrelated_sets():
    base = np.random.default_rng(1).standard_normal(16)
    assert effective_trials(np.tile(base, (50, 1)) * np.arange(1, 51)[:, None]) == \
        pytest.approx(1.0)
    # five mutually orthogonal zero-mean rows: correlation = identity, 5 trials
    hadamard = np.array([[1, 1], [1, -1]])
    for _ in range(2):
        hadamard = np.kron(hadamard, np.array([[1, 1], [1, -1]]))
    assert effective_trials(hadamard[1:6].astype(float)) == pytest.approx(5.0)
    # capped by the blocks: 200 independent sets over 12 blocks have 11 non-zero
    # eigenvalues, each adding at most 2 (1 + its fractional part)
    noise = np.random.default_rng(2).standard_normal((200, 12))
    assert effective_trials(noise) < 2 * 11


def test_min_backtest_length_matches_the_papers_example():
    # Bailey et al. (2014): with 5 years, no more than 45 trials for an annual Sharpe of 1
    assert min_backtest_length(45, 1.0) == pytest.approx(4.998, abs=5e-4)
    assert min_backtest_length(1, 1.0) == 0.0
    assert min_backtest_length(10, 0.0) == math.inf


@pytest.mark.parametrize("sharpe, skew, kurtosis", [(0.05, 0.0, 3.0), (0.1, -1.0, 6.0),
                                                    (0.02, 0.5, 4.0)])
def test_min_track_record_length_is_where_psr_reaches_the_confidence(sharpe, skew, kurtosis):
    length = min_track_record_length(sharpe, 0.0, skew, kurtosis, confidence=0.95)
    term = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe ** 2
    assert sharpe * math.sqrt(length - 1) / math.sqrt(term) == \
        pytest.approx(1.6448536269514722, rel=1e-12)
    assert probabilistic_sharpe_ratio(sharpe, 0.0, math.ceil(length), skew, kurtosis) >= 0.95
    assert probabilistic_sharpe_ratio(sharpe, 0.0, math.floor(length), skew, kurtosis) < 0.95
    assert min_track_record_length(-0.1) == math.inf


def test_spa_plain_means_equal_arch_within_bootstrap_noise():
    arch = pytest.importorskip("arch.bootstrap")
    rng = np.random.default_rng(11)
    reps = 4000
    for edge in (0.0, 0.05, 0.15):
        differences = rng.standard_normal((20, 150))
        differences[3] += edge
        mine = spa_test(differences, reps=reps, mean_block=5, seed=1, studentize=False)
        theirs = arch.SPA(np.zeros(150), -differences.T, block_size=5, reps=reps, seed=1)
        theirs.compute()
        for name in ("lower", "consistent", "upper"):
            p = theirs.pvalues[name]
            noise = 4 * math.sqrt(max(p * (1 - p), 0.01) * 2 / reps) + 0.01
            assert abs(mine[f"spa_{name}"] - p) <= noise, (edge, name, mine, p)
        assert mine["reality_check"] == mine["spa_upper"]


def test_spa_finds_a_real_edge_and_not_noise():
    rng = np.random.default_rng(3)
    edge = rng.standard_normal((30, 64))
    edge[0] += 0.8
    found = spa_test(edge, reps=500)
    assert found["reality_check"] < 0.01 and found["spa_consistent"] < 0.01
    p_values = [spa_test(np.random.default_rng(s).standard_normal((30, 64)), reps=300,
                         seed=s)["spa_consistent"] for s in range(12)]
    assert np.median(p_values) > 0.1
    below = spa_test(-np.abs(edge), reps=200)  # nothing beats the benchmark
    assert below["spa_consistent"] == 1.0


def test_spa_refuses_bad_input():
    with pytest.raises(ValueError, match="studentize"):
        spa_test(np.ones((2, 4)), studentize="yes")
    with pytest.raises(ValueError, match="n_obs >= 2"):
        spa_test(np.ones((3, 1)))


@pytest.fixture(scope="module")
def sweep(sample):
    return run_sweep({"lookback_period": [10, 20, 40], "entry_threshold": [1.0, 1.5, 2.0],
                      "exit_threshold": [0.0, 0.5], "stop_loss_z": [3.0]}, data=sample,
                     assets=["KO"], start="2012-01-01", blocks=8)


def test_certificate_agrees_with_the_sweeps_own_statistics(sweep, sample):
    certificate = sweep.certificate(data=sample, reps=200)
    assert certificate.value("trials") == 18
    assert certificate.value("dsr_all_trials") == pytest.approx(
        sweep.deflated_sharpe(data=sample), rel=1e-12)
    assert certificate.value("pbo") == sweep.pbo().pbo
    assert 1 <= certificate.value("effective_trials") <= 8
    annual = certificate.value("sharpe_ratio")
    assert annual == sweep.table["sharpe_ratio"].max()
    assert certificate.value("min_backtest_years_all_trials") == pytest.approx(
        min_backtest_length(18, annual))
    assert certificate.value("enough_history_backtest") in ("yes", "no")
    for name in ("reality_check_p", "spa_p", "reality_check_p_vs_hold", "spa_p_vs_hold"):
        assert 0.0 <= certificate.value(name) <= 1.0
    text = str(certificate)
    assert text.startswith("overfitting certificate") and "dsr_all_trials" in text
    plateau = sweep.certificate(data=sample, select="plateau", reps=50)
    assert plateau.value("row") == ", ".join(
        f"{n}={sweep.best(select='plateau')[n]}" for n in
        ("lookback_period", "entry_threshold", "exit_threshold", "stop_loss_z"))


def test_certificate_needs_blocks_and_an_asset(sample):
    plain = run_sweep({"lookback_period": [10, 20]}, data=sample, assets=["KO", "PG"],
                      start="2018-01-01")
    with pytest.raises(ValueError, match="blocks="):
        plain.certificate()
    two = run_sweep({"lookback_period": [10, 20]}, data=sample, assets=["KO", "PG"],
                    start="2018-01-01", blocks=4)
    with pytest.raises(ValueError, match="asset="):
        two.certificate()
    assert two.certificate(asset="PG", data=sample, reps=20).value("trials") == 2
