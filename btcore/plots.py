"""Figures of btcore results (matplotlib, the ``plot`` extra, imported lazily).

Every function validates its arguments first (a clear ``ValueError`` for an
unknown column, metric, aggregation or asset), then imports matplotlib and
returns the :class:`matplotlib.figure.Figure` it drew:

- :func:`sweep_heatmap` -- ``SweepResult.plot_heatmap``: a metric over two
  parameters, the other parameters and assets aggregated;
- :func:`backtest_figure` -- ``BacktestResult.plot``: equity with trade
  markers, drawdown and position;
- :func:`portfolio_figure` -- ``PortfolioBacktestResult.plot``: equity,
  drawdown and the per-asset weights over time with the gross exposure;
- :func:`walk_forward_figure` -- ``WalkForwardResult.plot``: in- vs
  out-of-sample metric per fold and the stitched out-of-sample equity;
- :func:`monte_carlo_figure` -- a ``MonteCarloResult``: a metric's
  distribution over the paths and the equity fan.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from btcore.metrics import METRIC_NAMES

__all__ = ["AGGREGATIONS", "backtest_figure", "monte_carlo_figure", "portfolio_figure",
           "sweep_heatmap", "walk_forward_figure", "weight_bands"]

#: ``agg`` values of :func:`sweep_heatmap` (pandas reductions of each cell's rows)
AGGREGATIONS = ("max", "min", "mean", "median")
#: metrics where lower is better: their colour maps run the other way
LOWER_IS_BETTER = frozenset({"annual_volatility"})
#: table columns that are neither parameters nor metrics
LABEL_COLUMNS = frozenset({"asset", "ruined", "path", "set"})
#: cells up to which a heatmap writes each value in its cell
ANNOTATE_CELLS = 300
#: an equity curve spanning more than this ratio is drawn on a log scale
LOG_SPAN = 10.0
#: assets named in a portfolio figure's weights panel; the rest are one "other" band
MAX_NAMED_ASSETS = 10

_INSTALL = "pip install 'btcore[plot]'"


def _pyplot():
    """``matplotlib.pyplot``, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(f"btcore's plots need matplotlib, which is not installed: "
                          f"{_INSTALL}") from error
    return plt


# ------------------------------------------------------------------ heatmap
def sweep_heatmap(result, x: str, y: str, metric: str = "sharpe_ratio", agg: str = "max",
                  ax=None):
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
    agg : {"max", "min", "mean", "median"}, default "max"
    ax : matplotlib Axes, optional
        Draw into these axes (and their figure) instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = _table_of(result)
    params = _parameter_columns(table)
    for name, value in (("x", x), ("y", y)):
        if value not in params:
            raise ValueError(f"unknown parameter {name}={value!r}; choose from {params}")
    if x == y:
        raise ValueError(f"x and y are both {x!r}; pick two different parameters from {params}")
    metrics = [m for m in METRIC_NAMES if m in table.columns]
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; choose from {metrics}")
    if not isinstance(agg, str) or agg not in AGGREGATIONS:
        raise ValueError(f"unknown agg {agg!r}; choose from {list(AGGREGATIONS)}")
    cells = heatmap_values(table, x, y, metric, agg)
    if cells.isna().all(axis=None):
        raise ValueError(f"{metric} is NaN or ruined for every row; nothing to plot")

    plt = _pyplot()
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
                ax.text(j, i, _number(value), ha="center", va="center", color=ink,
                        fontsize=size)
    colorbar = fig.colorbar(image, ax=ax)
    colorbar.set_label(f"{metric} ({agg})")
    ax.set_title(_heatmap_title(table, params, x, y, metric, agg), fontsize=11)
    return fig


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
        return [_number(v) for v in values]
    finite = values[np.isfinite(values)]
    decimals = next((d for d in range(7) if np.allclose(np.round(finite, d), finite,
                                                         rtol=0, atol=1e-9)), 6)
    if np.all(finite == np.round(finite)):
        decimals = 1 if finite.size and np.abs(finite).max() < 100 else 0
    return [f"{v:.{decimals}f}" for v in values]


