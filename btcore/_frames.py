"""Reading pandas price tables: which columns are prices, which values are dates.

The helpers behind ``MarketData.from_pandas`` / ``from_csv`` / ``from_parquet``.
Each turns a pandas object into plain arrays, or raises a ValueError/TypeError
that names the column, row or argument at fault and says how to fix it.

Layouts (see :func:`frame_arrays`):

* wide: one column of prices per asset;
* fields: one asset, columns Open/High/Low/Close/Adj Close/Volume (any case);
* two-level columns (field, ticker) or (ticker, field), as ``yfinance.download``;
* long: one row per (date, symbol) with Close/Adj Close/... columns, or a
  (date, symbol) row MultiIndex.

The dates themselves (:class:`DateRules`, :func:`parse_dates`, newest-first
tables turned around) are read by :mod:`btcore._dates`.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from btcore._dates import DateRules, oldest_first, parse_dates

PRICES = ("close", "adj_close")
BAR_FIELDS = ("open", "high", "low", "volume")
_FIELD_KEYS = {
    "close": "close", "closelast": "close", "adjclose": "adj_close",
    "adjustedclose": "adj_close", "open": "open", "high": "high", "low": "low",
    "volume": "volume", "adjopen": "adj_open", "adjhigh": "adj_high", "adjlow": "adj_low",
    "adjvolume": "ignored", "dividends": "ignored", "dividend": "ignored",
    "dividendamount": "ignored", "divcash": "ignored", "stocksplits": "ignored",
    "splitfactor": "ignored", "splitcoefficient": "ignored", "capitalgains": "ignored",
    "repaired": "ignored", "vwap": "ignored", "trades": "ignored"}
# all-caps OPEN/HIGH/LOW are also tickers (Opendoor, Lowe's...): fields only beside a close
_TICKER_LOOKALIKES = {"OPEN", "HIGH", "LOW"}
_DATE_KEYS = ("date", "datetime", "timestamp", "time", "tradedate", "datum", "fecha")
_ASSET_KEYS = ("symbol", "ticker", "asset", "instrument")
_FIELD_LEVEL_NAMES = ("price", "field", "fields", "attribute", "attributes")
_UNNAMED = re.compile(r"Unnamed: \d+(_level_\d+)?")
_NA_WORDS = {"", "null", "none", "nan", "na", "n/a", "#n/a", "-", "--", "."}


class NotNumericError(TypeError, ValueError):
    """Prices that are not numbers: a TypeError (and a ValueError, as btcore raised before)."""


def _key(label) -> str:
    return re.sub(r"[\s_\-./?]", "", str(label).lower())


def field_of(label, beside_close: bool = True) -> str | None:
    """Canonical field of a column label ('adj_close', 'volume', 'ignored'...) or None."""
    if not beside_close and str(label) in _TICKER_LOOKALIKES:
        return None
    return _FIELD_KEYS.get(_key(label))


def price_choice(price) -> str | None:
    """Validate ``price=``: None, 'close' or 'adj_close' (any spelling of them)."""
    if price is None:
        return None
    if not isinstance(price, str):
        raise TypeError(f"price must be 'close', 'adj_close' or None, got {price!r}")
    choice = field_of(price)
    if choice not in PRICES:
        raise ValueError(f"price={price!r} is not a price column; use price='close', "
                         "price='adj_close', or price=None ('Adj Close' when present, "
                         "else 'Close')")
    return choice


# ----------------------------------------------------------------------- numbers
def _string_hint(example: str) -> str:
    text = example.strip()
    if text.lower() in _NA_WORDS:
        return f"; it marks missing values: pass na_values=[{text!r}] to read_csv"
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):
        return "; it has thousands separators: pass thousands=',' to read_csv"
    if re.fullmatch(r"-?\d{1,3}(\.\d{3})*,\d+", text):
        return ("; it has a decimal comma: pass decimal=',' (and thousands='.' if needed) "
                "to read_csv")
    if re.search(r"[$€£¥%]", text):
        return "; strip the currency or percent sign first, e.g. .str.replace('$', '')"
    return ""


def _refuse_strings(series: pd.Series, label, what: str) -> None:
    """``series`` has a RangeIndex: labels are row numbers."""
    strings = series[series.map(lambda v: isinstance(v, (str, bytes)))]
    if strings.empty:
        return
    failing = strings[pd.to_numeric(strings, errors="coerce").isna()]
    row = int((failing if not failing.empty else strings).index[0])
    example = series[row]
    raise NotNumericError(
        f"{what} is not numeric: it holds strings such as {example!r} (row {row}); convert "
        f"with {_to_numeric(label, what)}{_string_hint(str(example))}")


def _to_numeric(label, what: str) -> str:
    return f"pd.to_numeric(frame[{label!r}])" if what.startswith("column") else \
        "pd.to_numeric(values)"


def column_floats(series: pd.Series, label, what: str | None = None) -> np.ndarray:
    """One column as float64 (pd.NA -> NaN); TypeError names the column and the fix."""
    dtype = series.dtype
    what = what or f"column {label!r}"
    if ptypes.is_bool_dtype(dtype):
        raise NotNumericError(f"{what} holds True/False values, not prices; pass numbers")
    if ptypes.is_datetime64_any_dtype(dtype) or ptypes.is_timedelta64_dtype(dtype) \
            or isinstance(dtype, pd.PeriodDtype):
        raise NotNumericError(f"{what} holds dates/times ({dtype}), not prices; if it is "
                              f"the date column, pass date_column={label!r}")
    if ptypes.is_complex_dtype(dtype):
        raise NotNumericError(f"{what} holds complex numbers; pass real prices")
    if ptypes.is_numeric_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = series.reset_index(drop=True).astype(object)
    _refuse_strings(values, label, what)
    missing = values.isna().to_numpy()
    try:  # an object column of Python numbers reads as it is
        return np.where(missing, np.nan, values.where(~missing, 0.0)).astype(np.float64)
    except (TypeError, ValueError):
        example = values[~missing].iloc[0]
        raise NotNumericError(
            f"{what} is not numeric: it holds {type(example).__name__} values such as "
            f"{example!r}; convert with {_to_numeric(label, what)}") from None


def array_floats(values, label: str) -> np.ndarray:
    """An array-like of prices as float64 (MarketData's own arguments)."""
    if isinstance(values, pd.DataFrame):
        return np.column_stack([column_floats(values.iloc[:, j], values.columns[j])
                                for j in range(values.shape[1])]) if values.shape[1] else \
            np.empty((len(values), 0))
    if isinstance(values, (pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        return column_floats(pd.Series(values), label, label)
    array = np.asarray(values)
    if array.dtype.kind in "fiu":
        return array.astype(np.float64)
    flat = array.reshape(-1) if array.ndim else array.reshape(1)
    out = column_floats(pd.Series(flat, dtype=object if array.dtype.kind == "O" else None),
                        label, label)
    return out.reshape(array.shape)


# ------------------------------------------------------------------ date columns
def _date_column(frame: pd.DataFrame, rules: DateRules):
    """The label of the column holding dates, or None when the index holds them."""
    if rules.column is not None:
        if rules.column in frame.columns:
            return rules.column
        if rules.column == frame.index.name:
            return None
        raise ValueError(f"date_column={rules.column!r} is not a column; columns are "
                         f"{list(frame.columns)}")
    named = [c for c in frame.columns if _key(c) in _DATE_KEYS]
    if len(named) > 1:
        raise ValueError(f"columns {named} all look like dates; combine them, e.g. "
                         f"frame[{named[0]!r}] + ' ' + frame[{named[1]!r}], or pick one with "
                         "date_column=")
    if named:
        if isinstance(frame.index, pd.DatetimeIndex):
            raise ValueError(f"both the index and column {named[0]!r} hold dates; drop one")
        return named[0]
    if not isinstance(frame.index, pd.RangeIndex) or frame.empty:
        return None
    stamped = [c for c in frame.columns if ptypes.is_datetime64_any_dtype(frame[c].dtype)]
    if len(stamped) == 1:
        return stamped[0]
    first = frame.columns[0]
    if ptypes.infer_dtype(frame[first], skipna=True) in ("string", "date", "datetime") \
            and _key(first) not in _ASSET_KEYS and field_of(first) is None:
        return first  # e.g. 'Unnamed: 0' from df.to_csv() of an unnamed date index
    return None


def split_dates(frame: pd.DataFrame, rules: DateRules):
    """``(frame without its date column, DatetimeIndex)``."""
    column = _date_column(frame, rules)
    if column is None and isinstance(frame.index, pd.RangeIndex) and rules.unit is None:
        raise ValueError(
            "found no dates: the index holds row numbers 0, 1, 2, ..., not dates; set a date "
            "index (e.g. frame.set_index('Date')), name the date column date/Date/datetime/"
            f"timestamp/time, or pass date_column= naming one of {list(frame.columns)[:8]}")
    if column is None:
        return frame, parse_dates(frame.index, "the index", rules)
    dates = parse_dates(frame[column], f"column {column!r}", rules)
    return frame.drop(columns=[column]), dates


def rows_to_long(frame: pd.DataFrame) -> pd.DataFrame:
    """A (date, symbol) row MultiIndex becomes 'date' and 'symbol' columns."""
    index = frame.index
    if index.nlevels != 2:
        raise ValueError(f"the row index has {index.nlevels} levels; expected 2 (date, "
                         "symbol) or a plain date index")
    levels = [index.get_level_values(i) for i in (0, 1)]
    dated = [i for i in (0, 1) if isinstance(levels[i], pd.DatetimeIndex)
             or _key(index.names[i]) in _DATE_KEYS]
    if len(dated) != 1:
        raise ValueError(f"a two-level row index needs one date level and one symbol level; "
                         f"got levels {list(index.names)}")
    names = {dated[0]: "date", 1 - dated[0]: "symbol"}
    columns = {names[i]: levels[i].to_numpy() for i in (0, 1)}
    clash = [c for c in columns if c in frame.columns]
    if clash:
        raise ValueError(f"the row index levels clash with columns {clash}; reset_index() "
                         "and drop the duplicates first")
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame))).join(
        frame.reset_index(drop=True))


