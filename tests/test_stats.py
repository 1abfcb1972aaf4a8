"""btcore.stats: PSR and DSR against the paper and hand computations; PBO by CSCV.

Independent references used here (nothing below calls NormalDist):

- the normal CDF is ``0.5 * erfc(-x / sqrt(2))`` from :mod:`math`; its inverse is found
  by bisection on ``erfc``;
- the DSR paper's numerical example: Bailey, D. H. and López de Prado, M. (2014), "The
  Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and
  Non-Normality", Journal of Portfolio Management 40(5), 94-107, section "A numerical
  example": N = 100 independent trials, T = 1,250 daily observations, annualised Sharpe
  2.5, annualised variance of the trials' Sharpe ratios 1/2, skewness -3, kurtosis 10
  (250 trading days a year) give E[max SR] = SR0 = 0.1132 per day and DSR = 0.9004.
  The same figures are the "golden fixture" of independent reimplementations (e.g.
  "paper example (N=100, V=1/(2·250), T=1250, γ3=-3, γ4=10, SR=2.5/√250) gives
  SR0 = 0.1132, DSR = 0.9004");
- CSCV (Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest
  Overfitting", J. Computational Finance 2017) is re-implemented below the plain way:
  the bars of each split are gathered from the matrix, every set's Sharpe is computed
  from them, and the in-sample winner is ranked out of sample.
"""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from btcore import stats
from btcore.stats import (PBOResult, block_sums, deflated_sharpe_ratio, expected_max_sharpe,
                          pbo_from_block_sums, probabilistic_sharpe_ratio,
                          probability_of_backtest_overfitting)

EULER_GAMMA = 0.57721566490153286  # Euler–Mascheroni constant, written out independently


# --------------------------------------------------------------------------- references
def normal_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_upper_quantile(p):
    """z with P(Z > z) = p for 0 < p < 1/2, by bisection on erfc (accurate in the tail)."""
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(mid / math.sqrt(2.0)) > p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def hand_sr0(sharpe_std, n_trials):
    """The DSR paper's E[max SR]: sqrt(V)·((1−γ)·Z⁻¹(1 − 1/N) + γ·Z⁻¹(1 − 1/(N·e)))."""
    return sharpe_std * ((1.0 - EULER_GAMMA) * normal_upper_quantile(1.0 / n_trials)
                         + EULER_GAMMA * normal_upper_quantile(1.0 / (n_trials * math.e)))


def hand_psr(sr, benchmark, n_obs, skew, kurtosis):
    z = ((sr - benchmark) * math.sqrt(n_obs - 1)
         / math.sqrt(1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr))
    return normal_cdf(z)


def sharpe_from_sums(x):
    """Per-period Sharpe from Σr and Σr² (0 for zero variance).

    The same floating-point expression as stats.py (mean = Σr/n, numerator =
    Σr² − Σr·mean, std = sqrt(numerator/(n − 1))), so that sets whose Sharpe ratios are
    mathematically equal but not built from the same sums (a set and 3 × that set) round
    alike and the exact comparison of ranks is meaningful.
    """
    n = len(x)
    total, squares = math.fsum(x), math.fsum(x * x)
    mean = total / n
    numerator = squares - total * mean
    return 0.0 if numerator <= 0.0 else mean / math.sqrt(numerator / (n - 1))


def sharpe_numpy(x):
    std = np.std(x, ddof=1)
    return 0.0 if std == 0.0 else float(np.mean(x) / std)


