"""``PortfolioBacktestResult.plot``: equity, drawdown and the per-asset weights
over time with the gross exposure."""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from btcore.plots.common import (date_axis, drawdown_axis, equity_axis, metrics_line,
                                 number_text, pyplot, wrap_items)

#: assets named in a portfolio figure's weights panel; the rest are one "other" band
MAX_NAMED_ASSETS = 10


def portfolio_figure(result, max_named: int = MAX_NAMED_ASSETS):
    """Equity, drawdown and the per-asset weights over time of one portfolio backtest.

    Three stacked panels sharing the time axis: the account's equity (log scale
    when it spans more than 10x) beside equal-weight buy-and-hold of the universe
    (grey dots, ``result.benchmark``); its drawdown in percent (filled); and the
    weights ``shares x close / equity`` after each bar (``result.weights``) as
    stacked areas, one colour per asset, long weights stacked upwards from 0 and
    short weights downwards, with the gross exposure (sum of |weights|) as a
    black line. The ``max_named`` assets of largest mean |weight| are named in
    the legend (largest nearest 0); with more assets than that, the others are
    one grey "other" band (see :func:`weight_bands`).

    Parameters
    ----------
    result : PortfolioBacktestResult
    max_named : int, default 10

    Returns
    -------
    matplotlib.figure.Figure
    """
    equity, weights = result.equity, result.weights
    if len(equity) == 0:
        raise ValueError("the portfolio backtest has no traded bars; nothing to plot")
    long, short = weight_bands(weights, max_named)
    drawdown = result.drawdown if result.drawdown is not None else _drawdown_of(result)
    plt = pyplot()
    fig, (ax_eq, ax_dd, ax_w) = plt.subplots(
        3, 1, sharex=True, figsize=(10, 8), height_ratios=(2.4, 1.1, 2.2),
        layout="constrained")
    ax_eq.plot(equity.index, equity.to_numpy(), color="C0", lw=1.1, label="portfolio")
    curves = equity.to_numpy()
    benchmark = getattr(result, "benchmark", None)
    if benchmark is not None and len(benchmark):
        ax_eq.plot(benchmark.index, benchmark.to_numpy(), color="0.4", lw=1.0, ls=":",
                   label="equal-weight buy and hold")
        curves = np.concatenate([curves, benchmark.to_numpy()])
        ax_eq.legend(loc="upper left", fontsize=8, frameon=False)
    equity_axis(ax_eq, curves)
    ax_eq.set_ylabel("equity")
    ax_eq.set_title(_portfolio_metrics_line(result.metrics), fontsize=10)

    drawdown_axis(ax_dd, drawdown)

    times = weights.index
    colours = _band_colours(list(long.columns))
    up, down = np.zeros(len(times)), np.zeros(len(times))
    for label in long.columns:
        top, bottom = up + long[label].to_numpy(), down + short[label].to_numpy()
        ax_w.fill_between(times, up, top, color=colours[label], lw=0, alpha=0.85,
                          label=label).set_gid(f"long {label}")
        ax_w.fill_between(times, bottom, down, color=colours[label], lw=0,
                          alpha=0.85).set_gid(f"short {label}")
        up, down = top, bottom
    gross = weights.abs().sum(axis=1).to_numpy()
    ax_w.plot(times, gross, color="black", lw=0.8, label="gross exposure")
    ax_w.axhline(0.0, color="0.3", lw=0.6)
    high = max(float(np.nanmax(gross)), 1e-3)
    low = min(float(np.nanmin(down)), 0.0)
    pad = 0.06 * (high - low)
    ax_w.set_ylim(low - pad if low < 0 else -pad / 2, high + pad)
    from matplotlib.ticker import PercentFormatter
    ax_w.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax_w.set_ylabel("weight (% of equity)")
    ax_w.set_title("weights: long above 0, short below", fontsize=10)
    ax_w.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                borderaxespad=0.0, handlelength=1.2)
    date_axis(ax_w)
    for ax in (ax_eq, ax_dd, ax_w):
        ax.grid(alpha=0.3, lw=0.5)
        ax.margins(x=0.01)
    fig.suptitle(_portfolio_head(result, weights.shape[1]), fontsize=12)
    return fig


