"""The one task loop of ``Executor.map``: retries of lost tasks, task errors,
cancellation (on a fake backend), and per real backend that a task's error
reaches the caller as it was raised. Worker deaths on real backends are in
``test_executor_faults.py``."""
import os
import random
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btcore.executors.base import BrokenExecutorError, Executor, TaskLost


# ------------------------------------------------------------- a fake backend
class FakeFuture:
    def __init__(self, task, attempt):
        self.task, self.attempt = task, attempt

    def __repr__(self):
        return f"FakeFuture({self.task}, {self.attempt})"


class Lost:
    """Script entry: this attempt is lost (to ``event``, if given)."""

    def __init__(self, event=None, counted=True):
        self.event, self.counted = event, counted


class FakeExecutor(Executor):
    """Runs nothing: ``script[task][attempt]`` says how each attempt ends (a ``Lost``,
    an exception the task raises, or nothing: success). Completion order is random."""

    name = "fake"

    def __init__(self, script=None, *, max_retries=2, limit=3, seed=0):
        super().__init__()
        self.script = script or {}
        self.max_retries, self.limit = max_retries, limit
        self.rng = random.Random(seed)
        self.submitted, self.cancelled = [], []
        self.max_pending, self.begun, self.ended = 0, 0, 0

    def _check_handle(self, handle):
        if handle != "handle":
            raise TypeError("map() takes the handle returned by share()")

    def _in_flight_limit(self):
        return self.limit

    def _begin_map(self, run):
        assert run.handle == "handle" and callable(run.fn)
        self.begun += 1

    def _submit(self, run, task, attempt):
        self.submitted.append((task, attempt))
        return FakeFuture(task, attempt)

    def _next_done(self, run, pending):
        self.max_pending = max(self.max_pending, len(pending))
        return self.rng.choice(list(pending))

    def _outcome(self, run, future):
        attempts = self.script.get(future.task, ())
        outcome = attempts[future.attempt] if future.attempt < len(attempts) else None
        if isinstance(outcome, Lost):
            raise TaskLost("the worker died", event=outcome.event,
                           counted=outcome.counted) from OSError("connection reset")
        if isinstance(outcome, BaseException):
            raise outcome
        return run.fn(None, future.task)

    def _cancel(self, run, futures):
        self.cancelled.extend(futures)

    def _end_map(self, run):
        self.ended += 1


def square(shared, task):
    return task * task


def attempts_of(executor, task):
    return [attempt for t, attempt in executor.submitted if t == task]


def test_a_lost_task_is_retried_max_retries_times_then_broken():
    executor = FakeExecutor({3: [Lost()] * 10}, max_retries=2)
    with pytest.raises(BrokenExecutorError, match=r"task 3 was lost 3 times .*max_retries=2") \
            as info:
        list(executor.map(square, "handle", range(6)))
    assert attempts_of(executor, 3) == [0, 1, 2]
    assert executor.retries == 2 and executor.lost_workers == 3
    assert "the worker died" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)  # the backend's own error
    assert executor.ended == 1


def test_no_retries_allowed_gives_up_at_the_first_loss():
    executor = FakeExecutor({0: [Lost()]}, max_retries=0)
    with pytest.raises(BrokenExecutorError, match="lost 1 times"):
        list(executor.map(square, "handle", range(3)))
    assert executor.retries == 0 and executor.lost_workers == 1


def test_a_task_lost_within_the_budget_completes_once():
    executor = FakeExecutor({3: [Lost(), Lost()]}, max_retries=2)
    results = list(executor.map(square, "handle", range(6)))
    assert sorted(results) == [(t, t * t) for t in range(6)]
    assert attempts_of(executor, 3) == [0, 1, 2]
    assert executor.retries == 2 and executor.lost_workers == 2


class StrategyBug(Exception):
    pass


@pytest.mark.parametrize("error", [ValueError("boom"), StrategyBug("bad target 2"),
                                   KeyError("fast_window")])