# ----------------------------------------------------------------------- layouts
def _field_map(labels, where: str) -> dict:
    """Canonical field -> label; two spellings of one field (close, Close) is an error."""
    found = {}
    for label in labels:
        field = field_of(label)
        if field is None or field == "ignored":
            continue
        if field in found:
            raise ValueError(f"{where} has both {found[field]!r} and {label!r}, which both "
                             f"mean {field!r}; keep one (e.g. frame.drop(columns=[{label!r}]))")
        found[field] = label
    return found


def _pick_price(fields: dict, price: str | None, where: str):
    field = price or ("adj_close" if "adj_close" in fields else "close")
    if field not in fields:
        other = "close" if field == "adj_close" else "adj_close"
        hint = f"; price={other!r} uses {fields[other]!r}" if other in fields else ""
        wanted = "'Adj Close'" if field == "adj_close" else "'Close'"
        raise ValueError(f"price={price!r} needs a {wanted} column but {where} has none{hint}")
    return fields[field], field


def _bar_arrays(get, fields: dict, price_field: str) -> dict:
    """open/high/low/volume; when Adj Close is traded, open/high/low are adjusted too
    (the adj_* columns if given, else scaled by Adj Close / Close, as yfinance does)."""
    arrays = {f: get(fields[f]) for f in BAR_FIELDS if f in fields}
    if price_field != "adj_close":
        return arrays
    ratio = None
    if "close" in fields:
        close = get(fields["close"])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(close > 0, get(fields["adj_close"]) / close, np.nan)
    for f in ("open", "high", "low"):
        if f"adj_{f}" in fields:
            arrays[f] = get(fields[f"adj_{f}"])
        elif f in arrays and ratio is not None:
            arrays[f] = arrays[f] * ratio
    return arrays


