"""Selection-bias statistics: probabilistic and deflated Sharpe ratios, and PBO by CSCV.

Conventions (shared by every function here):

- Sharpe ratios are **per period** (per bar), never annualised: ``mean(r) / std(r, ddof=1)``
  with no risk-free rate. Divide an annualised Sharpe by ``sqrt(periods_per_year)`` first.
- Kurtosis is the **non-excess** (Pearson) kurtosis: a normal distribution has 3.
- A set of returns whose standard deviation is zero has Sharpe 0 (as in
  :mod:`btcore.metrics`). From running sums the variance of a constant series is rounding
  noise rather than exactly 0, so ``Σr² − (Σr)²/n ≤ 4·n·ε·Σr²`` (ε = float64 machine
  epsilon) counts as zero variance; that bound exceeds the cancellation error of
  sequential sums and is reached only by series with a per-bar Sharpe above
  1/(2·√(n·ε)) ≈ 3·10⁷/√n.
- The normal CDF and its inverse come from :class:`statistics.NormalDist` (standard
  library; ``erf`` and Wichura's AS241, accurate to about 1e-16), so SciPy is not needed.

References
----------
.. [1] Bailey, D. H. and López de Prado, M. (2012). "The Sharpe Ratio Efficient Frontier."
   Journal of Risk 15(2), 3-44. (the probabilistic Sharpe ratio)
.. [2] Bailey, D. H. and López de Prado, M. (2014). "The Deflated Sharpe Ratio: Correcting
   for Selection Bias, Backtest Overfitting and Non-Normality." Journal of Portfolio
   Management 40(5), 94-107.
.. [3] Bailey, D. H., Borwein, J. M., López de Prado, M. and Zhu, Q. J. (2017). "The
   Probability of Backtest Overfitting." Journal of Computational Finance 20(4), 39-69.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from btcore._checks import check_int, check_number

__all__ = ["PBOResult", "block_sums", "deflated_sharpe_ratio", "expected_max_sharpe",
           "pbo_from_block_sums", "probabilistic_sharpe_ratio",
           "probability_of_backtest_overfitting"]

#: Euler–Mascheroni constant γ
EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
#: variance numerators at or below this many n·ε·Σr² are cancellation noise (see module doc)
_ZERO_VARIANCE_ULPS = 4.0
#: splits × sets elements handled at once by pbo_from_block_sums: bounds memory and keeps the
#: working arrays (512 KiB each) in cache; results do not depend on it
_CHUNK_ELEMENTS = 1 << 16


# --------------------------------------------------------------------------- PSR and DSR
def expected_max_sharpe(sharpe_std, n_trials):
    """Expected maximum Sharpe ratio of ``n_trials`` skill-less trials ([2], eq. 4 / [3]).

    .. math::

        SR_0 = \\sqrt{V[\\{SR_n\\}]}\\,\\Big((1-\\gamma)\\,Z^{-1}\\big(1 - \\tfrac1N\\big)
               + \\gamma\\,Z^{-1}\\big(1 - \\tfrac1{Ne}\\big)\\Big)

    with γ the Euler–Mascheroni constant and Z⁻¹ the standard normal quantile: the
    False Strategy Theorem's approximation of E[max] of N independent normal Sharpe
    estimates with mean 0 and standard deviation ``sharpe_std``.

    Parameters
    ----------
    sharpe_std : float
        Standard deviation (>= 0) of the per-period Sharpe ratios across the trials.
    n_trials : int
        Number of independent trials N (>= 1). With one trial there is no selection and
        the expected maximum is 0.

    Returns
    -------
    float
        SR0, a per-period Sharpe ratio (same units as ``sharpe_std``).
    """
    sharpe_std = check_number("sharpe_std", sharpe_std)
    if sharpe_std < 0.0:
        raise ValueError(f"sharpe_std must be >= 0 (a standard deviation), got {sharpe_std}")
    n_trials = check_int("n_trials", n_trials, 1)
    if n_trials == 1:
        return 0.0
    # Z⁻¹(1 − p) = −Z⁻¹(p): forming 1 − 1/N first loses the tail probability's digits
    # (absolute error ε/2 in a number near 1) and is exactly 1 (Z⁻¹ undefined) for N ≥ 2⁵³
    quantiles = -((1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 / n_trials)
                  + EULER_GAMMA * _NORMAL.inv_cdf(1.0 / (n_trials * math.e)))
    return sharpe_std * quantiles


def _sharpe_variance_term(sharpe, skew, kurtosis):
    """``1 − γ3·SR + (γ4 − 1)/4·SR²``: T − 1 times the variance of the Sharpe estimate."""
    if kurtosis < 1.0:
        raise ValueError(
            f"kurtosis must be the non-excess kurtosis (normal = 3), which is >= 1 for any "
            f"distribution; got {kurtosis}. If you passed excess kurtosis, add 3")
    term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not term > 0.0:
        raise ValueError(
            f"skew={skew} and kurtosis={kurtosis} are impossible for a per-period Sharpe "
            f"ratio of {sharpe}: 1 - skew*SR + (kurtosis - 1)/4*SR^2 = {term} <= 0 (any "
            f"distribution has kurtosis >= 1 + skew^2). Check that the Sharpe ratio is not "
            f"annualised and that kurtosis is non-excess (normal = 3)")
    return term


def probabilistic_sharpe_ratio(observed_sharpe, benchmark_sharpe=0.0, n_obs=None, skew=0.0,
                               kurtosis=3.0):
    """Probability that the true Sharpe ratio exceeds a benchmark ([1], [2] eq. 2).

    .. math::

        \\widehat{PSR}(SR^*) = Z\\left(\\frac{(\\widehat{SR} - SR^*)\\sqrt{T - 1}}
            {\\sqrt{1 - \\hat\\gamma_3\\widehat{SR} + \\frac{\\hat\\gamma_4 - 1}{4}
            \\widehat{SR}^2}}\\right)

    Parameters
    ----------
    observed_sharpe : float
        Per-period (not annualised) Sharpe ratio estimate SR̂.
    benchmark_sharpe : float, default 0.0
        Per-period benchmark SR*.
    n_obs : int
        Number of return observations T (>= 2). Required.
    skew : float, default 0.0
        Skewness γ̂3 of the returns.
    kurtosis : float, default 3.0
        Non-excess kurtosis γ̂4 of the returns (normal = 3).

    Returns
    -------
    float
        A probability in [0, 1].

    Raises
    ------
    ValueError
        If ``n_obs < 2``, an input is not finite, ``kurtosis < 1``, or the variance term
        under the square root is not positive (an impossible skew/kurtosis for SR̂).
    """
    if n_obs is None:
        raise TypeError("probabilistic_sharpe_ratio() needs n_obs, the number of returns")
    observed_sharpe = check_number("observed_sharpe", observed_sharpe)
    benchmark_sharpe = check_number("benchmark_sharpe", benchmark_sharpe)
    n_obs = check_int("n_obs", n_obs, 2)
    skew = check_number("skew", skew)
    kurtosis = check_number("kurtosis", kurtosis)
    term = _sharpe_variance_term(observed_sharpe, skew, kurtosis)
    z = (observed_sharpe - benchmark_sharpe) * math.sqrt(n_obs - 1) / math.sqrt(term)
    return _NORMAL.cdf(z)


def deflated_sharpe_ratio(observed_sharpe, sharpe_std, n_trials, n_obs, skew=0.0,
                          kurtosis=3.0):
    """Deflated Sharpe ratio: the PSR against the expected maximum of the trials ([2]).

    .. math::

        \\widehat{DSR} = \\widehat{PSR}(SR_0), \\qquad
        SR_0 = \\text{expected\\_max\\_sharpe}(\\text{sharpe\\_std}, N)

    Parameters
    ----------
    observed_sharpe : float
        Per-period Sharpe ratio of the selected (best) trial.
    sharpe_std : float
        Standard deviation of the per-period Sharpe ratios of all trials.
    n_trials : int
        Number of independent trials N (>= 1).
    n_obs : int
        Number of return observations T of the selected trial (>= 2).
    skew : float, default 0.0
        Skewness of the selected trial's returns.
    kurtosis : float, default 3.0
        Non-excess kurtosis of the selected trial's returns (normal = 3).

    Returns
    -------
    float
        The probability that the selected trial's true Sharpe ratio is positive after
        correcting for the selection among ``n_trials``.

    Examples
    --------
    The paper's numerical example: 100 trials, 1,250 daily returns, annualised Sharpe 2.5,
    annualised variance of the trials' Sharpe ratios 1/2, skew -3, kurtosis 10.

    >>> round(deflated_sharpe_ratio(2.5 / 250 ** 0.5, (0.5 / 250) ** 0.5, 100, 1250, -3, 10), 4)
    0.9004
    """
    sr0 = expected_max_sharpe(sharpe_std, n_trials)
    return probabilistic_sharpe_ratio(observed_sharpe, sr0, n_obs, skew, kurtosis)


# --------------------------------------------------------------------------- PBO by CSCV
@dataclass(frozen=True, eq=False, repr=False)
class PBOResult:
    """Outcome of combinatorially symmetric cross-validation (CSCV, [3]).

    Attributes
    ----------
    pbo : float
        Probability of backtest overfitting: the share of splits with logit <= 0.
    logits : numpy.ndarray
        λ_c = log(ω_c / (1 − ω_c)) per split, float64, in split order.
    n_splits : int
        Number of splits, C(S, S/2).
    is_best : numpy.ndarray
        Index (column) of the in-sample best set per split, int64.
    oos_rank : numpy.ndarray
        Out-of-sample rank of that set per split among the N sets, 1 = worst, N = best;
        ties get the average of their ordinal ranks (so ranks may end in .5), float64.
    n_sets : int
        Number of sets (strategies, parameter sets) N.
    n_blocks : int
        Number of blocks S.
    """

    pbo: float
    logits: np.ndarray
    n_splits: int
    is_best: np.ndarray
    oos_rank: np.ndarray
    n_sets: int
    n_blocks: int

    def __repr__(self):
        return (f"PBOResult(pbo={self.pbo:.4f}, n_splits={self.n_splits}, "
                f"n_sets={self.n_sets}, n_blocks={self.n_blocks}, "
                f"median_logit={float(np.median(self.logits)):.4f})")


def _frame_values(frame):
    """A DataFrame's values; nullable numeric columns (pd.NA for missing) become NaN."""
    values = frame.to_numpy()
    if values.dtype == object and hasattr(frame, "dtypes"):
        from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype
        dtypes = frame.dtypes
        dtypes = list(dtypes) if hasattr(dtypes, "to_numpy") else [dtypes]  # frame / series
        if dtypes and all(is_numeric_dtype(d) and not is_bool_dtype(d)
                          and not is_complex_dtype(d) for d in dtypes):
            values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    return values