def test_a_task_error_keeps_its_type_and_is_not_retried(error):
    executor = FakeExecutor({4: [error]}, max_retries=3)
    with pytest.raises(type(error)) as info:
        list(executor.map(square, "handle", range(10)))
    assert info.value is error  # the very exception, not a wrapper
    assert attempts_of(executor, 4) == [0]
    assert executor.retries == 0 and executor.lost_workers == 0
    submitted = {task for task, _ in executor.submitted}
    assert {future.task for future in executor.cancelled} <= submitted - {4}
    assert executor.ended == 1


def test_tasks_lost_to_one_event_count_one_lost_worker():
    script = {1: [Lost("pool-1")], 2: [Lost("pool-1")], 3: [Lost("pool-2")],
              4: [Lost()], 5: [Lost(counted=False)]}
    executor = FakeExecutor(script, limit=8)
    results = list(executor.map(square, "handle", range(8)))
    assert sorted(task for task, _ in results) == list(range(8))
    assert executor.lost_workers == 3  # pool-1, pool-2, task 4's own; 5 counted elsewhere
    assert executor.retries == 5  # every resubmission


@settings(max_examples=200, deadline=None)
@given(n_tasks=st.integers(0, 40), limit=st.integers(1, 6), max_retries=st.integers(0, 3),
       losses=st.lists(st.integers(0, 3), max_size=40), seed=st.integers(0, 2**32 - 1))
def test_nothing_dropped_or_duplicated(n_tasks, limit, max_retries, losses, seed):
    losses = [min(n, max_retries) for n in losses[:n_tasks]]  # every task can finish
    script = {task: [Lost()] * n for task, n in enumerate(losses)}
    executor = FakeExecutor(script, max_retries=max_retries, limit=limit, seed=seed)
    results = list(executor.map(square, "handle", iter(range(n_tasks))))
    assert sorted(results) == [(t, t * t) for t in range(n_tasks)]
    assert len(results) == n_tasks  # each once
    assert executor.retries == executor.lost_workers == sum(losses)
    assert len(executor.submitted) == n_tasks + sum(losses)
    assert len(set(executor.submitted)) == len(executor.submitted)  # (task, attempt) unique
    assert executor.max_pending <= limit
    assert executor.cancelled == [] and executor.ended == 1


def test_stopping_early_cancels_what_is_pending():
    pulled = []

    def tasks():
        for task in range(100):
            pulled.append(task)
            yield task

    executor = FakeExecutor(limit=3)
    results = executor.map(square, "handle", tasks())
    first = next(results)
    n_submitted = len(executor.submitted)
    results.close()
    assert first[1] == first[0] ** 2
    assert n_submitted <= 4 and len(pulled) == n_submitted  # tasks are taken lazily
    assert len(executor.cancelled) == n_submitted - 1 == 2
    assert {f.task for f in executor.cancelled} == {t for t, _ in executor.submitted} - {first[0]}
    assert len(executor.submitted) == n_submitted  # nothing submitted after the stop
    assert executor.ended == 1


def test_giving_up_cancels_what_is_pending():
    executor = FakeExecutor({0: [Lost()]}, max_retries=0, limit=4, seed=1)
    with pytest.raises(BrokenExecutorError):
        list(executor.map(square, "handle", range(10)))
    pending = {t for t, _ in executor.submitted} - {0}
    assert pending and {f.task for f in executor.cancelled} <= pending
    assert executor.ended == 1


def test_map_checks_the_handle_when_called():
    executor = FakeExecutor()
    with pytest.raises(TypeError, match="share"):
        executor.map(square, {"close": None}, range(3))  # not even iterated
    assert executor.begun == 0


def test_a_backend_without_hooks_says_so():
    class Bare(Executor):
        name = "bare"

    with pytest.raises(NotImplementedError, match="Bare"):
        list(Bare().map(square, None, range(2)))


# ---------------------------------------------------------- the real backends
def _task_functions():
    # nested so cloudpickle ships them by value: workers cannot import tests
    def boom_on_three(shared, task):
        if task == 3:
            raise ValueError("boom")
        return task

    def slow_pid(shared, task):
        time.sleep(shared.get("sleep", 0.0))
        return os.getpid()

    return boom_on_three, slow_pid


boom_on_three, slow_pid = _task_functions()

