"""What every figure shares: matplotlib imported on first use (an ImportError with
the install hint without it), argument checks (tables, parameter columns, assets),
number labels, and the equity, drawdown and date axes."""
from __future__ import annotations

import numpy as np
import pandas as pd

from btcore.benchmark import ALPHA_BETA, BENCHMARK_COLUMNS
from btcore.metrics import METRIC_NAMES

#: table columns that are neither parameters nor metrics
LABEL_COLUMNS = frozenset({"asset", "ruined", "path", "set"})
#: result columns besides ``METRIC_NAMES``: never parameters, and a heatmap can show them
EXTRA_METRICS = ("turnover", "avg_correlation", *BENCHMARK_COLUMNS, *ALPHA_BETA)
#: an equity curve spanning more than this ratio is drawn on a log scale
LOG_SPAN = 10.0

_INSTALL = "pip install 'btcore[plot]'"


def pyplot():
    """``matplotlib.pyplot``, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(f"btcore's plots need matplotlib, which is not installed: "
                          f"{_INSTALL}") from error
    return plt


def table_of(result) -> pd.DataFrame:
    table = result if isinstance(result, pd.DataFrame) else getattr(result, "table", None)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a SweepResult or its table, got {type(result).__name__}")
    return table


def parameter_columns(table: pd.DataFrame) -> list:
    from btcore.stability import STABILITY_COLUMNS
    return [c for c in table.columns if c not in METRIC_NAMES and c not in LABEL_COLUMNS
            and c not in EXTRA_METRICS and c not in STABILITY_COLUMNS
            and not c.startswith("plateau_") and pd.api.types.is_numeric_dtype(table[c])
            and not pd.api.types.is_bool_dtype(table[c])]


def pick_asset(asset, assets: list, what: str) -> str:
    if asset is None:
        if len(assets) > 1:
            raise ValueError(f"the {what} ran {len(assets)} assets; pick one with asset=, "
                             f"one of {assets}")
        return assets[0]
    if asset not in assets:
        raise ValueError(f"asset {asset!r} is not in this {what}; choose from {assets}")
    return asset


def number_text(value) -> str:
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


def _short_money(value: float, digits: int = 3) -> str:
    size = abs(value)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= scale:
            return f"{value / scale:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"


def short_labels(values, digits: int = 3) -> list:
    """Compact labels (1.5M, 250k) of tick ``values``, with as many significant
    digits beyond ``digits`` as it takes for different values to read differently
    (1M and 1.002M, never 1M twice)."""
    values = [float(v) for v in values]
    for more in range(digits, 16):
        labels = [_short_money(v, more) if v else "0" for v in values]
        if len(set(labels)) == len(set(values)):
            break
    return labels


def short_number_formatter():
    """A matplotlib formatter of :func:`short_labels` (all of an axis's ticks at once)."""
    from matplotlib.ticker import Formatter

    class ShortNumberFormatter(Formatter):
        def __call__(self, value, pos=None):
            return _short_money(value) if value else "0"

        def format_ticks(self, values):
            return short_labels(values)

    return ShortNumberFormatter()


def equity_axis(ax, values: np.ndarray) -> None:
    """Log scale when positive values span more than ``LOG_SPAN``; compact money ticks."""
    from matplotlib.ticker import LogLocator, NullFormatter
    finite = values[np.isfinite(values)]
    if finite.size and (finite > 0).all() and finite.max() / finite.min() > LOG_SPAN:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(short_number_formatter())


def headroom(ax, share: float) -> None:
    """Raise the top of the y axis so the data fill ``1 - share`` of its height."""
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log":
        ax.set_ylim(low, high * (high / low) ** (share / (1 - share)))
    else:
        ax.set_ylim(low, high + (high - low) * share / (1 - share))


def date_axis(ax) -> None:
    import matplotlib.dates as mdates
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def drawdown_axis(ax, drawdown: pd.Series) -> None:
    """Drawdown in percent, filled down from 0."""
    percent = drawdown.to_numpy() * 100.0
    ax.fill_between(drawdown.index, percent, 0.0, color="tab:red", alpha=0.35, lw=0)
    ax.plot(drawdown.index, percent, color="tab:red", lw=0.7)
    low = np.nanmin(percent) if np.isfinite(percent).any() else 0.0
    ax.set_ylim(min(low * 1.08, -1.0), 0.5)
    ax.set_ylabel("drawdown (%)")


def metrics_line(metrics: dict) -> str:
    """One line of a result's headline metrics; the counts say what they count
    (bars with a fill; closed round trips, which the win rate is over)."""
    parts = []
    for name, label, form in (("sharpe_ratio", "Sharpe", "{:.2f}"), ("cagr", "CAGR", "{:.1%}"),
                              ("max_drawdown", "max drawdown", "{:.1%}"),
                              ("excess_return", "excess over buy and hold", "{:+.1%}"),
                              ("num_trades", "bars with fills", "{:,.0f}"),
                              ("num_round_trips", "round trips", "{:,.0f}"),
                              ("win_rate", "won", "{:.0%}"),
                              ("exposure", "exposure", "{:.0%}")):
        value = metrics.get(name)
        if value is not None and np.isfinite(value):
            parts.append(f"{label} {form.format(value)}")
    if metrics.get("ruined"):
        parts.append("RUINED (equity reached 0)")
    return " · ".join(parts)


def wrap_items(line: str, width: int) -> str:
    """``line``'s " · "-separated items in lines of at most ``width`` characters,
    broken between items."""
    lines = []
    for part in (p for p in line.split(" · ") if p):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)
