"""A ``MonteCarloResult``'s figure: a metric's distribution over the paths and
the equity fan."""
from __future__ import annotations

import numpy as np
import pandas as pd

from btcore.metrics import METRIC_NAMES
from btcore.plots.common import date_axis, equity_axis, number_text, pyplot


def monte_carlo_figure(result, metric: str = "sharpe_ratio", set: int | None = None,
                       max_paths: int | None = None):
    """Distribution of ``metric`` over the paths and the fan of equity quantiles.

    Left: histogram of the paths' ``metric`` (NaN values left out) with its
    median and 5 % / 95 % quantiles. Right: the 5-95 % and 25-75 % bands and
    the median of the equity at every bar (``result.equity_quantiles``, which
    replays up to ``max_paths`` paths).

    Parameters
    ----------
    result : MonteCarloResult
    metric : str, default "sharpe_ratio"
    set : int, optional
        The grid row to show; required when the run was a grid of several sets.
    max_paths : int, optional
        Paths replayed for the fan (default: ``equity_quantiles``' own).

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = result.table
    if "set" in table.columns:
        sets = sorted(int(s) for s in pd.unique(table["set"]))
        if set is None:
            if len(sets) > 1:
                raise ValueError(f"the run has {len(sets)} parameter sets; pick one with set= "
                                 f"(a grid row, {sets[0]}..{sets[-1]})")
            set = sets[0]
        if set not in sets:
            raise ValueError(f"set {set!r} is not in this run; choose from {sets[0]}..{sets[-1]}")
        table = table[table["set"] == set]
    elif set not in (None, 0):
        raise ValueError(f"the run has one parameter set; set={set!r} is not needed")
    metrics = [m for m in METRIC_NAMES if m in table.columns]
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; choose from {metrics}")
    values = table[metric].to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"{metric} is NaN on every path; nothing to plot")
    quantile_set = {} if "set" not in result.table.columns else {"set": set}
    if max_paths is not None:
        quantile_set["max_paths"] = max_paths
    fan = result.equity_quantiles((0.05, 0.25, 0.5, 0.75, 0.95), **quantile_set)

    plt = pyplot()
    fig, (ax_hist, ax_fan) = plt.subplots(1, 2, figsize=(11, 4.4), width_ratios=(1, 1.5),
                                          layout="constrained")
    bins = int(np.clip(np.sqrt(values.size) * 1.5, 8, 60))
    ax_hist.hist(values, bins=bins, color="C0", alpha=0.8, edgecolor="white", lw=0.4)
    low, median, high = np.quantile(values, (0.05, 0.5, 0.95))
    ax_hist.axvline(median, color="black", lw=1.2, label=f"median {number_text(median)}")
    ax_hist.axvline(low, color="black", lw=0.9, ls="--",
                    label=f"5% / 95%: {number_text(low)} / {number_text(high)}")
    ax_hist.axvline(high, color="black", lw=0.9, ls="--")
    ax_hist.set_xlabel(metric)
    ax_hist.set_ylabel("paths")
    ax_hist.legend(fontsize=8, framealpha=0.85, loc="best")
    ax_hist.grid(axis="y", alpha=0.3, lw=0.5)
    loss = float((table["total_return"] < 0).mean()) if "total_return" in table else np.nan
    title = f"{metric} over {values.size:,} paths"
    if np.isfinite(loss):
        title += f" · P(loss) {loss:.0%}"
    ax_hist.set_title(title, fontsize=10)

    times = fan.index
    columns = list(fan.columns)
    band = {round(float(q), 4): fan[q].to_numpy() for q in columns}
    ax_fan.fill_between(times, band[0.05], band[0.95], color="C0", alpha=0.18, lw=0,
                        label="5-95%")
    ax_fan.fill_between(times, band[0.25], band[0.75], color="C0", alpha=0.38, lw=0,
                        label="25-75%")
    ax_fan.plot(times, band[0.5], color="C0", lw=1.3, label="median")
    equity_axis(ax_fan, np.concatenate([band[0.05], band[0.95]]))
    ax_fan.set_ylabel("equity")
    ax_fan.legend(fontsize=8, frameon=False, loc="upper left")
    ax_fan.grid(alpha=0.3, lw=0.5)
    ax_fan.margins(x=0.01)
    date_axis(ax_fan)
    replayed = fan.attrs.get("paths", min(int(result.settings.get("n_paths", len(table))),
                                          max_paths if max_paths is not None else 10 ** 12))
    ax_fan.set_title(f"equity quantiles over {replayed:,} replayed paths", fontsize=10)
    settings = result.settings
    head = f"Monte Carlo of {getattr(result, 'strategy', 'strategy')}"
    asset = (settings.get("assets") or [None])[0]
    if asset:
        head += f" on {asset}"
    head += f": {int(settings.get('n_paths', len(table))):,} {settings.get('method', '')} paths"
    if "set" in result.table.columns:
        head += f", set {set}"
    fig.suptitle(head.replace("  ", " "), fontsize=12)
    return fig
