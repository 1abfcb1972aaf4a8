"""Bad input raises a clear ValueError/TypeError before any work starts."""
import numpy as np
import pandas as pd
import pytest

from btcore import MarketData, backtest, run_sweep
from conftest import small_grid

GRID = small_grid()
INDEX = pd.bdate_range("2020-01-01", periods=50)


def prices(n=50, assets=1):
    rng = np.random.default_rng(0)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, assets)), axis=0))


def with_value(row, value):
    close = prices()
    close[row, 0] = value
    return close


DATA_CASES = [
    ("NaN inside the series", lambda: MarketData(with_value(20, np.nan), INDEX, ("A",)),
     ValueError, r"asset 'A' is nan at row 20"),
    ("negative price", lambda: MarketData(with_value(5, -1.0), INDEX, ("A",)),
     ValueError, r"-1.0 at row 5"),
    ("zero price", lambda: MarketData(with_value(7, 0.0), INDEX, ("A",)),
     ValueError, r"0.0 at row 7"),
    ("infinite price", lambda: MarketData(with_value(9, np.inf), INDEX, ("A",)),
     ValueError, r"inf at row 9"),
    ("all NaN", lambda: MarketData(np.full(50, np.nan), INDEX, ("A",)),
     ValueError, r"no valid price"),
    ("unsorted dates", lambda: MarketData(prices(), INDEX[::-1], ("A",)),
     ValueError, r"not sorted: row 1"),
    ("duplicate dates", lambda: MarketData(prices(), INDEX[:1].append(INDEX[:49]), ("A",)),
     ValueError, r"duplicate timestamp .* at row 1"),
    ("index length", lambda: MarketData(prices(), INDEX[:40], ("A",)),
     ValueError, r"40 timestamps but close has 50 rows"),
    ("symbol count", lambda: MarketData(prices(assets=2), INDEX, ("A",)),
     ValueError, r"1 symbols for 2 asset columns"),
    ("duplicate symbols", lambda: MarketData(prices(assets=2), INDEX, ("A", "A")),
     ValueError, r"duplicate asset symbols"),
    ("one bar", lambda: MarketData(np.array([1.0]), INDEX[:1], ("A",)),
     ValueError, r"at least 2 bars"),
    ("wrong data type", lambda: run_sweep(GRID, data=[1, 2, 3]),
     TypeError, r"data must be None, MarketData"),
    ("missing file", lambda: run_sweep(GRID, data="/nonexistent/prices.csv"),
     ValueError, r"does not exist"),
    ("non-numeric wide column", lambda: MarketData.from_pandas(
        pd.DataFrame({"A": ["x"] * 50}, index=INDEX)), ValueError, r"not numeric"),
]


@pytest.mark.parametrize("case, build, error, message", DATA_CASES,
                         ids=[c[0] for c in DATA_CASES])
def test_bad_data(case, build, error, message):
    with pytest.raises(error, match=message):
        build()


DATA = MarketData(prices(assets=2), INDEX, ("A", "B"))
SWEEP_CASES = [
    ("empty grid dict", dict(grid={}), ValueError, r"no parameters"),
    ("parameter without values", dict(grid={**GRID, "entry_threshold": []}), ValueError,
     r"'entry_threshold' has no values"),
    ("empty list of sets", dict(grid=[]), ValueError, r"empty"),
    ("unknown parameter", dict(grid={**GRID, "lookback": [5]}), ValueError,
     r"(?s)unknown parameter\(s\) \['lookback'\].*lookback_period: int in \[2, inf\)"),
    ("lookback < 2", dict(grid={**GRID, "lookback_period": [1, 5]}), ValueError,
     r"lookback_period must be int in \[2, inf\), got 1"),
    ("fractional lookback", dict(grid={**GRID, "lookback_period": [5.5]}), ValueError,
     r"lookback_period must be int .* got 5.5"),
    ("lookback longer than data", dict(grid={**GRID, "lookback_period": [500]}), ValueError,
     r"500 bars is at least the 50 bars"),
    ("negative entry", dict(grid={**GRID, "entry_threshold": [-1.0]}), ValueError,
     r"entry_threshold must be float in \(0, inf\), got -1.0"),
    ("zero entry", dict(grid={**GRID, "entry_threshold": [0.0]}), ValueError,
     r"entry_threshold must be float in \(0"),
    ("negative exit", dict(grid={**GRID, "exit_threshold": [-0.1]}), ValueError,
     r"exit_threshold must be float in \[0, inf\), got -0.1"),
    ("NaN parameter", dict(grid={**GRID, "stop_loss_z": [np.nan]}), ValueError, r"NaN"),
    ("string parameter", dict(grid={**GRID, "stop_loss_z": ["3"]}), TypeError,
     r"'stop_loss_z' must hold real numbers"),
    ("start after end", dict(start="2020-03-01", end="2020-02-01"), ValueError,
     r"start \(2020-03-01\) is after end \(2020-02-01\)"),
    ("window with no bars", dict(start="2030-01-01"), ValueError,
     r"holds 0 bar\(s\).*widen start/end"),
    ("bad date", dict(start="not a date"), ValueError, r"start='not a date' is not a date"),
    ("unknown strategy", dict(strategy="momentum_magic"), ValueError,
     r"unknown strategy 'momentum_magic'; valid strategies are \[.*'mean_reversion'"),
    ("unknown executor", dict(executor="spark"), ValueError,
     r"unknown executor 'spark'; valid executors are"),
    ("executor of wrong type", dict(executor=42), TypeError, r"executor must be a name"),
    ("unknown option", dict(allow_shorts=False), TypeError,
     r"unknown option\(s\) \['allow_shorts'\].*allow_short, reenter_after_stop"),
    ("non-bool option", dict(allow_short="no"), TypeError, r"allow_short must be True or False"),
    ("negative capital", dict(initial_capital=-5.0), ValueError, r"initial_capital must be > 0"),
    ("negative costs", dict(cost_bps=-1.0), ValueError, r"cost_bps must be >= 0"),
    ("NaN costs", dict(cost_bps=float("nan")), ValueError, r"cost_bps must be finite"),
    ("zero periods per year", dict(periods_per_year=0), ValueError,
     r"periods_per_year must be > 0"),
    ("string capital", dict(initial_capital="1e6"), TypeError,
     r"initial_capital must be a number"),
    ("batch size zero", dict(batch_size=0), ValueError, r"batch_size must be >= 1"),
    ("batch size float", dict(batch_size=2.5), TypeError, r"batch_size must be a positive int"),
    ("progress not bool", dict(progress="yes"), TypeError, r"progress must be True, False"),
    ("unknown asset", dict(assets=["C"]), ValueError,
     r"unknown assets \['C'\]; available: \['A', 'B'\]"),
    ("debug on another executor", dict(debug=True, executor="threads"), ValueError,
     r"debug=True .* executor='serial'"),
]


