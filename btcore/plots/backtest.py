"""``BacktestResult.plot``: equity with trade markers, drawdown and position."""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from btcore.plots.common import (date_axis, drawdown_axis, equity_axis, metrics_line,
                                 number_text, pyplot, short_number_formatter, wrap_items)

#: exit markers by the trades' ``exit_reason``: (reasons, marker, colour, label)
EXIT_MARKERS = ((("signal",), "x", "black", "exit"),
                (("stop_loss", "trailing_stop"), "X", "tab:orange", "stop exit"),
                (("take_profit",), "P", "tab:blue", "take-profit exit"),
                (("out_of_money",), "*", "black", "out of money"))


def backtest_figure(result):
    """Equity (with trade entries and exits), drawdown and position of one backtest.

    Three stacked panels sharing the time axis: equity (log scale when it
    spans more than 10x) beside buy-and-hold of the benchmark (grey dots,
    ``result.benchmark``), with long entries (green ^), short entries (red v)
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
    plt = pyplot()
    fig, (ax_eq, ax_dd, ax_pos) = plt.subplots(
        3, 1, sharex=True, figsize=(10, 7.2), height_ratios=(3, 1.2, 1.2), layout="constrained")
    ax_eq.plot(equity.index, equity.to_numpy(), color="C0", lw=1.1, label="equity", zorder=2)
    curves = equity.to_numpy()
    benchmark = getattr(result, "benchmark", None)
    if benchmark is not None and len(benchmark):
        ax_eq.plot(benchmark.index, benchmark.to_numpy(), color="0.4", lw=1.0, ls=":",
                   label="buy and hold", zorder=1)
        curves = np.concatenate([curves, benchmark.to_numpy()])
    equity_axis(ax_eq, curves)
    many = len(trades) > 150
    marker = {"s": 12 if many else 30, "zorder": 3, "linewidths": 0.8 if many else 1.0}
    sides = trades["side"].to_numpy()
    for side, shape, colour, label in ((1, "^", "tab:green", "long entry"),
                                       (-1, "v", "tab:red", "short entry")):
        times = pd.DatetimeIndex(trades["entry_time"][sides == side])
        if len(times):
            ax_eq.scatter(times, equity.reindex(times).to_numpy(), marker=shape,
                          color=colour, label=label, **marker)
    reasons = trades["exit_reason"].astype(str).to_numpy() if "exit_reason" in trades \
        else np.full(len(trades), "signal")
    for group, shape, colour, label in EXIT_MARKERS:
        chosen = trades["exit_time"][np.isin(reasons, group)].dropna()
        exits = pd.DatetimeIndex(chosen)
        if len(exits):
            ax_eq.scatter(exits, equity.reindex(exits).to_numpy(), marker=shape, color=colour,
                          label=label, **marker)
    ax_eq.set_ylabel("equity")
    ax_eq.legend(loc="best", fontsize=8, ncols=4, framealpha=0.8)
    ax_eq.set_title(wrap_items(metrics_line(result.metrics), 100), fontsize=10)

    drawdown_axis(ax_dd, drawdown)

    shares = positions.to_numpy()
    ax_pos.fill_between(positions.index, shares, 0.0, where=shares > 0, step="post",
                        color="tab:green", alpha=0.45, lw=0, label="long")
    ax_pos.fill_between(positions.index, shares, 0.0, where=shares < 0, step="post",
                        color="tab:red", alpha=0.45, lw=0, label="short")
    ax_pos.axhline(0.0, color="0.3", lw=0.6)
    ax_pos.set_ylabel("position (shares)")
    ax_pos.yaxis.set_major_formatter(short_number_formatter())
    date_axis(ax_pos)
    for ax in (ax_eq, ax_dd, ax_pos):
        ax.grid(alpha=0.3, lw=0.5)
        ax.margins(x=0.01)
    params = ", ".join(f"{k}={number_text(v)}" for k, v in result.params.items())
    fig.suptitle(textwrap.fill(f"{result.asset}: {params}", 110), fontsize=12)
    return fig
