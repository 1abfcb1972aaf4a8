"""``SweepResult.plot_heatmap``: a metric over two parameters of a sweep table."""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from btcore.metrics import LOWER_IS_BETTER, METRIC_NAMES
from btcore.plots.common import (EXTRA_METRICS, number_text, parameter_columns, pyplot,
                                 table_of)
from btcore.stability import STABILITY_COLUMNS

#: ``agg`` values of :func:`sweep_heatmap` (pandas reductions of each cell's rows)
AGGREGATIONS = ("max", "min", "mean", "median")
#: metrics where lower is better: their colour maps run the other way
#: cells up to which a heatmap writes each value in its cell
ANNOTATE_CELLS = 300


def sweep_heatmap(result, x: str, y: str, metric: str = "sharpe_ratio", agg: str = "max",
                  ax=None, plateau: int | None = None):
    """Heatmap of ``metric`` over parameters ``x`` (columns) and ``y`` (rows).

    Each cell aggregates, with ``agg``, the non-ruined rows of the table that
    have that (x, y): the other parameters and the assets. A cell whose rows
    are all ruined (or NaN) is left blank.

    Parameters
    ----------
    result : SweepResult or pandas.DataFrame
        A sweep result (its ``table``) or such a table.
    x, y : str
        Two different parameter columns.
    metric : str, default "sharpe_ratio"
        A metric, or a stability column of a ``blocks=`` sweep
        (``"worst_block_sharpe"``, ``"stability_positive_share"``).
    agg : {"max", "min", "mean", "median"}, default "max"
    ax : matplotlib Axes, optional
        Draw into these axes (and their figure) instead of a new figure.
    plateau : int, optional
        A radius: outline the plateau a ``best(metric, select="plateau",
        radius=plateau)`` chooses (its centre framed, its neighbourhood's
        ``x``/``y`` extent framed; :mod:`btcore.selection`). Needs a product grid.

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = table_of(result)
    params = parameter_columns(table)
    for name, value in (("x", x), ("y", y)):
        if value not in params:
            raise ValueError(f"unknown parameter {name}={value!r}; choose from {params}")
    if x == y:
        raise ValueError(f"x and y are both {x!r}; pick two different parameters from {params}")
    metrics = [m for m in (*METRIC_NAMES, *EXTRA_METRICS, *STABILITY_COLUMNS)
               if m in table.columns]
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; choose from {metrics}")
    if not isinstance(agg, str) or agg not in AGGREGATIONS:
        raise ValueError(f"unknown agg {agg!r}; choose from {list(AGGREGATIONS)}")
    cells = heatmap_values(table, x, y, metric, agg)
    if cells.isna().all(axis=None):
        raise ValueError(f"{metric} is NaN or ruined for every row; nothing to plot")
    centre = None
    if plateau is not None:
        from btcore.selection import plateau_table
        centre = plateau_table(table, params, metric, plateau).iloc[0]

    plt = pyplot()
    n_rows, n_cols = cells.shape
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(12.0, max(5.5, 0.8 * n_cols + 3.0)),
                                        min(9.0, max(3.8, 0.5 * n_rows + 2.2))),
                               layout="constrained")
    else:
        fig = ax.figure
    cmap = plt.get_cmap("viridis_r" if metric in LOWER_IS_BETTER else "viridis")
    cmap = cmap.with_extremes(bad=(0, 0, 0, 0))  # NaN cells: blank (the background shows)
    values = np.ma.masked_invalid(cells.to_numpy(dtype=np.float64))
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap,
                      interpolation="nearest")
    _category_ticks(ax.set_xticks, cells.columns)
    _category_ticks(ax.set_yticks, cells.index)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    if n_rows * n_cols <= ANNOTATE_CELLS:
        size = 9 if n_rows * n_cols <= 60 else 7
        for (i, j), value in np.ndenumerate(values.filled(np.nan)):
            if np.isfinite(value):
                r, g, b, _ = cmap(image.norm(value))
                ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"
                ax.text(j, i, number_text(value), ha="center", va="center", color=ink,
                        fontsize=size)
    if centre is not None:
        _mark_plateau(ax, cells, centre, x, y, plateau)
    colorbar = fig.colorbar(image, ax=ax)
    colorbar.set_label(f"{metric} ({agg})")
    ax.set_title(_heatmap_title(table, params, x, y, metric, agg), fontsize=11)
    return fig


def _mark_plateau(ax, cells, centre, x, y, radius: int) -> None:
    """Frame the chosen plateau's centre and (dashed) its neighbourhood in x and y."""
    from matplotlib.patches import Rectangle
    column = int(np.searchsorted(cells.columns.to_numpy(), centre[x]))
    row = int(np.searchsorted(cells.index.to_numpy(), centre[y]))
    left, right = max(column - radius, 0), min(column + radius, cells.shape[1] - 1)
    low, high = max(row - radius, 0), min(row + radius, cells.shape[0] - 1)
    ax.add_patch(Rectangle((left - 0.5, low - 0.5), right - left + 1, high - low + 1,
                           fill=False, edgecolor="red", linewidth=1.5, linestyle="--",
                           label=f"plateau, radius {radius}: mean "
                                 f"{number_text(centre['plateau_mean'])}, worst "
                                 f"{number_text(centre['plateau_worst'])}"))
    ax.add_patch(Rectangle((column - 0.45, row - 0.45), 0.9, 0.9, fill=False,
                           edgecolor="red", linewidth=2.5, label="its centre (chosen)"))
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), frameon=False, fontsize=8,
              ncols=2)


