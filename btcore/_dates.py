"""Reading dates: the index or column of a price table, and start/end arguments.

:class:`DateRules` carries the ``date_*`` / ``dayfirst`` arguments of the
``MarketData`` readers; :func:`parse_dates` turns an index or column into a
``DatetimeIndex`` (strings day-first or month-first as their values show, epoch
numbers with ``date_unit=``, ``date_format=`` strings), :func:`window_bound` a
start/end argument into a timestamp in the data's zone, and :func:`oldest_first`
turns newest-first tables around. Every failure is a ValueError/TypeError naming
the column, value or argument at fault and the way out.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

#: a day-month or month-day date such as 31/12/2020, 12.31.20 or 1-2-2020 (either order)
_DMY = r"^\s*(\d{1,2})([/.\-])(\d{1,2})[/.\-](\d{2}|\d{4})(?:$|[\sT])"


@dataclass(frozen=True)
class DateRules:
    """How to find and read the dates (the ``date_*`` / ``dayfirst`` arguments)."""

    column: object = None
    dayfirst: bool | None = None
    format: str | None = None
    unit: str | None = None

    def __post_init__(self):
        if self.dayfirst is not None and not isinstance(self.dayfirst, (bool, np.bool_)):
            raise TypeError(f"dayfirst must be True, False or None, got {self.dayfirst!r}")
        for name in ("format", "unit"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"date_{name} must be a string such as "
                                f"{'%Y-%m-%d' if name == 'format' else 'ms'!r}, got {value!r}")


def _numeric_date_hint(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return ""
    low, high = float(finite.min()), float(finite.max())
    for unit, name, scale in (("s", "seconds", 1), ("ms", "milliseconds", 1e3),
                              ("us", "microseconds", 1e6), ("ns", "nanoseconds", 1e9)):
        if 3.15e8 * scale <= low and high <= 4.11e9 * scale:  # 1980 .. 2100
            return (f"; they look like epoch {name}: pass date_unit={unit!r} or convert "
                    f"with pd.to_datetime(..., unit={unit!r})")
    if 19000101 <= low and high <= 21001231:
        return ("; they look like YYYYMMDD dates: pass date_format='%Y%m%d' or convert "
                "with pd.to_datetime(values.astype(str), format='%Y%m%d')")
    if 1011900 <= low and high <= 31122100:
        return ("; they look like dd.mm.yyyy dates read as numbers (thousands='.' does "
                "that): read that column as text, e.g. dtype={'Date': str}")
    if 20000 <= low and high < 80000:
        return ("; they look like Excel serial day numbers: convert with "
                "pd.to_datetime(values, unit='D', origin='1899-12-30')")
    return ""


def _from_numbers(index: pd.Index, what: str, rules: DateRules) -> pd.DatetimeIndex:
    if rules.unit is not None:
        return _to_datetime(index, what, unit=rules.unit)
    if rules.format is not None:
        return _to_datetime(index.astype(str), what, format=rules.format)
    example = index.to_numpy()[0].item() if len(index) else None
    raise ValueError(
        f"{what} holds {index.dtype} numbers such as {example!r}, not dates; set a date "
        "index (e.g. frame.set_index('Date')) or a date column named date/Date/datetime/"
        "timestamp/time, or pass date_column=" + _numeric_date_hint(index.to_numpy()))


def _to_datetime(values, what: str, **options) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(pd.to_datetime(values, **options))
    except (TypeError, ValueError, OverflowError) as exc:
        message = str(exc).splitlines()[0]
        mixed_zones = "Mixed timezones" in message or "unless utc=True" in message
        if mixed_zones and "utc" not in options:  # DST offsets or several zones: keep instants
            return _to_datetime(values, what, utc=True, **options)
        raise ValueError(f"{what} cannot be read as dates ({message}); pass date_format= "
                         "(e.g. '%Y-%m-%d') or convert them with pd.to_datetime first") from None


def _dayfirst(strings: pd.Index, what: str, given: bool | None) -> bool:
    unique = pd.Index(strings.unique())
    parts = unique.str.extract(_DMY)
    matched = parts[0].notna().to_numpy()
    if not matched.any():
        return False  # ISO and month-name dates: pandas would read 2020-02-01 as 2 Jan
    if not matched.all():
        raise ValueError(f"{what} mixes date formats such as {unique[~matched][0]!r} and "
                         f"{unique[matched][0]!r}; give one format throughout")
    first, second = parts[0][matched].astype(int), parts[2][matched].astype(int)
    texts = unique[matched]
    day_first = texts[(first > 12).to_numpy()]
    month_first = texts[(second > 12).to_numpy()]
    if len(day_first) and len(month_first):
        raise ValueError(f"{what} mixes day-first ({day_first[0]!r}) and month-first "
                         f"({month_first[0]!r}) dates; fix the source so one order is used")
    seen = True if len(day_first) else False if len(month_first) else None
    if given is not None:
        if seen is not None and seen != bool(given):
            example = day_first[0] if seen else month_first[0]
            raise ValueError(f"dayfirst={given} but {what} holds {example!r}, which is "
                             f"{'day' if seen else 'month'}-first; pass dayfirst={seen}")
        return bool(given)
    if seen is None:
        raise ValueError(
            f"{what} holds dates such as {texts[0]!r} whose first two numbers are both <= 12 "
            "in every row, so they may be day-first (31/12) or month-first (12/31); pass "
            "dayfirst=True or dayfirst=False (or date_format='%d/%m/%Y')")
    return seen


def _strings_to_dates(index: pd.Index, what: str, rules: DateRules) -> pd.DatetimeIndex:
    strings = pd.Index(index.astype(str).str.strip())
    if rules.format is not None:
        return _to_datetime(strings, what, format=rules.format)
    return _to_datetime(strings, what, dayfirst=_dayfirst(strings, what, rules.dayfirst))


def parse_dates(values, what: str, rules: DateRules = DateRules()) -> pd.DatetimeIndex:
    """Dates from an index or column; ValueError names ``what`` and the way out."""
    if isinstance(values, pd.DatetimeIndex):
        return values
    index = pd.Index(values)
    name = getattr(values, "name", None)
    if isinstance(index.dtype, pd.CategoricalDtype):
        index = pd.Index(index.to_numpy())
    if isinstance(index, pd.PeriodIndex):
        raise ValueError(f"{what} holds periods ({index.dtype}); convert them with "
                         ".to_timestamp(how='end') (or how='start')")
    if ptypes.is_datetime64_any_dtype(index.dtype):
        return pd.DatetimeIndex(index, name=name)
    if ptypes.is_bool_dtype(index.dtype) or ptypes.is_timedelta64_dtype(index.dtype):
        raise ValueError(f"{what} holds {index.dtype} values, not dates; set a date index "
                         "or date column")
    if ptypes.is_numeric_dtype(index.dtype):
        return _from_numbers(index, what, rules).rename(name)
    missing = np.asarray(index.isna())
    if missing.any():
        raise ValueError(f"{what} has no date at row {int(np.argmax(missing))}; drop or fill "
                         "that row")
    kind = ptypes.infer_dtype(index, skipna=True)
    if kind in ("string", "empty"):
        return _strings_to_dates(index, what, rules).rename(name)
    if kind in ("datetime", "datetime64", "date"):
        return _to_datetime(index, what).rename(name)
    example = next((v for v in index if not isinstance(v, (str, _dt.date))), index[0])
    raise ValueError(f"{what} mixes dates with {type(example).__name__} values such as "
                     f"{example!r}; give one date per row")


def window_bound(value, name: str, tz):
    """``(timestamp, slice key)`` for a start/end argument; None for None."""
    if value is None:
        return None, None
    if isinstance(value, (bool, int, float, np.number)):
        raise TypeError(f"{name}={value!r} is a number; give a date such as '2015-01-01'")
    key = value
    if isinstance(value, str):
        key = _iso_if_day_month(value.strip(), name)
    elif isinstance(value, np.datetime64):
        if np.datetime_data(value.dtype)[0] in ("Y", "M", "W", "D") and not np.isnat(value):
            key = str(value)  # a calendar date: the whole day, like a date string
    elif isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        key = value.isoformat()
    try:
        ts = pd.Timestamp(key)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{name}={value!r} is not a date ({exc}); use e.g. '2015-01-31'") \
            from None
    if ts is pd.NaT:
        raise ValueError(f"{name}={value!r} is not a date; use e.g. '2015-01-31'")
    if ts.tzinfo is not None and tz is None:
        raise ValueError(f"{name}={value!r} is timezone-aware ({ts.tzinfo}) but the data's "
                         "index is naive; pass a naive date such as "
                         f"'{ts:%Y-%m-%d}' (or ts.tz_localize(None)), or localize the data")
    if ts.tzinfo is None and tz is not None:
        try:  # a naive date or time means that date/time in the data's zone
            ts = ts.tz_localize(tz)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}={value!r} does not exist in the data's time zone "
                             f"{tz} ({exc}); give an aware timestamp") from None
    elif ts.tzinfo is not None:
        ts = ts.tz_convert(tz)
        key = ts  # an exact instant, in the index's zone
    if not isinstance(key, str):
        key = ts
    return ts, key


def _iso_if_day_month(text: str, name: str) -> str:
    match = re.match(_DMY, text)
    if not match:
        return text
    first, second = int(match.group(1)), int(match.group(3))
    if first <= 12 and second <= 12 and first != second:
        raise ValueError(f"{name}={text!r} may be day-first or month-first; write it as "
                         "'YYYY-MM-DD'")
    day, month = (first, second) if first > 12 else (second, first)
    year = int(match.group(4))
    year = year if year >= 100 else year + (2000 if year < 69 else 1900)  # strptime's %y
    return f"{year}-{month:02d}-{day:02d}{text[match.end(4):]}"


def oldest_first(arrays: dict) -> dict:
    """Newest-first exports (many brokers and news sites) are turned around."""
    index = arrays["index"]
    if len(index) > 1 and index.is_monotonic_decreasing and index.is_unique:
        arrays = {k: (v[::-1] if isinstance(v, (np.ndarray, pd.Index)) else v)
                  for k, v in arrays.items()}
    return arrays
