"""Shared test setup: Numba cache location, hypothesis profiles, small data."""
import os
import pathlib

# before numba is imported anywhere (workers started by tests inherit it)
os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parent.parent / ".numba_cache"))
# btcore refuses kernel and cache directories that group or others may write: the
# test cache is private even in a tree checked out under umask 002
if os.environ["NUMBA_CACHE_DIR"] == str(pathlib.Path(__file__).resolve().parent.parent /
                                        ".numba_cache"):
    os.makedirs(os.environ["NUMBA_CACHE_DIR"], mode=0o700, exist_ok=True)
    for _private in [os.environ["NUMBA_CACHE_DIR"],
                     *pathlib.Path(os.environ["NUMBA_CACHE_DIR"]).glob("btcore_kernels*")]:
        os.chmod(_private, 0o700)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "dev", max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "ci", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("stress", max_examples=1500, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

pytest_plugins = ["executor_fixtures"]  # session-scoped Ray and Dask clusters

#: fixtures that start a pool or a cluster of worker processes (tests/executor_fixtures.py)
POOL_FIXTURES = frozenset({"ray_executor", "dask_executor", "joblib_executor", "all_executors"})


def pytest_collection_modifyitems(config, items):
    """``slow`` (deselected by the inner loop, ``pytest -m "not slow"``) for every test
    that needs a pool or cluster fixture, or is marked ``cluster`` or ``fault``.
    Tests that start fresh interpreters or pools of their own are marked in place."""
    for item in items:
        if (POOL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
                or item.get_closest_marker("cluster") or item.get_closest_marker("fault")):
            item.add_marker(pytest.mark.slow)

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}


@pytest.fixture(scope="session")
def sample():
    from btcore.datasets import sp500_sample
    return sp500_sample()


@pytest.fixture(scope="session")
def small_data():
    """3 synthetic assets, ~2 years of business days."""
    from btcore import MarketData
    return MarketData.synthetic(n_assets=3, start="2020-01-01", end="2021-12-31", seed=7)


@pytest.fixture
def no_kernel_runs(monkeypatch):
    """Fail the test if a kernel or executor starts: errors must come first."""
    import btcore.engine.plan
    import btcore.workflows.base

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before input validation")

    # every workflow runs through workflows.base.execute -> run_job; the engine
    # measures or compiles the kernel first
    monkeypatch.setattr(btcore.engine.plan, "calibrate", forbidden)
    monkeypatch.setattr(btcore.engine.plan, "compile_kernel", forbidden)
    monkeypatch.setattr(btcore.workflows.base, "run_job", forbidden)
    return forbidden


@pytest.fixture
def seed_grid():
    return dict(SEED_GRID)


def small_grid(n_lookbacks=3):
    return {"lookback_period": [5, 10, 20][:n_lookbacks], "entry_threshold": [1.0, 2.0],
            "exit_threshold": [0.0, 0.5], "stop_loss_z": [2.5, 4.0]}


@pytest.fixture
def grid():
    return small_grid()


def assert_tables_identical(left, right):
    """Same rows, same order, same float bits."""
    import pandas as pd
    pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True),
                                  check_exact=True)
    for column in left.columns:
        if left[column].dtype.kind == "f":
            np.testing.assert_array_equal(left[column].to_numpy().view(np.int64),
                                          right[column].to_numpy().view(np.int64))
