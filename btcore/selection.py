"""Plateau selection: choose the parameter set whose neighbourhood is best, not the argmax.

The best of many noisy backtests is mostly luck; a set whose neighbours on the
grid also do well is less likely to be. On a product grid (every combination
of each parameter's values), a set's **neighbourhood** of radius r is every set
within r steps of it on every parameter axis at once (each axis in ascending
value order; a hypercube of up to (2r + 1)^d sets, cut at the grid's edges).
Each set is scored by the **mean** of the metric over its neighbourhood, with
the **worst** value there beside it; ruined sets (and NaN values) count as the
worst value of the whole grid. The chosen set is the centre of the best
neighbourhood: highest mean (lowest for lower-is-better metrics), ties broken
by the better worst value, then by grid order; a ruined centre is never chosen.

Sums and minima over a hypercube are separable, so each costs d passes of
2r + 1 shifted additions over the grid, whatever its dimension.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from btcore._checks import check_int
from btcore.metrics import LOWER_IS_BETTER

__all__ = ["neighbourhood", "plateau_table", "plateau_shape"]


def _shifted(values: np.ndarray, axis: int, radius: int, reduce, fill: float) -> np.ndarray:
    """``reduce`` over the window ±``radius`` along ``axis`` (cells outside are ``fill``)."""
    length = values.shape[axis]
    out = values.copy()
    for step in range(1, radius + 1):
        if step >= length:
            break
        for sign in (1, -1):
            source = [slice(None)] * values.ndim
            target = [slice(None)] * values.ndim
            source[axis] = slice(step, None) if sign > 0 else slice(None, -step)
            target[axis] = slice(None, -step) if sign > 0 else slice(step, None)
            out[tuple(target)] = reduce(out[tuple(target)], values[tuple(source)])
    return out


def neighbourhood(scores: np.ndarray, radius: int = 1) -> tuple:
    """Mean, worst and size of every cell's neighbourhood on a product grid.

    Parameters
    ----------
    scores : numpy.ndarray
        One axis per parameter (values ascending), higher is better; NaN marks a
        ruined or undefined set, which counts as the worst finite score of the grid.
    radius : int, default 1
        Steps on every axis (>= 0; 0 is the set alone).

    Returns
    -------
    mean, worst : numpy.ndarray
        The neighbourhood's mean and minimum score, shaped like ``scores``.
    size : numpy.ndarray
        Sets in each neighbourhood (int64; fewer at the grid's edges).
    """
    radius = check_int("radius", radius, 0)
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if not finite.any():
        raise ValueError("every set is ruined or NaN: there is no plateau to choose")
    filled = np.where(finite, scores, scores[finite].min())
    total, worst = filled, filled
    size = np.ones(scores.shape)
    for axis in range(scores.ndim):
        total = _shifted(total, axis, radius, np.add, 0.0)
        worst = _shifted(worst, axis, radius, np.minimum, np.inf)
        size = _shifted(size, axis, radius, np.add, 0.0)
    return total / size, worst, size.astype(np.int64)


def plateau_shape(table: pd.DataFrame, params: list) -> tuple:
    """``(shape, cells)``: the product grid's shape over ``params`` and each row's
    flat cell in it; ValueError if ``table`` is not one full product grid."""
    if not params:
        raise ValueError("plateau selection needs at least one parameter column")
    positions, shape = [], []
    for name in params:
        values = table[name].to_numpy()
        axis = np.unique(values)
        positions.append(np.searchsorted(axis, values))
        shape.append(len(axis))
    cells = np.ravel_multi_index(positions, shape) if len(table) else np.zeros(0, np.int64)
    combos = int(np.prod(shape))
    if len(table) != combos or np.unique(cells).size != combos:
        raise ValueError(
            f"plateau selection needs a full product grid (every combination of the "
            f"parameters' values, once); these {len(table):,} rows hold "
            f"{np.unique(cells).size:,} of the {combos:,} combinations of "
            f"{', '.join(params)} (a constrained, random or table grid, or keep=). Use "
            "select='best', or sweep a dict of lists without keep=")
    return tuple(shape), cells


def plateau_table(table: pd.DataFrame, params: list, metric: str = "sharpe_ratio",
                  radius: int = 1, include_ruined: bool = False) -> pd.DataFrame:
    """``table`` with ``plateau_mean``, ``plateau_worst`` and ``plateau_size`` columns,
    best plateau first (see the module docstring); per asset when it has an
    ``asset`` column.

    Parameters
    ----------
    table : pandas.DataFrame
        A sweep's table: ``params`` columns, ``metric`` and ``ruined``.
    params : list of str
        The parameter columns spanning the product grid.
    metric : str
    radius : int, default 1
    include_ruined : bool
        Take ruined rows' values as they are (as ``SweepResult.best`` does), instead
        of counting them as the worst, and let them be centres.

    Returns
    -------
    pandas.DataFrame
        ``plateau_worst`` is the lowest value in the neighbourhood (the highest for
        lower-is-better metrics); rows in the order a plateau choice ranks them.
    """
    radius = check_int("radius", radius, 0)
    if metric not in table.columns:
        raise ValueError(f"unknown metric {metric!r}; choose from the table's columns")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    groups = ([table] if "asset" not in table.columns else
              [group for _, group in table.groupby("asset", sort=False)])
    parts = []
    for group in groups:
        shape, cells = plateau_shape(group, params)
        ruined = group["ruined"].to_numpy(dtype=bool) if "ruined" in group else \
            np.zeros(len(group), bool)
        scores = np.full(int(np.prod(shape)), np.nan)
        values = sign * group[metric].to_numpy(dtype=np.float64)
        scores[cells] = values if include_ruined else np.where(ruined, np.nan, values)
        mean, worst, size = neighbourhood(scores.reshape(shape), radius)
        part = group.copy()
        part["plateau_mean"] = sign * mean.reshape(-1)[cells]
        part["plateau_worst"] = sign * worst.reshape(-1)[cells]
        part["plateau_size"] = size.reshape(-1)[cells]
        part["_centre"] = np.isfinite(scores[cells])
        part["_rank"] = sign * part["plateau_mean"]
        part["_rank_worst"] = sign * part["plateau_worst"]
        part["_cell"] = cells
        parts.append(part)
    merged = pd.concat(parts)
    merged = merged.sort_values(["_centre", "_rank", "_rank_worst", "_cell"],
                                ascending=[False, False, False, True], kind="stable")
    return merged.drop(columns=["_centre", "_rank", "_rank_worst", "_cell"])
