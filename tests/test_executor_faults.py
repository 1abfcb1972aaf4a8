"""Worker deaths: a worker process SIGKILLed from outside mid-sweep, every holder
of Dask's shared data killed at once, and a task that always kills its worker.

The sweep must complete with the serial table (no row lost or duplicated) and
count what happened in ``stats``; a task that cannot finish must raise
``BrokenExecutorError`` instead of hanging.
"""
import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest

from btcore import MarketData, run_sweep
from conftest import assert_tables_identical
from btcore.executors.base import BrokenExecutorError

pytestmark = [pytest.mark.fault, pytest.mark.cluster]

# ~1 s per worker on 2 workers: 40k parameter sets x 20 years, 60 tasks of ~30 ms
GRID = {"lookback_period": list(range(10, 110, 10)),
        "entry_threshold": list(np.linspace(0.5, 3.0, 10)),
        "exit_threshold": list(np.linspace(0.0, 0.9, 10)),
        "stop_loss_z": list(np.linspace(1.5, 5.0, 40))}
BATCH_SIZE = 700


@pytest.fixture(scope="module")
def long_sweep():
    """Data and the serial table of a sweep lasting a few seconds."""
    data = MarketData.synthetic(n_assets=1, start="2000-01-01", end="2019-12-31", seed=3)
    return data, run_sweep(GRID, data=data, batch_size=BATCH_SIZE, progress=False).table


def sweep_killing(executor, data, find_workers, n_kills=1):
    """Run the long sweep on ``executor`` while a thread SIGKILLs ``n_kills`` of the
    ``find_workers()`` processes once they are computing; return (result, killed pids)."""
    tiny = {name: values[:1] for name, values in GRID.items()}
    run_sweep(tiny, data=data, executor=executor, progress=False)  # warm the workers up
    killed, stop = [], threading.Event()

    def killer():
        baseline = {}
        while not stop.is_set():
            busy = []
            for process in find_workers():
                try:
                    cpu = sum(process.cpu_times()[:2])
                except psutil.Error:
                    continue
                baseline.setdefault(process.pid, cpu)
                if cpu - baseline[process.pid] > 0.15:  # running tasks, not idle
                    busy.append(process)
            if len(busy) >= n_kills:
                for process in busy[:n_kills]:
                    os.kill(process.pid, signal.SIGKILL)
                    killed.append(process.pid)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        result = run_sweep(GRID, data=data, executor=executor, batch_size=BATCH_SIZE,
                           progress=False)
    finally:
        stop.set()
        thread.join()
    return result, killed


def children(predicate):
    def find():
        found = []
        for process in psutil.Process().children(recursive=True):
            try:
                if predicate(process.cmdline()):
                    found.append(process)
            except psutil.Error:
                pass
        return found
    return find


def test_joblib_survives_a_killed_worker(long_sweep):
    from btcore.executors.joblib_executor import JoblibExecutor
    data, expected = long_sweep
    with JoblibExecutor(n_jobs=2) as executor:
        loky = children(lambda cmd: any("loky" in part for part in cmd[:3]))
        result, killed = sweep_killing(executor, data, loky)
    assert killed, "no worker was killed: the sweep finished first"
    assert_tables_identical(result.table, expected)
    # one broken pool; every task pending in it ran again (at most the tasks in flight)
    assert result.stats["lost_workers"] == 1
    assert 1 <= result.stats["retries"] <= executor._in_flight_limit()


def test_ray_survives_a_killed_worker(ray_executor, long_sweep):
    from btcore.executors.ray_executor import RayExecutor
    data, expected = long_sweep
    executor = RayExecutor()  # joins the session instance, fresh counters
    busy = children(lambda cmd: bool(cmd) and cmd[0].startswith("ray::ray_task"))
    result, killed = sweep_killing(executor, data, busy)
    executor.close()
    assert killed, "no worker was killed: the sweep finished first"
    assert_tables_identical(result.table, expected)
    assert result.stats["lost_workers"] >= 1 and result.stats["retries"] >= 1