def weight_bands(weights: pd.DataFrame, max_named: int = MAX_NAMED_ASSETS):
    """The bands of :func:`portfolio_figure`'s weights panel: ``(long, short)``, two
    bars x bands frames of the long (>= 0) and short (<= 0) parts of the weights.

    Bands are the assets in order of mean |weight| (largest first; ties in column
    order). With more than ``max_named`` assets, the first ``max_named - 1`` are
    kept and the rest summed into one band ``"other (k assets)"`` (last), so
    there are at most ``max_named`` bands.
    """
    if isinstance(max_named, (bool, np.bool_)) or not isinstance(
            max_named, (int, np.integer)) or max_named < 1:
        raise ValueError(f"max_named must be a whole number >= 1, got {max_named!r}")
    if not isinstance(weights, pd.DataFrame) or weights.shape[1] == 0:
        raise ValueError("the portfolio has no assets' weights to plot")
    values = weights.to_numpy(dtype=np.float64)
    values = np.where(np.isfinite(values), values, 0.0)
    size = np.abs(values).mean(axis=0)
    order = np.argsort(-size, kind="stable")
    labels = [str(c) for c in weights.columns]
    named = order if len(order) <= max_named else order[:max_named - 1]
    rest = order[len(named):]
    columns = [labels[a] for a in named]
    long_parts = [np.clip(values[:, a], 0.0, None) for a in named]
    short_parts = [np.clip(values[:, a], None, 0.0) for a in named]
    if rest.size:
        columns.append(f"other ({rest.size} assets)")
        long_parts.append(np.clip(values[:, rest], 0.0, None).sum(axis=1))
        short_parts.append(np.clip(values[:, rest], None, 0.0).sum(axis=1))
    long = pd.DataFrame(np.column_stack(long_parts), index=weights.index, columns=columns)
    short = pd.DataFrame(np.column_stack(short_parts), index=weights.index, columns=columns)
    return long, short


def _band_colours(labels: list) -> dict:
    """A colour per named band (tab10, tab20 past 10; without their greys when an
    "other" band is drawn, so that it alone is grey)."""
    import matplotlib
    named = [label for label in labels if not label.startswith("other (")]
    grouped = len(named) < len(labels)
    cmap = matplotlib.colormaps["tab10" if len(named) <= 10 - grouped else "tab20"]
    greys = {7} if cmap.N == 10 else {14, 15}
    palette = [cmap(k) for k in range(cmap.N) if not (grouped and k in greys)]
    colours = {label: palette[k % len(palette)] for k, label in enumerate(named)}
    colours.update({label: "0.62" for label in labels if label not in colours})
    return colours


def _drawdown_of(result) -> pd.Series:
    """E_t / running peak - 1 from ``equity`` and ``returns`` (the initial capital is
    E_0 / (1 + r_0)), for a result built without its ``drawdown``."""
    values = result.equity.to_numpy(dtype=np.float64)
    first = float(result.returns.iloc[0]) if len(result.returns) else 0.0
    start = values[0] / (1.0 + first) if first > -1.0 else values[0]
    peak = np.maximum.accumulate(np.maximum(values, start))
    with np.errstate(invalid="ignore", divide="ignore"):
        drawdown = np.where(peak > 0.0, values / peak - 1.0, 0.0)
    return pd.Series(drawdown, index=result.equity.index, name="drawdown")


def _portfolio_metrics_line(metrics: dict, width: int = 84) -> str:
    """``metrics_line`` plus turnover and average correlation, in lines of at most
    ``width`` characters broken between items (the legend narrows the axes)."""
    parts = [p for p in metrics_line(metrics).split(" · ") if p]
    turnover = metrics.get("turnover")
    if turnover is not None and np.isfinite(turnover):
        parts.append(f"turnover {turnover:.1f}x/yr")
    correlation = metrics.get("avg_correlation")
    if correlation is not None and np.isfinite(correlation):
        parts.append(f"avg correlation {correlation:.2f}")
    return wrap_items(" · ".join(parts), width)


def _portfolio_head(result, n_assets: int) -> str:
    """"Portfolio of n assets: strategy parameters", then the construction settings
    that are set (not inf) on a second line."""
    from btcore.kernels.portfolio import CONSTRUCTION
    params = result.params or {}
    shown = [f"{k}={number_text(v)}" for k, v in params.items() if k not in CONSTRUCTION]
    head = f"Portfolio of {n_assets} asset{'s' if n_assets != 1 else ''}"
    head = textwrap.fill(f"{head}: {', '.join(shown)}" if shown else head, 110)
    construction = []
    for name in CONSTRUCTION:
        value = params.get(name)
        if value is not None and np.isfinite(float(value)):
            value = int(value) if name == "rebalance_every" else value
            construction.append(f"{name}={number_text(value)}")
    return head + ("\n" + ", ".join(construction) if construction else "")
