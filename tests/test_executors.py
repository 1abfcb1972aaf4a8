"""Executors: every executor gives the serial table bit for bit; sharing, worker
set-up, lifecycle, recycling and bad input. Clusters are session-scoped
(``tests/executor_fixtures.py``); worker deaths are in ``test_executor_faults.py``."""
import os
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import btcore.executors as executors
from btcore import MarketData, run_sweep
from btcore.engine import run_task
from conftest import SEED_GRID, assert_tables_identical
from executor_fixtures import EXECUTOR_NAMES, executor_params
from btcore.executors.base import BrokenExecutorError, ExecutorUnavailableError

PROCESS_EXECUTORS = executor_params(("joblib", "ray", "dask"))  # all three slow


# ------------------------------------------------------------ task functions
# defined inside a function so cloudpickle ships them by value: workers cannot
# import this test module
def _probe_functions():
    def worker_facts(shared, task):
        import numba
        arrays = {k: v.flags.writeable for k, v in shared.items() if isinstance(v, np.ndarray)}
        return {"pid": os.getpid(), "writeable": arrays,
                "numba_threads": numba.get_num_threads()}

    def slow_pid(shared, task):
        time.sleep(shared["sleep"])
        return os.getpid()

    def fails_on_three(shared, task):
        if task == 3:
            raise ValueError("task 3 is bad")
        return task

    return worker_facts, slow_pid, fails_on_three


worker_facts, slow_pid, fails_on_three = _probe_functions()


def run_all(executor, fn, payload, tasks):
    handle = executor.share(payload)
    try:
        return list(executor.map(fn, handle, tasks))
    finally:
        executor.unshare(handle)


# ----------------------------------------------------------- same results
@st.composite
def sweeps(draw):
    """(MarketData, grid, batch_size): short synthetic histories, small grids."""
    end = np.datetime64("2020-01-01") + np.timedelta64(draw(st.integers(180, 720)), "D")
    data = MarketData.synthetic(n_assets=draw(st.integers(1, 3)), start="2020-01-01",
                                end=str(end), seed=draw(st.integers(0, 2**31 - 1)))
    thresholds = st.floats(0.1, 3.5, allow_nan=False, allow_subnormal=False)
    grid = {
        "lookback_period": draw(st.lists(st.integers(2, 60), min_size=1, max_size=4, unique=True)),
        "entry_threshold": draw(st.lists(thresholds, min_size=1, max_size=3, unique=True)),
        "exit_threshold": draw(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=2, unique=True)),
        "stop_loss_z": draw(st.lists(thresholds, min_size=1, max_size=3, unique=True)),
    }
    return data, grid, draw(st.integers(1, 40))


@pytest.mark.cluster
@settings(max_examples=6, deadline=None)
@given(sweep=sweeps())
def test_all_executors_give_the_serial_table(all_executors, sweep):
    data, grid, batch_size = sweep
    expected = run_sweep(grid, data=data, batch_size=batch_size, progress=False).table
    for name, executor in all_executors.items():
        result = run_sweep(grid, data=data, executor=executor, batch_size=batch_size,
                           progress=False)
        assert result.stats["executor"] == name
        assert_tables_identical(result.table, expected)


@pytest.fixture(scope="module")
def serial_seed_table(sample):
    result = run_sweep(SEED_GRID, data=sample, start="2010-01-01", progress=False)
    assert result.stats["executor"] == "serial"
    return result.table


#: every executor but the reference one (serial against itself proves nothing)
NON_SERIAL = executor_params([name for name in EXECUTOR_NAMES if name != "serial"])


@pytest.mark.parametrize("executor", NON_SERIAL, indirect=True)
def test_seed_sweep_matches_serial(executor, sample, serial_seed_table):
    result = run_sweep(SEED_GRID, data=sample, start="2010-01-01", executor=executor,
                       progress=False)
    assert result.stats["executor"] == executor.name != "serial"
    assert_tables_identical(result.table, serial_seed_table)
    assert len(result.table) == 2700
    assert result.stats["workers"] == executor.n_workers >= 1


def test_instances_stay_open_for_the_next_sweep(executor, small_data, grid):
    first = run_sweep(grid, data=small_data, executor=executor, batch_size=3, progress=False)
    second = run_sweep(grid, data=small_data, executor=executor, batch_size=5, progress=False)
    assert_tables_identical(first.table, second.table)


# --------------------------------------------------------- inside the workers
@pytest.mark.parametrize("name", PROCESS_EXECUTORS)
def test_workers_get_read_only_arrays_and_one_numba_thread(request, name, small_data, grid):
    executor = request.getfixturevalue(f"{name}_executor")
    payload = {"close": np.ascontiguousarray(small_data.close.T),  # writeable here
               "params": np.arange(12.0).reshape(3, 4), "label": "x"}
    results = run_all(executor, worker_facts, payload, range(8))
    assert sorted(task for task, _ in results) == list(range(8))
    for _, facts in results:
        assert facts["writeable"] == {"close": False, "params": False}
        assert facts["numba_threads"] == 1
        assert facts["pid"] != os.getpid()