def _refuse_duplicates(frame: pd.DataFrame) -> None:
    dupes = list(frame.columns[frame.columns.duplicated()].unique())
    if dupes:
        what = "column" if all(field_of(d) for d in dupes) else "asset column"
        raise ValueError(f"duplicate {what}(s) {dupes}: each asset (or field) needs exactly "
                         "one column; rename or drop the repeats, e.g. "
                         "frame.loc[:, ~frame.columns.duplicated()]")


def _drop_unnamed(frame: pd.DataFrame) -> pd.DataFrame:
    for label in [c for c in frame.columns if _UNNAMED.fullmatch(str(c))]:
        values = frame[label]
        if values.isna().all():  # a trailing separator in a spreadsheet export
            frame = frame.drop(columns=[label])
            continue
        raise ValueError(f"column {label!r} has no header name (values such as "
                         f"{values.dropna().tolist()[0]!r}); it is probably a saved row number: "
                         "pass index_col=0 to read_csv, or drop it")
    return frame


def _fields_layout(frame, index, price, symbol) -> dict:
    fields = _field_map(frame.columns, "the frame")
    stray = [c for c in frame.columns if field_of(c) is None]
    if stray:
        raise ValueError(
            f"columns {stray} are neither prices nor OHLCV fields; a frame with a close "
            "column holds one asset: drop them (frame.drop(columns=...)), or for several "
            "assets pass one column of closes per asset or a long frame with a symbol column")
    label, field = _pick_price(fields, price, "the frame")

    def get(column):
        return column_floats(frame[column], column)
    return dict(close=get(label), index=index, symbols=(symbol,), price_column=str(label),
                **_bar_arrays(get, fields, field))


