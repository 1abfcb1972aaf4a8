"""``run_job``: the loop that runs a job's tasks on an executor into a sink."""
from __future__ import annotations

import sys
import time
from functools import partial

import numpy as np

from btcore.engine import plan
from btcore.engine.tasks import Job
from btcore.engine.watchdog import Watchdog


def run_job(job: Job, runner, sink, *, batch_size="auto", progress=None,
            description: str = "", on_progress=None, store=None,
            throughput: float | None = None) -> dict:
    """Run every task of ``job`` on the started-or-not executor ``runner`` into ``sink``.

    With ``store`` (a :class:`btcore.results.ResultStore`) the batch size is the
    store's fixed plan, tasks it already holds are loaded into ``sink`` instead
    of run, and every new task is written there first. ``on_progress(done,
    total, backtests_per_s)`` is called after each task. ``throughput`` (the
    kernel's param-bars/s, measured by ``executor="auto"``) spares a second
    calibration; without it the kernel is calibrated only when the measure can
    change the plan (:func:`btcore.engine.plan.needs_calibration`).

    Returns the run's stats (timings, throughput, tasks, retries, task-time
    quantiles). The executor is left open (its owner closes it).
    """
    n_sets = job.n_sets
    traded = job.traded_bars
    runner.start()  # a cluster joined by address knows its size only once connected
    slots = runner.n_workers
    before = (runner.retries, runner.lost_workers)
    calibrate_started = time.perf_counter()
    resume = None
    if store is not None:
        store_plan, resume, sink = store.attach(job, sink, batch_size)
        batch_size = store_plan(slots)
    if job.debug:  # plain Python: no calibration, one task per column and window
        batch_size = n_sets if batch_size == "auto" else batch_size
        progress = sys.stderr.isatty() if progress is None else progress
    elif throughput is None and plan.needs_calibration(job, slots, batch_size, progress):
        throughput = plan.calibrate(job)
    else:  # still compile in the driver first, so errors are trimmed and raised once
        plan.compile_kernel(job)
        throughput = throughput or plan.SLOW_PARAM_BARS_PER_S
    calibrate_s = time.perf_counter() - calibrate_started
    tasks, batch_size = plan.plan_tasks(job, batch_size, throughput, slots)
    done = resume(tasks) if resume is not None else set()
    todo, initial, done_param_bars = _pending(tasks, done, traded)
    total_param_bars = float(traded.sum()) * n_sets
    if progress is None:
        estimate = total_param_bars / throughput / max(slots, 1)
        progress = sys.stderr.isatty() and estimate > plan.AUTO_PROGRESS_SECONDS

    def take(task, result):
        out, block_sums = result if isinstance(result, tuple) else (result, None)
        job.check(task, out)
        sink.add(task, out, block_sums)

    timings = execute_tasks(runner, job.task_fn, job.payload(), todo, take, plan=tasks,
                            total=n_sets * traded.size, progress=progress,
                            description=f"{description or job.name} [{runner.name}]",
                            on_progress=on_progress, initial=initial,
                            throughput=None if job.debug else throughput)
    sink.check_complete()
    stats = run_stats(runner, before, n_backtests=n_sets * traded.size - initial,
                      param_bars=total_param_bars - done_param_bars, tasks=tasks,
                      batch_size=batch_size, calibrate_s=calibrate_s, **timings)
    stats["tasks_resumed"], stats["tasks_computed"] = len(done), len(tasks) - len(done)
    return stats


def task_lookup(tasks):
    """``task_id -> Task`` for a plan (:class:`~btcore.engine.tasks.TaskPlan`: by
    arithmetic) or a list of tasks."""
    if hasattr(tasks, "by_id"):
        return tasks.by_id
    return {task.task_id: task for task in tasks}.__getitem__


def _pending(tasks, done: set, traded: np.ndarray) -> tuple:
    """``(the tasks still to run, as they are read; the sets and param-bars the
    ``done`` ones already cover)``."""
    if not done:
        return tasks, 0, 0.0
    lookup = task_lookup(tasks)
    finished = [lookup(task_id) for task_id in done]
    return ((task for task in tasks if task.task_id not in done),
            sum(t.n_sets for t in finished),
            float(sum(traded[t.column, t.window] * t.n_sets for t in finished)))


def timed_call(fn, shared, task):
    """``(fn(shared, task), seconds it took in the worker)``."""
    started = time.perf_counter()
    result = fn(shared, task)
    return result, time.perf_counter() - started