@pytest.mark.parametrize("name", PROCESS_EXECUTORS)
def test_task_errors_reach_the_caller(request, name):
    executor = request.getfixturevalue(f"{name}_executor")
    retries = executor.retries
    with pytest.raises(ValueError, match="task 3 is bad"):
        run_all(executor, fails_on_three, {"x": 1}, range(6))
    assert executor.retries == retries  # an error in the task is not retried


@pytest.mark.parametrize("name", PROCESS_EXECUTORS)
def test_stopping_early_leaves_the_executor_usable(request, name, small_data, grid):
    executor = request.getfixturevalue(f"{name}_executor")
    handle = executor.share({"sleep": 0.05})
    results = executor.map(slow_pid, handle, range(20))
    next(results)
    results.close()  # cancels what is still queued
    executor.unshare(handle)
    expected = run_sweep(grid, data=small_data, progress=False)
    result = run_sweep(grid, data=small_data, executor=executor, batch_size=4, progress=False)
    assert_tables_identical(result.table, expected.table)


@pytest.mark.cluster
def test_ray_shares_each_array_once_as_a_top_level_ref(ray_executor, small_data):
    import ray
    payload = {"close": small_data.close, "params": np.ones((3, 4)), "spec": "s", "x": 1.0}
    handle = ray_executor.share(payload)
    assert handle.names == ("close", "params")
    assert len(handle.refs) == 3 and all(isinstance(r, ray.ObjectRef) for r in handle.refs)
    ray_executor.unshare(handle)
    assert handle.refs == []