def _returns_matrix(returns):
    values = _frame_values(returns) if hasattr(returns, "to_numpy") else returns
    values = np.asarray(values)
    if values.dtype == object or not (np.issubdtype(values.dtype, np.number)
                                      or values.dtype == np.bool_):
        raise TypeError(f"returns must be numeric (bars x sets), got dtype {values.dtype}")
    if values.dtype == np.bool_ or np.issubdtype(values.dtype, np.complexfloating):
        raise TypeError(f"returns must be real numbers, got dtype {values.dtype}")
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(
            f"returns must be 2-D, bars x sets (one column per strategy / parameter set), "
            f"got shape {values.shape}")
    if values.shape[1] < 2:
        raise ValueError(
            f"returns needs at least 2 sets (columns) to rank, got {values.shape[1]}; "
            f"pass bars x sets, not sets x bars")
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"returns has {int(bad.sum())} NaN/inf values (first at bar {row}, set {col}); "
            f"fill them (e.g. with 0 for flat bars) or drop those bars before CSCV")
    return values


def _check_n_blocks(n_blocks, n_bars=None):
    n_blocks = check_int("n_blocks", n_blocks, 2)
    if n_blocks % 2:
        raise ValueError(f"n_blocks must be even (half the blocks are in-sample), got "
                         f"{n_blocks}; use {n_blocks - 1} or {n_blocks + 1}")
    if n_bars is not None:
        if n_blocks > n_bars:
            raise ValueError(f"n_blocks={n_blocks} exceeds the number of bars ({n_bars}); "
                             f"use fewer blocks")
        if n_bars // n_blocks < 2:
            most = n_bars // 2 // 2 * 2  # even, with at least 2 bars per block
            advice = (f"use at most {most} blocks or more bars" if most >= 2 else
                      "CSCV needs at least 4 bars (2 blocks of 2 bars)")
            raise ValueError(f"n_blocks={n_blocks} leaves blocks with fewer than 2 bars "
                             f"({n_bars} bars); {advice}")
    return n_blocks


