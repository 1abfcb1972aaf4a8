"""Market data: aligned, validated, read-only price arrays.

Conventions: every field is a C-contiguous, read-only float64 array shaped
``(n_bars, n_assets)`` (time-major), so it can be shared zero-copy with worker
processes and every kernel sees one array type (one Numba specialisation).
Closes must be finite and > 0 from each asset's first valid bar on; NaN is
allowed only before it (an asset not listed yet).

Reading pandas objects and files (which column is the price, which holds the
dates) lives in :mod:`btcore._frames`. The traded price of OHLCV data is chosen
with ``price=``: ``None`` (default) takes 'Adj Close' when the data has one and
'Close' otherwise, so yfinance data is backtested on split- and
dividend-adjusted prices whether or not it was downloaded with ``auto_adjust``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from btcore import _dates, _frames
from btcore._dates import DateRules
from btcore._frames import NotNumericError

__all__ = ["MarketData", "NotNumericError", "as_market_data"]


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
    price_column : str, optional
        The input column the prices came from ('Close', 'Adj Close', ...); None
        when the input held prices only (arrays, a Series, a wide frame).

    Raises
    ------
    ValueError
        Unsorted or duplicate timestamps, non-finite or non-positive prices,
        mismatched shapes; the message names the asset and the row.
    TypeError
        Prices that are not numbers (strings, bools, dates): a
        :class:`NotNumericError`, which is also a ValueError.

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
    price_column: str | None = None

    def __post_init__(self):
        close = _frames.array_floats(self.close, "close")
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
        if self.price_column is not None and not isinstance(self.price_column, str):
            raise TypeError(f"price_column must be a column name or None, got "
                            f"{self.price_column!r}")
        raw_symbols = (self.symbols,) if isinstance(self.symbols, str) else self.symbols
        symbols = tuple(str(s) for s in raw_symbols)
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
            values = _frames.array_floats(values, field)
            if values.ndim == 1:
                values = values[:, None]
            if values.shape != close.shape:
                raise ValueError(f"{field} has shape {values.shape}, close has {close.shape}")
            object.__setattr__(self, field, _readonly(values))
        _check_candles(self, symbols, index)
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
        price = (f"price column {self.price_column!r}" if self.price_column is not None
                 else "prices as given")
        return (f"MarketData({self.n_bars} bars x {self.n_assets} assets [{shown}], {span}, "
                f"{price})")

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

        Parameters
        ----------
        start, end : str, datetime.date, datetime, numpy.datetime64 or pandas.Timestamp, optional
            A date (string, ``datetime.date`` or day-unit ``datetime64``) covers that
            whole day, as ``.loc`` does; partial strings ('2020', '2020-06') cover the
            year or month. Strings are read as pandas does ('2020/01/31', '31 Jan 2020');
            'dd/mm/yyyy'-style strings are read when the order is clear (day > 12) and
            refused when not. A naive value against a timezone-aware index means that
            date/time in the index's zone; an aware value against a naive index is
            refused.

        Raises
        ------
        ValueError
            ``start`` after ``end``, an unreadable date, or fewer than 2 bars in the window.
        TypeError
            A number instead of a date.
        """
        start_ts, start_key = _dates.window_bound(start, "start", self.index.tz)
        end_ts, end_key = _dates.window_bound(end, "end", self.index.tz)
        if start_ts is not None and end_ts is not None and start_ts > end_ts:
            raise ValueError(f"start ({start_ts:%Y-%m-%d}) is after end ({end_ts:%Y-%m-%d})")
        try:  # pandas' own slicing: a date-only string includes that whole day, as .loc does
            bounds = self.index.slice_indexer(start_key, end_key)
        except (KeyError, TypeError, ValueError):
            bounds = self.index.slice_indexer(start_ts, end_ts)
        first, last = bounds.start or 0, (bounds.stop if bounds.stop is not None
                                          else self.n_bars) - 1
        if last - first + 1 < 2:
            raise ValueError(
                f"the window [{start}, {end}] holds {max(last - first + 1, 0)} bar(s) of data "
                f"spanning {self.index[0]:%Y-%m-%d} .. {self.index[-1]:%Y-%m-%d}; "
                "a backtest needs at least 2: widen start/end")
        return int(first), int(last)

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_pandas(cls, frame: pd.Series | pd.DataFrame, price: str | None = None, *,
                    symbol: str = "asset", date_column=None, dayfirst: bool | None = None,
                    date_format: str | None = None, date_unit: str | None = None
                    ) -> "MarketData":
        """Build from a pandas Series or DataFrame.

        Parameters
        ----------
        frame : pandas.Series or pandas.DataFrame
            One of: a Series of closes (its name is the symbol); a wide frame, one
            column of closes per asset; a one-asset OHLCV frame (columns Open, High,
            Low, Close, Adj Close, Volume in any case or spelling such as ``adj_close``,
            plus ignored Dividends / Stock Splits); yfinance's two-level (field, ticker)
            or (ticker, field) columns; a long frame with a symbol/ticker/asset column
            and one row per date and symbol, or the same with a (date, symbol) row index.
            Volume, Open, High and Low are never assets.
        price : {None, 'close', 'adj_close'}
            Traded price column of OHLCV data. None (default) takes 'Adj Close' when
            present, else 'Close'. The chosen column is ``price_column``. When Adj Close
            is traded, Open/High/Low are adjusted by Adj Close / Close (or taken from
            adjOpen/adjHigh/adjLow columns); Volume is left as it is.
        symbol : str
            Name of the one asset of an OHLCV frame or an unnamed Series.
        date_column : label, optional
            Column holding the dates. By default the index, or a column named date,
            datetime, timestamp, time or trade_date (any case), or a lone datetime
            column, or a first column of date strings.
        dayfirst : bool, optional
            Read 'dd/mm/yyyy' (True) or 'mm/dd/yyyy' (False) strings. By default the
            order is taken from the data and ambiguous dates (both numbers <= 12 in
            every row) are refused.
        date_format : str, optional
            strftime format of date strings or YYYYMMDD integers, e.g. '%d.%m.%Y'.
        date_unit : {'s', 'ms', 'us', 'ns', 'D'}, optional
            Unit of numeric (epoch) dates, which are refused without it.

        Returns
        -------
        MarketData

        Raises
        ------
        ValueError
            Unreadable or ambiguous dates, unknown or duplicate columns, bad prices.
        TypeError
            Non-numeric price columns (strings, bools), naming the column and the fix.

        Examples
        --------
        >>> frame = pd.DataFrame({"Close": [10.0, 11.0], "Adj Close": [9.0, 9.9],
        ...                       "Volume": [100, 120]}, index=["2020-01-02", "2020-01-03"])
        >>> MarketData.from_pandas(frame).price_column
        'Adj Close'
        """
        rules = DateRules(date_column, dayfirst, date_format, date_unit)
        return cls(**_frames.frame_arrays(frame, price, symbol, rules))

    @classmethod
    def from_csv(cls, path: str | os.PathLike, price: str | None = None, *,
                 symbol: str | None = None, date_column=None, date_unit: str | None = None,
                 **read_csv_kwargs) -> "MarketData":
        """Read a CSV file in any layout :meth:`from_pandas` accepts.

        Parameters
        ----------
        path : str or os.PathLike
            The file (``.csv``, or compressed ``.csv.gz`` / ``.zip``...).
        price, date_column, date_unit
            As in :meth:`from_pandas`.
        symbol : str, optional
            Name of the one asset of an OHLCV file; the file name ('AAPL.csv' ->
            'AAPL') by default.
        **read_csv_kwargs
            Passed to :func:`pandas.read_csv` (``sep``, ``decimal``, ``thousands``,
            ``index_col``, ``usecols``, ``encoding``, ``na_values``...). btcore parses
            the dates itself: ``parse_dates``, ``dayfirst`` and ``date_format`` (alias
            ``format``) are applied with the rules of :meth:`from_pandas`.

        Examples
        --------
        >>> MarketData.from_csv("AAPL.csv", index_col="Date", parse_dates=True)  # doctest: +SKIP
        >>> MarketData.from_csv("eu.csv", sep=";", decimal=",", dayfirst=True)  # doctest: +SKIP
        """
        kwargs, rules = _frames.reader_options(read_csv_kwargs,
                                               DateRules(date_column, unit=date_unit))
        frame = _frames.read_table(pd.read_csv, path, kwargs, "pandas.read_csv")
        _frames.check_csv(frame, path)
        return cls.from_pandas(frame, price, symbol=symbol or _stem(path),
                               date_column=rules.column, dayfirst=rules.dayfirst,
                               date_format=rules.format, date_unit=rules.unit)

    @classmethod
    def from_parquet(cls, path: str | os.PathLike, price: str | None = None, *,
                     symbol: str | None = None, date_column=None,
                     dayfirst: bool | None = None, date_format: str | None = None,
                     date_unit: str | None = None, **read_parquet_kwargs) -> "MarketData":
        """Read a Parquet file in any layout :meth:`from_pandas` accepts.

        Dates may be the stored index (datetime, strings, or epoch numbers with
        ``date_unit=``) or a date column. ``read_parquet_kwargs`` (``columns``,
        ``engine``, ``filters``...) go to :func:`pandas.read_parquet`; the other
        arguments are those of :meth:`from_csv`.
        """
        frame = _frames.read_table(pd.read_parquet, path, read_parquet_kwargs,
                                   "pandas.read_parquet")
        return cls.from_pandas(frame, price, symbol=symbol or _stem(path),
                               date_column=date_column, dayfirst=dayfirst,
                               date_format=date_format, date_unit=date_unit)

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