@pytest.mark.cluster
def test_dask_scatters_to_every_worker_and_releases(dask_executor):
    client = dask_executor._client
    handle = dask_executor.share({"close": np.ones(10)})
    holders = client.who_has([handle.future])[handle.future.key]
    assert len(holders) == len(client.nthreads()) == 2
    key = handle.future.key
    dask_executor.unshare(handle)
    deadline = time.monotonic() + 5
    while client.who_has([key]).get(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.who_has([key]).get(key)


def test_joblib_shares_through_files_removed_by_unshare(joblib_executor):
    handle = joblib_executor.share({"close": np.ones(10), "empty": np.empty((1, 0)), "x": 1})
    assert sorted(os.listdir(handle.directory)) == ["close.npy", "objects.pkl"]
    joblib_executor.unshare(handle)
    assert not os.path.exists(handle.directory)


# ------------------------------------------------------------------ recycling
@pytest.mark.slow  # starts process pools
def test_joblib_recycles_the_pool(small_data, grid):
    from btcore.executors.joblib_executor import JoblibExecutor
    with JoblibExecutor(n_jobs=2, recycle_after=2) as executor:
        pids = [pid for _, pid in run_all(executor, slow_pid, {"sleep": 0.0}, range(12))]
        assert len(set(pids)) >= 3  # chunks of 4 tasks, a fresh pool for each
        expected = run_sweep(grid, data=small_data, progress=False)
        result = run_sweep(grid, data=small_data, executor=executor, batch_size=12,
                           progress=False)
        assert_tables_identical(result.table, expected.table)


@pytest.mark.cluster
def test_ray_recycles_workers_after_max_calls(ray_executor):
    from btcore.executors.ray_executor import RayExecutor
    executor = RayExecutor(recycle_after=2)  # joins the session's Ray instance
    pids = [pid for _, pid in run_all(executor, slow_pid, {"sleep": 0.0}, range(8))]
    assert len(set(pids)) >= 4
    executor.close()
    assert ray_executor.n_workers == 2  # the session instance is still up


def _worker_counts_function():
    # nested: cloudpickle ships it to the scheduler by value
    def worker_counts(dask_scheduler=None):
        """The number of workers after each add/remove event, oldest first, and
        whether every removal was planned (``expected``)."""
        counts, planned, live = [], True, set()
        for _, msg in dask_scheduler.get_events("all"):
            if not isinstance(msg, dict) or msg.get("action") not in ("add-worker",
                                                                      "remove-worker"):
                continue
            if msg["action"] == "add-worker":
                live.add(msg["worker"])
            else:
                live.discard(msg["worker"])
                planned = planned and bool(msg.get("expected"))
            counts.append(len(live))
        return counts, planned
    return worker_counts


def worker_pids(client):
    """The worker processes the scheduler knows (no call to a worker that may be closing)."""
    def pids(dask_scheduler=None):  # nested: shipped to the scheduler by value
        return sorted(ws.pid for ws in dask_scheduler.workers.values())
    return set(client.run_on_scheduler(pids))


@pytest.mark.cluster
def test_dask_recycles_one_worker_at_a_time(small_data, grid):
    """Behaviour, not timing: maps run until a worker process has been replaced (a
    replacement's start-up takes seconds on a loaded machine, so no fixed number
    of tasks is enough); every map returns each task once; only workers that ran
    ``recycle_after`` tasks are replaced, never two at once, and none counts as
    lost; the results equal serial ones."""
    from btcore.executors.dask_executor import DaskExecutor
    recycle_after, n_tasks = 3, 24
    # timeout: how long the executor waits for a replacement to join before it
    # recycles the next worker anyway (3 x timeout); ample for a loaded machine
    with DaskExecutor(n_workers=2, recycle_after=recycle_after, timeout=60) as executor:
        client = executor._client
        first = worker_pids(client)
        assert len(first) == 2
        tasks_by_pid, deadline = {}, time.monotonic() + 300
        while not set(tasks_by_pid) - first:
            assert time.monotonic() < deadline, "no worker was replaced in 300 s"
            results = run_all(executor, slow_pid, {"sleep": 0.02}, range(n_tasks))
            assert sorted(task for task, _ in results) == list(range(n_tasks))
            for _, pid in results:
                tasks_by_pid[pid] = tasks_by_pid.get(pid, 0) + 1
        assert executor.lost_workers == executor.retries == 0  # planned restarts
        client.wait_for_workers(2, timeout=120)
        replaced = first - worker_pids(client)
        assert replaced, "a new worker ran tasks but no original one is gone"
        assert all(tasks_by_pid.get(pid, 0) >= recycle_after for pid in replaced), \
            (tasks_by_pid, replaced)
        counts, planned = client.run_on_scheduler(_worker_counts_function())
        assert planned, "a worker was removed unexpectedly"
        started = counts.index(2)  # both workers of the local cluster are up
        assert min(counts[started:]) == 1, counts  # one worker at a time, and at least one
        expected = run_sweep(grid, data=small_data, progress=False)
        result = run_sweep(grid, data=small_data, executor=executor, batch_size=6,
                           progress=False)
        assert_tables_identical(result.table, expected.table)
        assert executor.lost_workers == executor.retries == 0


# -------------------------------------------------------------- lifecycle
@pytest.mark.cluster
def test_names_create_executors_that_run_and_close(small_data, grid):
    expected = run_sweep(grid, data=small_data, progress=False)
    for name in ("joblib", "dask"):  # "ray" would join the session instance
        result = run_sweep(grid, data=small_data, executor=name, progress=False)
        assert_tables_identical(result.table, expected.table)


@pytest.mark.cluster
def test_ray_by_name_joins_the_running_instance(ray_executor, small_data, grid):
    import ray
    expected = run_sweep(grid, data=small_data, progress=False)
    result = run_sweep(grid, data=small_data, executor="ray", progress=False)
    assert_tables_identical(result.table, expected.table)
    assert ray.is_initialized()  # the instance it joined is left running


@pytest.mark.cluster
def test_dask_joins_a_cluster_by_address_and_leaves_it_running(dask_executor, small_data, grid):
    from btcore.executors.dask_executor import DaskExecutor
    expected = run_sweep(grid, data=small_data, progress=False)
    address = dask_executor._cluster.scheduler_address
    for target in (address, dask_executor._client):
        with DaskExecutor(address=target) as joined:
            assert joined.n_workers == 2
            result = run_sweep(grid, data=small_data, executor=joined, batch_size=3,
                               progress=False)
        assert_tables_identical(result.table, expected.table)
    assert dask_executor._cluster.status.name == "running"
    assert dask_executor._client.status == "running"
    assert sum(dask_executor._client.nthreads().values()) == 2


@pytest.mark.slow  # starts process pools
def test_context_manager_closes(small_data, grid):
    from btcore.executors.joblib_executor import JoblibExecutor
    with JoblibExecutor(n_jobs=2) as executor:
        run_sweep(grid, data=small_data, executor=executor, progress=False)
    with pytest.raises(BrokenExecutorError, match="closed"):
        executor.start()


def test_registry_knows_the_process_executors():
    assert set(EXECUTOR_NAMES) <= set(executors.available())
    for name in ("joblib", "ray", "dask"):
        cls = executors.executor_class(name)
        assert cls.name == name and not cls.in_process


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("n_jobs, error", [(0, ValueError), (-2, ValueError),
                                           (1.5, TypeError), (True, TypeError)])
def test_joblib_rejects_bad_n_jobs(n_jobs, error):
    from btcore.executors.joblib_executor import JoblibExecutor
    with pytest.raises(error, match="n_jobs"):
        JoblibExecutor(n_jobs=n_jobs)


def test_bad_executor_names_and_types(small_data, grid):
    with pytest.raises(ValueError, match="unknown executor 'spark'"):
        run_sweep(grid, data=small_data, executor="spark")
    with pytest.raises(TypeError, match="executor must be"):
        run_sweep(grid, data=small_data, executor=42)


def _executor_class(module, cls):
    return getattr(__import__(module, fromlist=[cls]), cls)


@pytest.mark.parametrize("module, cls, client, address", [
    ("btcore.executors.ray_executor", "RayExecutor", ("ray", "init"), "127.0.0.1:1"),
    ("btcore.executors.ray_executor", "RayExecutor", ("ray", "init"), "ray://127.0.0.1:1"),
    ("btcore.executors.dask_executor", "DaskExecutor", ("distributed", "Client"),
     "tcp://127.0.0.1:1"),
])
def test_unreachable_addresses_fail_fast(monkeypatch, module, cls, client, address):
    """Nothing listens there: the probe refuses it before any client is created (a
    client would retry until its own timeout), and the executor stays unstarted."""
    backend = pytest.importorskip(client[0])

    def no_client(*args, **kwargs):
        raise AssertionError(f"{client[0]}.{client[1]} called for an unreachable address")

    monkeypatch.setattr(backend, client[1], no_client)
    executor = _executor_class(module, cls)(address)
    for _ in range(2):  # a failed start leaves nothing half-open: the same error again
        with pytest.raises(ConnectionError, match=f"cannot reach a cluster at '{address}'"):
            executor.start()
    assert not executor._started
    executor.close()
    with pytest.raises(BrokenExecutorError, match="closed"):
        executor.start()


@pytest.mark.cluster
def test_ray_refuses_a_second_cluster_address(ray_executor):
    import socket
    from btcore.executors.ray_executor import RayExecutor
    with socket.socket() as listener:  # reachable, but not the cluster we are connected to
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = "127.0.0.1:%d" % listener.getsockname()[1]
        with pytest.raises(ValueError, match="already connected"):
            RayExecutor(address).start()


def test_ray_joins_the_cluster_named_by_ray_address(monkeypatch):
    """On a Ray head node RAY_ADDRESS is set: executor="ray" joins that cluster
    (ray.init refuses num_cpus there), and says where before connecting."""
    pytest.importorskip("ray")
    from btcore.executors.ray_executor import RayExecutor
    monkeypatch.setenv("RAY_ADDRESS", "no-port")
    executor = RayExecutor()
    assert executor.address == "no-port"
    with pytest.raises(ValueError, match="no-port"):  # joined, not a local instance started
        executor.start()
    monkeypatch.delenv("RAY_ADDRESS")
    assert RayExecutor().address is None


@pytest.mark.parametrize("module, cls, address", [
    ("btcore.executors.ray_executor", "RayExecutor", "no-port"),
    ("btcore.executors.dask_executor", "DaskExecutor", "tcp://no-port"),
])
def test_malformed_addresses(module, cls, address):
    executor = _executor_class(module, cls)(address)
    with pytest.raises(ValueError, match=address):
        executor.start()


def test_bad_option_types():
    from btcore.executors.dask_executor import DaskExecutor
    from btcore.executors.ray_executor import RayExecutor
    with pytest.raises(TypeError, match="address"):
        DaskExecutor(address=8786)
    with pytest.raises(TypeError, match="address"):
        RayExecutor(address=6379)
    with pytest.raises(ValueError, match="recycle_after"):
        RayExecutor(recycle_after=0)
    with pytest.raises(ValueError, match="max_retries"):
        DaskExecutor(max_retries=-1)


@pytest.mark.parametrize("module, cls, backend, extra", [
    ("btcore.executors.ray_executor", "RayExecutor", "ray", "btcore[ray]"),
    ("btcore.executors.dask_executor", "DaskExecutor", "distributed", "btcore[dask]"),
])
def test_missing_backend_names_the_extra(monkeypatch, module, cls, backend, extra):
    executor_cls = _executor_class(module, cls)
    monkeypatch.setitem(sys.modules, backend, None)  # as if not installed
    with pytest.raises(ExecutorUnavailableError, match=extra.replace("[", r"\[")) as info:
        executor_cls()
    assert isinstance(info.value, ImportError)


@pytest.mark.slow  # a fresh interpreter
def test_importing_the_modules_does_not_import_the_backends():
    import subprocess
    code = ("import sys, btcore.executors.ray_executor, btcore.executors.dask_executor, "
            "btcore.executors.joblib_executor; "
            "print(sorted({'ray', 'distributed'} & set(sys.modules)))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60).stdout
    assert output.strip() == "[]"


def test_map_needs_the_handle_from_share(joblib_executor):
    with pytest.raises(TypeError, match="share"):
        list(joblib_executor.map(run_task, {"close": np.ones(3)}, []))
