"""Run settings shared by ``run_sweep`` and ``backtest``: capital, costs,
annualisation, and the check of keyword arguments that are neither.

``periods_per_year`` (bars per year, for Sharpe, Sortino, volatility and CAGR)
is inferred from the bar spacing when it is None, by this rule
(:func:`infer_periods_per_year`), from the median spacing of the index:

- intraday (median spacing < 0.75 day), or daily with weekend bars (more than
  10 % of the bars on a Saturday or Sunday): the data's own bars per calendar
  year, (bars - 1) / (last - first timestamp in days) x 365.25, rounded to a
  whole number, when the bars span at least a year (``CALENDAR_SPAN_DAYS``):
  FX trading Sunday evening to Friday evening, hourly -> about 6,200 (not
  24 x 252 = 6,048); 24/7 hourly bars -> 8,766; daily crypto -> 365. Over a
  shorter span (too short to count a year): intraday bars per day (the median
  number of bars on a calendar date) x 365 with weekend bars, else x 252
  (hourly US equities, 7 a day -> 1,764); daily with weekend bars -> 365.
- daily business days (0.75 to 4 days, no weekend bars): 252.
- weekly (4 to 10 days): 52; monthly (25 to 35 days): 12; quarterly (80 to
  100 days): 4; yearly (330 to 400 days): 1.
- anything else: 365.25 / median spacing in days.

An explicit value always wins; when it is more than 2x away from the inferred
one (252 on hourly data, say), a ``UserWarning`` names both.
"""
from __future__ import annotations

import difflib
import inspect
import math
import warnings

import numpy as np
import pandas as pd

#: 100 % of the traded value per trade: costs above it are surely a unit mistake
MAX_COST_BPS = 10_000.0
#: an explicit periods_per_year this many times away from the inferred one is warned about
MISMATCH_FACTOR = 2.0
#: share of bars on Saturdays and Sundays above which a market trades 7 days a week
WEEKEND_SHARE = 0.10
#: bars spanning at least this many days are counted per calendar year (intraday bars,
#: or daily bars with weekends) rather than extrapolated from one day's or week's
CALENDAR_SPAN_DAYS = 365.0

_DAY = 86_400.0  # seconds
# (lowest, highest median spacing in days) -> periods per year, after daily
_CALENDAR = ((4.0, 10.0, 52.0, "weekly"), (25.0, 35.0, 12.0, "monthly"),
             (80.0, 100.0, 4.0, "quarterly"), (330.0, 400.0, 1.0, "yearly"))


def _is_number(value) -> bool:
    return not isinstance(value, (bool, np.timedelta64)) and isinstance(
        value, (int, float, np.integer, np.floating))


def check_settings(initial_capital, cost_bps, periods_per_year, index=None) -> tuple:
    """Validate the run settings; return ``(capital, cost_bps, periods_per_year)`` as floats.

    ``periods_per_year=None`` is inferred from ``index`` (the data's
    timestamps; see the module docstring); an explicit value is checked
    against ``index`` when given, with a ``UserWarning`` for a mismatch.

    Raises
    ------
    TypeError
        A setting that is not a number (None allowed for periods_per_year).
    ValueError
        Non-finite values, capital <= 0, costs < 0 or above 10,000 bps (100 %
        of the traded value per trade), periods_per_year <= 0.
    """
    for name, value in (("initial_capital", initial_capital), ("cost_bps", cost_bps),
                        ("periods_per_year", periods_per_year)):
        if value is None and name == "periods_per_year" and index is not None:
            continue
        if not _is_number(value):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if initial_capital <= 0:
        raise ValueError(f"initial_capital must be > 0, got {initial_capital}")
    if cost_bps < 0:
        raise ValueError(f"cost_bps must be >= 0, got {cost_bps}")
    if cost_bps > MAX_COST_BPS:
        raise ValueError(f"cost_bps={cost_bps:g} is more than 10,000 bps (100 % of the traded "
                         f"value per trade); cost_bps is in basis points: 5 means 0.05 %")
    if periods_per_year is not None and periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be > 0, got {periods_per_year}")
    if index is not None:
        periods_per_year = resolve_periods_per_year(periods_per_year, index)
    return float(initial_capital), float(cost_bps), float(periods_per_year)