def _looks_like_volume(label) -> bool:
    """'Volumen', 'Vol.', 'Volume (shares)'; not all-caps tickers such as 'VOLV-B.ST'."""
    return not str(label).isupper() and _key(label).startswith("vol")


def _wide_layout(frame, index, price) -> dict:
    fieldish = [c for c in frame.columns if field_of(c, beside_close=False) is not None
                or _looks_like_volume(c)]
    if fieldish:
        raise ValueError(f"columns {fieldish} are OHLCV fields, not assets, and there is no "
                         "'Close' or 'Adj Close' column to trade; add one, or pass one column "
                         "of closes per asset")
    if price is not None:
        raise ValueError(f"price={price!r} picks a column of an OHLCV frame, but this frame "
                         f"holds one column of prices per asset {list(frame.columns)[:5]}; "
                         "leave price=None")
    if frame.shape[1] == 0:
        raise ValueError("the frame has no price columns")
    close = np.column_stack([column_floats(frame[c], c) for c in frame.columns])
    return dict(close=close, index=index, symbols=tuple(frame.columns), price_column=None)


def _long_layout(frame, index, asset_col, price) -> dict:
    others = [c for c in frame.columns if c != asset_col]
    fields = _field_map(others, "the long frame")
    stray = [c for c in others if field_of(c) is None]
    if stray:
        raise ValueError(f"long-frame columns {stray} are neither prices nor OHLCV fields; "
                         "drop them (frame.drop(columns=...))")
    if not any(f in fields for f in PRICES):
        raise ValueError(f"a long frame (one row per date and {asset_col!r}) needs a 'Close' "
                         f"or 'Adj Close' column; columns are {list(frame.columns)}")
    symbols = frame[asset_col]
    missing = symbols.isna().to_numpy()
    if missing.any():
        raise ValueError(f"row {int(np.argmax(missing))} of column {asset_col!r} has no "
                         "symbol; drop or fill it")
    rows = pd.MultiIndex.from_arrays([index, symbols.astype(str).to_numpy()])
    dupes = rows.duplicated()
    if dupes.any():
        row = int(np.argmax(dupes))
        raise ValueError(f"long data has duplicate (date, {asset_col}) rows, first at row "
                         f"{row} {rows[row]}; drop or aggregate the duplicates first")
    label, field = _pick_price(fields, price, "the long frame")
    close = pd.Series(column_floats(frame[label], label), index=rows).unstack()

    def get(column):
        wide = pd.Series(column_floats(frame[column], column), index=rows).unstack()
        return wide.reindex(index=close.index, columns=close.columns).to_numpy()
    return dict(close=close.to_numpy(), index=pd.DatetimeIndex(close.index),
                symbols=tuple(close.columns), price_column=str(label),
                **_bar_arrays(get, fields, field))