def reference_cscv(returns, n_blocks, sharpe):
    """CSCV on the bars × sets matrix, straight from the paper (one split at a time)."""
    n_bars, n_sets = returns.shape
    blocks = np.array_split(np.arange(n_bars), n_blocks)
    best, ranks = [], []
    for is_blocks in itertools.combinations(range(n_blocks), n_blocks // 2):
        oos_blocks = [b for b in range(n_blocks) if b not in is_blocks]
        is_rows = np.concatenate([blocks[b] for b in is_blocks])
        oos_rows = np.concatenate([blocks[b] for b in oos_blocks])
        is_sr = [sharpe(returns[is_rows, j]) for j in range(n_sets)]
        oos_sr = [sharpe(returns[oos_rows, j]) for j in range(n_sets)]
        n_star = max(range(n_sets), key=lambda j: (is_sr[j], -j))  # first best on ties
        chosen = oos_sr[n_star]
        below = sum(s < chosen for s in oos_sr)
        tied = sum(s == chosen for s in oos_sr)  # includes n_star itself
        best.append(n_star)
        ranks.append(below + (tied + 1) / 2.0)  # average rank of the tie group, 1 = worst
    ranks = np.array(ranks)
    omega = ranks / (n_sets + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return np.array(best), ranks, logits, float(np.mean(logits <= 0.0))


def streamed_block_sums(returns, n_blocks):
    """Σr and Σr² per set and block accumulated bar by bar, as a simulation kernel would."""
    n_bars, n_sets = returns.shape
    sizes = [len(b) for b in np.array_split(np.arange(n_bars), n_blocks)]
    block_of_bar = np.repeat(np.arange(n_blocks), sizes)
    sum_r = [[0.0] * n_blocks for _ in range(n_sets)]
    sum_r2 = [[0.0] * n_blocks for _ in range(n_sets)]
    for t in range(n_bars):
        b = block_of_bar[t]
        for j in range(n_sets):
            r = float(returns[t, j])
            sum_r[j][b] = sum_r[j][b] + r
            sum_r2[j][b] = sum_r2[j][b] + r * r
    return np.array(sum_r), np.array(sum_r2), np.array(sizes, dtype=np.int64)


def assert_same_result(a, b):
    assert a.pbo == b.pbo
    assert (a.n_splits, a.n_sets, a.n_blocks) == (b.n_splits, b.n_sets, b.n_blocks)
    np.testing.assert_array_equal(a.is_best, b.is_best)
    np.testing.assert_array_equal(a.oos_rank, b.oos_rank)
    np.testing.assert_array_equal(a.logits, b.logits)


# --------------------------------------------------------------------------- DSR / PSR
def test_dsr_reproduces_the_papers_numerical_example():
    periods = 250
    sharpe = 2.5 / math.sqrt(periods)          # annualised 2.5 -> per day
    sharpe_std = math.sqrt(0.5 / periods)      # annualised variance 1/2 -> per day
    sr0 = expected_max_sharpe(sharpe_std, 100)
    dsr = deflated_sharpe_ratio(sharpe, sharpe_std, 100, 1250, -3, 10)
    assert round(sr0, 4) == 0.1132
    assert round(dsr, 4) == 0.9004
    # and to full precision against the formulas evaluated with the math module only
    assert sr0 == pytest.approx(hand_sr0(sharpe_std, 100), rel=1e-12)
    assert dsr == pytest.approx(hand_psr(sharpe, hand_sr0(sharpe_std, 100), 1250, -3, 10),
                                rel=1e-12)


@pytest.mark.parametrize("sharpe_std, n_trials", [(1.0, 2), (0.05, 10), (0.3, 1000),
                                                  (1.0, 10**6), (0.01, 10**12)])
def test_expected_max_sharpe_matches_hand_computation(sharpe_std, n_trials):
    assert expected_max_sharpe(sharpe_std, n_trials) == pytest.approx(
        hand_sr0(sharpe_std, n_trials), rel=1e-12)


def test_expected_max_sharpe_edge_cases():
    assert expected_max_sharpe(0.7, 1) == 0.0       # one trial: nothing was selected
    assert expected_max_sharpe(0.0, 500) == 0.0     # no spread among the trials
    assert expected_max_sharpe(2.0, 37) == pytest.approx(2.0 * expected_max_sharpe(1.0, 37))
    huge = expected_max_sharpe(1.0, 10**20)         # 1 - 1/N == 1.0 in float64
    assert math.isfinite(huge) and huge == pytest.approx(hand_sr0(1.0, 10**20), rel=1e-12)


@pytest.mark.parametrize("n_trials", [100, 1000, 10000])
def test_expected_max_sharpe_approximates_the_expected_maximum_of_normals(n_trials):
    """The False Strategy Theorem's formula vs E[max of N standard normals] by quadrature.

    E[max] = ∫ x·N·φ(x)·Φ(x)^(N−1) dx. The approximation is slightly above the exact value,
    within 1% for N >= 100 (swapping γ and 1 − γ would land below it).
    """
    h = 1e-3
    xs = np.arange(-12.0, 12.0, h)
    pdf = np.exp(-0.5 * xs * xs) / math.sqrt(2.0 * math.pi)
    cdf = np.array([normal_cdf(x) for x in xs])
    exact = float(np.sum(xs * n_trials * pdf * cdf ** (n_trials - 1)) * h)
    error = expected_max_sharpe(1.0, n_trials) / exact - 1.0
    assert 0.0 < error < 0.01


def test_dsr_decreases_with_the_number_of_trials():
    trials = [1, 2, 3, 5, 10, 30, 100, 1000, 10**4, 10**6, 10**9]
    dsr = [deflated_sharpe_ratio(0.1, 0.03, n, 1000, -0.5, 5.0) for n in trials]
    assert all(0.0 < d < 1.0 for d in dsr)
    assert all(a > b for a, b in zip(dsr, dsr[1:])), dsr
    sr0 = [expected_max_sharpe(0.03, n) for n in trials]
    assert sr0[0] == 0.0 and all(a < b for a, b in zip(sr0, sr0[1:]))
    # without selection the DSR is the PSR against 0
    assert dsr[0] == probabilistic_sharpe_ratio(0.1, 0.0, 1000, -0.5, 5.0)
    assert deflated_sharpe_ratio(0.1, 0.0, 50, 1000) == probabilistic_sharpe_ratio(0.1, 0.0, 1000)


@pytest.mark.parametrize("sharpe, benchmark, n_obs, skew, kurtosis", [
    (0.08, 0.02, 500, -0.7, 6.5),
    (-0.05, 0.0, 60, 0.3, 2.2),
    (0.2, 0.25, 2, 0.0, 3.0),
    (0.15, 0.1132, 1250, -3.0, 10.0),
    (0.01, 0.0, 100000, 1.5, 30.0),
])
def test_psr_matches_hand_computation(sharpe, benchmark, n_obs, skew, kurtosis):
    assert probabilistic_sharpe_ratio(sharpe, benchmark, n_obs, skew, kurtosis) == \
        pytest.approx(hand_psr(sharpe, benchmark, n_obs, skew, kurtosis), rel=1e-12,
                      abs=1e-300)


def test_psr_normal_returns_and_basic_properties():
    # normal returns (skew 0, kurtosis 3): variance term 1 + SR²/2 (Lo 2002)
    z = (0.1 - 0.04) * math.sqrt(251) / math.sqrt(1.0 + 0.1 ** 2 / 2.0)
    assert probabilistic_sharpe_ratio(0.1, 0.04, n_obs=252) == pytest.approx(normal_cdf(z),
                                                                             rel=1e-12)
    assert probabilistic_sharpe_ratio(0.1, 0.1, 252, -2.0, 12.0) == 0.5
    # negative skew and fat tails widen the Sharpe estimate's error: lower confidence
    assert (probabilistic_sharpe_ratio(0.1, 0.0, 252, -2.0, 12.0)
            < probabilistic_sharpe_ratio(0.1, 0.0, 252))
    # a higher benchmark, a shorter record: lower
    assert (probabilistic_sharpe_ratio(0.1, 0.05, 252)
            < probabilistic_sharpe_ratio(0.1, 0.0, 252))
    assert (probabilistic_sharpe_ratio(0.1, 0.0, 60)
            < probabilistic_sharpe_ratio(0.1, 0.0, 252))


def test_psr_is_calibrated_on_skewed_fat_tailed_returns():
    """With the true Sharpe as benchmark, PSR of simulated records is ~ Uniform(0, 1).

    Returns are 0.3 + (Exp(1) − 1): per-period Sharpe 0.3, skewness 2, kurtosis 9 (all
    moments finite). The skew/kurtosis terms matter here: the normal-returns formula puts
    only ~2 % of records below 0.05 instead of 5 %, so this test fails without them or
    with excess kurtosis in place of kurtosis. Tolerance 0.025 is about 5 binomial
    standard errors (3,000 records) plus the formula's asymptotic error at T = 400.
    """
    rng = np.random.default_rng(20240611)
    n_obs, n_records, true_sharpe = 400, 3000, 0.3
    r = true_sharpe + rng.exponential(size=(n_records, n_obs)) - 1.0
    mean = r.mean(axis=1)
    sharpe = mean / r.std(axis=1, ddof=1)
    d = r - mean[:, None]
    m2 = (d * d).mean(axis=1)
    skew = (d ** 3).mean(axis=1) / m2 ** 1.5
    kurtosis = (d ** 4).mean(axis=1) / (m2 * m2)
    psr = np.array([probabilistic_sharpe_ratio(float(s), true_sharpe, n_obs, float(g3),
                                               float(g4))
                    for s, g3, g4 in zip(sharpe, skew, kurtosis)])
    for q in (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95):
        assert abs(np.mean(psr < q) - q) < 0.025, (q, np.mean(psr < q))


def test_psr_accepts_numpy_scalars():
    expected = probabilistic_sharpe_ratio(0.1, 0.0, 252, -1.0, 6.0)
    assert probabilistic_sharpe_ratio(np.float64(0.1), np.float32(0.0), np.int64(252),
                                      np.float64(-1.0), np.int32(6)) == expected


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(observed_sharpe=0.1), TypeError, "n_obs"),
    (dict(observed_sharpe=0.1, n_obs=1), ValueError, "n_obs must be >= 2"),
    (dict(observed_sharpe=0.1, n_obs=100.0), TypeError, "n_obs must be an integer"),
    (dict(observed_sharpe=0.1, n_obs=True), TypeError, "n_obs must be an integer"),
    (dict(observed_sharpe=math.nan, n_obs=100), ValueError, "observed_sharpe must be finite"),
    (dict(observed_sharpe=math.inf, n_obs=100), ValueError, "observed_sharpe must be finite"),
    (dict(observed_sharpe="0.1", n_obs=100), TypeError, "observed_sharpe must be a real"),
    (dict(observed_sharpe=0.1, benchmark_sharpe=None, n_obs=100), TypeError,
     "benchmark_sharpe"),
    (dict(observed_sharpe=0.1, n_obs=100, skew=math.nan), ValueError, "skew must be finite"),
    (dict(observed_sharpe=0.1, n_obs=100, kurtosis=0.0), ValueError, "non-excess"),
    (dict(observed_sharpe=0.5, n_obs=100, skew=3.0, kurtosis=2.0), ValueError, "impossible"),
])
def test_psr_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        probabilistic_sharpe_ratio(**kwargs)


