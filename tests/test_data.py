"""MarketData constructors, validation details and the bundled sample."""
import numpy as np
import pandas as pd
import pytest

from btcore import MarketData, run_sweep
from btcore.datasets import sp500_sample

INDEX = pd.bdate_range("2021-01-01", periods=30, name="date")


def frame(assets=("A", "B")):
    rng = np.random.default_rng(1)
    values = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (30, len(assets))), axis=0))
    return pd.DataFrame(values, index=INDEX, columns=list(assets))


def test_sample_is_real_and_read_only():
    data = sp500_sample()
    assert data.close.shape == (8313, 20)
    assert data.symbols[0] == "AAPL" and data.symbols[-1] == "XOM"
    assert data.index[0] == pd.Timestamp("1990-01-02")
    assert not data.close.flags.writeable and data.close.flags.c_contiguous
    assert np.isfinite(data.close).all()
    with pytest.raises(ValueError):
        data.close[0, 0] = 1.0


def test_default_data_is_the_sample():
    grid = {"lookback_period": [20], "entry_threshold": [2.0], "exit_threshold": [0.5],
            "stop_loss_z": [3.0]}
    result = run_sweep(grid, start="2020-01-01", progress=False)
    assert sorted(result.table["asset"]) == sorted(sp500_sample().symbols)


def test_from_series_wide_long_and_ohlcv_agree():
    wide = frame()
    from_wide = MarketData.from_pandas(wide)
    from_series = MarketData.from_pandas(wide["B"])
    long = wide.stack().rename("close").reset_index().rename(columns={"level_1": "symbol"})
    from_long = MarketData.from_pandas(long)
    ohlcv = pd.DataFrame({"Open": wide["A"] * 0.99, "High": wide["A"] * 1.01,
                          "Low": wide["A"] * 0.98, "Close": wide["A"], "Volume": 1e6},
                         index=INDEX)
    from_ohlcv = MarketData.from_pandas(ohlcv)
    assert from_wide.symbols == ("A", "B") and from_long.symbols == ("A", "B")
    np.testing.assert_array_equal(from_wide.close, from_long.close)
    np.testing.assert_array_equal(from_series.close[:, 0], wide["B"].to_numpy())
    assert from_series.symbols == ("B",)
    np.testing.assert_array_equal(from_ohlcv.close[:, 0], wide["A"].to_numpy())
    assert from_ohlcv.high.shape == from_ohlcv.close.shape and from_ohlcv.volume is not None


def test_csv_and_parquet_round_trip(tmp_path):
    wide = frame()
    wide.to_csv(tmp_path / "wide.csv")
    wide.to_parquet(tmp_path / "wide.parquet")
    long = wide.stack().rename("close").reset_index().rename(columns={"level_1": "ticker"})
    long.to_csv(tmp_path / "long.csv", index=False)
    reference = MarketData.from_pandas(wide)
    for path in ("wide.csv", "wide.parquet", "long.csv"):
        loaded = MarketData.from_csv(tmp_path / path) if path.endswith(".csv") else \
            MarketData.from_parquet(tmp_path / path)
        np.testing.assert_allclose(loaded.close, reference.close, rtol=1e-15)
        assert loaded.symbols == ("A", "B")
        assert (loaded.index == reference.index).all()
    grid = {"lookback_period": [5], "entry_threshold": [1.0], "exit_threshold": [0.0],
            "stop_loss_z": [3.0]}
    a = run_sweep(grid, data=str(tmp_path / "wide.parquet"), progress=False).table
    b = run_sweep(grid, data=reference, progress=False).table
    pd.testing.assert_frame_equal(a, b)


def test_leading_nans_mark_listing_date():
    close = frame().to_numpy(copy=True)
    close[:10, 1] = np.nan
    data = MarketData(close, INDEX, ("A", "B"))
    assert list(data.first_valid) == [0, 10]


def test_private_copy_leaves_caller_array_writable():
    close = frame().to_numpy(copy=True)
    data = MarketData(close, INDEX, ("A", "B"))
    assert close.flags.writeable
    close[0, 0] = 999.0
    assert data.close[0, 0] != 999.0