def _field_level(columns: pd.MultiIndex) -> int:
    candidates = []
    for level in (0, 1):
        kinds = [field_of(v) for v in columns.get_level_values(level).unique()]
        if all(kinds) and any(k in PRICES for k in kinds):
            candidates.append(level)
    if len(candidates) == 2:  # tickers that all look like fields: trust yfinance's names
        named = [lv for lv in (0, 1) if _key(columns.names[lv]) in _FIELD_LEVEL_NAMES]
        candidates = named if len(named) == 1 else candidates
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise ValueError("both column levels look like OHLCV fields; name the field level "
                         "'Price' (frame.columns.names = ['Price', 'Ticker'])")
    for level in (0, 1):
        values = list(columns.get_level_values(level).unique())
        if any(field_of(v) in PRICES for v in values):
            stray = [v for v in values if field_of(v) is None]
            raise ValueError(f"column level {level} mixes price fields with {stray}, which "
                             "are not OHLCV fields; drop those columns first")
    raise ValueError("two-level columns need a 'Close' field (or 'Adj Close') on one level, "
                     "like yfinance's (Price, Ticker) columns; select the closes first, e.g. "
                     "frame['Close']")


def _two_level_layout(frame, index, price) -> dict:
    if frame.columns.nlevels != 2:
        raise ValueError(f"columns have {frame.columns.nlevels} levels; expected 2 (field, "
                         "ticker) with a 'Close' field")
    dupes = list(frame.columns[frame.columns.duplicated()].unique())
    if dupes:
        raise ValueError(f"duplicate asset columns {dupes}; drop the repeats first")
    level = _field_level(frame.columns)
    fields = _field_map(frame.columns.get_level_values(level).unique(), f"column level {level}")
    label, field = _pick_price(fields, price, f"column level {level}")
    tickers = frame.xs(label, axis=1, level=level).columns

    def get(column):
        part = frame.xs(column, axis=1, level=level).reindex(columns=tickers)
        return np.column_stack([
            column_floats(part[t], (column, t) if level == 0 else (t, column))
            for t in tickers])
    return dict(close=get(label), index=index, symbols=tuple(tickers),
                price_column=str(label), **_bar_arrays(get, fields, field))


def _series_frame(series: pd.Series, symbol: str) -> pd.DataFrame:
    # an unnamed Series is the closes of one asset called ``symbol`` (a column named
    # after the symbol could read as a long frame's asset column: 'asset')
    name = "close" if series.name is None else series.name
    if isinstance(series.index, pd.MultiIndex) and field_of(series.name) is None:
        name = "close"  # a stacked (date, symbol) Series of closes
    return series.to_frame(name)


