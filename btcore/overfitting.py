"""Overfitting statistics over blocks of time: effective trials, Reality Check / SPA,
minimum backtest and track-record lengths.

Everything here works on a sweep's **per-block returns** (sets x blocks: each set's
mean bar return in each block, from the kernel's block sums), never on a bars x
sets matrix, so a 100,000-set sweep costs a few small matrices.

- :func:`effective_trials`: the number of independent trials among correlated
  sets, from the eigenvalues of the correlation matrix of their per-block returns,
  by Li and Ji's estimator [1]: ``M_eff = sum_i f(|lambda_i|)`` with
  ``f(x) = 1{x >= 1} + (x - floor(x))``. The sets x sets matrix is never formed:
  its non-zero eigenvalues are those of the blocks x blocks Gram matrix of the
  standardised returns. So ``M_eff`` is below 2 (B - 1) with B blocks: no more
  than B - 1 independent directions can be told apart in B observations, and for
  a large grid of nearly unrelated sets it understates the trials (the raw count
  stands beside it).
- :func:`spa_test`: White's Reality Check [2] and Hansen's test of superior
  predictive ability [3] of "the best set beats the benchmark" (0, or buy and
  hold), by the stationary bootstrap [4] over blocks; the variance of each set's
  mean is the stationary bootstrap's closed form ([3], as in ``arch``).
- :func:`min_backtest_length` (MinBTL, [5]) and :func:`min_track_record_length`
  (MinTRL, [6]).

References
----------
.. [1] Li, J. and Ji, L. (2005). "Adjusting multiple testing in multilocus analyses
   using the eigenvalues of a correlation matrix." Heredity 95, 221-227.
.. [2] White, H. (2000). "A Reality Check for Data Snooping." Econometrica 68(5),
   1097-1126.
.. [3] Hansen, P. R. (2005). "A Test for Superior Predictive Ability." Journal of
   Business & Economic Statistics 23(4), 365-380.
.. [4] Politis, D. N. and Romano, J. P. (1994). "The Stationary Bootstrap." Journal of
   the American Statistical Association 89(428), 1303-1313.
.. [5] Bailey, D. H., Borwein, J. M., López de Prado, M. and Zhu, Q. J. (2014).
   "Pseudo-Mathematics and Financial Charlatanism: The Effects of Backtest Overfitting
   on Out-of-Sample Performance." Notices of the AMS 61(5), 458-471.
.. [6] Bailey, D. H. and López de Prado, M. (2012). "The Sharpe Ratio Efficient
   Frontier." Journal of Risk 15(2), 3-44.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from btcore._checks import check_int, check_number
from btcore.stats import expected_max_sharpe

__all__ = ["effective_trials", "min_backtest_length", "min_track_record_length",
           "spa_test", "stationary_bootstrap"]

_NORMAL = NormalDist()
#: sets handled at once by spa_test (bounds its reps x sets working arrays)
_CHUNK_SETS = 4096


def effective_trials(block_returns) -> float:
    """Li and Ji's effective number of independent trials ([1] in the module doc).

    Parameters
    ----------
    block_returns : numpy.ndarray
        (n_sets, n_blocks) per-block returns. Sets constant over the blocks carry no
        correlation information and are left out.

    Returns
    -------
    float
        Between 1 and the number of non-constant sets, below 2 (n_blocks - 1).
    """
    values = np.asarray(block_returns, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        raise ValueError(f"block_returns must be (n_sets, n_blocks >= 2), got {values.shape}")
    centred = values - values.mean(axis=1, keepdims=True)
    scale = np.sqrt((centred * centred).sum(axis=1))
    varying = scale > 1e-300
    if not varying.any():
        return 1.0
    standard = centred[varying] / scale[varying, None]  # rows of unit length
    # R = S S^T (sets x sets correlation); its non-zero eigenvalues are S^T S's
    eigenvalues = np.clip(np.linalg.eigvalsh(standard.T @ standard), 0.0, None)
    return float(max(1.0, np.sum((eigenvalues >= 1.0) + eigenvalues - np.floor(eigenvalues))))


def stationary_bootstrap(n_obs: int, reps: int, mean_block: float, rng) -> np.ndarray:
    """(reps, n_obs) indices of Politis and Romano's stationary bootstrap: each
    resample starts at a uniform index and, at each step, starts a new block at a
    uniform index with probability ``1 / mean_block``, else takes the next index
    (wrapping around)."""
    indices = np.empty((reps, n_obs), dtype=np.int64)
    indices[:, 0] = rng.integers(0, n_obs, reps)
    fresh = rng.random((reps, n_obs)) < 1.0 / mean_block
    starts = rng.integers(0, n_obs, (reps, n_obs))
    for t in range(1, n_obs):
        indices[:, t] = np.where(fresh[:, t], starts[:, t], (indices[:, t - 1] + 1) % n_obs)
    return indices


def _bootstrap_variance(differences: np.ndarray, mean_block: float) -> np.ndarray:
    """n times the variance of each row's mean under the stationary bootstrap: the
    closed form of [3] (equation 5) with weights kappa(i) of [4]."""
    n_obs = differences.shape[1]
    demeaned = differences - differences.mean(axis=1, keepdims=True)
    p = 1.0 / mean_block
    variance = (demeaned * demeaned).sum(axis=1) / n_obs
    for lag in range(1, n_obs):
        kappa = (1.0 - lag / n_obs) * (1.0 - p) ** lag + lag / n_obs * (1.0 - p) ** (n_obs - lag)
        variance += 2.0 * kappa * (demeaned[:, :-lag] * demeaned[:, lag:]).sum(axis=1) / n_obs
    return variance


def spa_test(differences, reps: int = 1000, mean_block: float | None = None,
             seed: int = 0, studentize="bootstrap") -> dict:
    """p-values of "some set's mean difference is above 0" over blocks.

    Parameters
    ----------
    differences : numpy.ndarray
        (n_sets, n_obs): each set's per-block return minus the benchmark's.
    reps : int, default 1000
        Bootstrap resamples.
    mean_block : float, optional
        Mean length of the stationary bootstrap's blocks (in observations); default
        ``max(1, n_obs ** (1/3))``.
    seed : int, default 0
    studentize : {"bootstrap", "asymptotic", False}, default "bootstrap"
        How each set's mean is scaled by its standard error. "asymptotic": Hansen's
        [3], the stationary bootstrap's closed-form variance (over-rejects badly
        with few observations and many sets: on pure noise with 32 blocks and
        2,000 sets nearly every p-value is below 0.05); "bootstrap": bootstrap-t,
        the observed means by their sample standard deviation and every resample's
        by its own, which keeps the t-like tails of few observations; False: plain
        means (what ``arch.bootstrap.SPA`` 8.0 computes).

    Returns
    -------
    dict
        ``reality_check``: White's p-value (the largest mean, not studentised, every
        set recentred at its mean: the least favourable null); ``spa_lower``,
        ``spa_consistent``, ``spa_upper``: Hansen's p-values with the three
        recenterings of [3] (``spa_consistent`` is the test's). A p-value is the
        share of resamples whose statistic exceeds the observed one (studentised:
        reaches it, so that no set above the benchmark gives p = 1).
    """
    values = np.asarray(differences, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        raise ValueError(f"differences must be (n_sets, n_obs >= 2), got {values.shape}")
    n_sets, n_obs = values.shape
    reps = check_int("reps", reps, 1)
    mean_block = max(1.0, n_obs ** (1 / 3)) if mean_block is None else \
        check_number("mean_block", mean_block)
    if mean_block < 1.0:
        raise ValueError(f"mean_block must be >= 1 observation, got {mean_block}")
    rng = np.random.default_rng(seed)
    indices = stationary_bootstrap(n_obs, reps, mean_block, rng)
    # each resample's mean is a weighted sum of the observations: weights (reps, n_obs)
    weights = np.zeros((reps, n_obs))
    np.add.at(weights, (np.repeat(np.arange(reps), n_obs), indices.reshape(-1)), 1.0 / n_obs)
    if studentize not in ("bootstrap", "asymptotic", False):
        raise ValueError(f"studentize must be 'bootstrap', 'asymptotic' or False, got "
                         f"{studentize!r}")
    mean = values.mean(axis=1)
    variance = (np.maximum(_bootstrap_variance(values, mean_block), 0.0)
                if studentize == "asymptotic" else values.var(axis=1))
    usable = variance > 0.0
    omega = np.sqrt(np.where(usable, variance, 1.0))
    threshold = -np.sqrt(variance / n_obs * 2.0 * math.log(math.log(max(n_obs, 3))))
    centres = {"spa_lower": np.maximum(mean, 0.0),
               "spa_consistent": np.where(mean >= threshold, mean, 0.0),
               "spa_upper": mean}
    # studentised: sqrt(n) * mean / omega, 0 for a set that never varies
    scale = np.where(usable, math.sqrt(n_obs) / omega, 0.0) if studentize else \
        np.ones(n_sets)
    statistic = float((scale * mean).max())
    if studentize:
        statistic = max(statistic, 0.0)
    rc_max = np.full(reps, -np.inf)
    spa_max = {name: np.full(reps, -np.inf) for name in centres}
    for start in range(0, n_sets, _CHUNK_SETS):
        part = slice(start, start + _CHUNK_SETS)
        chunk = values[part]
        resampled = weights @ chunk.T  # (reps, chunk) bootstrap means
        work = np.subtract(resampled, mean[part])
        rc_max = np.maximum(rc_max, work.max(axis=1))
        if studentize == "bootstrap":  # each resample by its own standard deviation
            factor = weights @ (chunk * chunk).T  # in place: the resample's variance...
            np.subtract(factor, np.multiply(resampled, resampled, out=work), out=factor)
            np.sqrt(np.maximum(factor, 0.0, out=factor), out=factor)
            with np.errstate(divide="ignore"):
                np.divide(math.sqrt(n_obs), factor, out=factor)  # ... then sqrt(n) / its sd
            factor[np.isinf(factor)] = 0.0  # a resample that never varies
        else:
            factor = scale[part]
        for name, centre in centres.items():
            np.subtract(resampled, centre[part], out=work)
            spa_max[name] = np.maximum(spa_max[name],
                                       np.multiply(work, factor, out=work).max(axis=1))
    result = {"reality_check": float(np.mean(rc_max > mean.max()))}
    for name, maxima in spa_max.items():
        if studentize:  # T = max(0, ...): T = 0 (no set above the benchmark) gives p = 1
            result[name] = float(np.mean(np.maximum(maxima, 0.0) >= statistic))
        else:
            result[name] = float(np.mean(maxima > statistic))
    return result


def min_backtest_length(n_trials: float, annual_sharpe: float) -> float:
    """Years of data below which ``n_trials`` skill-less trials are expected to show a
    best annualised Sharpe ratio of ``annual_sharpe`` or more ([5], eq. 6-7):
    ``MinBTL = (E[max_N] / SR)^2`` with ``E[max_N]`` the expected maximum of N standard
    normals (:func:`btcore.stats.expected_max_sharpe` with unit spread). Infinite
    for ``annual_sharpe <= 0``.

    >>> round(min_backtest_length(45, 1.0), 3)  # the paper's example: about 5 years
    4.998
    """
    annual_sharpe = check_number("annual_sharpe", annual_sharpe)
    n_trials = check_number("n_trials", n_trials)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if annual_sharpe <= 0:
        return math.inf
    return (_expected_max(n_trials) / annual_sharpe) ** 2


def _expected_max(n_trials: float) -> float:
    """E[max] of ``n_trials`` standard normals; fractional counts (effective trials)
    through the same formula."""
    if n_trials <= 1:
        return 0.0
    if float(n_trials).is_integer():
        return expected_max_sharpe(1.0, int(n_trials))
    gamma = 0.5772156649015329
    return -((1 - gamma) * _NORMAL.inv_cdf(1 / n_trials)
             + gamma * _NORMAL.inv_cdf(1 / (n_trials * math.e)))


def min_track_record_length(sharpe: float, benchmark_sharpe: float = 0.0, skew: float = 0.0,
                            kurtosis: float = 3.0, confidence: float = 0.95) -> float:
    """Observations needed for a per-period Sharpe ratio ``sharpe`` to exceed
    ``benchmark_sharpe`` with ``confidence`` ([6]):
    ``MinTRL = 1 + (1 - skew*SR + (kurtosis - 1)/4*SR^2) * (Z_conf / (SR - SR*))^2``
    (kurtosis non-excess). Infinite when ``sharpe <= benchmark_sharpe``: at that
    length the probabilistic Sharpe ratio equals ``confidence``."""
    sharpe = check_number("sharpe", sharpe)
    benchmark_sharpe = check_number("benchmark_sharpe", benchmark_sharpe)
    confidence = check_number("confidence", confidence)
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    if sharpe <= benchmark_sharpe:
        return math.inf
    term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not term > 0:
        raise ValueError(f"skew={skew} and kurtosis={kurtosis} are impossible for a Sharpe "
                         f"ratio of {sharpe} (kurtosis is non-excess: normal = 3)")
    return 1.0 + term * (_NORMAL.inv_cdf(confidence) / (sharpe - benchmark_sharpe)) ** 2
