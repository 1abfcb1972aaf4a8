"""Real-world price inputs: each is read exactly right or refused with a clear message.

Every case builds its input the way the tool named in its id produces it
(yfinance frames, pandas ``read_csv`` of typical exports, spreadsheet CSVs,
Parquet files) and states either what MarketData must hold or the exception
type and a key phrase of its message.
"""
import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from btcore import MarketData
from btcore.data import NotNumericError, as_market_data

DATES = pd.bdate_range("2020-01-02", periods=6, name="Date")  # Thu 2 Jan .. Thu 9 Jan


# ------------------------------------------------------------------ builders
def bars(base=100.0, n=6, adjusted=True):
    """One ticker's OHLCV columns in yfinance order; Adj Close = 0.9 * Close."""
    close = base + np.arange(n, dtype=float)
    columns = {"Open": close - 0.5, "High": close + 1.0, "Low": close - 1.0, "Close": close}
    if not adjusted:  # yf.download(auto_adjust=False) adds Adj Close
        columns["Adj Close"] = close * 0.9
    columns["Volume"] = np.arange(n, dtype=np.int64) * 1000 + 5000
    return pd.DataFrame(columns, index=DATES[:n])


def yf_download(tickers=("AAPL", "MSFT"), group_by="column", adjusted=True, bases=None):
    """What yfinance.download(tickers) returns: the same concat/swaplevel yfinance does."""
    bases = bases or [100.0 * (i + 1) for i in range(len(tickers))]
    frames = {t: bars(b, adjusted=adjusted) for t, b in zip(tickers, bases)}
    data = pd.concat(frames.values(), axis=1, sort=True, keys=frames.keys(),
                     names=["Ticker", "Price"])
    if group_by == "column":
        data.columns = data.columns.swaplevel(0, 1)
        data = data.sort_index(level=0, axis=1)
    return data


def history(tz="America/New_York"):
    """yf.Ticker('AAPL').history(): tz-aware 'Date' index, Dividends, Stock Splits."""
    frame = bars().assign(Dividends=0.0, **{"Stock Splits": 0.0})
    return frame.tz_localize(tz)


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


YAHOO_CSV = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
             "2020-01-02,74.06,75.15,73.80,75.09,73.41,135480400\n"
             "2020-01-03,74.29,75.14,74.13,74.36,72.70,146322800\n"
             "2020-01-06,73.45,74.99,73.19,74.95,73.27,118387200\n")
EU_CSV = ("Datum;Eröffnung;Hoch;Tief;Schluss;Volumen\n"
          "31.01.2020;1234,5;1240,0;1230,0;1238,25;1000\n"
          "03.02.2020;1238,0;1245,0;1236,0;1244,75;1200\n"
          "04.02.2020;1244,0;1250,0;1243,0;1249,5;900\n")
EU_AMBIGUOUS = "Date;Close\n03.02.2020;10,5\n04.02.2020;10,75\n05.02.2020;11,0\n"


def frame_with(column):
    return pd.DataFrame({"A": column}, index=DATES[:len(column)])


# --------------------------------------------------------------- expectations
def ok(symbols, shape, first, last, first_date, last_date, price_column, tz=None):
    """What MarketData must hold; first/last: first asset's first valid close and
    the last asset's last close."""
    return dict(symbols=tuple(symbols), shape=shape, first=first, last=last,
                first_date=pd.Timestamp(first_date, tz=tz),
                last_date=pd.Timestamp(last_date, tz=tz), price_column=price_column)


def fails(error, phrase):
    return (error, phrase)