def frame_arrays(obj, price=None, symbol="asset", rules: DateRules = DateRules()) -> dict:
    """MarketData keyword arguments for a Series or DataFrame in any supported layout."""
    price = price_choice(price)
    if isinstance(obj, pd.Series):
        obj = _series_frame(obj, symbol)
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(f"expected a pandas Series or DataFrame, got {type(obj).__name__}")
    frame = rows_to_long(obj) if isinstance(obj.index, pd.MultiIndex) else obj
    if isinstance(frame.columns, pd.MultiIndex):
        index = parse_dates(frame.index, "the index", rules)
        return oldest_first(_two_level_layout(frame, index, price))
    _refuse_duplicates(frame)
    frame, index = split_dates(frame, rules)
    frame = _drop_unnamed(frame)
    asset_col = next((c for c in frame.columns if _key(c) in _ASSET_KEYS), None)
    if asset_col is not None:
        return _long_layout(frame, index, asset_col, price)
    if any(field_of(c) in PRICES for c in frame.columns):
        return oldest_first(_fields_layout(frame, index, price, symbol))
    return oldest_first(_wide_layout(frame, index, price))


# ------------------------------------------------------------------------ files
def reader_options(kwargs: dict, rules: DateRules):
    """Split pandas reader kwargs from the date options btcore applies itself."""
    kwargs = dict(kwargs)
    dayfirst = kwargs.pop("dayfirst", rules.dayfirst)
    date_format = kwargs.pop("date_format", None) or kwargs.pop("format", None) or rules.format
    parse = kwargs.pop("parse_dates", None)
    column = rules.column
    if isinstance(parse, (list, tuple)):
        index_col = kwargs.get("index_col")
        index_cols = index_col if isinstance(index_col, (list, tuple)) else [index_col]
        named = [c for c in parse if c not in index_cols]
        if len(named) > 1 or any(isinstance(c, (list, tuple, dict)) for c in named):
            raise ValueError(f"parse_dates={parse!r} names several columns; btcore reads one "
                             "date column: pass date_column='...' instead")
        column = column if column is not None or not named else named[0]
    elif parse not in (None, True, False):
        raise TypeError(f"parse_dates={parse!r}: pass True, a list holding the date column, "
                        "or date_column=")
    return kwargs, DateRules(column, dayfirst, date_format, rules.unit)


def read_table(reader, path, kwargs: dict, what: str) -> pd.DataFrame:
    """``reader(path, **kwargs)`` with pandas/pyarrow failures turned into clear errors."""
    try:
        return reader(path, **kwargs)
    except FileNotFoundError:
        raise ValueError(f"data file {str(path)!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                         "spreadsheet exports are often Windows-1252: pass encoding='cp1252' "
                         "(or 'latin-1')") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: no columns to read") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: {exc}; check sep= (',' or ';'), decimal=, quotechar= "
                         "and skiprows=") from None
    except TypeError as exc:
        raise TypeError(f"{path}: {what} does not accept these options: {exc}") from None
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: {what} failed: {exc}") from None


def check_csv(frame: pd.DataFrame, path) -> None:
    """Layouts that read_csv misreads without complaint."""
    if isinstance(frame.columns, pd.MultiIndex) or frame.shape[1] == 0:
        return
    columns = [str(c) for c in frame.columns]
    for sep in (";", "\t", "|"):
        if len(columns) <= 2 and sep in columns[0]:
            raise ValueError(f"{path}: the header {columns[0]!r} looks {sep!r}-separated; "
                             f"pass sep={sep!r} (and decimal=',' for numbers written 1,5)")
    if _key(columns[0]) == "price" and len(frame) and str(frame.iloc[0, 0]) == "Ticker":
        raise ValueError(f"{path} is a yfinance CSV with two header rows (Price, Ticker): "
                         "read it with header=[0, 1], index_col=0")
    for column in columns:
        base = re.fullmatch(r"(.+)\.(\d+)", column)
        if base and base.group(1) in columns:
            raise ValueError(f"{path}: duplicate asset column {base.group(1)!r} in the header "
                             f"(pandas renamed the repeat {column!r}); rename or drop one")