PROCESS_EXECUTORS = [pytest.param("joblib", marks=pytest.mark.slow),
                     pytest.param("ray", marks=pytest.mark.cluster),
                     pytest.param("dask", marks=pytest.mark.cluster)]


def run_all(executor, fn, payload, tasks):
    handle = executor.share(payload)
    try:
        return list(executor.map(fn, handle, tasks))
    finally:
        executor.unshare(handle)


@pytest.mark.parametrize("name", PROCESS_EXECUTORS)
def test_a_task_error_surfaces_as_the_exception_raised(request, name):
    executor = request.getfixturevalue(f"{name}_executor")
    retries, lost = executor.retries, executor.lost_workers
    with pytest.raises(ValueError) as info:
        run_all(executor, boom_on_three, {"x": 1}, range(6))
    assert type(info.value) is ValueError  # not RayTaskError(ValueError) or a wrapper
    assert "boom" in str(info.value)
    assert "\x1b[" not in str(info.value) and len(str(info.value).splitlines()) <= 2
    assert (executor.retries, executor.lost_workers) == (retries, lost)
    assert sorted(t for t, _ in run_all(executor, boom_on_three, {}, [0, 1, 2])) == [0, 1, 2]


def _loky_workers():
    import psutil
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if any("popen_loky" in part for part in process.cmdline()):
                found.append(process.pid)
        except psutil.Error:
            pass
    return set(found)


@pytest.mark.slow  # starts a process pool
def test_joblib_keeps_its_workers_after_a_task_error():
    from btcore.executors.joblib_executor import JoblibExecutor
    others = _loky_workers()  # e.g. the session's joblib executor
    with JoblibExecutor(n_jobs=2) as executor:
        workers = _loky_workers() - others
        before = {pid for _, pid in run_all(executor, slow_pid, {"sleep": 0.02}, range(8))}
        with pytest.raises(ValueError, match="boom"):
            run_all(executor, boom_on_three, {}, range(6))
        after = {pid for _, pid in run_all(executor, slow_pid, {"sleep": 0.02}, range(8))}
        assert before | after <= workers and len(workers) == 2  # no pool rebuilt
        assert executor.lost_workers == executor.retries == 0


@pytest.mark.slow  # starts a process pool
def test_joblib_error_in_one_sweep_leaves_a_concurrent_one_alone():
    from btcore.executors.joblib_executor import JoblibExecutor
    with JoblibExecutor(n_jobs=2) as executor:
        outcome = {}

        def healthy():
            outcome["results"] = run_all(executor, slow_pid, {"sleep": 0.05}, range(20))

        thread = threading.Thread(target=healthy)
        thread.start()
        time.sleep(0.1)
        for _ in range(3):
            with pytest.raises(ValueError, match="boom"):
                run_all(executor, boom_on_three, {}, range(6))
        thread.join(60)
        assert sorted(t for t, _ in outcome["results"]) == list(range(20))


@pytest.mark.slow  # starts a process pool
def test_joblib_close_stops_its_workers_and_spares_joblibs_own_pool():
    from joblib.externals.loky import reusable_executor
    from btcore.executors.joblib_executor import JoblibExecutor
    global_pool = reusable_executor._executor
    before = _loky_workers()
    executor = JoblibExecutor(n_jobs=2, recycle_after=1)
    run_all(executor, slow_pid, {}, range(4))  # two pools, one per 2 tasks
    handle = executor.share({})
    results = executor.map(slow_pid, handle, range(6))
    next(results)  # a map left open, tasks running
    assert _loky_workers() - before
    executor.close()
    assert _loky_workers() <= before
    assert reusable_executor._executor is global_pool
    assert not os.path.exists(handle.directory)


@pytest.mark.slow  # starts a process pool
def test_joblib_stopping_early_then_map_again():
    from btcore.executors.joblib_executor import JoblibExecutor
    with JoblibExecutor(n_jobs=2) as executor:
        handle = executor.share({"sleep": 0.05})
        results = executor.map(slow_pid, handle, range(40))
        next(results)
        results.close()
        assert sorted(t for t, _ in executor.map(slow_pid, handle, range(5))) == list(range(5))