#: rounding slack of the candle checks (prices adjusted by a ratio move by an ulp)
CANDLE_SLACK = 1e-9


def _check_candles(data: "MarketData", symbols: tuple, index) -> None:
    """Each bar where the close is valid: open, high and low finite and > 0,
    low <= min(open, close) and high >= max(open, close) (within rounding)."""
    fields = {name: getattr(data, name) for name in ("open", "high", "low")
              if getattr(data, name) is not None}
    if not fields:
        return
    close = data.close
    valid = ~np.isnan(close)
    for name, values in fields.items():
        bad = valid & ~(np.isfinite(values) & (values > 0))
        if bad.any():
            row, column = (int(v[0]) for v in np.nonzero(bad))
            raise ValueError(f"{name} of asset {symbols[column]!r} is {values[row, column]} at "
                             f"row {row} ({index[row]}) where the close is "
                             f"{close[row, column]}; every price of a bar with a close must "
                             "be finite and > 0: fill or drop the bar")
    bar_open = fields.get("open", close)
    top = np.fmax(bar_open, close) * (1.0 - CANDLE_SLACK)
    bottom = np.fmin(bar_open, close) * (1.0 + CANDLE_SLACK)
    for name, bad in (("high", valid & (fields.get("high", np.inf) < top)),
                      ("low", valid & (fields.get("low", 0.0) > bottom))):
        if bad.any():
            row, column = (int(v[0]) for v in np.nonzero(bad))
            shown = ", ".join(f"{field} {values[row, column]:.10g}"
                              for field, values in (("open", bar_open), ("high", fields.get(
                                  "high", close)), ("low", fields.get("low", close)),
                                  ("close", close)) if field == "close" or field in fields)
            rule = "at least the larger" if name == "high" else "at most the smaller"
            raise ValueError(f"bad candle of asset {symbols[column]!r} at row {row} "
                             f"({index[row]}): {shown}; the {name} must be {rule} of the open "
                             "and the close: fix or drop the bar (or load closes only)")