def block_sums(returns, n_blocks=16):
    """Per-set, per-block sums of returns and squared returns: the CSCV sufficient statistics.

    The bars are split into ``n_blocks`` contiguous blocks exactly as
    ``numpy.array_split(returns, n_blocks, axis=0)`` does (the first ``n_bars % n_blocks``
    blocks have one bar more). Each block is summed **sequentially in bar order**
    (``total = total + row``), the order in which a simulation kernel accumulates bar by
    bar, so both paths give bit-identical sums.

    Parameters
    ----------
    returns : numpy.ndarray or pandas.DataFrame
        Per-period returns, shape (n_bars, n_sets), finite.
    n_blocks : int, default 16
        Number of blocks S: even, >= 2, and at most n_bars / 2 (every block needs 2 bars).

    Returns
    -------
    sum_r : numpy.ndarray
        Σ r per set and block, shape (n_sets, n_blocks), float64.
    sum_r2 : numpy.ndarray
        Σ r² per set and block, shape (n_sets, n_blocks), float64.
    counts : numpy.ndarray
        Bars per block, shape (n_blocks,), int64.
    """
    values = _returns_matrix(returns)
    n_bars, n_sets = values.shape
    n_blocks = _check_n_blocks(n_blocks, n_bars)
    sum_r = np.empty((n_sets, n_blocks))
    sum_r2 = np.empty((n_sets, n_blocks))
    counts = np.empty(n_blocks, dtype=np.int64)
    with np.errstate(over="ignore"):  # overflow is refused below, with a clear message
        for b, block in enumerate(np.array_split(values, n_blocks, axis=0)):
            total = np.zeros(n_sets)
            squares = np.zeros(n_sets)
            for row in block:
                total = total + row
                squares = squares + row * row
            sum_r[:, b] = total
            sum_r2[:, b] = squares
            counts[b] = block.shape[0]
    if not (np.isfinite(sum_r).all() and np.isfinite(sum_r2).all()):
        raise ValueError("returns are too large: their per-block sums or sums of squares "
                         "overflow float64 (scale them down)")
    return sum_r, sum_r2, counts