def run_settings(initial_capital, cost_bps, periods_per_year, index) -> tuple:
    """:func:`check_settings` on a run's data, and how ``periods_per_year`` was set:
    ``(capital, cost_bps, periods_per_year, basis)``, with ``basis`` "given" or the
    inferred spacing's description (the bars are read once)."""
    if periods_per_year is None:
        inferred, basis = infer_periods_per_year(index)
        return (*check_settings(initial_capital, cost_bps, inferred), f"inferred: {basis}")
    return (*check_settings(initial_capital, cost_bps, periods_per_year, index), "given")


def resolve_periods_per_year(value, index) -> float:
    """``value``, or the inferred periods per year when it is None; warn (UserWarning)
    when an explicit value is more than 2x away from the bar spacing's."""
    inferred, spacing = infer_periods_per_year(index)
    if value is None:
        return inferred
    ratio = float(value) / inferred
    if ratio > MISMATCH_FACTOR or ratio < 1.0 / MISMATCH_FACTOR:
        warnings.warn(f"periods_per_year={value:g}, but the bars are {spacing}, which "
                      f"annualises with periods_per_year={inferred:g}; Sharpe, Sortino, "
                      f"volatility and CAGR use {value:g}. Pass periods_per_year=None to "
                      "infer it from the bars", UserWarning, stacklevel=4)
    return float(value)


def infer_periods_per_year(index) -> tuple[float, str]:
    """``(periods per year, description of the spacing)`` from a DatetimeIndex.

    The rule is in the module docstring. Needs at least 2 timestamps.
    """
    index = pd.DatetimeIndex(index)
    if len(index) < 2:
        raise ValueError("periods_per_year cannot be inferred from fewer than 2 bars; "
                         "pass it explicitly")
    steps = np.diff(index.as_unit("ns").asi8) / 1e9 / _DAY
    steps = steps[steps > 0]
    if steps.size == 0:
        raise ValueError("periods_per_year cannot be inferred: every timestamp is the same")
    median = float(np.median(steps))
    weekend = float(np.mean(index.day_of_week >= 5))
    days = 365.0 if weekend > WEEKEND_SHARE else 252.0
    week = "7 days a week" if days == 365.0 else "weekdays only"
    span_days = float(index.as_unit("ns").asi8[-1] - index.as_unit("ns").asi8[0]) / 1e9 / _DAY
    if (median < 0.75 or (median < 4.0 and days == 365.0)) and span_days >= CALENDAR_SPAN_DAYS:
        per_year = float(round((len(index) - 1) / span_days * 365.25))
        kind = (f"intraday (median spacing {_duration(median)})" if median < 0.75
                else "daily with weekend bars")
        return per_year, (f"{kind}: {per_year:,.0f} bars a calendar year, counted over "
                          f"{span_days / 365.25:.1f} years")
    if median < 0.75:
        per_day = float(np.median(pd.Series(1, index=index.normalize()).groupby(level=0)
                                  .size().to_numpy()))
        return per_day * days, (f"intraday (median spacing {_duration(median)}, "
                                f"{per_day:g} bars a day, {week})")
    if median < 4.0:
        return days, f"daily ({week})"
    for low, high, periods, name in _CALENDAR:
        if low <= median <= high:
            return periods, name
    return 365.25 / median, f"spaced {median:.3g} days apart (median)"


def _duration(days: float) -> str:
    seconds = days * _DAY
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def check_arguments(options: dict, strategy, function) -> None:
    """TypeError for a keyword of ``function`` (e.g. ``run_sweep``) that is neither one
    of its own arguments nor an option of ``strategy``, with the closest name of
    either: ``unknown argument 'exector'; did you mean 'executor'?``."""
    if not options:
        return
    import btcore.strategies as strategies
    spec = strategies.get(strategy)
    from btcore.execution import ALL_NAMES
    unknown = [name for name in options if name not in spec.options and name not in ALL_NAMES]
    if not unknown:
        return
    own = [p.name for p in inspect.signature(function).parameters.values()
           if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    name = unknown[0]
    close = difflib.get_close_matches(name, own + list(spec.options) + list(ALL_NAMES), n=1,
                                      cutoff=0.6)
    hint = f"; did you mean {close[0]!r}? It" if close else "; it"
    valid = ", ".join(spec.options) or "none"
    raise TypeError(f"unknown argument {name!r}{hint} is neither an argument of "
                    f"{function.__name__}() nor an option of strategy {spec.name!r} (unknown "
                    f"option(s) {unknown}; valid options: {valid}; execution settings: "
                    f"{', '.join(ALL_NAMES)})")
