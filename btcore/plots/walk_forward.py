"""``WalkForwardResult.plot``: in- vs out-of-sample metric per fold and the
stitched out-of-sample equity."""
from __future__ import annotations

import numpy as np
import pandas as pd

from btcore.metrics import METRIC_NAMES
from btcore.plots.common import date_axis, equity_axis, headroom, pick_asset, pyplot


def walk_forward_figure(result, asset: str | None = None, metric: str = "sharpe_ratio"):
    """In- vs out-of-sample ``metric`` per fold and the stitched out-of-sample equity.

    Top: per fold, the in-sample value of the chosen set and its out-of-sample
    value side by side. Bottom: the stitched out-of-sample equity of ``asset``
    with the fold boundaries (folds shaded alternately and numbered).

    Parameters
    ----------
    result : WalkForwardResult
    asset : str, optional
        Required when the walk-forward ran several assets.
    metric : str, default "sharpe_ratio"

    Returns
    -------
    matplotlib.figure.Figure
    """
    folds = result.folds
    assets = (list(pd.unique(folds["asset"])) if "asset" in folds.columns
              else [str(c) for c in result.oos_equity.columns])
    asset = pick_asset(asset, assets, "walk-forward")
    metrics = [m for m in METRIC_NAMES if f"is_{m}" in folds.columns
               and f"oos_{m}" in folds.columns]
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; choose from {metrics}")
    rows = folds[folds["asset"] == asset] if "asset" in folds.columns else folds
    rows = rows.sort_values("fold")
    equity = result.oos_equity[asset].dropna()
    if len(rows) == 0 or len(equity) == 0:
        raise ValueError(f"the walk-forward has no folds for asset {asset!r}")

    plt = pyplot()
    fig, (ax_bar, ax_eq) = plt.subplots(2, 1, figsize=(10, 7), height_ratios=(1, 1.35),
                                        layout="constrained")
    position = np.arange(len(rows))
    width = 0.38
    in_sample = rows[f"is_{metric}"].to_numpy(dtype=np.float64)
    out_sample = rows[f"oos_{metric}"].to_numpy(dtype=np.float64)
    ax_bar.bar(position - width / 2, in_sample, width, color="C0", label="in-sample (chosen set)")
    ax_bar.bar(position + width / 2, out_sample, width, color="C1", label="out-of-sample")
    ax_bar.axhline(0.0, color="0.3", lw=0.7)
    labels = [f"{int(f)}\n{pd.Timestamp(s):%Y-%m-%d}"
              for f, s in zip(rows["fold"], rows["oos_start"])]
    ax_bar.set_xticks(position, labels, fontsize=8 if len(rows) > 8 else 9)
    ax_bar.set_xlabel("fold (out-of-sample start)")
    ax_bar.set_ylabel(metric)
    ax_bar.set_xlim(-0.6, len(rows) - 0.4)
    ax_bar.grid(axis="y", alpha=0.3, lw=0.5)
    ax_bar.legend(fontsize=8, frameon=False, ncols=2, loc="best")
    ax_bar.set_title(f"{metric} per fold: in-sample vs out-of-sample", fontsize=10)

    ax_eq.plot(equity.index, equity.to_numpy(), color="C1", lw=1.1,
               label="out-of-sample equity")
    curves = equity.to_numpy()
    benchmark = getattr(result, "oos_benchmark", None)
    if benchmark is not None and asset in benchmark.columns:
        hold = benchmark[asset].dropna()
        ax_eq.plot(hold.index, hold.to_numpy(), color="0.4", lw=1.0, ls=":",
                   label="buy and hold")
        curves = np.concatenate([curves, hold.to_numpy()])
        ax_eq.legend(fontsize=8, frameon=False, loc="lower left")
    equity_axis(ax_eq, curves)
    headroom(ax_eq, 0.09)  # a strip above the curve for the fold numbers
    labels_at = ax_eq.get_xaxis_transform()  # x in data, y in axes fraction
    for k, (fold, start, end) in enumerate(zip(rows["fold"], rows["oos_start"], rows["oos_end"])):
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        if k % 2:
            ax_eq.axvspan(start, end, color="0.5", alpha=0.1, lw=0)
        if k:
            ax_eq.axvline(start, color="0.35", lw=0.8, ls="--")
        ax_eq.text(start + (end - start) / 2, 0.985, f"fold {int(fold)}", ha="center",
                   va="top", fontsize=8, color="0.3", transform=labels_at)
    ax_eq.set_ylabel("out-of-sample equity")
    ax_eq.grid(alpha=0.3, lw=0.5)
    ax_eq.margins(x=0.01)
    date_axis(ax_eq)
    ax_eq.set_title(_oos_line(result, asset), fontsize=10)
    settings = getattr(result, "settings", {}) or {}
    kind = "anchored" if settings.get("anchored") else "rolling"
    fig.suptitle(f"Walk-forward of {asset}: {len(rows)} {kind} folds", fontsize=12)
    return fig


def _oos_line(result, asset) -> str:
    line = "stitched out-of-sample equity"
    oos = getattr(result, "oos_metrics", None)
    if oos is None or asset not in oos.index:
        return line
    row = oos.loc[asset]
    parts = [f"Sharpe {row['sharpe_ratio']:.2f}" if "sharpe_ratio" in row else None,
             f"CAGR {row['cagr']:.1%}" if "cagr" in row else None,
             f"max drawdown {row['max_drawdown']:.1%}" if "max_drawdown" in row else None]
    efficiency = getattr(result, "efficiency", None)
    if efficiency is not None and asset in efficiency.index and np.isfinite(efficiency[asset]):
        parts.append(f"efficiency {efficiency[asset]:.2f}")
    return line + ": " + " · ".join(p for p in parts if p)