def test_synthetic_is_seeded_and_correlated():
    a = MarketData.synthetic(n_assets=4, start="2015-01-01", end="2019-12-31", seed=3)
    b = MarketData.synthetic(n_assets=4, start="2015-01-01", end="2019-12-31", seed=3)
    c = MarketData.synthetic(n_assets=4, start="2015-01-01", end="2019-12-31", seed=4)
    np.testing.assert_array_equal(a.close, b.close)
    assert not np.array_equal(a.close, c.close)
    assert a.index.equals(pd.bdate_range("2015-01-01", "2019-12-31"))
    returns = np.diff(np.log(a.close), axis=0)
    correlation = np.corrcoef(returns.T)[np.triu_indices(4, 1)]
    assert (correlation > 0.1).all(), "one-factor model correlates the assets"
    with pytest.raises(ValueError, match="n_assets"):
        MarketData.synthetic(n_assets=0)


def test_window_indices():
    data = MarketData.from_pandas(frame())
    assert data.window() == (0, 29)
    assert data.window("2021-01-05", "2021-01-07") == (2, 4)
    with pytest.raises(ValueError, match="after end"):
        data.window("2021-02-01", "2021-01-01")


def test_yfinance_style_multiindex_columns_take_the_close_level():
    wide = frame()
    fields = {"Close": wide, "High": wide * 1.01, "Low": wide * 0.99, "Open": wide,
              "Volume": wide * 0 + 1e6}
    multi = pd.concat(fields, axis=1)  # columns (field, ticker), like yfinance.download
    data = MarketData.from_pandas(multi)
    assert data.symbols == ("A", "B")
    np.testing.assert_array_equal(data.close, wide.to_numpy())
    np.testing.assert_array_equal(data.high, (wide * 1.01).to_numpy())
    swapped = MarketData.from_pandas(multi.swaplevel(axis=1))  # (ticker, field)
    np.testing.assert_array_equal(swapped.close, data.close)
    with pytest.raises(ValueError, match="'Close' field"):
        MarketData.from_pandas(pd.concat({"High": wide}, axis=1))


def test_date_column_becomes_the_index():
    wide = frame()
    flat = wide.reset_index()  # a 'date' column and a RangeIndex
    data = MarketData.from_pandas(flat)
    assert data.index.equals(pd.DatetimeIndex(wide.index))
    one = pd.DataFrame({"Date": wide.index, "Close": wide["A"].to_numpy()})
    assert MarketData.from_pandas(one).close.shape == (30, 1)


def test_end_date_includes_bars_stamped_during_that_day():
    index = pd.date_range("2020-06-01 16:00", periods=30, freq="B", tz="America/New_York")
    data = MarketData(frame().to_numpy(), index, ("A", "B"))
    first, last = data.window("2020-06-03", "2020-06-30")
    assert data.index[first].date().isoformat() == "2020-06-03"
    assert data.index[last].date().isoformat() == "2020-06-30"


def test_long_frame_with_us_style_string_dates():
    wide = frame()
    wide.index = pd.bdate_range("2020-12-15", periods=30)  # spans a year end
    long = wide.stack().rename("close").reset_index()
    long.columns = ["date", "symbol", "close"]
    long["date"] = long["date"].dt.strftime("%m/%d/%Y")
    data = MarketData.from_pandas(long)
    assert data.index.is_monotonic_increasing and data.n_bars == 30
    np.testing.assert_array_equal(data.close, wide.to_numpy())


def test_zscore_of_a_series_shorter_than_the_window_is_all_zero():
    from btcore.indicators import rolling_zscore_nb
    close = np.full(12, np.nan)
    close[8:] = [1.0, 2.0, 3.0, 4.0]
    out = np.full(12, 7.0)
    rolling_zscore_nb.py_func(close, 10, out)  # plain Python: would raise IndexError
    assert (out == 0.0).all()


def test_an_unnamed_series_is_the_closes_of_one_asset():
    """A plain Series of closes (the README's first form) was read as a long frame
    whose 'asset' column held the prices."""
    closes = pd.Series(np.linspace(10.0, 12.0, 30), index=pd.bdate_range("2021-01-04",
                                                                         periods=30))
    data = MarketData.from_pandas(closes)
    assert data.symbols == ("asset",) and data.price_column == "close"
    np.testing.assert_array_equal(data.close[:, 0], closes.to_numpy())
    assert MarketData.from_pandas(closes, symbol="SPY").symbols == ("SPY",)
    assert MarketData.from_pandas(closes.rename("AAPL")).symbols == ("AAPL",)