def _datetime_index(index) -> pd.DatetimeIndex:
    return _dates.parse_dates(index, "index")


def _stem(path) -> str:
    if isinstance(path, (str, os.PathLike)):
        name = os.path.basename(os.fspath(path))
        for suffix in (".gz", ".bz2", ".zip", ".xz", ".zst", ".csv", ".parquet", ".pq"):
            name = name[:-len(suffix)] if name.lower().endswith(suffix) else name
        return name or "asset"
    return "asset"


def as_market_data(data, price: str | None = None) -> MarketData:
    """Coerce ``data`` to MarketData.

    Parameters
    ----------
    data : MarketData, pandas Series/DataFrame, or str/os.PathLike
        A path ending in .parquet/.pq is read with
        :meth:`MarketData.from_parquet`, any other path with :meth:`MarketData.from_csv`.
    price : {None, 'close', 'adj_close'}
        Traded price column of OHLCV data (see :meth:`MarketData.from_pandas`); for
        MarketData it must match the column already used.

    Returns
    -------
    MarketData
    """
    if isinstance(data, MarketData):
        wanted = _frames.price_choice(price)
        used = _frames.field_of(data.price_column) if data.price_column else None
        if wanted is not None and wanted != used:
            raise ValueError(f"price={price!r} but this MarketData already trades "
                             f"{data.price_column or 'the prices it was given'!r}; rebuild it "
                             "from the frame or file with that price=")
        return data
    if isinstance(data, (pd.Series, pd.DataFrame)):
        return MarketData.from_pandas(data, price)
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not os.path.exists(path):
            raise ValueError(f"data file {path!r} does not exist")
        lower = str(path).lower()
        if lower.endswith((".xlsx", ".xls", ".xlsm", ".ods")):
            raise ValueError(f"{path!r} is a spreadsheet; export it as CSV, or read it with "
                             "pd.read_excel(path, index_col=0) and pass the frame")
        if lower.endswith((".parquet", ".pq")):
            return MarketData.from_parquet(path, price)
        return MarketData.from_csv(path, price)
    raise TypeError(f"data must be None, MarketData, a pandas Series/DataFrame or a CSV/Parquet "
                    f"path, got {type(data).__name__}")