def _check_block_sums(sum_r, sum_r2, counts):
    sum_r = np.asarray(sum_r, dtype=np.float64)
    sum_r2 = np.asarray(sum_r2, dtype=np.float64)
    counts = np.asarray(counts)
    if sum_r.ndim != 2 or sum_r.shape != sum_r2.shape:
        raise ValueError(f"sum_r and sum_r2 must both have shape (n_sets, n_blocks), got "
                         f"{sum_r.shape} and {sum_r2.shape}")
    n_sets, n_blocks = sum_r.shape
    if n_sets < 2:
        raise ValueError(f"sum_r needs at least 2 sets (rows) to rank, got {n_sets}; the "
                         f"layout is (n_sets, n_blocks)")
    _check_n_blocks(n_blocks)
    if counts.shape != (n_blocks,) or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"counts must be {n_blocks} integers (bars per block), got "
                         f"dtype {counts.dtype} shape {counts.shape}")
    if (counts < 2).any():
        raise ValueError(f"every block needs at least 2 bars, got counts {counts.tolist()}; "
                         f"use fewer blocks")
    if not (np.isfinite(sum_r).all() and np.isfinite(sum_r2).all()):
        raise ValueError("sum_r / sum_r2 contain NaN or inf: the returns they were summed "
                         "from must be finite, and small enough that their squares and "
                         "sums do not overflow float64")
    # the half-sample sums add up to n_blocks / 2 blocks: they must not overflow either
    with np.errstate(over="ignore"):
        overflow = not (np.isfinite(np.abs(sum_r).sum(axis=1)).all()
                        and np.isfinite(sum_r2.sum(axis=1)).all())
    if overflow:
        raise ValueError("sums of sum_r / sum_r2 over the blocks overflow float64; the "
                         "returns are too large (scale them down)")
    if (sum_r2 < 0).any():
        raise ValueError("sum_r2 has negative entries; it must hold sums of squared returns")
    return sum_r, sum_r2, counts.astype(np.int64)