@pytest.mark.parametrize("args, error, match", [
    ((0.1, -0.01, 10, 252), ValueError, "sharpe_std must be >= 0"),
    ((0.1, math.nan, 10, 252), ValueError, "sharpe_std must be finite"),
    ((0.1, 0.03, 0, 252), ValueError, "n_trials must be >= 1"),
    ((0.1, 0.03, 10.0, 252), TypeError, "n_trials must be an integer"),
    ((0.1, 0.03, 10, 1), ValueError, "n_obs must be >= 2"),
    ((0.1, 0.03, 10, 252, 0.0, -0.5), ValueError, "non-excess"),
])
def test_dsr_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        deflated_sharpe_ratio(*args)


# --------------------------------------------------------------------------- PBO
def test_pbo_hand_example_with_zero_variance_set():
    """Two blocks of two bars, three sets; worked out by hand.

    Set 0 earns a constant 1 % a bar: zero variance, Sharpe 0 by convention (not +inf,
    though 0.01 is not exact in binary and its variance from sums is rounding noise).
    Set 1: block 0 (0.01, 0.03) SR √2, block 1 (−0.01, −0.03) SR −√2.
    Set 2: block 0 (0.01, 0.05) SR 0.03/0.02√2 = 1.06, block 1 (0.0, 0.02) SR 1/√2.
    Split 0 (IS = block 0): best set 1, OOS Sharpes (0, −√2, 0.71): rank 1, λ = log(1/3).
    Split 1 (IS = block 1): best set 2, OOS Sharpes (0, √2, 1.06): rank 2 of 3, ω = 1/2,
    λ = 0, which counts as overfit (λ <= 0). PBO = 1.
    """
    returns = np.array([[0.01, 0.01, 0.01],
                        [0.01, 0.03, 0.05],
                        [0.01, -0.01, 0.00],
                        [0.01, -0.03, 0.02]])
    result = probability_of_backtest_overfitting(returns, n_blocks=2)
    assert isinstance(result, PBOResult)
    assert result.n_splits == 2 and result.n_sets == 3 and result.n_blocks == 2
    np.testing.assert_array_equal(result.is_best, [1, 2])
    np.testing.assert_array_equal(result.oos_rank, [1.0, 2.0])
    np.testing.assert_allclose(result.logits, [math.log(1.0 / 3.0), 0.0], rtol=1e-15,
                               atol=1e-15)
    assert result.logits[1] == 0.0
    assert result.pbo == 1.0


