"""Market data: aligned, validated, read-only price arrays.

Conventions: every field is a C-contiguous, read-only float64 array shaped
``(n_bars, n_assets)`` (time-major), so it can be shared zero-copy with worker
processes and every kernel sees one array type (one Numba specialisation).
Closes must be finite and > 0 from each asset's first valid bar on; NaN is
allowed only before it (an asset not listed yet).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

OHLCV_FIELDS = ("open", "high", "low", "close", "volume")
_LONG_ASSET_COLUMNS = ("symbol", "ticker", "asset")
_DATE_COLUMNS = ("date", "datetime", "timestamp", "time")


def _readonly(array) -> np.ndarray:
    """A private C-contiguous float64 copy that nobody can write to."""
    array = np.array(array, dtype=np.float64, order="C", copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class MarketData:
    """Aligned price arrays for one or more assets.

    Parameters
    ----------
    close : array-like, shape (n_bars, n_assets) or (n_bars,)
        Closing prices. Finite and > 0 from each asset's first valid bar on.
    index : pandas.DatetimeIndex
        Bar timestamps: strictly increasing, no duplicates.
    symbols : sequence of str
        One name per asset column.
    open, high, low, volume : array-like, optional
        Same shape as ``close``.

    Raises
    ------
    ValueError
        Unsorted or duplicate timestamps, non-finite or non-positive prices,
        mismatched shapes; the message names the asset and the row.

    Examples
    --------
    >>> data = MarketData.synthetic(n_assets=2, start="2020-01-01", end="2021-01-01")
    >>> data.close.shape
    (263, 2)
    """

    close: np.ndarray
    index: pd.DatetimeIndex
    symbols: tuple
    open: np.ndarray | None = None
    high: np.ndarray | None = None
    low: np.ndarray | None = None
    volume: np.ndarray | None = None

    def __post_init__(self):
        close = np.asarray(self.close, dtype=np.float64)
        if close.ndim == 1:
            close = close[:, None]
        if close.ndim != 2:
            raise ValueError(f"close must be 1-D or 2-D (bars, assets), got {close.ndim}-D")
        n_bars, n_assets = close.shape
        if n_bars < 2 or n_assets < 1:
            raise ValueError(f"need at least 2 bars and 1 asset, got shape {close.shape}")
        index = _datetime_index(self.index)
        if len(index) != n_bars:
            raise ValueError(f"index has {len(index)} timestamps but close has {n_bars} rows")
        symbols = tuple(str(s) for s in self.symbols)
        if len(symbols) != n_assets:
            raise ValueError(f"got {len(symbols)} symbols for {n_assets} asset columns")
        if len(set(symbols)) != len(symbols):
            dupes = sorted({s for s in symbols if symbols.count(s) > 1})
            raise ValueError(f"duplicate asset symbols: {dupes}")
        _check_index(index)
        for j, symbol in enumerate(symbols):
            _check_prices(close[:, j], symbol, "close", index)
        object.__setattr__(self, "close", _readonly(close))
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "symbols", symbols)
        for field in ("open", "high", "low", "volume"):
            values = getattr(self, field)
            if values is None:
                continue
            values = np.asarray(values, dtype=np.float64)
            if values.ndim == 1:
                values = values[:, None]
            if values.shape != close.shape:
                raise ValueError(f"{field} has shape {values.shape}, close has {close.shape}")
            object.__setattr__(self, field, _readonly(values))
        first_valid = np.array(
            [int(np.argmax(~np.isnan(close[:, j]))) for j in range(n_assets)], dtype=np.int64)
        first_valid.flags.writeable = False
        object.__setattr__(self, "first_valid", first_valid)

    # ------------------------------------------------------------------ shape
    @property
    def n_bars(self) -> int:
        return self.close.shape[0]

    @property
    def n_assets(self) -> int:
        return self.close.shape[1]

    def __len__(self) -> int:
        return self.n_bars

    def __repr__(self) -> str:
        span = f"{self.index[0]:%Y-%m-%d} .. {self.index[-1]:%Y-%m-%d}"
        shown = ", ".join(self.symbols[:6]) + (", ..." if self.n_assets > 6 else "")
        return f"MarketData({self.n_bars} bars x {self.n_assets} assets [{shown}], {span})"

    # -------------------------------------------------------------- selection
    def asset_indices(self, assets: str | Iterable[str] | None) -> np.ndarray:
        """Column indices of ``assets`` (all when None); ValueError names unknown ones."""
        if assets is None:
            return np.arange(self.n_assets, dtype=np.int64)
        if isinstance(assets, str):
            assets = [assets]
        assets = list(assets)
        if not assets:
            raise ValueError("assets= is empty; pass None for all assets or some of "
                             f"{list(self.symbols)}")
        lookup = {s: i for i, s in enumerate(self.symbols)}
        unknown = [a for a in assets if a not in lookup]
        if unknown:
            raise ValueError(f"unknown assets {unknown}; available: {list(self.symbols)}")
        if len(set(assets)) != len(assets):
            raise ValueError(f"assets= lists an asset twice: {assets}")
        return np.array([lookup[a] for a in assets], dtype=np.int64)

    def window(self, start=None, end=None) -> tuple[int, int]:
        """Inclusive bar indices ``(first, last)`` of the bars in [start, end].

        Raises
        ------
        ValueError
            ``start`` after ``end``, or fewer than 2 bars in the window.
        """
        start_ts = _timestamp(start, "start", self.index)
        end_ts = _timestamp(end, "end", self.index)
        if start_ts is not None and end_ts is not None and start_ts > end_ts:
            raise ValueError(f"start ({start_ts:%Y-%m-%d}) is after end ({end_ts:%Y-%m-%d})")
        # pandas' own slicing: a date-only string includes that whole day, as .loc does
        bounds = self.index.slice_indexer(
            start if isinstance(start, str) else start_ts,
            end if isinstance(end, str) else end_ts)
        first, last = bounds.start or 0, (bounds.stop if bounds.stop is not None
                                          else self.n_bars) - 1
        if last - first + 1 < 2:
            raise ValueError(
                f"the window [{start}, {end}] holds {max(last - first + 1, 0)} bar(s) of data "
                f"spanning {self.index[0]:%Y-%m-%d} .. {self.index[-1]:%Y-%m-%d}; "
                "a backtest needs at least 2: widen start/end")
        return first, last

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_pandas(cls, frame: pd.Series | pd.DataFrame) -> "MarketData":
        """Build from a Series of closes, a one-asset OHLCV frame, a wide frame of
        closes (one column per asset) or a long frame (date, symbol, close[, ...]).
        """
        if isinstance(frame, pd.Series):
            name = frame.name if frame.name is not None else "asset"
            return cls(frame.to_numpy(dtype=np.float64), _datetime_index(frame.index), (name,))
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"expected a pandas Series or DataFrame, got {type(frame).__name__}")
        if isinstance(frame.columns, pd.MultiIndex):
            return cls._from_field_by_symbol(frame)
        lower = {str(c).lower(): c for c in frame.columns}
        date_col = next((lower[c] for c in _DATE_COLUMNS if c in lower), None)
        if date_col is not None and not isinstance(frame.index, pd.DatetimeIndex):
            frame = _index_by_dates(frame, "the frame")
            lower = {str(c).lower(): c for c in frame.columns}
        asset_col = next((lower[c] for c in _LONG_ASSET_COLUMNS if c in lower), None)
        if asset_col is not None and "close" in lower:
            return cls._from_long(frame, asset_col, lower)
        if "close" in lower:
            fields = {f: frame[lower[f]].to_numpy(dtype=np.float64)
                      for f in OHLCV_FIELDS if f in lower}
            return cls(index=_datetime_index(frame.index), symbols=("asset",), **fields)
        non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise ValueError(
                f"columns {non_numeric} are not numeric; a wide frame must hold one column "
                "of closes per asset (set the dates as the index)")
        return cls(frame.to_numpy(dtype=np.float64), _datetime_index(frame.index),
                   tuple(frame.columns))

    @classmethod
    def _from_field_by_symbol(cls, frame) -> "MarketData":
        """Columns (field, symbol) or (symbol, field), as ``yfinance.download`` gives."""
        if frame.columns.nlevels != 2:
            raise ValueError(f"columns have {frame.columns.nlevels} levels; expected 2 "
                             "(field, symbol) with a 'Close' field")
        for level in (0, 1):
            fields = {str(v).lower(): v for v in frame.columns.get_level_values(level)}
            if "close" in fields:
                arrays = {f: frame.xs(fields[f], axis=1, level=level)
                          for f in OHLCV_FIELDS if f in fields}
                close = arrays.pop("close")
                return cls(close.to_numpy(np.float64), _datetime_index(frame.index),
                           tuple(close.columns),
                           **{f: a.reindex(columns=close.columns).to_numpy(np.float64)
                              for f, a in arrays.items()})
        raise ValueError("two-level columns need a 'Close' field on one level (e.g. "
                         "yfinance's (field, ticker)); select the closes first")

    @classmethod
    def _from_long(cls, frame, asset_col, lower) -> "MarketData":
        # from_pandas has already made a date column the (parsed) index: pivot sorts it
        dupes = frame.reset_index().duplicated(subset=[frame.index.name or "index", asset_col])
        if dupes.any():
            raise ValueError(f"long data has duplicate (date, {asset_col}) rows, "
                             f"first at row {int(np.argmax(dupes.to_numpy()))}")
        fields = {field: frame.pivot(columns=asset_col, values=lower[field])
                  for field in OHLCV_FIELDS if field in lower}
        close = fields.pop("close")
        symbols = tuple(close.columns)
        arrays = {f: w.reindex(index=close.index, columns=close.columns).to_numpy(np.float64)
                  for f, w in fields.items()}
        return cls(close.to_numpy(np.float64), _datetime_index(close.index), symbols, **arrays)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, **read_csv_kwargs) -> "MarketData":
        """Read a CSV (wide, one-asset OHLCV, or long); the first column holds dates."""
        frame = pd.read_csv(path, **read_csv_kwargs)
        return cls.from_pandas(_index_by_dates(frame, path))

    @classmethod
    def from_parquet(cls, path: str | os.PathLike) -> "MarketData":
        """Read a Parquet file (wide, one-asset OHLCV, or long) with dates as index or column."""
        frame = pd.read_parquet(path)
        if not isinstance(frame.index, pd.DatetimeIndex):
            frame = _index_by_dates(frame, path)
        return cls.from_pandas(frame)

    @classmethod
    def synthetic(cls, n_assets: int = 1, start="2010-01-01", end="2024-01-01",
                  seed: int = 42, annual_vol: float = 0.25) -> "MarketData":
        """Seeded business-day random walks, correlated through a one-factor model.

        Each asset's log return is ``beta * market + idiosyncratic`` with
        betas in [0.5, 1.5]; daily volatility is ``annual_vol / sqrt(252)``.
        """
        if not isinstance(n_assets, (int, np.integer)) or n_assets < 1:
            raise ValueError(f"n_assets must be a positive int, got {n_assets!r}")
        index = pd.bdate_range(start, end)
        if len(index) < 2:
            raise ValueError(f"start={start!r}..end={end!r} holds fewer than 2 business days")
        rng = np.random.default_rng(seed)
        daily_vol = annual_vol / np.sqrt(252.0)
        market = rng.normal(0.0002, daily_vol * 0.6, size=len(index))
        betas = rng.uniform(0.5, 1.5, size=n_assets)
        idio = rng.normal(0.0, daily_vol * 0.8, size=(len(index), n_assets))
        log_returns = market[:, None] * betas[None, :] + idio
        log_returns[0] = 0.0
        initial = rng.uniform(20.0, 200.0, size=n_assets)
        close = initial * np.exp(np.cumsum(log_returns, axis=0))
        symbols = tuple(f"SYN{i:03d}" for i in range(n_assets))
        return cls(close, index, symbols)


# ------------------------------------------------------------------ validation
def _check_index(index: pd.DatetimeIndex) -> None:
    if index.hasnans:
        row = int(np.argmax(index.isna()))
        raise ValueError(f"timestamp at row {row} is missing (NaT)")
    values = index.asi8
    steps = np.diff(values)
    if (steps == 0).any():
        row = int(np.argmax(steps == 0)) + 1
        raise ValueError(f"duplicate timestamp {index[row]} at row {row}; drop or aggregate "
                         "duplicates first")
    if (steps < 0).any():
        row = int(np.argmax(steps < 0)) + 1
        raise ValueError(f"timestamps are not sorted: row {row} ({index[row]}) comes before "
                         f"row {row - 1} ({index[row - 1]}); sort the data by date first")


def _check_prices(values: np.ndarray, symbol: str, field: str, index) -> None:
    valid = ~np.isnan(values)
    if not valid.any():
        raise ValueError(f"{field} of asset {symbol!r} has no valid price")
    first = int(np.argmax(valid))
    tail = values[first:]
    bad = ~np.isfinite(tail) | (tail <= 0)
    if bad.any():
        row = first + int(np.argmax(bad))
        raise ValueError(
            f"{field} of asset {symbol!r} is {values[row]} at row {row} ({index[row]}); prices "
            "must be finite and > 0 from an asset's first valid bar on (NaN is allowed only "
            "before it): fill or drop the gap")


def _timestamp(value, name: str, index: pd.DatetimeIndex):
    if value is None:
        return None
    if isinstance(value, (bool, int, float, np.number)):
        raise TypeError(f"{name}={value!r} is a number; give a date such as '2015-01-01'")
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={value!r} is not a date: {exc}") from None
    if ts is pd.NaT:
        raise ValueError(f"{name}={value!r} is not a date")
    if isinstance(value, str) and ts.tzinfo is None and index.tz is not None:
        ts = ts.tz_localize(index.tz)  # a date string means that date in the data's zone
    if (ts.tzinfo is None) != (index.tz is None):
        raise ValueError(f"{name}={value!r} and the data index ({index.tz}) must both be "
                         "timezone-aware or both naive")
    return ts


def _datetime_index(index) -> pd.DatetimeIndex:
    if isinstance(index, pd.DatetimeIndex):
        return index
    index = pd.Index(index)
    if index.dtype.kind in "iufb":
        raise ValueError(f"the index holds {index.dtype} values ({type(index).__name__}), not "
                         "dates; set a date index, e.g. frame.set_index('Date')")
    try:
        return pd.DatetimeIndex(pd.to_datetime(index))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the index cannot be read as dates ({exc}); set a date index or "
                         "column") from None


def _index_by_dates(frame: pd.DataFrame, path) -> pd.DataFrame:
    lower = {str(c).lower(): c for c in frame.columns}
    date_col = next((lower[c] for c in _DATE_COLUMNS if c in lower), frame.columns[0])
    try:
        dates = pd.to_datetime(frame[date_col])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: column {date_col!r} cannot be read as dates ({exc})") from None
    frame = frame.drop(columns=[date_col])
    frame.index = pd.DatetimeIndex(dates, name="date")
    return frame


def as_market_data(data) -> MarketData:
    """Coerce ``data`` (None = bundled sample, MarketData, pandas object, CSV/Parquet path)."""
    if data is None:
        from btcore.datasets import sp500_sample
        return sp500_sample()
    if isinstance(data, MarketData):
        return data
    if isinstance(data, (pd.Series, pd.DataFrame)):
        return MarketData.from_pandas(data)
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not os.path.exists(path):
            raise ValueError(f"data file {path!r} does not exist")
        if path.endswith((".parquet", ".pq")):
            return MarketData.from_parquet(path)
        return MarketData.from_csv(path)
    raise TypeError(f"data must be None, MarketData, a pandas Series/DataFrame or a CSV/Parquet "
                    f"path, got {type(data).__name__}")