# ------------------------------------------------------------------ backtest
def backtest_figure(result):
    """Equity (with trade entries and exits), drawdown and position of one backtest.

    Three stacked panels sharing the time axis: equity (log scale when it
    spans more than 10x) with long entries (green ^), short entries (red v)
    and exits (black x) at the equity of their bar; drawdown in percent
    (filled); position in shares (long green, short red).

    Parameters
    ----------
    result : BacktestResult

    Returns
    -------
    matplotlib.figure.Figure
    """
    equity, drawdown, positions = result.equity, result.drawdown, result.positions
    trades = result.trades
    if len(equity) == 0:
        raise ValueError("the backtest has no traded bars; nothing to plot")
    plt = _pyplot()
    fig, (ax_eq, ax_dd, ax_pos) = plt.subplots(
        3, 1, sharex=True, figsize=(10, 7.2), height_ratios=(3, 1.2, 1.2), layout="constrained")
    ax_eq.plot(equity.index, equity.to_numpy(), color="C0", lw=1.1, label="equity", zorder=2)
    _equity_axis(ax_eq, equity.to_numpy())
    many = len(trades) > 150
    marker = {"s": 12 if many else 30, "zorder": 3, "linewidths": 0.8 if many else 1.0}
    sides = trades["side"].to_numpy()
    for side, shape, colour, label in ((1, "^", "tab:green", "long entry"),
                                       (-1, "v", "tab:red", "short entry")):
        times = pd.DatetimeIndex(trades["entry_time"][sides == side])
        if len(times):
            ax_eq.scatter(times, equity.reindex(times).to_numpy(), marker=shape,
                          color=colour, label=label, **marker)
    exits = pd.DatetimeIndex(trades["exit_time"].dropna())
    if len(exits):
        ax_eq.scatter(exits, equity.reindex(exits).to_numpy(), marker="x", color="black",
                      label="exit", **marker)
    ax_eq.set_ylabel("equity")
    ax_eq.legend(loc="best", fontsize=8, ncols=4, framealpha=0.8)
    ax_eq.set_title(_metrics_line(result.metrics), fontsize=10)

    _drawdown_axis(ax_dd, drawdown)

    shares = positions.to_numpy()
    ax_pos.fill_between(positions.index, shares, 0.0, where=shares > 0, step="post",
                        color="tab:green", alpha=0.45, lw=0, label="long")
    ax_pos.fill_between(positions.index, shares, 0.0, where=shares < 0, step="post",
                        color="tab:red", alpha=0.45, lw=0, label="short")
    ax_pos.axhline(0.0, color="0.3", lw=0.6)
    ax_pos.set_ylabel("position (shares)")
    ax_pos.yaxis.set_major_formatter(_short_number_formatter())
    _date_axis(ax_pos)
    for ax in (ax_eq, ax_dd, ax_pos):
        ax.grid(alpha=0.3, lw=0.5)
        ax.margins(x=0.01)
    params = ", ".join(f"{k}={_number(v)}" for k, v in result.params.items())
    fig.suptitle(textwrap.fill(f"{result.asset}: {params}", 110), fontsize=12)
    return fig


def _drawdown_axis(ax, drawdown: pd.Series) -> None:
    """Drawdown in percent, filled down from 0."""
    percent = drawdown.to_numpy() * 100.0
    ax.fill_between(drawdown.index, percent, 0.0, color="tab:red", alpha=0.35, lw=0)
    ax.plot(drawdown.index, percent, color="tab:red", lw=0.7)
    low = np.nanmin(percent) if np.isfinite(percent).any() else 0.0
    ax.set_ylim(min(low * 1.08, -1.0), 0.5)
    ax.set_ylabel("drawdown (%)")


def _metrics_line(metrics: dict) -> str:
    parts = []
    for name, label, form in (("sharpe_ratio", "Sharpe", "{:.2f}"), ("cagr", "CAGR", "{:.1%}"),
                              ("max_drawdown", "max drawdown", "{:.1%}"),
                              ("num_trades", "trades", "{:,.0f}"),
                              ("win_rate", "win rate", "{:.0%}"),
                              ("exposure", "exposure", "{:.0%}")):
        value = metrics.get(name)
        if value is not None and np.isfinite(value):
            parts.append(f"{label} {form.format(value)}")
    if metrics.get("ruined"):
        parts.append("RUINED (equity reached 0)")
    return " · ".join(parts)


