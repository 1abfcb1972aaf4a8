"""Run settings: cost ceiling, periods_per_year inferred from the bar spacing (or an
explicit value checked against it), and misspelt keywords named with a suggestion."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from btcore import MarketData, backtest, run_sweep
from btcore.settings import (check_arguments, check_settings, infer_periods_per_year,
                             resolve_periods_per_year)
from conftest import small_grid

GRID = small_grid(1)
DATA = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-12-31", seed=3)


def intraday(bars_per_day, days, start="2020-01-06 09:30", freq="1h", weekdays=True):
    """``bars_per_day`` bars from 09:30 on each of ``days`` days (business days or all)."""
    dates = (pd.bdate_range if weekdays else pd.date_range)(start[:10], periods=days)
    offsets = pd.to_timedelta(freq) * np.arange(bars_per_day)
    return pd.DatetimeIndex([d + pd.Timedelta(start[11:] + ":00") + o
                             for d in dates for o in offsets])


# ------------------------------------------------------------------ costs
@pytest.mark.parametrize("cost_bps", [10_000.01, 20_000, 1e6])
def test_costs_above_100_percent_per_trade_are_refused(cost_bps, no_kernel_runs):
    with pytest.raises(ValueError, match=r"more than 10,000 bps \(100 % of the traded value"):
        run_sweep(GRID, data=DATA, cost_bps=cost_bps, progress=False)


def test_costs_up_to_100_percent_are_accepted():
    assert check_settings(1e6, 10_000, 252) == (1e6, 10_000.0, 252.0)
    assert check_settings(1e6, 0, 252)[1] == 0.0


@pytest.mark.parametrize("value, error, message", [
    (True, TypeError, "cost_bps must be a number, got bool"),
    (np.timedelta64(5, "D"), TypeError, "cost_bps must be a number, got timedelta64"),
    ("5", TypeError, "cost_bps must be a number, got str"),
    (-0.5, ValueError, "cost_bps must be >= 0"),
    (math.inf, ValueError, "cost_bps must be finite"),
])
def test_bad_cost_values(value, error, message):
    with pytest.raises(error, match=message):
        check_settings(1e6, value, 252)


# --------------------------------------------------- periods_per_year inferred
@pytest.mark.parametrize("index, expected, phrase", [
    (pd.bdate_range("2020-01-01", periods=300), 252, "daily (weekdays only)"),
    (pd.date_range("2020-01-01", periods=300, freq="D"), 365, "daily (7 days a week)"),
    (pd.bdate_range("2020-01-01", periods=300, tz="America/New_York"), 252, "daily"),
    (pd.date_range("2018-01-05", periods=150, freq="W-FRI"), 52, "weekly"),
    (pd.date_range("2010-01-31", periods=120, freq="ME"), 12, "monthly"),
    (pd.date_range("2010-01-29", periods=120, freq="BME"), 12, "monthly"),
    (pd.date_range("2000-03-31", periods=60, freq="QE"), 4, "quarterly"),
    (pd.date_range("1990-12-31", periods=30, freq="YE"), 1, "yearly"),
    (intraday(7, 60), 7 * 252, "7 bars a day, weekdays only"),  # US equities, hourly
    (intraday(390, 5, freq="1min"), 390 * 252, "median spacing 1 min, 390 bars a day"),
    (pd.date_range("2021-01-01", periods=24 * 90, freq="h"), 24 * 365, "24 bars a day, 7 days"),
    (pd.date_range("2021-01-01", periods=24 * 90, freq="h", tz="UTC"), 24 * 365, "intraday"),
    (pd.date_range("2020-01-01", periods=100, freq="14D"), 365.25 / 14, "14 days apart"),
], ids=["business days", "calendar days", "tz-aware business days", "weekly", "month end",
        "business month end", "quarterly", "yearly", "hourly equities", "minute bars",
        "hourly crypto", "hourly crypto UTC", "fortnightly"])
def test_inferred_periods_per_year(index, expected, phrase):
    periods, spacing = infer_periods_per_year(index)
    assert periods == pytest.approx(expected)
    assert phrase in spacing


def test_daily_data_with_holidays_and_gaps_stays_252(sample):
    assert infer_periods_per_year(sample.index)[0] == 252  # the bundled S&P 500 sample
    holes = pd.bdate_range("2020-01-01", periods=400).delete(np.arange(0, 400, 9))
    assert infer_periods_per_year(holes)[0] == 252


def test_none_is_inferred_and_an_explicit_value_wins():
    hourly = intraday(7, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_periods_per_year(None, hourly) == 1764
        assert check_settings(1e6, 5.0, None, hourly) == (1e6, 5.0, 1764.0)
        assert resolve_periods_per_year(1000, hourly) == 1000  # within 2x: no warning
        assert resolve_periods_per_year(365, pd.bdate_range("2020", periods=60)) == 365


@pytest.mark.parametrize("value, index, phrases", [
    (252, intraday(7, 60), ["periods_per_year=252", "intraday", "periods_per_year=1764"]),
    (252, pd.date_range("2018-01-05", periods=150, freq="W-FRI"),
     ["periods_per_year=252", "weekly", "periods_per_year=52"]),
    (12, pd.bdate_range("2020-01-01", periods=300),
     ["periods_per_year=12", "daily (weekdays only)", "periods_per_year=252"]),
], ids=["252 on hourly bars", "252 on weekly bars", "12 on daily bars"])
def test_an_inconsistent_explicit_value_is_warned_about(value, index, phrases):
    with pytest.warns(UserWarning) as caught:
        assert resolve_periods_per_year(value, index) == value
    message = str(caught[0].message)
    for phrase in phrases:
        assert phrase in message
    assert "periods_per_year=None" in message  # the way out


def test_none_without_an_index_is_refused():
    with pytest.raises(TypeError, match="periods_per_year must be a number, got NoneType"):
        check_settings(1e6, 5.0, None)
    with pytest.raises(ValueError, match="fewer than 2 bars"):
        infer_periods_per_year(pd.DatetimeIndex(["2020-01-01"]))
    with pytest.raises(ValueError, match="periods_per_year must be > 0"):
        check_settings(1e6, 5.0, -1, pd.bdate_range("2020", periods=10))


def hourly_data():
    index = intraday(7, 120)
    close = 100 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.003, len(index))))
    return MarketData(close, index, ("HOURLY",))


def test_sweep_and_backtest_infer_hourly_annualisation():
    data = hourly_data()
    inferred = run_sweep(GRID, data=data, progress=False)
    explicit = run_sweep(GRID, data=data, periods_per_year=1764, progress=False)
    assert inferred.settings["periods_per_year"] == 1764
    pd.testing.assert_frame_equal(inferred.table, explicit.table)
    row = inferred.table.iloc[0]
    assert backtest(row, data=data).metrics["sharpe_ratio"] == row["sharpe_ratio"]
    assert inferred.backtest(0).metrics["sharpe_ratio"] == row["sharpe_ratio"]


def test_sweep_warns_about_252_on_hourly_bars():
    with pytest.warns(UserWarning, match=r"periods_per_year=252, but the bars are intraday"):
        run_sweep(GRID, data=hourly_data(), periods_per_year=252, progress=False)


def test_daily_data_keeps_252_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_sweep(GRID, data=DATA, progress=False).settings["periods_per_year"] == 252


# ------------------------------------------------------ misspelt keywords
@pytest.mark.parametrize("kwargs, message", [
    (dict(exector="ray"), "unknown argument 'exector'; did you mean 'executor'?"),
    (dict(cost_bsp=5), "unknown argument 'cost_bsp'; did you mean 'cost_bps'?"),
    (dict(periods_per_yr=12), "unknown argument 'periods_per_yr'; did you mean "
                              "'periods_per_year'?"),
    (dict(batchsize=10), "unknown argument 'batchsize'; did you mean 'batch_size'?"),
    (dict(allow_shorts=False), "unknown argument 'allow_shorts'; did you mean 'allow_short'?"),
    (dict(reenter_after_stops=True), "did you mean 'reenter_after_stop'?"),
    (dict(qwertyuiop=1), "unknown argument 'qwertyuiop'; it is neither an argument of "
                         "run_sweep() nor an option of strategy 'mean_reversion'"),
], ids=["executor", "cost_bps", "periods_per_year", "batch_size", "option", "option 2",
        "nothing close"])
def test_misspelt_keyword_names_the_closest(kwargs, message, no_kernel_runs):
    with pytest.raises(TypeError) as caught:
        run_sweep(GRID, data=DATA, progress=False, **kwargs)
    assert str(caught.value).startswith(message) or message in str(caught.value)
    assert "valid options: allow_short, reenter_after_stop" in str(caught.value)


def test_valid_options_pass_and_the_check_reads_the_function_signature():
    check_arguments({"allow_short": False}, "mean_reversion", run_sweep)  # no error
    check_arguments({}, "no such strategy", run_sweep)  # nothing to check: no lookup

    def other(grid, *, speed=1, **options):
        pass
    with pytest.raises(TypeError, match=r"unknown argument 'sped'; did you mean 'speed'\? It "
                                        r"is neither an argument of other\(\)"):
        check_arguments({"sped": 2}, "mean_reversion", other)


@pytest.mark.parametrize("function, first", [
    ("backtest", {"lookback_period": 20}), ("walk_forward", GRID),
    ("monte_carlo", {"lookback_period": 20})])
def test_every_workflow_names_a_misspelt_keyword(function, first, no_kernel_runs):
    import btcore
    with pytest.raises(TypeError, match=rf"unknown argument 'alow_short'; did you mean "
                                        rf"'allow_short'\? It is neither an argument of "
                                        rf"{function}\(\)"):
        getattr(btcore, function)(first, data=DATA, alow_short=False)


# ------------------------------------------- bars counted per calendar year
def fx_hours(years=3, start="2019-01-06 22:00"):
    """EURUSD-like hourly bars: Sunday 22:00 to Friday 21:00 UTC, every week."""
    hours = pd.date_range(start, periods=int(years * 365.25 * 24), freq="h", tz="UTC")
    week_hour = hours.day_of_week * 24 + hours.hour  # Monday 0:00 = 0
    open_ = (week_hour < 4 * 24 + 22) | (week_hour >= 6 * 24 + 22)  # closed Fri 22 - Sun 22
    return hours[open_]


def counted(index):
    seconds = (index[-1] - index[0]).total_seconds()
    return round((len(index) - 1) / (seconds / 86_400) * 365.25)


@pytest.mark.parametrize("index, near", [
    (fx_hours(), 120 * 365.25 / 7),  # 120 bars a week, not 24 x 252 = 6,048
    (pd.date_range("2020-01-01", periods=24 * 800, freq="h"), 24 * 365.25),  # 24/7
    (pd.date_range("2019-01-01", periods=1000, freq="D"), 365),  # daily crypto
    (intraday(7, 600), 7 * 365.25 * 5 / 7),  # hourly equities, no holidays in this index
], ids=["fx hourly", "hourly crypto", "daily crypto", "hourly equities over 2 years"])
def test_a_year_or_more_of_intraday_or_weekend_bars_is_counted(index, near):
    periods, spacing = infer_periods_per_year(index)
    assert periods == counted(index)
    assert periods == pytest.approx(near, rel=0.01)
    assert "bars a calendar year" in spacing


def test_fx_hourly_is_not_24_times_252_and_business_days_stay_252():
    periods, _ = infer_periods_per_year(fx_hours())
    assert abs(periods - 6048) > 150
    assert infer_periods_per_year(pd.bdate_range("2000-01-01", periods=3000))[0] == 252


def test_the_periods_per_year_used_is_in_stats_and_settings():
    index = fx_hours(years=1.2)
    close = 1.1 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 5e-4, len(index))))
    data = MarketData(close, index, ("EURUSD",))
    result = run_sweep(GRID, data=data, initial_capital=1e3, progress=False)
    assert result.stats["periods_per_year"] == result.settings["periods_per_year"] == \
        counted(index)
    assert result.stats["periods_per_year_basis"].startswith("inferred: intraday")
    explicit = run_sweep(GRID, data=data, initial_capital=1e3, periods_per_year=6000,
                         progress=False)
    assert explicit.stats["periods_per_year"] == 6000
    assert explicit.stats["periods_per_year_basis"] == "given"
