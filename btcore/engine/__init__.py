"""The engine: one way to run any backtest job on any executor.

A :class:`Job` holds validated arrays with explicit axes:

- ``close`` (n_bars, n_columns): time-major prices; a column is an asset (or,
  for Monte Carlo, a path);
- ``windows`` (n_windows, n_checks) int64: the last traded bar of each
  checkpoint of each trading window (a sweep has one window, one checkpoint;
  anchored walk-forward folds share a window with one checkpoint per fold),
  with ``first_bar`` (n_columns, n_windows) int64 its first traded bar;
- parameter sets ``sets`` (:mod:`btcore.sets`) in an order sorted by indicator
  arguments: a task reads its range's parameters, grid rows and indicator
  series from it, so a Cartesian grid is never materialised.

:func:`run_job` runs it: calibrate -> batch size -> tasks (column x window x
set range, longest first) -> executor (which retries lost tasks) -> progress ->
a *sink*, which receives each finished block. Row order never depends on
completion order: sinks place blocks by their task's indices.

Modules: :mod:`~btcore.engine.tasks` (what a task is, and running one),
:mod:`~btcore.engine.calls` (the kernel's arguments for a task, and the call),
:mod:`~btcore.engine.plan` (calibration, batch size), :mod:`~btcore.engine.run`
(``run_job``, the loop), :mod:`~btcore.engine.sinks` (where results go) and
:mod:`~btcore.engine.cost` (the cost model behind ``executor="auto"``).
"""
from btcore.kernels.binding import StrategyCompileError
from btcore.engine.plan import calibrate, choose_batch_size, plan_tasks
from btcore.engine.run import run_job
from btcore.engine.sinks import ArraySink, DenseSink, TopKSink
from btcore.engine.tasks import Job, Task, check_targets, make_tasks, run_task
from btcore.sets import plan_series, sort_sets

__all__ = ["Job", "Task", "ArraySink", "DenseSink", "TopKSink", "run_job", "run_task",
           "make_tasks", "check_targets", "choose_batch_size", "calibrate", "plan_tasks",
           "plan_series",
           "sort_sets", "StrategyCompileError"]