def test_pbo_constant_set_has_sharpe_zero_despite_rounding_noise():
    """A constant 10 % a bar has zero variance, but Σr² − (Σr)²/n from float sums is not 0
    (checked below): without the zero-variance rule its Sharpe would be ~10⁷ and it
    would win every split instead of the set with a genuine per-bar Sharpe of ~5."""
    rng = np.random.default_rng(9)
    returns = np.column_stack([np.full(40, 0.1), 0.05 + 0.01 * rng.standard_normal(40)])
    sum_r, sum_r2, counts = block_sums(returns, n_blocks=4)
    noise = [sum_r2[0, list(c)].sum() - sum_r[0, list(c)].sum() ** 2 / counts[list(c)].sum()
             for c in itertools.combinations(range(4), 2)]
    assert any(v != 0.0 for v in noise)
    result = pbo_from_block_sums(sum_r, sum_r2, counts)
    np.testing.assert_array_equal(result.is_best, np.ones(6))
    np.testing.assert_array_equal(result.oos_rank, np.full(6, 2.0))
    assert result.pbo == 0.0


def test_pbo_ties_get_average_ranks():
    """Identical sets tie everywhere: the first is chosen, its rank is the tie average."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((40, 1))
    returns = np.hstack([base, base, base, rng.standard_normal((40, 1)) - 5.0])
    result = probability_of_backtest_overfitting(returns, n_blocks=4)
    # set 3 has a hugely negative mean, so it never wins and is always last
    assert (result.is_best == 0).all()
    np.testing.assert_array_equal(result.oos_rank, np.full(6, 3.0))  # ranks 2, 3, 4 tied
    assert result.pbo == 0.0  # ω = 3/5 > 1/2


def test_pbo_near_half_for_pure_noise():
    """IS and OOS halves are independent, so the IS winner's OOS rank is uniform on 1..N.

    With N = 50 (even), P(rank <= N/2) = 1/2 exactly. One matrix's PBO has a standard
    deviation of about 0.18 (its 70 splits are strongly dependent), so the mean over 200
    independent matrices has a standard error of ~0.013; the tolerance is 0.06.
    """
    rng = np.random.default_rng(987654321)
    results = [probability_of_backtest_overfitting(rng.standard_normal((200, 50)), n_blocks=8)
               for _ in range(200)]
    mean_pbo = np.mean([r.pbo for r in results])
    assert abs(mean_pbo - 0.5) < 0.06, mean_pbo
    omega = np.concatenate([r.oos_rank for r in results]) / 51.0
    assert abs(omega.mean() - 0.5) < 0.03  # uniform ranks: E[ω] = 1/2
    assert 0.2 < np.mean(omega <= 0.25) < 0.3  # and not piled up in the middle


def test_pbo_near_zero_when_one_set_has_a_real_edge():
    """One set with per-bar Sharpe ~0.3 among 49 noise sets: it wins IS and stays on top."""
    rng = np.random.default_rng(4242)
    returns = rng.standard_normal((800, 50))
    returns[:, 17] += 0.3
    result = probability_of_backtest_overfitting(returns, n_blocks=16)
    assert result.n_splits == math.comb(16, 8) == 12870
    assert result.pbo < 0.05
    assert np.mean(result.is_best == 17) > 0.95
    assert np.median(result.logits) > 2.0


def test_pbo_near_one_when_in_sample_winners_lose_out_of_sample():
    """Every set is a reordering of the same returns: total mean and variance are equal,
    so whatever set does best in sample must do worst out of sample."""
    rng = np.random.default_rng(77)
    values = rng.standard_normal(400)
    returns = np.column_stack([rng.permutation(values) for _ in range(20)])
    assert probability_of_backtest_overfitting(returns, n_blocks=10).pbo > 0.9


def test_pbo_result_fields():
    rng = np.random.default_rng(3)
    result = probability_of_backtest_overfitting(rng.standard_normal((123, 7)), n_blocks=6)
    assert result.n_splits == math.comb(6, 3) == 20
    assert result.logits.shape == result.oos_rank.shape == result.is_best.shape == (20,)
    assert result.logits.dtype == np.float64 and result.is_best.dtype == np.int64
    assert ((1.0 <= result.oos_rank) & (result.oos_rank <= 7.0)).all()
    assert ((0 <= result.is_best) & (result.is_best < 7)).all()
    np.testing.assert_allclose(result.logits,
                               np.log(result.oos_rank / (8.0 - result.oos_rank)), rtol=1e-14)
    assert result.pbo == np.mean(result.logits <= 0.0)
    assert "pbo=" in repr(result) and "n_splits=20" in repr(result)
    for array in (result.logits, result.is_best, result.oos_rank):
        with pytest.raises(ValueError):
            array[0] = 0


def test_block_sums_are_sequential_per_block_sums():
    rng = np.random.default_rng(11)
    returns = rng.standard_normal((37, 5)) * 10.0 ** rng.integers(-6, 3, size=(37, 5))
    sum_r, sum_r2, counts = block_sums(returns, n_blocks=4)
    expected = streamed_block_sums(returns, 4)
    np.testing.assert_array_equal(counts, [10, 9, 9, 9])  # numpy.array_split sizes
    np.testing.assert_array_equal(sum_r, expected[0])
    np.testing.assert_array_equal(sum_r2, expected[1])
    np.testing.assert_array_equal(counts, expected[2])
    assert sum_r.shape == sum_r2.shape == (5, 4) and counts.dtype == np.int64


def test_matrix_inputs_agree():
    rng = np.random.default_rng(8)
    returns = rng.standard_normal((64, 4))
    result = probability_of_backtest_overfitting(returns, n_blocks=8)
    assert_same_result(result, pbo_from_block_sums(*block_sums(returns, n_blocks=8)))
    frame = pd.DataFrame(returns, columns=list("abcd"),
                         index=pd.date_range("2020-01-01", periods=64))
    assert_same_result(result, probability_of_backtest_overfitting(frame, n_blocks=8))
    assert_same_result(result, probability_of_backtest_overfitting(returns.tolist(), n_blocks=8))
    integers = rng.integers(-3, 4, size=(64, 4))
    assert_same_result(probability_of_backtest_overfitting(integers, 8),
                       probability_of_backtest_overfitting(integers.astype(float), 8))
    assert_same_result(probability_of_backtest_overfitting(frame.astype("Float64"), 8), result)


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_pbo_does_not_depend_on_chunking(monkeypatch, chunk):
    rng = np.random.default_rng(21)
    returns = rng.standard_normal((100, 6))
    returns[:, 2] = returns[:, 1]  # exact ties too
    expected = probability_of_backtest_overfitting(returns, n_blocks=10)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", chunk)
    assert_same_result(probability_of_backtest_overfitting(returns, n_blocks=10), expected)


@hs.composite
def small_integer_matrices(draw):
    """Small bars × sets matrices of integers: every sum is exact in float64, and ties
    (constant sets, repeated sets, equal Sharpe ratios) are frequent."""
    n_blocks = draw(hs.sampled_from([2, 4, 6]))
    n_sets = draw(hs.integers(2, 6))
    n_bars = draw(hs.integers(2 * n_blocks, 2 * n_blocks + 9))
    cells = draw(hs.lists(hs.integers(-4, 4), min_size=n_bars * n_sets,
                          max_size=n_bars * n_sets))
    return np.array(cells, dtype=np.float64).reshape(n_bars, n_sets), n_blocks


@given(small_integer_matrices())
def test_block_version_equals_matrix_version_exactly(case):
    """Same splits (lexicographic), same IS winners, same OOS ranks, same logits, same PBO
    as CSCV recomputed split by split from the bars (the Sharpe of gathered bars)."""
    returns, n_blocks = case
    result = pbo_from_block_sums(*block_sums(returns, n_blocks))
    best, ranks, logits, pbo = reference_cscv(returns, n_blocks, sharpe_from_sums)
    assert result.n_splits == math.comb(n_blocks, n_blocks // 2)
    np.testing.assert_array_equal(result.is_best, best)
    np.testing.assert_array_equal(result.oos_rank, ranks)
    np.testing.assert_array_equal(result.logits, logits)
    assert result.pbo == pbo


@given(seed=hs.integers(0, 2**32 - 1), n_blocks=hs.sampled_from([2, 4, 6, 8]),
       n_sets=hs.integers(2, 8), extra_bars=hs.integers(0, 11))
def test_block_version_equals_numpy_sharpe_cscv(seed, n_blocks, n_sets, extra_bars):
    """Continuous returns, Sharpe as numpy's mean / std(ddof=1) of the gathered bars."""
    rng = np.random.default_rng(seed)
    returns = rng.standard_normal((2 * n_blocks + extra_bars, n_sets)) * 0.01 + 0.001
    result = probability_of_backtest_overfitting(returns, n_blocks)
    best, ranks, logits, pbo = reference_cscv(returns, n_blocks, sharpe_numpy)
    np.testing.assert_array_equal(result.is_best, best)
    np.testing.assert_array_equal(result.oos_rank, ranks)
    np.testing.assert_array_equal(result.logits, logits)
    assert result.pbo == pbo