def heatmap_values(table: pd.DataFrame, x: str, y: str, metric: str, agg: str) -> pd.DataFrame:
    """The cells of :func:`sweep_heatmap`: ``y`` values (rows, ascending) x ``x``
    values (columns, ascending) of ``agg`` of ``metric`` over the non-ruined rows;
    NaN where no such row has a value."""
    kept = table[~table["ruined"].astype(bool)] if "ruined" in table.columns else table
    cells = kept.groupby([y, x])[metric].agg(agg).unstack(x)
    return cells.reindex(index=np.sort(table[y].unique()), columns=np.sort(table[x].unique()))


def _heatmap_title(table, params, x, y, metric, agg) -> str:
    others = [p for p in params if p not in (x, y) and table[p].nunique() > 1]
    if "asset" in table.columns and table["asset"].nunique() > 1:
        others.append(f"{table['asset'].nunique()} assets")
    if not others:
        title = metric
    else:
        listed = others[0] if len(others) == 1 else f"{', '.join(others[:-1])} and {others[-1]}"
        title = textwrap.fill(f"{agg} {metric} over {listed}", 64)
    ruined = int(table["ruined"].sum()) if "ruined" in table.columns else 0
    if ruined:
        title += f"\n({ruined:,} ruined rows of {len(table):,} left out)"
    return title


def _category_ticks(set_ticks, values, most: int = 16) -> None:
    step = max(1, int(np.ceil(len(values) / most)))
    positions = np.arange(0, len(values), step)
    labels = _same_decimals(np.asarray(values))
    set_ticks(positions, [labels[p] for p in positions])


def _same_decimals(values: np.ndarray) -> list:
    """Labels of a parameter's values with one number of decimals (1.5, 2.0, 2.5)."""
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.integer):
        return [number_text(v) for v in values]
    finite = values[np.isfinite(values)]
    decimals = next((d for d in range(7) if np.allclose(np.round(finite, d), finite,
                                                         rtol=0, atol=1e-9)), 6)
    if np.all(finite == np.round(finite)):
        decimals = 1 if finite.size and np.abs(finite).max() < 100 else 0
    return [f"{v:.{decimals}f}" for v in values]