def _splits(n_blocks):
    """In-sample block indices of every CSCV split, (C(S, S/2), S/2), lexicographic order.

    For k = S/2 the complement of the i-th combination (lexicographic) is the
    (n − 1 − i)-th, so the out-of-sample blocks of split i are the in-sample blocks of
    split n − 1 − i. This is checked, not assumed.
    """
    combos = np.array(list(itertools.combinations(range(n_blocks), n_blocks // 2)),
                      dtype=np.intp)
    member = np.zeros((len(combos), n_blocks), dtype=bool)
    np.put_along_axis(member, combos, True, axis=1)
    if not np.array_equal(~member, member[::-1]):  # pragma: no cover - combinatorial fact
        raise AssertionError("complement of lexicographic combinations is not reversed")
    return combos


def _half_sharpe(sum_r_t, sum_r2_t, counts, combos):
    """Sharpe ratio of every set over the union of each row of ``combos``' blocks.

    ``sum_r_t`` / ``sum_r2_t`` are (n_blocks, n_sets); the result is (len(combos), n_sets).
    Blocks are added in ascending block index (combos rows are sorted), so the result
    depends only on the block set, not on how splits are chunked.
    """
    total = np.take(sum_r_t, combos[:, 0], axis=0)
    squares = np.take(sum_r2_t, combos[:, 0], axis=0)
    buf = np.empty_like(total)
    for j in range(1, combos.shape[1]):
        np.add(total, np.take(sum_r_t, combos[:, j], axis=0, out=buf), out=total)
        np.add(squares, np.take(sum_r2_t, combos[:, j], axis=0, out=buf), out=squares)
    n = counts[combos].sum(axis=1).astype(np.float64)[:, None]
    mean = np.divide(total, n, out=buf)
    # numerator = Σr² − Σr·(Σr/n), the same expression as btcore.metrics
    numerator = np.subtract(squares, np.multiply(total, mean, out=total), out=total)
    # flat (zero-std) where the numerator is cancellation noise, see the module docstring
    flat = numerator <= np.multiply(squares, _ZERO_VARIANCE_ULPS * np.finfo(np.float64).eps * n,
                                    out=squares)
    numerator[flat] = 1.0
    std = np.sqrt(np.divide(numerator, n - 1.0, out=numerator), out=numerator)
    sharpe = np.divide(mean, std, out=mean)
    sharpe[flat] = 0.0
    return sharpe


def _rank_of_best(is_sharpe, oos_sharpe):
    """IS-best set (first on ties) and its average OOS rank (1 = worst) per split row."""
    best = np.argmax(is_sharpe, axis=1)
    chosen = np.take_along_axis(oos_sharpe, best[:, None], axis=1)
    below = (oos_sharpe < chosen).sum(axis=1)
    equal = (oos_sharpe == chosen).sum(axis=1)  # includes the chosen set itself
    return best, below + (equal + 1) / 2.0


def pbo_from_block_sums(sum_r, sum_r2, counts):
    """Probability of backtest overfitting by CSCV from per-block sums ([3], section 2.2).

    For each of the C(S, S/2) splits c (``itertools.combinations(range(S), S/2)`` in
    lexicographic order gives the in-sample blocks J_c; the other blocks are
    out-of-sample), with n = Σ counts, mean = Σr / n and
    var = (Σr² − Σr·mean) / (n − 1) over the chosen blocks (added in ascending block
    index; evaluated in exactly this order, so equal sums give equal Sharpe ratios):

    1. SR_IS, SR_OOS = mean / sqrt(var) per set, in- and out-of-sample (0 if var is 0,
       i.e. at or below rounding noise, see the module docstring);
    2. n* = argmax SR_IS (the first set on ties);
    3. ω_c = rank(SR_OOS[n*]) / (N + 1), rank 1 = worst of N, ties averaged;
    4. λ_c = log(ω_c / (1 − ω_c)),

    and PBO = #{c : λ_c <= 0} / C(S, S/2). Since 1 <= rank <= N, every λ_c is finite.

    Parameters
    ----------
    sum_r, sum_r2 : numpy.ndarray
        Σ r and Σ r² per set and block, shape (n_sets, n_blocks), as from
        :func:`block_sums`. n_sets >= 2; n_blocks even and >= 2.
    counts : numpy.ndarray
        Bars per block, shape (n_blocks,), integers >= 2.

    Returns
    -------
    PBOResult
    """
    sum_r, sum_r2, counts = _check_block_sums(sum_r, sum_r2, counts)
    n_sets, n_blocks = sum_r.shape
    combos = _splits(n_blocks)
    n_splits = len(combos)
    sum_r_t = np.ascontiguousarray(sum_r.T)
    sum_r2_t = np.ascontiguousarray(sum_r2.T)
    is_best = np.empty(n_splits, dtype=np.int64)
    oos_rank = np.empty(n_splits, dtype=np.float64)
    half = n_splits // 2
    chunk = max(1, _CHUNK_ELEMENTS // n_sets)
    for start in range(0, half, chunk):
        first = np.arange(start, min(start + chunk, half))
        mirror = n_splits - 1 - first
        sharpe_a = _half_sharpe(sum_r_t, sum_r2_t, counts, combos[first])
        sharpe_b = _half_sharpe(sum_r_t, sum_r2_t, counts, combos[mirror])
        # split `first`: IS = its blocks, OOS = complement = blocks of split `mirror`
        is_best[first], oos_rank[first] = _rank_of_best(sharpe_a, sharpe_b)
        is_best[mirror], oos_rank[mirror] = _rank_of_best(sharpe_b, sharpe_a)
    omega = oos_rank / (n_sets + 1.0)
    logits = np.log(omega / (1.0 - omega))
    for array in (logits, is_best, oos_rank):
        array.setflags(write=False)
    return PBOResult(pbo=float(np.count_nonzero(logits <= 0.0)) / n_splits, logits=logits,
                     n_splits=n_splits, is_best=is_best, oos_rank=oos_rank, n_sets=n_sets,
                     n_blocks=n_blocks)


def probability_of_backtest_overfitting(returns, n_blocks=16):
    """Probability of backtest overfitting of a bars × sets return matrix by CSCV ([3]).

    Equivalent to ``pbo_from_block_sums(*block_sums(returns, n_blocks))``; see
    :func:`pbo_from_block_sums` for the procedure and :func:`block_sums` for the blocks.

    Parameters
    ----------
    returns : numpy.ndarray or pandas.DataFrame
        Per-period returns, shape (n_bars, n_sets): one column per strategy / parameter
        set, at least 2 columns, all finite.
    n_blocks : int, default 16
        Number of contiguous blocks S: even, >= 2, with at least 2 bars per block.
        C(16, 8) = 12,870 splits.

    Returns
    -------
    PBOResult
        ``.pbo`` near 0 when the in-sample winner keeps winning out of sample, about 0.5
        for pure noise, near 1 when in-sample selection picks out-of-sample losers.
    """
    return pbo_from_block_sums(*block_sums(returns, n_blocks))