CASES = [
    # ---------------------------------------------------------- yfinance frames
    ("yf download auto_adjust=False: Adj Close by default",
     lambda p: MarketData.from_pandas(yf_download(["AAPL"], adjusted=False).droplevel(1, axis=1)),
     ok(["asset"], (6, 1), 90.0, 94.5, "2020-01-02", "2020-01-09", "Adj Close")),
    ("yf one ticker, price='close'",
     lambda p: MarketData.from_pandas(bars(adjusted=False), price="close"),
     ok(["asset"], (6, 1), 100.0, 105.0, "2020-01-02", "2020-01-09", "Close")),
    ("yf one ticker, price='Adj Close' spelling",
     lambda p: MarketData.from_pandas(bars(adjusted=False), price="Adj Close"),
     ok(["asset"], (6, 1), 90.0, 94.5, "2020-01-02", "2020-01-09", "Adj Close")),
    ("yf auto_adjust=True: Close (already adjusted)",
     lambda p: MarketData.from_pandas(bars()),
     ok(["asset"], (6, 1), 100.0, 105.0, "2020-01-02", "2020-01-09", "Close")),
    ("yf auto_adjust=True, price='adj_close' asked",
     lambda p: MarketData.from_pandas(bars(), price="adj_close"),
     fails(ValueError, "needs a 'Adj Close' column")),
    ("yf Ticker.history: tz-aware, Dividends and Stock Splits ignored",
     lambda p: MarketData.from_pandas(history(), symbol="AAPL"),
     ok(["AAPL"], (6, 1), 100.0, 105.0, "2020-01-02", "2020-01-09", "Close",
        tz="America/New_York")),
    ("yf intraday: 'Datetime' index in UTC",
     lambda p: MarketData.from_pandas(bars().set_axis(pd.date_range(
         "2020-01-02 14:30", periods=6, freq="1min", tz="UTC", name="Datetime"))),
     ok(["asset"], (6, 1), 100.0, 105.0, "2020-01-02 14:30", "2020-01-02 14:35", "Close",
        tz="UTC")),
    ("yf download 2 tickers (Price, Ticker)",
     lambda p: MarketData.from_pandas(yf_download()),
     ok(["AAPL", "MSFT"], (6, 2), 100.0, 205.0, "2020-01-02", "2020-01-09", "Close")),
    ("yf download auto_adjust=False, 2 tickers",
     lambda p: MarketData.from_pandas(yf_download(adjusted=False)),
     ok(["AAPL", "MSFT"], (6, 2), 90.0, 184.5, "2020-01-02", "2020-01-09", "Adj Close")),
    ("yf download group_by='ticker' (Ticker, Price)",
     lambda p: MarketData.from_pandas(yf_download(group_by="ticker", adjusted=False)),
     ok(["AAPL", "MSFT"], (6, 2), 90.0, 184.5, "2020-01-02", "2020-01-09", "Adj Close")),
    ("yf download group_by='ticker', price='close'",
     lambda p: MarketData.from_pandas(yf_download(group_by="ticker", adjusted=False),
                                      price="close"),
     ok(["AAPL", "MSFT"], (6, 2), 100.0, 205.0, "2020-01-02", "2020-01-09", "Close")),
    ("yf download one ticker keeps its MultiIndex",
     lambda p: MarketData.from_pandas(yf_download(["SPY"])),
     ok(["SPY"], (6, 1), 100.0, 105.0, "2020-01-02", "2020-01-09", "Close")),
    ("yf tickers LOW and OPEN are assets, not fields",
     lambda p: MarketData.from_pandas(yf_download(["LOW", "OPEN"])),
     ok(["LOW", "OPEN"], (6, 2), 100.0, 205.0, "2020-01-02", "2020-01-09", "Close")),
    ("yf ticker listed later: NaN before its first bar",
     lambda p: MarketData.from_pandas(yf_download().mask(
         lambda f: (f.index < "2020-01-06")[:, None] & (f.columns.get_level_values(1) == "AAPL"))),
     ok(["AAPL", "MSFT"], (6, 2), 102.0, 205.0, "2020-01-02", "2020-01-09", "Close")),
    ("yf download .stack(): (Date, Ticker) rows",
     lambda p: MarketData.from_pandas(yf_download(adjusted=False).stack(level=1)),
     ok(["AAPL", "MSFT"], (6, 2), 90.0, 184.5, "2020-01-02", "2020-01-09", "Adj Close")),
    ("yf MultiIndex without a price field",
     lambda p: MarketData.from_pandas(yf_download().drop(columns=["Close"], level=0)),
     fails(ValueError, "need a 'Close' field")),
    ("snake_case columns with adj_close",
     lambda p: MarketData.from_pandas(bars(adjusted=False).rename(
         columns=lambda c: c.lower().replace(" ", "_"))),
     ok(["asset"], (6, 1), 90.0, 94.5, "2020-01-02", "2020-01-09", "adj_close")),
    ("'adjclose' spelling, price='adjclose'",
     lambda p: MarketData.from_pandas(bars(adjusted=False).rename(
         columns={"Adj Close": "adjclose"}), price="adjclose"),
     ok(["asset"], (6, 1), 90.0, 94.5, "2020-01-02", "2020-01-09", "adjclose")),
    ("Close + Volume is one asset, not two",
     lambda p: MarketData.from_pandas(bars()[["Close", "Volume"]]),
     ok(["asset"], (6, 1), 100.0, 105.0, "2020-01-02", "2020-01-09", "Close")),
    ("both 'close' and 'Close'",
     lambda p: MarketData.from_pandas(bars().assign(close=1.0)),
     fails(ValueError, "both 'Close' and 'close'")),
    ("wide closes plus a Volume column",
     lambda p: MarketData.from_pandas(pd.DataFrame({"SPY": bars()["Close"],
                                                    "Volume": bars()["Volume"]})),
     fails(ValueError, "OHLCV fields, not assets")),
    ("OHLCV frame with an indicator column",
     lambda p: MarketData.from_pandas(bars().assign(SMA_20=1.0)),
     fails(ValueError, "neither prices nor OHLCV fields")),
    ("price='open'",
     lambda p: MarketData.from_pandas(bars(), price="open"),
     fails(ValueError, "price='close', price='adj_close'")),
    ("price= on a wide frame",
     lambda p: MarketData.from_pandas(yf_download()["Close"], price="close"),
     fails(ValueError, "leave price=None")),
    # ------------------------------------------------------------- CSV exports
    ("Yahoo CSV: symbol from the file name, Adj Close",
     lambda p: MarketData.from_csv(write(p, "AAPL.csv", YAHOO_CSV)),
     ok(["AAPL"], (3, 1), 73.41, 73.27, "2020-01-02", "2020-01-06", "Adj Close")),
    ("Yahoo CSV with index_col='Date', parse_dates=True keeps Close",
     lambda p: MarketData.from_csv(write(p, "AAPL.csv", YAHOO_CSV), "close",
                                   index_col="Date", parse_dates=True),
     ok(["AAPL"], (3, 1), 75.09, 74.95, "2020-01-02", "2020-01-06", "Close")),
    ("Yahoo CSV with usecols",
     lambda p: MarketData.from_csv(write(p, "AAPL.csv", YAHOO_CSV), usecols=["Date", "Close"]),
     ok(["AAPL"], (3, 1), 75.09, 74.95, "2020-01-02", "2020-01-06", "Close")),
    ("Yahoo CSV through as_market_data(path, price=)",
     lambda p: as_market_data(str(write(p, "AAPL.csv", YAHOO_CSV)), price="close"),
     ok(["AAPL"], (3, 1), 75.09, 74.95, "2020-01-02", "2020-01-06", "Close")),
    ("German CSV: sep=';', decimal=',', cp1252, day first",
     lambda p: MarketData.from_csv(write(p, "dax.csv", EU_CSV, "cp1252"), sep=";",
                                   decimal=",", encoding="cp1252", symbol="DAX"),
     fails(ValueError, "['Volumen'] are OHLCV fields, not assets")),  # no English 'Close' column
    ("German CSV renamed to English fields",
     lambda p: MarketData.from_csv(write(p, "dax.csv", EU_CSV.replace(
         "Eröffnung;Hoch;Tief;Schluss;Volumen", "Open;High;Low;Close;Volume")), sep=";",
         decimal=","),
     ok(["dax"], (3, 1), 1238.25, 1249.5, "2020-01-31", "2020-02-04", "Close")),
    ("cp1252 file read as UTF-8",
     lambda p: MarketData.from_csv(write(p, "dax.csv", EU_CSV, "cp1252"), sep=";"),
     fails(ValueError, "encoding='cp1252'")),
    ("';' file read without sep",
     lambda p: MarketData.from_csv(write(p, "eu.csv", EU_AMBIGUOUS)),
     fails(ValueError, "pass sep=';'")),
    ("day/month-ambiguous dates",
     lambda p: MarketData.from_csv(write(p, "eu.csv", EU_AMBIGUOUS), sep=";", decimal=","),
     fails(ValueError, "pass dayfirst=True or dayfirst=False")),
    ("ambiguous dates with dayfirst=True",
     lambda p: MarketData.from_csv(write(p, "eu.csv", EU_AMBIGUOUS), sep=";", decimal=",",
                                   dayfirst=True),
     ok(["eu"], (3, 1), 10.5, 11.0, "2020-02-03", "2020-02-05", "Close")),
    ("ambiguous dates with date_format",
     lambda p: MarketData.from_csv(write(p, "eu.csv", EU_AMBIGUOUS), sep=";", decimal=",",
                                   date_format="%m.%d.%Y"),
     ok(["eu"], (3, 1), 10.5, 11.0, "2020-03-02", "2020-05-02", "Close")),
    ("thousands='.' turns dd.mm.yyyy dates into numbers",
     lambda p: MarketData.from_csv(write(p, "eu.csv", EU_AMBIGUOUS.replace("Date", "Datum")),
                                   sep=";", decimal=",", thousands="."),
     fails(ValueError, "dd.mm.yyyy dates read as numbers")),
    ("US month-first dates, unambiguous",
     lambda p: MarketData.from_csv(write(p, "us.csv", "Date,SPY\n12/30/2019,321.5\n"
                                         "12/31/2019,322.0\n01/02/2020,324.9\n")),
     ok(["SPY"], (3, 1), 321.5, 324.9, "2019-12-30", "2020-01-02", None)),
    ("European day-first slashes, unambiguous",
     lambda p: MarketData.from_csv(write(p, "eu.csv", "Date,SPY\n30/12/2019,321.5\n"
                                         "31/12/2019,322.0\n02/01/2020,324.9\n")),
     ok(["SPY"], (3, 1), 321.5, 324.9, "2019-12-30", "2020-01-02", None)),
    ("dayfirst=False against 31/12 dates",
     lambda p: MarketData.from_csv(write(p, "eu.csv", "Date,SPY\n30/12/2019,321.5\n"
                                         "31/12/2019,322.0\n"), dayfirst=False),
     fails(ValueError, "pass dayfirst=True")),
    ("dayfirst=True does not flip ISO dates",
     lambda p: MarketData.from_csv(write(p, "iso.csv", "Date,SPY\n2020-02-01,1\n2020-02-03,2\n"),
                                   dayfirst=True),
     ok(["SPY"], (2, 1), 1.0, 2.0, "2020-02-01", "2020-02-03", None)),
    ("one column mixes two date formats",
     lambda p: MarketData.from_csv(write(p, "mix.csv", "Date,SPY\n2020-01-02,1\n03/01/2020,2\n")),
     fails(ValueError, "mixes date formats")),
    ("quoted numbers with thousands separators",
     lambda p: MarketData.from_csv(write(p, "idx.csv", 'Date,SPX,NDX\n"Jan 2, 2020","3,257.85",'
                                         '"8,872.22"\n"Jan 3, 2020","3,234.85","8,793.90"\n')),
     fails(NotNumericError, "pass thousands=','")),
    ("quoted numbers with thousands=','",
     lambda p: MarketData.from_csv(write(p, "idx.csv", 'Date,SPX,NDX\n"Jan 2, 2020","3,257.85",'
                                         '"8,872.22"\n"Jan 3, 2020","3,234.85","8,793.90"\n'),
                                   thousands=","),
     ok(["SPX", "NDX"], (2, 2), 3257.85, 8793.90, "2020-01-02", "2020-01-03", None)),
    ("spreadsheet export: BOM and a trailing separator",
     lambda p: MarketData.from_csv(write(p, "xl.csv", "\ufeffDate,A,B,\n2020-01-02,1.5,2.5,\n"
                                         "2020-01-03,1.6,2.6,\n")),
     ok(["A", "B"], (2, 2), 1.5, 2.6, "2020-01-02", "2020-01-03", None)),
    ("df.to_csv() of an unnamed date index",
     lambda p: MarketData.from_csv(_saved(p, yf_download()["Close"].rename_axis(None))),
     ok(["AAPL", "MSFT"], (6, 2), 100.0, 205.0, "2020-01-02", "2020-01-09", None)),
    ("saved row numbers in 'Unnamed: 0'",
     lambda p: MarketData.from_csv(_saved(p, yf_download()["Close"].reset_index())),
     fails(ValueError, "pass index_col=0")),
    ("duplicate ticker in the header",
     lambda p: MarketData.from_csv(write(p, "dup.csv", "Date,A,A\n2020-01-02,1,2\n"
                                         "2020-01-03,2,3\n")),
     fails(ValueError, "duplicate asset column 'A'")),
    ("'-' placeholders for missing prices",
     lambda p: MarketData.from_csv(write(p, "gap.csv", "Date,A\n2020-01-02,-\n2020-01-03,2\n"
                                         "2020-01-06,3\n")),
     fails(NotNumericError, "na_values=['-']")),
    ("'-' placeholders with na_values: NaN before listing",
     lambda p: MarketData.from_csv(write(p, "gap.csv", "Date,A\n2020-01-02,-\n2020-01-03,2\n"
                                         "2020-01-06,3\n"), na_values=["-"]),
     ok(["A"], (3, 1), 2.0, 3.0, "2020-01-02", "2020-01-06", None)),
    ("Nasdaq.com export: '$' prices, newest first",
     lambda p: MarketData.from_csv(write(p, "nq.csv", "Date,Close/Last,Volume,Open,High,Low\n"
                                         "01/31/2020,$77.38,199588900,$80.23,$80.67,$77.07\n"
                                         "01/30/2020,$80.97,126743400,$80.14,$81.02,$79.69\n")),
     fails(NotNumericError, "strip the currency")),
    ("newest-first export is turned around",
     lambda p: MarketData.from_csv(write(p, "nq.csv", "Date,Close/Last,Volume\n"
                                         "01/31/2020,77.38,199588900\n"
                                         "01/30/2020,80.97,126743400\n")),
     ok(["nq"], (2, 1), 80.97, 77.38, "2020-01-30", "2020-01-31", "Close/Last")),
    ("crypto export: epoch milliseconds",
     lambda p: MarketData.from_csv(write(p, "btc.csv", "timestamp,open,high,low,close,volume\n"
                                         "1577836800000,7195,7255,7175,7200,10\n"
                                         "1577923200000,7200,7212,6935,6985,12\n")),
     fails(ValueError, "date_unit='ms'")),
    ("crypto export with date_unit='ms'",
     lambda p: MarketData.from_csv(write(p, "btc.csv", "timestamp,open,high,low,close,volume\n"
                                         "1577836800000,7195,7255,7175,7200,10\n"
                                         "1577923200000,7200,7212,6935,6985,12\n"),
                                   date_unit="ms"),
     ok(["btc"], (2, 1), 7200.0, 6985.0, "2020-01-01", "2020-01-02", "close")),
    ("YYYYMMDD integer dates",
     lambda p: MarketData.from_csv(write(p, "d.csv", "date,A\n20200102,1\n20200103,2\n")),
     fails(ValueError, "date_format='%Y%m%d'")),
    ("YYYYMMDD with date_format",
     lambda p: MarketData.from_csv(write(p, "d.csv", "date,A\n20200102,1\n20200103,2\n"),
                                   date_format="%Y%m%d"),
     ok(["A"], (2, 1), 1.0, 2.0, "2020-01-02", "2020-01-03", None)),
    ("separate Date and Time columns",
     lambda p: MarketData.from_csv(write(p, "m1.csv", "Date,Time,Close\n2020-01-02,09:30,1\n"
                                         "2020-01-02,09:31,2\n")),
     fails(ValueError, "combine them")),
    ("yfinance CSV with two header rows",
     lambda p: MarketData.from_csv(_saved(p, yf_download())),
     fails(ValueError, "header=[0, 1], index_col=0")),
    ("yfinance CSV read with header=[0, 1]",
     lambda p: MarketData.from_csv(_saved(p, yf_download()), header=[0, 1], index_col=0),
     ok(["AAPL", "MSFT"], (6, 2), 100.0, 205.0, "2020-01-02", "2020-01-09", "Close")),
    ("Ticker.history().to_csv(): offsets change at DST",
     lambda p: MarketData.from_csv(_saved(p, pd.DataFrame(
         {"Close": [1.0, 2.0]}, index=pd.DatetimeIndex(
             ["2020-03-06", "2020-03-09"], name="Date").tz_localize("America/New_York")))),
     ok(["prices"], (2, 1), 1.0, 2.0, "2020-03-06 05:00", "2020-03-09 04:00", "Close",
        tz="UTC")),
    ("long CSV: date, symbol, close",
     lambda p: MarketData.from_csv(write(p, "long.csv", "date,symbol,close\n"
                                         "2020-01-02,MSFT,160.6\n2020-01-02,AAPL,75.1\n2020-01-03,AAPL,74.4\n"
                                         "2020-01-03,MSFT,158.6\n")),
     ok(["AAPL", "MSFT"], (2, 2), 75.1, 158.6, "2020-01-02", "2020-01-03", "close")),
    ("long CSV with a repeated (date, symbol)",
     lambda p: MarketData.from_csv(write(p, "long.csv", "date,symbol,close\n2020-01-02,A,1\n"
                                         "2020-01-02,A,2\n2020-01-03,A,3\n")),
     fails(ValueError, "duplicate (date, symbol) rows")),
    ("read_csv with dtype_backend='pyarrow'",
     lambda p: MarketData.from_csv(write(p, "AAPL.csv", YAHOO_CSV), dtype_backend="pyarrow"),
     ok(["AAPL"], (3, 1), 73.41, 73.27, "2020-01-02", "2020-01-06", "Adj Close")),
    # ------------------------------------------------------------- price dtypes
    ("string prices", lambda p: MarketData.from_pandas(frame_with(["1.5", "x", "2"])),
     fails(NotNumericError, "convert with pd.to_numeric(frame['A'])")),
    ("bool prices", lambda p: MarketData.from_pandas(frame_with([True, False, True])),
     fails(TypeError, "True/False")),
    ("integer prices read as float",
     lambda p: MarketData.from_pandas(frame_with(np.array([10, 11, 12], dtype=np.int32))),
     ok(["A"], (3, 1), 10.0, 12.0, "2020-01-02", "2020-01-06", None)),
    ("Int64 with leading pd.NA = not listed yet",
     lambda p: MarketData.from_pandas(frame_with(pd.array([None, 11, 12], dtype="Int64"))),
     ok(["A"], (3, 1), 11.0, 12.0, "2020-01-02", "2020-01-06", None)),
    ("Float64 with pd.NA after listing",
     lambda p: MarketData.from_pandas(frame_with(pd.array([10.0, None, 12.0], dtype="Float64"))),
     fails(ValueError, "is nan at row 1")),
    ("object column of Python numbers",
     lambda p: MarketData.from_pandas(frame_with(np.array([10, 11.5, None], dtype=object))),
     fails(ValueError, "is nan at row 2")),
    # ------------------------------------------------------------------ Parquet
    ("Parquet with a DatetimeIndex",
     lambda p: MarketData.from_parquet(_parquet(p, yf_download()["Close"])),
     ok(["AAPL", "MSFT"], (6, 2), 100.0, 205.0, "2020-01-02", "2020-01-09", None)),
    ("Parquet with a string index",
     lambda p: MarketData.from_parquet(_parquet(p, yf_download()["Close"].set_axis(
         DATES.strftime("%Y-%m-%d")))),
     ok(["AAPL", "MSFT"], (6, 2), 100.0, 205.0, "2020-01-02", "2020-01-09", None)),
    ("Parquet with an epoch-seconds index",
     lambda p: MarketData.from_parquet(_parquet(p, yf_download()["Close"].set_axis(
         DATES.as_unit("s").asi8))),
     fails(ValueError, "epoch seconds: pass date_unit='s'")),
    ("Parquet epoch index with date_unit='s'",
     lambda p: MarketData.from_parquet(_parquet(p, yf_download()["Close"].set_axis(
         DATES.as_unit("s").asi8)), date_unit="s"),
     ok(["AAPL", "MSFT"], (6, 2), 100.0, 205.0, "2020-01-02", "2020-01-09", None)),
    ("Parquet, long with a date column, columns= passed through",
     lambda p: MarketData.from_parquet(_parquet(p, yf_download(adjusted=False).stack(
         level=1).reset_index()), columns=["Date", "Ticker", "Close"]),
     ok(["AAPL", "MSFT"], (6, 2), 100.0, 205.0, "2020-01-02", "2020-01-09", "Close")),
    ("Parquet of a yfinance MultiIndex frame",
     lambda p: MarketData.from_parquet(_parquet(p, yf_download(adjusted=False))),
     ok(["AAPL", "MSFT"], (6, 2), 90.0, 184.5, "2020-01-02", "2020-01-09", "Adj Close")),
    ("Parquet without any dates",
     lambda p: MarketData.from_parquet(_parquet(p, yf_download()["Close"].reset_index(drop=True))),
     fails(ValueError, "found no dates")),
    ("a CSV passed to from_parquet",
     lambda p: MarketData.from_parquet(write(p, "AAPL.csv", YAHOO_CSV)),
     fails(ValueError, "read_parquet failed")),
    ("an Excel file as data",
     lambda p: as_market_data(write(p, "prices.xlsx", "PK")),
     fails(ValueError, "pd.read_excel")),
]