def execute_tasks(runner, fn, payload, tasks, take, *, plan, total, progress,
                  description, on_progress=None, initial: int = 0,
                  throughput: float | None = None) -> dict:
    """Share ``payload``, run ``fn(shared, task)`` for every task of ``tasks`` (read
    lazily; ``plan`` is the whole plan they come from) on ``runner`` and hand
    each result to ``take(task, result)`` once (a retried task that finished twice
    has the same bits: the second copy is dropped), with a tqdm bar of ``total``
    backtests (each task adds its ``n_sets``; ``initial`` were done before) and
    ``on_progress(done, total, backtests_per_s)`` after each task; the payload is
    released whatever happens. With ``throughput`` (the kernel's param-bars/s on
    one core) a :class:`~btcore.engine.watchdog.Watchdog` warns when the run falls
    far behind that pace or stalls.

    Returns ``{"share_s", "compute_s", "task_times", "slowdowns"}``: the third
    holds each task's time in its worker at its task id (NaN: not run here); the
    last what the watchdog reported.
    """
    from tqdm.auto import tqdm  # ~50 ms the first time: keep it out of the timings
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be a callable (done, total, backtests_per_s), "
                        f"got {on_progress!r}")
    share_started = time.perf_counter()
    handle = runner.share(payload)
    share_s = time.perf_counter() - share_started
    compute_started = time.perf_counter()
    times = np.full(len(plan), np.nan)  # 8 bytes a task, the only per-task state
    finished = initial
    with tqdm(total=int(total), initial=int(initial), unit="bt", disable=not progress,
              smoothing=0.1, desc=description) as bar:
        watchdog = _watchdog(runner, plan, throughput, bar)
        try:
            for task, (result, took) in runner.map(partial(timed_call, fn), handle, tasks):
                if not np.isnan(times[task.task_id]):
                    continue
                times[task.task_id] = took
                take(task, result)
                bar.update(task.n_sets)
                finished += task.n_sets
                watchdog.finished(task.cost)
                if on_progress is not None:
                    rate = (finished - initial) / max(time.perf_counter() - compute_started,
                                                      1e-9)
                    on_progress(finished, int(total), rate)
        finally:
            slowdowns = watchdog.stop()
            runner.unshare(handle)
    return {"share_s": share_s, "compute_s": time.perf_counter() - compute_started,
            "task_times": times, "slowdowns": slowdowns}


def _watchdog(runner, plan, throughput, bar) -> Watchdog:
    """A watchdog expecting ``throughput`` per core on the workers the tasks can use."""
    busy = max(1, min(runner.n_workers, len(plan)))
    longest = (plan.longest_cost if hasattr(plan, "longest_cost") else
               max((task.cost for task in plan), default=0.0))
    return Watchdog(throughput * busy if throughput else None,
                    longest / throughput if throughput else 0.0, runner,
                    note=lambda kind: bar.set_postfix_str(kind, refresh=True))


def run_stats(runner, before: tuple, *, n_backtests: int, param_bars: float, tasks,
              batch_size, calibrate_s: float, share_s: float, compute_s: float,
              task_times: np.ndarray | None = None, slowdowns: list | None = None) -> dict:
    """The stats dict every workflow returns (``before`` = the executor's
    ``(retries, lost_workers)`` when the run started): with ``task_times`` (seconds
    at task ids, NaN where not run), quantiles of the tasks' times and the
    stragglers (over 3x the median)."""
    stats = {
        "backtests": int(n_backtests),
        "backtests_per_s": n_backtests / max(compute_s, 1e-9),
        "param_bars": int(param_bars),
        "param_bars_per_s": param_bars / max(compute_s, 1e-9),
        "executor": runner.name, "workers": runner.n_workers, "batches": len(tasks),
        "batch_size": int(batch_size), "retries": runner.retries - before[0],
        "lost_workers": runner.lost_workers - before[1], "share_s": share_s,
        "compute_s": compute_s, "calibrate_s": calibrate_s, "slowdowns": slowdowns or [],
    }
    ran = np.flatnonzero(~np.isnan(task_times)) if task_times is not None else []
    if len(ran):
        times = task_times[ran]
        quantiles = np.quantile(times, [0.5, 0.9, 0.99])
        stats["task_s"] = {"p50": float(quantiles[0]), "p90": float(quantiles[1]),
                           "p99": float(quantiles[2]), "max": float(times.max())}
        slow = ran[times > 3 * quantiles[0]]
        slow = slow[np.argsort(-task_times[slow], kind="stable")][:5]
        lookup = task_lookup(tasks)
        stats["stragglers"] = [{"task": int(task_id), "seconds": float(task_times[task_id]),
                                "column": lookup(task_id).column,
                                "window": lookup(task_id).window,
                                "sets": [lookup(task_id).start, lookup(task_id).stop]}
                               for task_id in slow]
    return stats