# ------------------------------------------------------------------ portfolio
def portfolio_figure(result, max_named: int = MAX_NAMED_ASSETS):
    """Equity, drawdown and the per-asset weights over time of one portfolio backtest.

    Three stacked panels sharing the time axis: the account's equity (log scale
    when it spans more than 10x); its drawdown in percent (filled); and the
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
    plt = _pyplot()
    fig, (ax_eq, ax_dd, ax_w) = plt.subplots(
        3, 1, sharex=True, figsize=(10, 8), height_ratios=(2.4, 1.1, 2.2),
        layout="constrained")
    ax_eq.plot(equity.index, equity.to_numpy(), color="C0", lw=1.1)
    _equity_axis(ax_eq, equity.to_numpy())
    ax_eq.set_ylabel("equity")
    ax_eq.set_title(_portfolio_metrics_line(result.metrics), fontsize=10)

    _drawdown_axis(ax_dd, drawdown)

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
    _date_axis(ax_w)
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
    """``_metrics_line`` plus turnover and average correlation, in lines of at most
    ``width`` characters broken between items (the legend narrows the axes)."""
    parts = [p for p in _metrics_line(metrics).split(" · ") if p]
    turnover = metrics.get("turnover")
    if turnover is not None and np.isfinite(turnover):
        parts.append(f"turnover {turnover:.1f}x/yr")
    correlation = metrics.get("avg_correlation")
    if correlation is not None and np.isfinite(correlation):
        parts.append(f"avg correlation {correlation:.2f}")
    lines = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def _portfolio_head(result, n_assets: int) -> str:
    """"Portfolio of n assets: strategy parameters", then the construction settings
    that are set (not inf) on a second line."""
    from btcore.kernels.portfolio import CONSTRUCTION
    params = result.params or {}
    shown = [f"{k}={_number(v)}" for k, v in params.items() if k not in CONSTRUCTION]
    head = f"Portfolio of {n_assets} asset{'s' if n_assets != 1 else ''}"
    head = textwrap.fill(f"{head}: {', '.join(shown)}" if shown else head, 110)
    construction = []
    for name in CONSTRUCTION:
        value = params.get(name)
        if value is not None and np.isfinite(float(value)):
            value = int(value) if name == "rebalance_every" else value
            construction.append(f"{name}={_number(value)}")
    return head + ("\n" + ", ".join(construction) if construction else "")


# ------------------------------------------------------------------ walk-forward
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
    asset = _pick_asset(asset, assets, "walk-forward")
    metrics = [m for m in METRIC_NAMES if f"is_{m}" in folds.columns
               and f"oos_{m}" in folds.columns]
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; choose from {metrics}")
    rows = folds[folds["asset"] == asset] if "asset" in folds.columns else folds
    rows = rows.sort_values("fold")
    equity = result.oos_equity[asset].dropna()
    if len(rows) == 0 or len(equity) == 0:
        raise ValueError(f"the walk-forward has no folds for asset {asset!r}")

    plt = _pyplot()
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

    ax_eq.plot(equity.index, equity.to_numpy(), color="C1", lw=1.1)
    _equity_axis(ax_eq, equity.to_numpy())
    _headroom(ax_eq, 0.09)  # a strip above the curve for the fold numbers
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
    _date_axis(ax_eq)
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


# ------------------------------------------------------------------ Monte Carlo
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

    plt = _pyplot()
    fig, (ax_hist, ax_fan) = plt.subplots(1, 2, figsize=(11, 4.4), width_ratios=(1, 1.5),
                                          layout="constrained")
    bins = int(np.clip(np.sqrt(values.size) * 1.5, 8, 60))
    ax_hist.hist(values, bins=bins, color="C0", alpha=0.8, edgecolor="white", lw=0.4)
    low, median, high = np.quantile(values, (0.05, 0.5, 0.95))
    ax_hist.axvline(median, color="black", lw=1.2, label=f"median {_number(median)}")
    ax_hist.axvline(low, color="black", lw=0.9, ls="--",
                    label=f"5% / 95%: {_number(low)} / {_number(high)}")
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
    _equity_axis(ax_fan, np.concatenate([band[0.05], band[0.95]]))
    ax_fan.set_ylabel("equity")
    ax_fan.legend(fontsize=8, frameon=False, loc="upper left")
    ax_fan.grid(alpha=0.3, lw=0.5)
    ax_fan.margins(x=0.01)
    _date_axis(ax_fan)
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


# ------------------------------------------------------------------ helpers
def _table_of(result) -> pd.DataFrame:
    table = result if isinstance(result, pd.DataFrame) else getattr(result, "table", None)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a SweepResult or its table, got {type(result).__name__}")
    return table


def _parameter_columns(table: pd.DataFrame) -> list:
    return [c for c in table.columns if c not in METRIC_NAMES and c not in LABEL_COLUMNS
            and pd.api.types.is_numeric_dtype(table[c])
            and not pd.api.types.is_bool_dtype(table[c])]


def _pick_asset(asset, assets: list, what: str) -> str:
    if asset is None:
        if len(assets) > 1:
            raise ValueError(f"the {what} ran {len(assets)} assets; pick one with asset=, "
                             f"one of {assets}")
        return assets[0]
    if asset not in assets:
        raise ValueError(f"asset {asset!r} is not in this {what}; choose from {assets}")
    return asset


def _number(value) -> str:
    """Short text for a parameter or metric value."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{value:,}" if abs(value) >= 10_000 else str(int(value))
    value = float(value)
    if not np.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e6:
        return str(int(value)) if abs(value) >= 100 else f"{value:.1f}"
    if abs(value) >= 1000:
        return f"{value:.3g}"
    return f"{value:.2f}" if abs(value) >= 0.01 else f"{value:.2g}"


def _short_money(value: float) -> str:
    size = abs(value)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _short_number_formatter():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda value, _: _short_money(value) if value else "0")


def _equity_axis(ax, values: np.ndarray) -> None:
    """Log scale when positive values span more than ``LOG_SPAN``; compact money ticks."""
    from matplotlib.ticker import LogLocator, NullFormatter
    finite = values[np.isfinite(values)]
    if finite.size and (finite > 0).all() and finite.max() / finite.min() > LOG_SPAN:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(_short_number_formatter())


def _headroom(ax, share: float) -> None:
    """Raise the top of the y axis so the data fill ``1 - share`` of its height."""
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log":
        ax.set_ylim(low, high * (high / low) ** (share / (1 - share)))
    else:
        ax.set_ylim(low, high + (high - low) * share / (1 - share))


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
