"""Executor fixtures: one Ray instance and one Dask cluster per test session.

Loaded by ``tests/conftest.py`` (``pytest_plugins = ["executor_fixtures"]``).
Executors passed to ``run_sweep`` as instances are not closed by it, so every
test reuses these; the session closes them at the end.
"""
import pytest

#: every built-in executor, cheapest first
EXECUTOR_NAMES = ("serial", "threads", "joblib", "ray", "dask")
CLUSTER_NAMES = ("ray", "dask")


@pytest.fixture(scope="session")
def ray_executor():
    """A local Ray instance with 2 CPUs and a small object store."""
    pytest.importorskip("ray")
    from btcore.executors.ray_executor import RayExecutor
    with RayExecutor(num_cpus=2, object_store_memory=200_000_000) as executor:
        yield executor


@pytest.fixture(scope="session")
def dask_executor():
    """A LocalCluster of 2 worker processes x 1 thread."""
    pytest.importorskip("distributed")
    from btcore.executors.dask_executor import DaskExecutor
    with DaskExecutor(n_workers=2) as executor:
        yield executor


@pytest.fixture(scope="session")
def joblib_executor():
    from btcore.executors.joblib_executor import JoblibExecutor
    with JoblibExecutor(n_jobs=2) as executor:
        yield executor


@pytest.fixture(scope="session")
def all_executors(request):
    """name -> ready executor, for tests that compare every executor in one go."""
    return {name: _make(request, name) for name in EXECUTOR_NAMES}


def executor_params(names=EXECUTOR_NAMES):
    """``names`` as parameters: Ray and Dask marked ``cluster``, joblib (a process
    pool) ``slow``; tests conftest.py cannot see fixtures requested at run time."""
    marks = {"ray": pytest.mark.cluster, "dask": pytest.mark.cluster, "joblib": pytest.mark.slow}
    return [pytest.param(name, marks=marks[name]) if name in marks else name for name in names]


@pytest.fixture(params=executor_params())
def executor(request):
    """Each built-in executor in turn, started and ready (the process ones are slow)."""
    return _make(request, request.param)


def _make(request, name):
    if name in ("joblib", "ray", "dask"):
        return request.getfixturevalue(f"{name}_executor")
    import btcore.executors as executors
    return executors.get_executor(name)[0]