@given(hs.sampled_from([2, 4, 6]).flatmap(lambda n_blocks: hs.tuples(
    hs.just(n_blocks),
    hs.lists(hs.lists(hs.floats(-1e6, 1e6, allow_subnormal=False), min_size=3, max_size=3),
             min_size=2 * n_blocks, max_size=2 * n_blocks + 7))))
def test_streamed_block_sums_give_the_matrix_result_bit_for_bit(case):
    """Sums accumulated bar by bar (a kernel's view) give exactly the matrix's result,
    for arbitrary floats (cancellation, huge and tiny values, repeats)."""
    n_blocks, rows = case
    returns = np.array(rows)
    assert_same_result(pbo_from_block_sums(*streamed_block_sums(returns, n_blocks)),
                       probability_of_backtest_overfitting(returns, n_blocks))


GOOD = np.random.default_rng(0).standard_normal((40, 3))


def _with(index, value):
    bad = GOOD.copy()
    bad[index] = value
    return bad


@pytest.mark.parametrize("returns, n_blocks, error, match", [
    (GOOD, 5, ValueError, "n_blocks must be even"),
    (GOOD, 0, ValueError, "n_blocks must be >= 2"),
    (GOOD, 16.0, TypeError, "n_blocks must be an integer"),
    (GOOD, True, TypeError, "n_blocks must be an integer"),
    (GOOD[:6], 8, ValueError, "exceeds the number of bars"),
    (GOOD[:10], 8, ValueError, "fewer than 2 bars.*at most 4 blocks"),
    (GOOD[:3], 2, ValueError, "at least 4 bars"),
    (_with((3, 1), np.nan), 4, ValueError, "first at bar 3, set 1"),
    (_with((7, 2), -np.inf), 4, ValueError, "NaN/inf"),
    (pd.DataFrame({"a": [0.1, None, 0.2, 0.3], "b": [0.0, 0.1, 0.2, 0.4]}, dtype="Float64"),
     2, ValueError, "first at bar 1, set 0"),
    (np.full((8, 2), 1e200), 2, ValueError, "too large"),
    (GOOD[:, 0], 4, ValueError, "2-D"),
    (GOOD[None], 4, ValueError, "2-D"),
    (GOOD[:, :1], 4, ValueError, "at least 2 sets"),
    (GOOD.astype(str), 4, TypeError, "numeric"),
    (GOOD > 0, 4, TypeError, "real numbers"),
    (GOOD + 1j, 4, TypeError, "real numbers"),
    (pd.DataFrame({"a": ["x"] * 8, "b": [0.1] * 8}), 2, TypeError, "numeric"),
])
def test_pbo_rejects_bad_returns(returns, n_blocks, error, match):
    with pytest.raises(error, match=match):
        probability_of_backtest_overfitting(returns, n_blocks)
    with pytest.raises(error, match=match):
        block_sums(returns, n_blocks)


SUMS = block_sums(GOOD, 4)


@pytest.mark.parametrize("sum_r, sum_r2, counts, match", [
    (SUMS[0], SUMS[1][:, :2], SUMS[2], "both have shape"),
    (SUMS[0][:1], SUMS[1][:1], SUMS[2], "at least 2 sets"),
    (SUMS[0][:, :3], SUMS[1][:, :3], SUMS[2][:3], "n_blocks must be even"),
    (SUMS[0], SUMS[1], SUMS[2][:3], "counts must be 4 integers"),
    (SUMS[0], SUMS[1], SUMS[2].astype(float), "counts must be 4 integers"),
    (SUMS[0], SUMS[1], [10, 10, 1, 19], "at least 2 bars"),
    (SUMS[0] * np.nan, SUMS[1], SUMS[2], "NaN or inf"),
    (SUMS[0], -SUMS[1], SUMS[2], "negative"),
    (SUMS[0], np.full_like(SUMS[1], 1.7e308), SUMS[2], "overflow"),
])
def test_pbo_from_block_sums_rejects_bad_sums(sum_r, sum_r2, counts, match):
    with pytest.raises(ValueError, match=match):
        pbo_from_block_sums(sum_r, sum_r2, counts)