def _saved(tmp_path, frame, name="prices.csv"):
    frame.to_csv(tmp_path / name)
    return tmp_path / name


def _parquet(tmp_path, frame, name="prices.parquet"):
    frame.to_parquet(tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("build, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_real_world_input(build, expected, tmp_path):
    if isinstance(expected, tuple):
        error, phrase = expected
        with pytest.raises(error, match=re.escape(phrase)):
            build(tmp_path)
        return
    data = build(tmp_path)
    assert data.symbols == expected["symbols"]
    assert data.close.shape == expected["shape"]
    assert data.close.dtype == np.float64 and data.close.flags.c_contiguous
    assert data.close[data.first_valid[0], 0] == pytest.approx(expected["first"])
    assert data.close[-1, -1] == pytest.approx(expected["last"])
    assert data.index[0] == expected["first_date"]
    assert data.index[-1] == expected["last_date"]
    assert data.price_column == expected["price_column"]
    assert (expected["price_column"] or "prices as given") in repr(data)


def test_adjusted_close_adjusts_open_high_low_but_not_volume():
    data = MarketData.from_pandas(bars(adjusted=False))
    raw = bars(adjusted=False)
    np.testing.assert_allclose(data.high[:, 0], raw["High"] * 0.9)
    np.testing.assert_allclose(data.volume[:, 0], raw["Volume"])
    assert (data.high >= data.close).all() and (data.low <= data.close).all()


# ------------------------------------------------------------ start / end values
TZ = pd.date_range("2020-01-01 16:00", periods=40, freq="B", tz="America/New_York")
NAIVE = pd.bdate_range("2020-01-01", periods=40)
WINDOW_CASES = [
    ("ISO strings", NAIVE, "2020-01-06", "2020-01-10", ("2020-01-06", "2020-01-10")),
    ("slashes year first", NAIVE, "2020/01/06", "2020/01/10", ("2020-01-06", "2020-01-10")),
    ("day month name year", NAIVE, "6 Jan 2020", "10 Jan 2020", ("2020-01-06", "2020-01-10")),
    ("datetime.date", NAIVE, dt.date(2020, 1, 6), dt.date(2020, 1, 10),
     ("2020-01-06", "2020-01-10")),
    ("numpy datetime64 days", NAIVE, np.datetime64("2020-01-06"), np.datetime64("2020-01-10"),
     ("2020-01-06", "2020-01-10")),
    ("pandas Timestamp", NAIVE, pd.Timestamp("2020-01-06"), pd.Timestamp("2020-01-10"),
     ("2020-01-06", "2020-01-10")),
    ("month string covers the month", NAIVE, "2020-01", "2020-01",
     ("2020-01-01", "2020-01-31")),
    ("day-first string with day > 12", NAIVE, "13/01/2020", "17/01/2020",
     ("2020-01-13", "2020-01-17")),
    ("naive strings, tz-aware index", TZ, "2020-01-06", "2020-01-10",
     ("2020-01-06", "2020-01-10")),
    ("naive dates and Timestamps, tz-aware index", TZ, dt.date(2020, 1, 6),
     pd.Timestamp("2020-01-10 23:00"), ("2020-01-06", "2020-01-10")),
    ("aware Timestamps in another zone", TZ, pd.Timestamp("2020-01-06 12:00", tz="UTC"),
     pd.Timestamp("2020-01-11 00:00", tz="Europe/Berlin"), ("2020-01-06", "2020-01-10")),
    ("aware Timestamp, naive index", NAIVE, pd.Timestamp("2020-01-06", tz="UTC"), None,
     (ValueError, "timezone-aware")),
    ("ambiguous day/month string", NAIVE, "02/01/2020", None,
     (ValueError, "write it as 'YYYY-MM-DD'")),
    ("not a date", NAIVE, "someday", None, (ValueError, "is not a date")),
    ("a number", NAIVE, 20200106, None, (TypeError, "is a number")),
    ("NaT", NAIVE, pd.NaT, None, (ValueError, "is not a date")),
]


@pytest.mark.parametrize("index, start, end, expected", [c[1:] for c in WINDOW_CASES],
                         ids=[c[0] for c in WINDOW_CASES])
def test_window_bounds(index, start, end, expected):
    data = MarketData(np.linspace(10, 20, len(index)), index, ("A",))
    if isinstance(expected[0], type):
        with pytest.raises(expected[0], match=re.escape(expected[1])):
            data.window(start, end)
        return
    first, last = data.window(start, end)
    assert (f"{data.index[first]:%Y-%m-%d}", f"{data.index[last]:%Y-%m-%d}") == expected
