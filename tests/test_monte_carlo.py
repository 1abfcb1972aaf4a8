"""btcore.workflows.monte_carlo: paths made in the task from the seed, identical everywhere."""
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

from btcore import MarketData, monte_carlo, run_sweep
from btcore.metrics import METRIC_NAMES
from btcore.workflows.monte_carlo import percentile_of
from btcore.workflows.paths import METHODS, PathGenerator
from btcore.benchmark import BENCHMARK_COLUMNS
from conftest import assert_tables_identical

ONE_SET = {"lookback_period": 10, "entry_threshold": 1.0, "exit_threshold": 0.25,
           "stop_loss_z": 3.0}
GRID = {"lookback_period": [5, 10], "entry_threshold": [1.0, 2.0], "exit_threshold": [0.25],
        "stop_loss_z": [2.5, 4.0]}


@pytest.fixture(scope="module")
def data():
    """One asset, ~300 business days, listed 15 bars after the data starts."""
    base = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2021-02-28", seed=11)
    close = np.array(base.close[:, 0])
    close[:15] = np.nan
    return MarketData(close, base.index, ("LATE",))


MASK = 2 ** 64 - 1


def mix(z):
    """SplitMix64's finaliser (plain Python integers modulo 2**64)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class ReferenceStream:
    """Path k's draws, written from btcore.workflows.path_draws' docstring."""

    def __init__(self, seed, k, swap=False):
        key0, key1 = (int(w) for w in np.random.SeedSequence(seed).generate_state(2, np.uint64))
        if swap:  # the second stream (GBM candle shapes)
            key0, key1 = key1, key0
        x = key0 ^ mix((key1 + k) & MASK)
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK
            self.s.append(mix(x))

    def next(self):
        s = self.s
        rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & MASK  # noqa: E731
        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53

    def integer(self, m):
        bits = (m - 1).bit_length()
        while bits:
            v = self.next() >> (64 - bits)
            if v < m:
                return v
        return 0

    def normals(self, n):
        out = []
        while len(out) < n:
            while True:
                u1, u2 = 2.0 * self.uniform() - 1.0, 2.0 * self.uniform() - 1.0
                s = u1 * u1 + u2 * u2
                if 0.0 < s < 1.0:
                    break
            f = math.sqrt(-2.0 * math.log(s) / s)
            out += [u1 * f, u2 * f]
        return np.array(out[:n])


def reference_indices(m, method, seed, k, block_size=20.0):
    stream = ReferenceStream(seed, k)
    index = []
    for i in range(m):
        if method == "bootstrap" or i == 0 or stream.uniform() < 1.0 / block_size:
            index.append(stream.integer(m))
        else:
            index.append((index[-1] + 1) % m)
    return np.array(index, dtype=np.int64)


def reference_returns(data, method, seed, k, block_size=20.0):
    """Path k's log returns written straight from the documented semantics, from
    its own stream alone (no other path drawn)."""
    close = data.close[:, 0]
    first = int(np.argmax(~np.isnan(close)))
    r = np.diff(np.log(close[first:]))
    if method == "gbm":
        return np.mean(r) + np.std(r, ddof=1) * ReferenceStream(seed, k).normals(r.size)
    return r[reference_indices(r.size, method, seed, k, block_size)]


def reference_path(data, method, seed, k, block_size=20.0):
    close = data.close[:, 0]
    first = int(np.argmax(~np.isnan(close)))
    path = np.full(close.size, np.nan)
    path[first] = close[first]
    path[first + 1:] = close[first] * np.exp(
        np.cumsum(reference_returns(data, method, seed, k, block_size)))
    return path


# ------------------------------------------------------------- determinism
def test_identical_across_executors_and_batch_sizes(all_executors, data):
    def run(executor, batch_size):
        return monte_carlo(GRID, data=data, n_paths=6, method="block", block_size=5, seed=3,
                           executor=executor, batch_size=batch_size, progress=False).table
    reference = run("serial", 8)
    assert len(reference) == 6 * 8
    assert reference["path"].tolist() == np.repeat(np.arange(6), 8).tolist()
    for batch_size in (1, 3, "auto"):
        assert_tables_identical(run("serial", batch_size), reference)
    for position, (name, executor) in enumerate(all_executors.items()):
        assert_tables_identical(run(executor, (1, 3)[position % 2]), reference)
    for method in ("bootstrap", "gbm"):  # many paths on concurrent threads: every method
        serial = monte_carlo(ONE_SET, data=data, n_paths=300, method=method,
                             executor="serial", progress=False).table
        threads = monte_carlo(ONE_SET, data=data, n_paths=300, method=method,
                              executor=all_executors["threads"], progress=False).table
        assert_tables_identical(threads, serial)


def test_first_paths_of_a_longer_run_are_a_shorter_run(data):
    long = monte_carlo(GRID, data=data, n_paths=1000, method="bootstrap", seed=5,
                       progress=False).table
    short = monte_carlo(GRID, data=data, n_paths=16, method="bootstrap", seed=5,
                        progress=False).table
    assert_tables_identical(short, long.iloc[:16 * 8])
    one = monte_carlo(ONE_SET, data=data, n_paths=16, method="gbm", seed=5,
                      progress=False).table
    more = monte_carlo(ONE_SET, data=data, n_paths=40, method="gbm", seed=5,
                       progress=False).table
    assert_tables_identical(one, more.iloc[:16])
    other_seed = monte_carlo(ONE_SET, data=data, n_paths=16, method="gbm", seed=6,
                             progress=False).table
    assert not np.array_equal(one["final_value"], other_seed["final_value"])


@pytest.mark.parametrize("method", METHODS)
def test_path_alone_equals_the_runs_path_and_its_row_equals_run_sweep(data, method):
    window = {"start": "2020-03-01", "end": "2021-01-31", "cost_bps": 7.0,
              "initial_capital": 50_000.0}
    mc = monte_carlo(GRID, data=data, n_paths=7, method=method, block_size=4, seed=9,
                     progress=False, **window)
    for k in (0, 6):
        path = mc.path(k)
        expected = reference_path(data, method, 9, k, block_size=4)
        np.testing.assert_array_equal(path.to_numpy(), expected)
        assert path.index.equals(data.index)
        # the path made alone in this process is the one the run's task made: its rows
        # are run_sweep's on a MarketData holding that path, bit for bit
        sweep = run_sweep(GRID, data=MarketData(path.to_numpy(), data.index, ("LATE",)),
                          progress=False, **window).table.drop(columns=list(BENCHMARK_COLUMNS))
        names = list(GRID)
        sweep = sweep.sort_values(names, kind="stable").reset_index(drop=True)
        rows = mc.table[mc.table["path"] == k].drop(columns=["path", "set"])
        rows = rows.sort_values(names, kind="stable").reset_index(drop=True)
        assert_tables_identical(rows, sweep)


def test_one_set_row_equals_run_sweep_on_the_path(data):
    mc = monte_carlo(ONE_SET, data=data, n_paths=4, seed=1, progress=False)
    assert list(mc.table.columns) == ["path", *ONE_SET, *METRIC_NAMES, "ruined"]
    path = mc.path(2).to_numpy()
    sweep = run_sweep({k: [v] for k, v in ONE_SET.items()},
                      data=MarketData(path, data.index, ("LATE",)), progress=False).table
    sweep = sweep.drop(columns=list(BENCHMARK_COLUMNS))  # paths carry no benchmark
    assert_tables_identical(mc.table.iloc[[2]].drop(columns="path"), sweep)


# ----------------------------------------------------------------- the paths
def test_paths_start_at_the_first_close_and_span_the_data(data):
    for method in METHODS:
        generator = PathGenerator.fit(data.close[:, 0], method, seed=0, block_size=3)
        for k in range(5):
            path = generator.path(data.close[:, 0], k)
            assert path.shape == (data.n_bars,)
            assert np.isnan(path[:15]).all()
            assert path[15] == data.close[15, 0]
            assert np.isfinite(path[15:]).all() and (path[15:] > 0).all()


def test_bootstrap_paths_use_only_returns_present_in_the_data(data):
    generator = PathGenerator.fit(data.close[:, 0], "bootstrap", seed=2)
    observed = np.sort(generator.log_returns)
    drawn = []
    for k in range(30):
        index = generator.indices(k)
        assert index.min() >= 0 and index.max() < observed.size
        returns = generator.returns(k)
        np.testing.assert_array_equal(returns, generator.log_returns[index])
        drawn.append(returns)
        # the path's own log returns are data returns up to rounding of exp/log
        path_returns = np.diff(np.log(generator.path(None, k)[15:]))
        nearest = observed[np.clip(np.searchsorted(observed, path_returns), 0,
                                   observed.size - 1)]
        below = observed[np.clip(np.searchsorted(observed, path_returns) - 1, 0,
                                 observed.size - 1)]
        error = np.minimum(abs(nearest - path_returns), abs(below - path_returns))
        assert error.max() < 1e-12
    drawn = np.concatenate(drawn)
    assert np.isin(drawn, observed).all()
    # iid: every data return is about equally likely (30 paths x ~290 draws each)
    counts = np.bincount(np.concatenate([generator.indices(k) for k in range(30)]),
                         minlength=observed.size)
    assert counts.mean() == pytest.approx(30.0) and (counts > 0).mean() > 0.99


@pytest.mark.parametrize("block_size", [1.0, 5.0, 20.0])
def test_block_bootstrap_has_the_mean_block_length(block_size):
    data = MarketData.synthetic(n_assets=1, start="2010-01-01", end="2017-12-31", seed=4)
    generator = PathGenerator.fit(data.close[:, 0], "block", seed=0, block_size=block_size)
    m = generator.log_returns.size
    lengths = []
    for k in range(20):
        index = generator.indices(k)
        np.testing.assert_array_equal(generator.returns(k), generator.log_returns[index])
        # a block continues at the next index (circularly); anything else starts a block
        breaks = np.flatnonzero(index[1:] != (index[:-1] + 1) % m) + 1
        edges = np.concatenate(([0], breaks, [m]))
        lengths.append(np.diff(edges)[:-1])  # the last block is cut by the path's end
    lengths = np.concatenate(lengths)
    # geometric lengths: mean b, sd sqrt(b(b-1)); a new block that happens to start at
    # the next index (chance 1/m) is invisible and joins its neighbour: + ~b^2/m
    tolerance = 4.5 * np.sqrt(block_size * (block_size - 1) / lengths.size)
    assert abs(lengths.mean() - block_size) <= tolerance + 5 * block_size ** 2 / m
    wrapped = any(((generator.indices(k)[:-1] == m - 1) & (generator.indices(k)[1:] == 0)).any()
                  for k in range(20))
    assert wrapped or block_size == 1.0


def test_gbm_paths_have_the_fitted_drift_and_volatility(data):
    close = data.close[15:, 0]
    observed = np.diff(np.log(close))
    generator = PathGenerator.fit(data.close[:, 0], "gbm", seed=8)
    assert generator.mean == np.mean(observed)
    assert generator.std == np.std(observed, ddof=1)
    mc = monte_carlo(ONE_SET, data=data, n_paths=60, method="gbm", seed=8, progress=False)
    assert mc.settings["log_return_mean"] == generator.mean
    assert mc.settings["log_return_std"] == generator.std
    returns = np.stack([np.diff(np.log(mc.path(k).to_numpy()[15:])) for k in range(60)])
    n = returns.size
    mu, sigma = generator.mean, generator.std
    assert abs(returns.mean() - mu) < 4.5 * sigma / np.sqrt(n)
    assert abs(returns.std(ddof=1) - sigma) < 4.5 * sigma / np.sqrt(2 * n)
    # each path's own mean is a draw around mu: their spread is sigma / sqrt(m)
    m = returns.shape[1]
    assert returns.mean(axis=1).std(ddof=1) == pytest.approx(sigma / np.sqrt(m), rel=0.3)


def test_a_path_that_overflows_is_refused():
    index = pd.bdate_range("2020-01-01", periods=300)
    close = np.where(np.arange(300) % 2 == 0, 1e-150, 1e150)  # log returns of +-690
    data = MarketData(close, index, ("WILD",))
    with pytest.raises(ValueError, match="left the float64 range"):
        monte_carlo(ONE_SET, data=data, n_paths=3, seed=0, progress=False)


def test_indices_and_returns_are_the_reference_draws(data):
    for method in ("bootstrap", "block"):
        generator = PathGenerator.fit(data.close[:, 0], method, seed=4, block_size=3)
        for k in (0, 1, 250):
            np.testing.assert_array_equal(
                generator.indices(k),
                reference_indices(generator.log_returns.size, method, 4, k, 3.0))
    generator = PathGenerator.fit(data.close[:, 0], "gbm", seed=4)
    np.testing.assert_array_equal(generator.returns(3),
                                  reference_returns(data, "gbm", 4, 3))


def test_the_draws_release_the_gil():
    from btcore.workflows import path_draws
    for fn in (path_draws.draw_path, path_draws.shape_indices):
        assert fn.targetoptions["nogil"]


# ----------------------------------------------------------------- candles
def candles_of(data):
    """Open/high/low around the data's closes: every bar a valid candle with its
    own shape (open moves from the previous close; high/low beyond both)."""
    close = data.close[:, 0]
    rng = np.random.default_rng(0)
    previous = np.concatenate(([np.nan], close[:-1]))
    open_ = np.where(np.isnan(previous), close, previous) * np.exp(
        rng.normal(0, 0.002, close.size))
    high = np.maximum(open_, close) * np.exp(rng.uniform(0, 0.01, close.size))
    low = np.minimum(open_, close) * np.exp(-rng.uniform(0, 0.01, close.size))
    return open_, high, low


@pytest.mark.parametrize("method", METHODS)
def test_candles_travel_with_their_returns(data, method):
    close = data.close[:, 0]
    open_, high, low = candles_of(data)
    generator = PathGenerator.fit(close, method, seed=3, block_size=4, open=open_,
                                  high=high, low=low)
    plain = PathGenerator.fit(close, method, seed=3, block_size=4)
    for k in (0, 5):
        o, h, lo, c = generator.generate_candles(k)
        np.testing.assert_array_equal(c, plain.path(None, k))  # the close path, same bits
        assert np.isnan(o[:15]).all() and np.isnan(h[:15]).all() and np.isnan(lo[:15]).all()
        tail = slice(15, None)
        assert (lo[tail] > 0).all() and (h[tail] < np.inf).all()
        assert (lo[tail] <= np.minimum(o[tail], c[tail])).all()
        assert (h[tail] >= np.maximum(o[tail], c[tail])).all()
        # bar 15 keeps its own shape; step i (bar 16 + i) takes the shape of the data
        # bar after the return it drew
        if method == "gbm":
            stream = ReferenceStream(3, k, swap=True)
            bars = np.array([stream.integer(c.size - 16) for _ in range(c.size - 16)]) + 16
        else:
            bars = reference_indices(c.size - 16, method, 3, k, 4.0) + 16
        bars = np.concatenate(([15], bars))
        for side, data_side in ((o, open_), (h, high), (lo, low)):
            np.testing.assert_array_equal(
                side[tail], c[tail] * np.exp(np.log(data_side[bars] / close[bars])))
        # the relative shapes are the data's, up to rounding
        np.testing.assert_allclose(o[tail] / c[tail], open_[bars] / close[bars], rtol=1e-12)


def test_candles_need_candles(data):
    close = data.close[:, 0]
    open_, high, low = candles_of(data)
    with pytest.raises(ValueError, match="fitted on closes only"):
        PathGenerator.fit(close, "bootstrap", seed=0).candles(0)
    with pytest.raises(ValueError, match="all of open=, high= and low="):
        PathGenerator.fit(close, "bootstrap", seed=0, open=open_, high=high)
    with pytest.raises(ValueError, match="shape"):
        PathGenerator.fit(close, "bootstrap", seed=0, open=open_[1:], high=high, low=low)
    bad_high = high.copy()
    bad_high[40] = min(open_[40], close[40]) * 0.99
    with pytest.raises(ValueError, match="bar 40 is not a candle"):
        PathGenerator.fit(close, "bootstrap", seed=0, open=open_, high=bad_high, low=low)
    bad_open = open_.copy()
    bad_open[20] = np.nan
    with pytest.raises(ValueError, match="bar 20 is not a candle"):
        PathGenerator.fit(close, "block", seed=0, open=bad_open, high=high, low=low)
    # bars before the first valid close are not read
    early = open_.copy()
    early[:15] = np.nan
    PathGenerator.fit(close, "gbm", seed=0, open=early, high=high, low=low).candles(0)
    with pytest.raises(TypeError, match="a path is an int"):
        PathGenerator.fit(close, "gbm", seed=0).path(None, 1.5)


# --------------------------------------------------------------- summaries
def test_summary_prob_loss_and_equity_quantiles(data):
    mc = monte_carlo(ONE_SET, data=data, n_paths=50, method="block", block_size=5, seed=2,
                     start="2020-03-02", progress=False)
    summary = mc.summary
    assert list(summary.index) == ["mean", "std", "5%", "25%", "50%", "75%", "95%",
                                   "observed", "percentile_of_observed"]
    assert list(summary.columns) == list(METRIC_NAMES)
    sharpe = mc.table["sharpe_ratio"].to_numpy()
    assert summary.loc["mean", "sharpe_ratio"] == pytest.approx(sharpe.mean())
    assert summary.loc["std", "sharpe_ratio"] == pytest.approx(sharpe.std(ddof=1))
    assert summary.loc["95%", "sharpe_ratio"] == pytest.approx(np.quantile(sharpe, 0.95))
    assert mc.prob_loss == (mc.table["total_return"] < 0).mean()
    fan = mc.equity_quantiles(max_paths=20)
    assert fan.attrs["paths"] == 20
    assert list(fan.columns) == [0.05, 0.25, 0.5, 0.75, 0.95]
    assert fan.index[0] == pd.Timestamp("2020-03-02") and fan.index[-1] == data.index[-1]
    assert (np.diff(fan.to_numpy(), axis=1) >= 0).all()
    equity = mc.equity_paths(max_paths=20)
    assert equity.shape == (20, len(fan))
    # each replay is the run's own path and kernel: it ends at the table's final value
    np.testing.assert_array_equal(equity.to_numpy()[:, -1], mc.table["final_value"][:20])
    np.testing.assert_array_equal(fan.to_numpy(),
                                  np.quantile(equity.to_numpy(), fan.columns, axis=0).T)
    assert mc.equity_paths(max_paths=500).shape[0] == 50  # at most n_paths
    with pytest.raises(ValueError, match="quantiles"):
        mc.equity_quantiles(q=[0.5, 1.5])
    with pytest.raises(ValueError, match="max_paths"):
        mc.equity_quantiles(max_paths=0)


def test_grid_summary_by_set(data):
    mc = monte_carlo(GRID, data=data, n_paths=10, seed=0, progress=False)
    assert mc.is_grid and len(mc.table) == 80
    assert list(mc.table.columns[:2]) == ["path", "set"]
    assert mc.summary.index.names == ["set", "statistic"]
    assert list(mc.prob_loss.index) == list(range(8))
    group = mc.table[mc.table["set"] == 3]
    assert mc.summary.loc[(3, "50%"), "cagr"] == pytest.approx(group["cagr"].median())
    assert (mc.table.loc[mc.table["set"] == 3, list(GRID)].to_numpy()
            == mc.sets.loc[3, list(GRID)].to_numpy()).all()
    with pytest.raises(ValueError, match="set="):
        mc.equity_quantiles()
    assert mc.equity_quantiles(set=3, max_paths=4).shape[1] == 5


@pytest.mark.parametrize("simulated, observed, expected", [
    ([1.0, 2.0, 3.0, 4.0], 2.5, 50.0),     # 2 of 4 below
    ([1.0, 2.0, 3.0, 4.0], 2.0, 37.5),     # 1 below + half of 1 equal, of 4
    ([1.0, 2.0, 3.0, 4.0], 0.0, 0.0),
    ([1.0, 2.0, 3.0, 4.0], 9.0, 100.0),
    ([1.0, np.nan, 3.0, np.inf], 2.0, 100 / 3),  # NaN skipped, inf is above
    ([2.0, 2.0, 2.0], 2.0, 50.0),
    ([1.0, 2.0], np.nan, np.nan),
    ([np.nan, np.nan], 1.0, np.nan),
])
def test_percentile_of_observed_by_hand(simulated, observed, expected):
    value = percentile_of(np.array(simulated), observed)
    if np.isnan(expected):
        assert np.isnan(value)
    else:
        assert value == pytest.approx(expected, rel=1e-15)


@given(st.lists(st.floats(-5, 5) | st.sampled_from([0.0, 1.0]), min_size=1, max_size=40),
       st.floats(-6, 6) | st.sampled_from([0.0, 1.0]))
def test_percentile_of_equals_scipy_mean_kind(simulated, observed):
    from scipy.stats import percentileofscore
    expected = percentileofscore(simulated, observed, kind="mean")
    assert percentile_of(np.array(simulated), observed) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("params", [ONE_SET, GRID])
def test_observed_is_the_set_on_the_real_data(data, params):
    mc = monte_carlo(params, data=data, n_paths=30, method="block", block_size=5, seed=4,
                     start="2020-03-02", progress=False)
    grid = params if params is GRID else {k: [v] for k, v in params.items()}
    direct = run_sweep(grid, data=data, start="2020-03-02", progress=False).table
    names = list(grid)
    observed = mc.observed
    merged = mc.sets.reset_index().merge(direct, on=names, validate="one_to_one")
    assert len(merged) == len(observed)
    for name in (*METRIC_NAMES, "ruined"):
        np.testing.assert_array_equal(observed[name].to_numpy(), merged[name].to_numpy(),
                                      err_msg=name)
    summary = mc.summary
    for row in observed.index:
        own = summary.loc[row] if mc.is_grid else summary
        paths = mc.table if not mc.is_grid else mc.table[mc.table["set"] == row]
        for name in METRIC_NAMES:
            real = float(observed.loc[row, name])
            assert _same(own.loc["observed", name], real), name
            assert _same(own.loc["percentile_of_observed", name],
                         percentile_of(paths[name].to_numpy(dtype=float), real)), name
    sharpe = mc.table["sharpe_ratio"].to_numpy() if not mc.is_grid else None
    if sharpe is not None:  # by hand: share of paths below the real Sharpe (no ties)
        real = observed.loc[0, "sharpe_ratio"]
        assert summary.loc["percentile_of_observed", "sharpe_ratio"] == pytest.approx(
            100 * np.mean(sharpe[~np.isnan(sharpe)] < real))


def _same(left, right):
    return left == right or (np.isnan(left) and np.isnan(right))


def test_one_set_from_a_result_row_takes_its_asset(small_data):
    row = run_sweep({k: [v] for k, v in ONE_SET.items()}, data=small_data,
                    assets=["SYN001"], progress=False).table.iloc[0]
    mc = monte_carlo(row, data=small_data, n_paths=3, progress=False)
    assert mc.settings["assets"] == ["SYN001"]
    assert mc.table["lookback_period"].dtype == np.int64
    with pytest.raises(ValueError, match="asset="):
        monte_carlo(ONE_SET, data=small_data, n_paths=3, progress=False)


# ------------------------------------------------------------------ input
@pytest.fixture
def no_mc_runs(no_kernel_runs):
    """Monte Carlo runs through the same template: no_kernel_runs covers it."""
    return no_kernel_runs


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_paths": 0}, ValueError, "n_paths"),
    ({"n_paths": 2.0}, TypeError, "n_paths"),
    ({"n_paths": True}, TypeError, "n_paths"),
    ({"method": "jackknife"}, ValueError, "unknown method"),
    ({"method": None}, TypeError, "method"),
    ({"block_size": 0.5}, ValueError, "block_size"),
    ({"block_size": float("inf")}, ValueError, "block_size"),
    ({"block_size": "20"}, TypeError, "block_size"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": None}, TypeError, "seed"),
    ({"asset": "NOPE"}, ValueError, "unknown assets"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"cost_bps": -1}, ValueError, "cost_bps"),
    ({"executor": "nope"}, ValueError, "nope"),
])
def test_bad_input_is_refused_before_any_work(no_mc_runs, data, kwargs, error, match):
    with pytest.raises(error, match=match):
        monte_carlo(ONE_SET, data=data, **kwargs)


def test_bad_parameters_are_refused(no_mc_runs, data):
    with pytest.raises(ValueError, match="window parameter of 1000 bars"):
        monte_carlo({**ONE_SET, "lookback_period": 1000}, data=data)
    with pytest.raises(ValueError, match="unknown parameter"):
        monte_carlo({"lookback_period": [5], "bogus": [1]}, data=data)
