"""Stability of every row: Sharpe ratios per block of time, from the kernel's block sums.

A sweep run with ``blocks=`` keeps, per parameter set and block, the sums of the
bar returns r and of r² (the sums CSCV needs, :mod:`btcore.stats`). They also
give each set's Sharpe ratio **per block** (per calendar year with
``blocks="year"``): a set whose Sharpe ratio comes from one lucky year shows it
here, whatever its full-period Sharpe ratio says. Two table columns summarise
them:

- ``stability_positive_share``: the share of blocks with a positive Sharpe ratio;
- ``worst_block_sharpe``: the lowest per-block Sharpe ratio (annualised, like
  ``sharpe_ratio``).

A block's Sharpe ratio is ``mean / std`` (``ddof=1``) of the set's bar returns in
it, times ``sqrt(periods_per_year)``, with the variance as in
:func:`btcore.stats.pbo_from_block_sums` (0 when flat: Sharpe 0). A block with
fewer than 2 bars (an asset not yet listed that year) has none (NaN) and is left
out of both columns.
"""
from __future__ import annotations

import numpy as np

#: the table columns a ``blocks=`` sweep adds
STABILITY_COLUMNS = ("stability_positive_share", "worst_block_sharpe")
#: as in btcore.stats: variance numerators this many n·ε·Σr² or below are rounding noise
_ZERO_VARIANCE_ULPS = 4.0

__all__ = ["STABILITY_COLUMNS", "block_sharpe", "stability_columns"]


def block_sharpe(sum_r, sum_r2, counts, periods_per_year: float) -> np.ndarray:
    """Annualised Sharpe ratio per set and block from per-block sums.

    Parameters
    ----------
    sum_r, sum_r2 : numpy.ndarray
        Σ r and Σ r² per set and block, (..., n_blocks).
    counts : numpy.ndarray
        Bars per block, broadcastable to ``sum_r``.
    periods_per_year : float

    Returns
    -------
    numpy.ndarray
        Shaped like ``sum_r``; NaN where a block has fewer than 2 bars.
    """
    sum_r = np.asarray(sum_r, dtype=np.float64)
    sum_r2 = np.asarray(sum_r2, dtype=np.float64)
    n = np.broadcast_to(np.asarray(counts, dtype=np.float64), sum_r.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sum_r / n
        numerator = sum_r2 - sum_r * mean  # the expression of btcore.metrics
        flat = numerator <= sum_r2 * (_ZERO_VARIANCE_ULPS * np.finfo(np.float64).eps * n)
        std = np.sqrt(np.where(flat, 1.0, numerator) / (n - 1.0))
        sharpe = np.where(flat, 0.0, mean / std) * np.sqrt(periods_per_year)
    return np.where(n >= 2, sharpe, np.nan)


def stability_columns(sharpe: np.ndarray) -> dict:
    """:data:`STABILITY_COLUMNS` from per-block Sharpe ratios (rows, blocks)."""
    valid = ~np.isnan(sharpe)
    n_valid = valid.sum(axis=1)
    positive = (np.where(valid, sharpe, 0.0) > 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n_valid > 0, positive / n_valid, np.nan)
    worst = np.where(n_valid > 0, np.min(np.where(valid, sharpe, np.inf), axis=1), np.nan)
    return {"stability_positive_share": share, "worst_block_sharpe": worst}
