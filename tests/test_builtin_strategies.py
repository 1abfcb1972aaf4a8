"""The four built-in single-asset strategies on the plug-in API
(docs/builtin_strategies.md): indicators and every sweep row against the
pure-Python references of tests/builtin_references.py, debug == compiled and
threads / joblib == serial bit for bit, and the registry lists them."""
import math

import numpy as np
import pytest
from hypothesis import assume, event, given, settings, strategies as st

import btcore.strategies as strategies
from btcore import MarketData, run_sweep
from btcore.indicators import rolling_zscore_nb
from btcore.indicators_extra import (moving_average_nb, prior_high_nb, prior_low_nb,
                                     trailing_ema_nb, trailing_sma_nb, wilder_rsi_nb)
from builtin_references import (bollinger_reference, bollinger_rule, donchian_rule,
                                has_band, ma_crossover_rule, moving_average_reference,
                                prior_high_reference, prior_low_reference, rsi_reference,
                                rsi_rule)
from conftest import assert_tables_identical
from properties.generators import market, price_paths
from reference import METRIC_KEYS, simulate_reference

NAMES = ("ma_crossover", "donchian_breakout", "rsi_reversion", "bollinger_reversion")
AVERAGES = ("sma", "ema")
#: a sweep example costs ~10x an indicator one: 3/4 of the profile's examples
#: (30 under the default "dev" profile, 225 under "ci")
SWEEP_EXAMPLES = settings(max_examples=max(10, settings.default.max_examples * 3 // 4))


def compiled(fn, close, *arguments):
    out = np.full(close.shape[0], np.nan)
    fn(close, *arguments, out)
    return out


def first_listed(close):
    return int(np.argmax(~np.isnan(close)))


def assert_metric_close(name, got, want):
    if name == "num_trades":
        assert got == want, (name, got, want)
    elif math.isnan(want) or math.isinf(want):
        assert got == want or (math.isnan(got) and math.isnan(want)), (name, got, want)
    else:
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (name, got, want)


def assert_close_series(got, want, rtol, what):
    """Same definedness (NaN) everywhere; values equal to ``rtol`` relative."""
    want = np.asarray(want, dtype=float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=what)
    defined = ~np.isnan(want)
    scale = np.maximum(np.abs(want[defined]), 1e-300)
    error = np.abs(got[defined] - want[defined]) / scale
    assert error.max(initial=0.0) <= rtol, (what, error.max(initial=0.0))


# ------------------------------------------------------------------ registry
def test_available_lists_the_builtins():
    names = strategies.available()
    for name in NAMES:
        assert name in names
        spec = strategies.get(name)
        assert spec.name == name
        assert strategies.get(f"btcore.strategies.{name}:SPEC") is spec
        assert strategies.registry()[name] is spec or \
            strategies.registry()[name] == f"btcore.strategies.{name}:SPEC"


def test_specs_describe_their_parameters_and_options():
    ma = strategies.get("ma_crossover")
    assert ma.param_names == ("fast_window", "slow_window")
    assert ma.option_values({"average": "ema"}).tolist() == [1.0, 1.0]
    assert ma.option_values({"allow_short": False}).tolist() == [0.0, 0.0]
    assert "option average='sma' (one of 'sma', 'ema')" in ma.describe()
    rsi = strategies.get("rsi_reversion")
    with pytest.raises(ValueError, match="lower must be"):
        rsi.param("lower").check(np.array([55.0]))
    with pytest.raises(ValueError, match="upper must be"):
        rsi.param("upper").check(np.array([45.0]))
    with pytest.raises(ValueError, match="width must be"):
        strategies.get("bollinger_reversion").param("width").check(np.array([0.0]))


# ---------------------------------------------------------- hand-checked values
def test_indicator_definitions_by_hand():
    nan = np.nan
    close = np.array([nan, 1.0, 2.0, 3.0, 4.0, 2.0])
    np.testing.assert_array_equal(compiled(trailing_sma_nb, close, 3),
                                  [nan, nan, nan, 2.0, 3.0, 3.0])
    # seed = SMA of the first 3 closes at their 3rd; then ema += 0.5 * (close - ema)
    np.testing.assert_array_equal(compiled(trailing_ema_nb, close, 3),
                                  [nan, nan, nan, 2.0, 3.0, 2.5])
    np.testing.assert_array_equal(compiled(moving_average_nb, close, 1, 1), close)
    np.testing.assert_array_equal(compiled(prior_high_nb, close, 2),
                                  [nan, nan, nan, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(compiled(prior_low_nb, close, 2),
                                  [nan, nan, nan, 1.0, 2.0, 3.0])
    # changes +1, +1, +1, -2: seed (period 2) G = 1, L = 0 -> 100; then
    # G = (1 + 1) / 2 = 1, L = 0 -> 100; G = 0.5, L = 1 -> 100 * 0.5 / 1.5
    rsi = compiled(wilder_rsi_nb, close, 2)
    np.testing.assert_array_equal(rsi[:5], [nan, nan, nan, 100.0, 100.0])
    assert rsi[5] == 100.0 * 0.5 / 1.5
    flat = np.full(6, 7.25)
    np.testing.assert_array_equal(compiled(wilder_rsi_nb, flat, 3), [nan] * 3 + [50.0] * 3)
    np.testing.assert_array_equal(compiled(wilder_rsi_nb, -np.arange(6.0) + 9, 2),
                                  [nan, nan, 0.0, 0.0, 0.0, 0.0])
    # a window of identical closes averages to exactly that close (no 1-ulp noise)
    ticks = np.array([100.03, 100.03, 100.03, 100.03, 100.01])
    assert compiled(trailing_sma_nb, ticks, 3)[2:4].tolist() == [100.03, 100.03]
    assert compiled(trailing_ema_nb, ticks, 3)[2:4].tolist() == [100.03, 100.03]
    # short history: never defined
    assert np.isnan(compiled(trailing_sma_nb, close, 6)).all()
    assert np.isnan(compiled(prior_high_nb, close, 5)).all()
    assert np.isnan(compiled(wilder_rsi_nb, close, 5)).all()


def rule_of(name):
    spec = strategies.get(name)
    options = spec.option_values({})

    def target(values, price, params, position, **options_given):
        opts = spec.option_values(options_given) if options_given else options
        result, state = spec.signal_nb.py_func(np.array(values, dtype=float), float(price),
                                               np.array(params, dtype=float), opts,
                                               position, 0)
        assert state == 0
        return result
    return target


def test_rule_tables_by_hand():
    nan = np.nan
    ma = rule_of("ma_crossover")
    assert [ma([2.0, 1.0], 1, [2, 5], p) for p in (-1, 0, 1)] == [1, 1, 1]
    assert [ma([1.0, 2.0], 1, [2, 5], p) for p in (-1, 0, 1)] == [-1, -1, -1]
    assert ma([1.0, 2.0], 1, [2, 5], 1, allow_short=False) == 0
    assert [ma([1.5, 1.5], 1, [2, 5], p) for p in (-1, 0, 1)] == [-1, 0, 1]  # tie: keep
    assert [ma([nan, 1.5], 1, [2, 5], p) for p in (-1, 0, 1)] == [0, 0, 0]

    don = rule_of("donchian_breakout")  # values: entry high, entry low, exit low, exit high
    channels = [110.0, 90.0, 95.0, 105.0]
    assert don(channels, 111, [20, 10], 0) == 1
    assert don(channels, 110, [20, 10], 0) == 0  # equal to the high: no breakout
    assert don(channels, 89, [20, 10], 0) == -1
    assert don(channels, 89, [20, 10], 0, allow_short=False) == 0
    assert don(channels, 96, [20, 10], 1) == 1  # above the exit low: hold
    assert don(channels, 94, [20, 10], 1) == 0  # below the exit low: exit
    assert don(channels, 89, [20, 10], 1) == -1  # exit and entry-low break: reverse
    assert don(channels, 89, [20, 10], 1, allow_short=False) == 0
    assert don(channels, 104, [20, 10], -1) == -1
    assert don(channels, 106, [20, 10], -1) == 0
    assert don(channels, 111, [20, 10], -1) == 1  # reverse to long
    assert don([110.0, 90.0, nan, nan], 50, [20, 30], 1) == 1  # exit channel undefined: hold
    assert don([nan, nan, nan, nan], 500, [20, 30], 0) == 0

    rsi = rule_of("rsi_reversion")
    params = [14, 30.0, 70.0]
    assert [rsi([v], 1, params, 0) for v in (29.9, 30.0, 50.0, 70.0, 70.1)] == [1, 0, 0, 0, -1]
    assert rsi([70.1], 1, params, 0, allow_short=False) == 0
    assert [rsi([v], 1, params, 1) for v in (10.0, 50.0, 50.1, 70.1)] == [1, 1, 0, -1]
    assert [rsi([v], 1, params, -1) for v in (90.0, 50.0, 49.9, 29.9)] == [-1, -1, 0, 1]
    assert rsi([nan], 1, params, 0) == 0

    bol = rule_of("bollinger_reversion")
    params = [20, 2.0]
    assert [bol([z], 1, params, 0) for z in (-2.1, -2.0, 0.0, 2.0, 2.1)] == [1, 0, 0, 0, -1]
    assert [bol([z], 1, params, 1) for z in (-3.0, -1e-9, 0.0, 1.0, 2.5)] == [1, 1, 0, 0, -1]
    assert [bol([z], 1, params, -1) for z in (3.0, 1e-9, 0.0, -2.5)] == [-1, -1, 0, 1]
    assert bol([2.5], 1, params, 1, allow_short=False) == 0


# ------------------------------------------------------ indicators vs references
@given(close=price_paths(), window=st.integers(1, 40), average=st.sampled_from(AVERAGES))
def test_moving_averages_match_reference(close, window, average):
    got = compiled(moving_average_nb, close, window, AVERAGES.index(average))
    assert_close_series(got, moving_average_reference(close, window, average), 1e-12,
                        average)


@given(close=price_paths(), window=st.integers(1, 40))
def test_channels_match_reference_exactly(close, window):
    np.testing.assert_array_equal(compiled(prior_high_nb, close, window),
                                  prior_high_reference(close, window))
    np.testing.assert_array_equal(compiled(prior_low_nb, close, window),
                                  prior_low_reference(close, window))


@given(close=price_paths(), period=st.integers(1, 40))
def test_rsi_matches_reference(close, period):
    got = compiled(wilder_rsi_nb, close, period)
    want = np.array(rsi_reference(close, period))
    # RSI is in [0, 100]: compare on that scale (an RSI near 0 is 100 * G / (G + L)
    # with G tiny, relative error there is meaningless)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.nanmax(np.abs(got - want), initial=0.0) <= 1e-12 * 100


@given(close=price_paths(), window=st.integers(2, 40))
def test_bollinger_zscore_matches_reference(close, window):
    """The rule's z-score vs (close - mean) / std from explicit two-pass windows."""
    got = compiled(rolling_zscore_nb, close, window)
    mean, std, want = (np.array(v) for v in bollinger_reference(close, window))
    band = np.array([has_band(m, s) for m, s in zip(mean, std)], dtype=bool)
    np.testing.assert_array_equal(got[~band], 0.0)  # warm-up and flat windows: no band
    conditioning = mean[band] / std[band]
    rtol = np.maximum(2e-12, 1e-14 * conditioning)
    assert (np.abs(got[band] - want[band]) <= rtol * np.abs(want[band]) + 1e-11).all()


# ---------------------------------------------------- sweeps vs the reference
def near_tie_or_fail(margins_ref, margins_got, first_bar, last_bar):
    """Each margin is (lhs - rhs) of one comparison in the rule, with the
    reference's tolerance. Where reference and compiled values fall on
    different sides of a threshold, the reference must be within tolerance of
    it (else the kernel is wrong): then the case is skipped, as both are right."""
    near = False
    for (ref, tolerance), got in zip(margins_ref, margins_got):
        ref = np.asarray(ref, dtype=float)[first_bar:last_bar + 1]
        got = np.asarray(got, dtype=float)[first_bar:last_bar + 1]
        np.testing.assert_array_equal(np.isnan(ref), np.isnan(got))
        if np.ndim(tolerance):
            tolerance = np.asarray(tolerance)[first_bar:last_bar + 1]
        tolerance = np.broadcast_to(tolerance, ref.shape)
        differ = np.sign(np.nan_to_num(ref)) != np.sign(np.nan_to_num(got))
        assert (np.abs(ref[differ]) <= tolerance[differ]).all(), \
            (ref[differ], got[differ], tolerance[differ])
        near |= bool(differ.any())
    return near


def test_near_tie_check_fails_a_real_disagreement():
    ref = np.array([np.nan, 1.0, -1e-12, 2.0])
    assert not near_tie_or_fail([(ref, 1e-9)], [ref], 0, 3)
    assert near_tie_or_fail([(ref, 1e-9)], [np.array([np.nan, 1.0, 1e-12, 2.0])], 0, 3)
    assert not near_tie_or_fail([(ref, 1e-9)], [np.array([np.nan, 1.0, 1e-12, 2.0])], 3, 3)
    with pytest.raises(AssertionError):
        near_tie_or_fail([(ref, 1e-9)], [np.array([np.nan, -1.0, 1e-12, 2.0])], 0, 3)
    with pytest.raises(AssertionError):
        near_tie_or_fail([(ref, np.full(4, 1e-9))], [np.array([0.5, 1.0, 1e-12, 2.0])], 0, 3)


def ma_case(close, row, options):
    fast_ref = np.array(moving_average_reference(close, row.fast_window, options["average"]))
    slow_ref = np.array(moving_average_reference(close, row.slow_window, options["average"]))
    choice = AVERAGES.index(options["average"])
    fast = compiled(moving_average_nb, close, row.fast_window, choice)
    slow = compiled(moving_average_nb, close, row.slow_window, choice)
    tolerance = 1e-9 * np.fmax(np.abs(fast_ref), np.abs(slow_ref))
    rule = ma_crossover_rule(fast_ref, slow_ref, allow_short=options["allow_short"])
    return rule, [(fast_ref - slow_ref, tolerance)], [fast - slow]


def donchian_case(close, row, options):
    entry_high = prior_high_reference(close, row.entry_window)
    entry_low = prior_low_reference(close, row.entry_window)
    exit_low = prior_low_reference(close, row.exit_window)
    exit_high = prior_high_reference(close, row.exit_window)
    rule = donchian_rule(close, entry_high, entry_low, exit_low, exit_high,
                         allow_short=options["allow_short"])
    got = [compiled(prior_high_nb, close, row.entry_window),
           compiled(prior_low_nb, close, row.entry_window),
           compiled(prior_low_nb, close, row.exit_window),
           compiled(prior_high_nb, close, row.exit_window)]
    # the channels are exact closes: no tie may differ (tolerance 0)
    refs = [(close - np.array(v), 0.0) for v in (entry_high, entry_low, exit_low, exit_high)]
    return rule, refs, [close - v for v in got]


def rsi_case(close, row, options):
    rsi_ref = np.array(rsi_reference(close, row.rsi_period))
    rsi = compiled(wilder_rsi_nb, close, row.rsi_period)
    rule = rsi_rule(rsi_ref, row.lower, row.upper, allow_short=options["allow_short"])
    levels = (row.lower, row.upper, 50.0)
    return (rule, [(rsi_ref - level, 1e-9 * 100) for level in levels],
            [rsi - level for level in levels])


def bollinger_case(close, row, options):
    mean, std, z_ref = (np.array(v) for v in bollinger_reference(close, row.window))
    z = compiled(rolling_zscore_nb, close, row.window)
    rule = bollinger_rule(close, mean, std, row.width, allow_short=options["allow_short"])
    # z's error grows with mean / std (ill-conditioned windows), and a window
    # near the flat cut-off may be flat for one and not the other
    with np.errstate(divide="ignore", invalid="ignore"):
        conditioning = np.nan_to_num(mean / std, nan=0.0, posinf=np.inf)
        tolerance = np.where(conditioning > 1e10, np.inf, 1e-9 * (1.0 + np.abs(z_ref))
                             + 1e-13 * conditioning * np.abs(z_ref))
    levels = (-row.width, 0.0, row.width)
    return (rule, [(z_ref - level, tolerance) for level in levels],
            [z - level for level in levels])


def window_lists(low, high):
    return st.lists(st.integers(low, high), min_size=1, max_size=2, unique=True)


GRIDS = {
    "ma_crossover": st.fixed_dictionaries({"fast_window": window_lists(1, 12),
                                           "slow_window": window_lists(1, 40)}),
    "donchian_breakout": st.fixed_dictionaries({"entry_window": window_lists(1, 30),
                                                "exit_window": window_lists(1, 30)}),
    "rsi_reversion": st.fixed_dictionaries({
        "rsi_period": window_lists(1, 30),
        "lower": st.lists(st.floats(0.0, 50.0), min_size=1, max_size=2, unique=True),
        "upper": st.lists(st.floats(50.0, 100.0), min_size=1, max_size=2, unique=True)}),
    "bollinger_reversion": st.fixed_dictionaries({
        "window": window_lists(2, 30),
        "width": st.lists(st.floats(0.05, 3.5), min_size=1, max_size=2, unique=True)}),
}
CASES = {"ma_crossover": ma_case, "donchian_breakout": donchian_case,
         "rsi_reversion": rsi_case, "bollinger_reversion": bollinger_case}
WINDOW_PARAMS = {"ma_crossover": ("fast_window", "slow_window"),
                 "donchian_breakout": ("entry_window", "exit_window"),
                 "rsi_reversion": ("rsi_period",), "bollinger_reversion": ("window",)}


def check_sweep_against_reference(name, data, close, grid, options, cost_bps, shares):
    """``shares``: the initial capital in units of the highest close (below 1,
    no position can ever open)."""
    first_valid = first_listed(close)
    capital = float(shares * np.nanmax(close))
    start = data.draw(st.integers(0, len(close) - 2), label="start bar")
    end = data.draw(st.one_of(st.just(len(close) - 1), st.integers(start + 1, len(close) - 1)),
                    label="end bar")  # half the time the last bar: longer windows trade more
    first_bar = max(start, first_valid)
    assume(end - first_bar >= 1)
    longest = max(max(grid[p]) for p in WINDOW_PARAMS[name])
    assume(longest < end + 1 - first_valid)  # else a clear ValueError before work
    prices = market(close)
    result = run_sweep(grid, name, prices, start=prices.index[start], end=prices.index[end],
                       cost_bps=cost_bps, initial_capital=capital, progress=False, **options)
    assert len(result.table) == np.prod([len(v) for v in grid.values()])
    event("a row traded" if (result.table["num_trades"] > 0).any() else "no row traded")
    if result.table["ruined"].any():
        event("a row ran out of money")
    for row in result.table.itertuples(index=False):
        rule, margins_ref, margins_got = CASES[name](close, row, options)
        if near_tie_or_fail(margins_ref, margins_got, first_bar, end):
            event("skipped: a value within tolerance of a threshold flips a decision")
            assume(False)
        expected = simulate_reference(close, first_bar, end, rule, initial_capital=capital,
                                      cost_bps=cost_bps)
        for metric in METRIC_KEYS:
            assert_metric_close(metric, getattr(row, metric), expected[metric])
        assert row.ruined == expected["ruined"]


COSTS = st.sampled_from([0.0, 1.0, 5.0, 25.0])
SHARES = st.sampled_from([0.5, 3.0, 1_000.0, 1e6, 1e9])


@SWEEP_EXAMPLES
@given(data=st.data(), close=price_paths(), grid=GRIDS["ma_crossover"],
       average=st.sampled_from(AVERAGES), allow_short=st.booleans(), cost_bps=COSTS,
       shares=SHARES)
def test_ma_crossover_matches_reference(data, close, grid, average, allow_short, cost_bps,
                                        shares):
    check_sweep_against_reference("ma_crossover", data, close, grid,
                                  {"average": average, "allow_short": allow_short},
                                  cost_bps, shares)


@SWEEP_EXAMPLES
@given(data=st.data(), close=price_paths(), grid=GRIDS["donchian_breakout"],
       allow_short=st.booleans(), cost_bps=COSTS, shares=SHARES)
def test_donchian_breakout_matches_reference(data, close, grid, allow_short, cost_bps,
                                             shares):
    check_sweep_against_reference("donchian_breakout", data, close, grid,
                                  {"allow_short": allow_short}, cost_bps, shares)


@SWEEP_EXAMPLES
@given(data=st.data(), close=price_paths(), grid=GRIDS["rsi_reversion"],
       allow_short=st.booleans(), cost_bps=COSTS, shares=SHARES)
def test_rsi_reversion_matches_reference(data, close, grid, allow_short, cost_bps, shares):
    check_sweep_against_reference("rsi_reversion", data, close, grid,
                                  {"allow_short": allow_short}, cost_bps, shares)


@SWEEP_EXAMPLES
@given(data=st.data(), close=price_paths(), grid=GRIDS["bollinger_reversion"],
       allow_short=st.booleans(), cost_bps=COSTS, shares=SHARES)
def test_bollinger_reversion_matches_reference(data, close, grid, allow_short, cost_bps,
                                               shares):
    check_sweep_against_reference("bollinger_reversion", data, close, grid,
                                  {"allow_short": allow_short}, cost_bps, shares)


def test_reference_agrees_on_real_data(sample):
    """Every strategy, end to end on real prices (many trades), with reference indicators."""
    grids = {"ma_crossover": {"fast_window": [5, 20], "slow_window": [50]},
             "donchian_breakout": {"entry_window": [20, 55], "exit_window": [10]},
             "rsi_reversion": {"rsi_period": [14], "lower": [30.0], "upper": [70.0]},
             "bollinger_reversion": {"window": [20], "width": [1.5, 2.0]}}
    close = sample.close[:, sample.symbols.index("KO")]
    first, last = sample.window("2012-01-01", "2019-12-31")
    for name, grid in grids.items():
        for options in ({"allow_short": True}, {"allow_short": False, "average": "ema"}):
            if name != "ma_crossover":
                options.pop("average", None)
            result = run_sweep(grid, name, sample, assets="KO", start="2012-01-01",
                               end="2019-12-31", progress=False, **options)
            for row in result.table.itertuples(index=False):
                rule, margins_ref, margins_got = CASES[name](
                    close, row, {"average": "sma", **options})
                assert not near_tie_or_fail(margins_ref, margins_got, first, last)
                expected = simulate_reference(close, first, last, rule)
                assert expected["num_trades"] >= 10, (name, row)
                for metric in METRIC_KEYS:
                    assert_metric_close(metric, getattr(row, metric), expected[metric])


# ------------------------------------------------------- bits across executors
EXECUTOR_GRIDS = {
    "ma_crossover": ({"fast_window": [1, 5, 10], "slow_window": [20, 50]}, {"average": "ema"}),
    "donchian_breakout": ({"entry_window": [10, 20, 55], "exit_window": [5, 20]}, {}),
    "rsi_reversion": ({"rsi_period": [5, 14], "lower": [25.0, 30.0], "upper": [70.0]}, {}),
    "bollinger_reversion": ({"window": [10, 20], "width": [1.0, 2.0, 2.5]}, {}),
}


@pytest.fixture(scope="module")
def data():
    return MarketData.synthetic(n_assets=2, start="2019-01-01", end="2020-12-31", seed=11)


@pytest.mark.parametrize("name", NAMES)
def test_debug_threads_and_joblib_equal_serial(name, data, joblib_executor):
    grid, options = EXECUTOR_GRIDS[name]
    serial = run_sweep(grid, name, data, progress=False, **options).table
    assert serial["num_trades"].min() > 0
    debug = run_sweep(grid, name, data, debug=True, progress=False, **options).table
    assert_tables_identical(debug, serial)
    threads = run_sweep(grid, name, data, executor="threads", batch_size=2, progress=False,
                        **options).table
    assert_tables_identical(threads, serial)
    joblib = run_sweep(grid, name, data, executor=joblib_executor, batch_size=2,
                       progress=False, **options).table
    assert_tables_identical(joblib, serial)