@pytest.mark.parametrize("case, kwargs, error, message", SWEEP_CASES,
                         ids=[c[0] for c in SWEEP_CASES])
def test_bad_sweep_input(case, kwargs, error, message, no_kernel_runs):
    kwargs = {"grid": GRID, "data": DATA, "progress": False, **kwargs}
    grid = kwargs.pop("grid")
    with pytest.raises(error, match=message):
        run_sweep(grid, **kwargs)


def test_backtest_needs_asset_for_universe():
    params = {k: v[0] for k, v in GRID.items()}
    with pytest.raises(ValueError, match=r"2 assets; pick one with asset=, one of \['A', 'B'\]"):
        backtest(params, data=DATA)
    with pytest.raises(TypeError, match="params must be a dict"):
        backtest([5, 1.0, 0.5, 3.0], data=DATA, asset="A")
    with pytest.raises(ValueError, match="unknown assets"):
        backtest(params, data=DATA, asset="Z")


def test_asset_listed_after_window_is_named():
    close = prices(assets=2)
    close[:45, 1] = np.nan  # B lists late
    data = MarketData(close, INDEX, ("A", "B"))
    with pytest.raises(ValueError, match=r"asset 'B' has 0 bar\(s\) in the window"):
        run_sweep(GRID, data=data, end=INDEX[30], progress=False)


# ------------------------------------------------- cases found in code review
def test_list_value_in_backtest_params_is_refused():
    params = {"lookback_period": [20, 40], "entry_threshold": 2.0, "exit_threshold": 0.5,
              "stop_loss_z": 3.0}
    with pytest.raises(TypeError, match=r"params\['lookback_period'\] must be one number"):
        backtest(params, data=DATA, asset="A")


@pytest.mark.parametrize("grid, error, message", [
    ({**GRID, "lookback_period": [[20, 30]]}, ValueError, r"one value per parameter set"),
    ({**GRID, "entry_threshold": [2 + 5j]}, TypeError, r"must hold real numbers"),
    ({**GRID, "lookback_period": np.array([20], dtype="timedelta64[ms]")}, TypeError,
     r"must hold real numbers"),
    (pd.concat([pd.DataFrame({"lookback_period": [5]}),
                pd.DataFrame({"lookback_period": [6], "entry_threshold": [1.0],
                              "exit_threshold": [0.5], "stop_loss_z": [3.0]})], axis=1),
     ValueError, r"duplicate columns \['lookback_period'\]"),
], ids=["nested list", "complex", "timedelta", "duplicate frame columns"])
def test_malformed_grids_fail_before_work(grid, error, message, no_kernel_runs):
    with pytest.raises(error, match=message):
        run_sweep(grid, data=DATA, progress=False)


def test_lookback_checked_against_each_assets_history(no_kernel_runs):
    close = prices(n=600, assets=2)
    close[:560, 1] = np.nan  # B lists 40 bars before the end
    data = MarketData(close, pd.bdate_range("2010-01-01", periods=600), ("A", "B"))
    grid = {**GRID, "lookback_period": [60]}
    with pytest.raises(ValueError, match=r"60 bars is at least the 40 bars of data of asset 'B'"):
        run_sweep(grid, data=data, progress=False)


@pytest.mark.parametrize("start", [2015, 2015.0, True])
def test_numeric_start_is_refused(start):
    with pytest.raises(TypeError, match=r"is a number; give a date"):
        run_sweep(GRID, data=DATA, start=start, progress=False)


def test_numeric_index_is_refused():
    with pytest.raises(ValueError, match=r"not dates; set a date index"):
        MarketData.from_pandas(pd.DataFrame({"A": prices()[:, 0]}))
    with pytest.raises(ValueError, match=r"not dates"):
        MarketData(prices(), np.arange(50), ("A",))


def test_capital_below_one_share_is_warned_about_naming_the_asset(small_data, grid):
    from btcore import run_sweep
    cheapest = float(np.nanmin(small_data.close[:, 0]))
    with pytest.warns(UserWarning, match=f"asset {small_data.symbols[0]!r}: initial_capital"):
        result = run_sweep(grid, data=small_data, assets=[small_data.symbols[0]],
                           initial_capital=cheapest * 0.5, progress=False)
    assert (result.table["num_trades"] == 0).all()