def test_dask_survives_a_killed_worker(dask_executor, long_sweep):
    data, expected = long_sweep
    retries, lost = dask_executor.retries, dask_executor.lost_workers
    pids = set(dask_executor._client.run(os.getpid).values())
    result, killed = sweep_killing(dask_executor, data,
                                   lambda: [psutil.Process(pid) for pid in pids])
    assert killed, "no worker was killed: the sweep finished first"
    assert_tables_identical(result.table, expected)
    assert dask_executor.lost_workers - lost == 1
    assert dask_executor.retries - retries >= 1
    dask_executor._client.wait_for_workers(2, timeout=30)  # the nanny restarted it


def test_dask_scatters_again_when_every_holder_died(long_sweep):
    """Both workers, every holder of the scattered payload, are SIGKILLed at once
    while each has tasks of the sweep: the driver scatters the payload again to the
    restarted workers and resubmits what was lost. The kill comes from
    ``on_progress`` (in the driver, between two results: the sweep is under way by
    construction) at the first result after which the scheduler shows this sweep's
    tasks on both workers, so no CPU or time threshold can be missed on a loaded
    machine."""
    from btcore.executors.dask_executor import DaskExecutor
    data, expected = long_sweep
    # timeout: how long scattering again waits for a restarted worker (a fresh
    # interpreter importing numpy and numba: many seconds on a loaded machine)
    with DaskExecutor(n_workers=2, timeout=120) as executor:
        client = executor._client
        tiny = {name: values[:1] for name, values in GRID.items()}
        run_sweep(tiny, data=data, executor=executor, progress=False)  # warm the workers up
        pids = client.run(os.getpid)  # address -> pid of both holders
        assert len(pids) == 2
        killed = []

        def kill_both_holders(done, total, rate):
            if killed:
                return
            working = {address for address, keys in client.processing().items()
                       if any(str(key).startswith("btcore-") for key in keys)}
            if working >= set(pids):
                for pid in pids.values():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        result = run_sweep(GRID, data=data, executor=executor, batch_size=BATCH_SIZE,
                           progress=False, on_progress=kill_both_holders)
    assert len(killed) == 2, "the scheduler never showed tasks on both workers at once"
    assert_tables_identical(result.table, expected)
    # both removals held tasks of the sweep (and the last one the payload's last copy)
    assert result.stats["lost_workers"] >= 2 and result.stats["retries"] >= 2


# ------------------------------------------------- a task that always crashes
def _crashing_task():
    def crash(shared, task):  # nested: pickled by value, workers cannot import tests
        if task == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return task
    return crash


def test_joblib_gives_up_on_a_task_that_kills_its_worker():
    from btcore.executors.joblib_executor import JoblibExecutor
    with JoblibExecutor(n_jobs=2, max_retries=1) as executor:
        handle = executor.share({})
        with pytest.raises(BrokenExecutorError, match="max_retries=1"):
            list(executor.map(_crashing_task(), handle, range(4)))
        assert executor.lost_workers == 2
    assert not os.path.exists(handle.directory)  # close() removes what was not unshared


def test_ray_gives_up_on_a_task_that_kills_its_worker(ray_executor):
    from btcore.executors.ray_executor import RayExecutor
    executor = RayExecutor(max_retries=1)
    handle = executor.share({})
    with pytest.raises(BrokenExecutorError, match="lost 2 times"):
        list(executor.map(_crashing_task(), handle, range(4)))
    assert executor.lost_workers == 2 and executor.retries == 1


def test_dask_gives_up_on_a_task_that_kills_its_worker():
    import dask
    from btcore.executors.dask_executor import DaskExecutor
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with DaskExecutor(n_workers=2) as executor:
            handle = executor.share({})
            with pytest.raises(BrokenExecutorError, match="died running task"):
                list(executor.map(_crashing_task(), handle, range(4)))
            assert executor.lost_workers == 2
