"""The engine's planning, checkpoints, block sums and sinks."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, strategies as st

from btcore import run_sweep
from btcore.engine import DenseSink, Task, TopKSink, choose_batch_size, make_tasks, run_job
from btcore.engine.plan import MAX_TASK_SECONDS, MAX_TASK_SETS, MIN_TASK_SECONDS
from btcore.executors import get_executor
from btcore.kernels.single import RUINED_ROW
from btcore.metrics import METRIC_NAMES, N_METRICS
from btcore.workflows.base import prepare
from conftest import small_grid

SETTINGS = dict(initial_capital=1e6, cost_bps=5.0, periods_per_year=252.0, debug=False,
                options={})


def _job(data, grid=None, start=None, end=None, **overrides):
    prepared = prepare(grid or small_grid(), "mean_reversion", data, start=start, end=end,
                       assets=None, **{**SETTINGS, **overrides})
    return prepared


@given(n_columns=st.integers(1, 4), n_windows=st.integers(1, 3), n_sets=st.integers(1, 40),
       batch=st.integers(1, 50), bars=st.lists(st.integers(2, 500), min_size=12, max_size=12))
def test_tasks_cover_every_block_once_longest_first(n_columns, n_windows, n_sets, batch, bars):
    traded = np.array(bars[:n_columns * n_windows]).reshape(n_columns, n_windows)
    tasks = make_tasks(traded, n_sets, batch, cost_factor=2.0)
    covered = np.zeros((n_columns, n_windows, n_sets), dtype=int)
    for task in tasks:
        covered[task.column, task.window, task.start:task.stop] += 1
        assert task.cost == traded[task.column, task.window] * task.n_sets * 2.0
        assert 1 <= task.n_sets <= batch
    assert (covered == 1).all()
    costs = [task.cost for task in tasks]
    assert costs == sorted(costs, reverse=True)
    assert sorted(task.task_id for task in tasks) == list(range(len(tasks)))
    assert make_tasks(traded, n_sets, batch, 2.0) == tasks  # deterministic
    # the lazy plan is exactly every task made and sorted by cost (ties by id), and
    # finds any task by position or id without making the others
    every = sorted(every_task(traded, n_sets, batch, 2.0), key=lambda t: -t.cost)
    assert list(tasks) == every and len(tasks) == len(every)
    assert [tasks[i] for i in range(-len(every), len(every))] == every + every
    assert all(tasks.by_id(task.task_id) == task for task in every)


def every_task(traded, n_sets, batch, cost_factor):
    """Every task of the plan, made one by one (the plan's reference)."""
    for column, window in np.ndindex(*traded.shape):
        for start in range(0, n_sets, batch):
            stop = min(start + batch, n_sets)
            yield Task(column * traded.shape[1] * -(-n_sets // batch) +
                       window * -(-n_sets // batch) + start // batch, column, window,
                       start, stop, float(traded[column, window]) * (stop - start) * cost_factor)


def test_planning_a_trillion_sets_takes_no_memory():
    """A keep= sweep of 10^12 sets: 15 M tasks, made as they are read, so planning
    and reading the first ones hold a few KB (a list of tasks would be gigabytes)."""
    import tracemalloc
    from btcore.executors.threads import ThreadsExecutor
    tracemalloc.start()
    try:
        plan = make_tasks(np.array([[250.0], [260.0]]), 10 ** 12, 65_536)
        reading = ThreadsExecutor(2).map(lambda shared, task: task.n_sets, None, plan)
        first = [task for _, (task, _) in zip(range(500), reading)]
        reading.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(plan) == 2 * 15_258_790 and len(first) == 500
    assert peak < 2_000_000, f"planning held {peak:,} bytes"


@given(n_sets=st.integers(1, 100_000), n_blocks=st.integers(1, 50),
       bars=st.integers(2, 10_000), throughput=st.floats(1e5, 1e9), slots=st.integers(1, 64))
def test_batch_size_keeps_tasks_within_bounds(n_sets, n_blocks, bars, throughput, slots):
    size = choose_batch_size(n_sets, n_blocks, bars, throughput, slots)
    assert 1 <= size <= min(n_sets, MAX_TASK_SETS)
    per_set = bars / throughput
    if size > 1:
        assert size * per_set <= MAX_TASK_SECONDS + 1e-9
    total = n_sets * n_blocks * per_set
    if total / (4 * slots) >= MIN_TASK_SECONDS:  # big enough: >= ~4 tasks per slot
        tasks = n_blocks * -(-n_sets // size)
        assert tasks >= min(4 * slots, n_sets * n_blocks) or size in (1, MAX_TASK_SETS)


def _run(job, sink_factory=DenseSink):
    runner, _ = get_executor("serial")
    sink = sink_factory(job)
    run_job(job, runner, sink, batch_size=7, progress=False)
    return sink


def test_checkpoints_equal_sweeps_ending_there(small_data):
    """Anchored folds share one pass: metrics finalised at each checkpoint equal a
    sweep whose window ends at that bar, bit for bit."""
    prepared = _job(small_data, start=small_data.index[40])
    last = int(prepared.job.windows[0, -1])
    checks = [120, 300, last]
    job = dataclasses.replace(prepared.job, windows=np.array([checks], dtype=np.int64))
    metrics = _run(job).metrics  # (assets, 1, n_checks, rows, sets)
    for c, bar in enumerate(checks):
        alone = _job(small_data, start=small_data.index[40], end=small_data.index[bar])
        expected = _run(alone.job).metrics[:, 0, 0]
        np.testing.assert_array_equal(metrics[:, 0, c], expected)


def test_block_sums_are_the_sums_of_the_replayed_returns(small_data, grid):
    from btcore import backtest
    prepared = _job(small_data, grid, start=small_data.index[30])
    job = dataclasses.replace(prepared.job, n_blocks=6)
    sink = _run(job)
    first = int(job.first_bar[0, 0])
    for position in (0, 5, job.n_sets - 1):
        params = dict(zip(job.strategy.param_names, job.params[position]))
        replay = backtest(params, data=small_data, asset=small_data.symbols[0],
                          start=small_data.index[30])
        blocks = np.array_split(replay.returns.to_numpy(), 6)
        got = sink.block_sums[0, 0, position]
        for b, returns in enumerate(blocks):
            assert got[b, 0] == sum(returns.tolist())
            assert got[b, 1] == sum((returns * returns).tolist())
    assert first == 30


def test_top_k_sink_agrees_with_the_dense_table(small_data):
    grid = {"lookback_period": [3, 5, 10], "entry_threshold": [0.5, 1.0, 2.0],
            "exit_threshold": [0.0, 0.5], "stop_loss_z": [50.0, 3.0]}
    prepared = _job(small_data, grid)
    dense = _run(prepared.job).metrics
    top = _run(prepared.job, lambda job: TopKSink(job, "sharpe_ratio", k=3))
    sharpe = METRIC_NAMES.index("sharpe_ratio")
    for column in range(dense.shape[0]):
        block = dense[column, 0, 0]
        grid_rows = prepared.job.order
        values = block[sharpe].copy()
        values[block[RUINED_ROW] != 0.0] = np.nan
        ranked = sorted((-v, row) for v, row in zip(values, grid_rows) if not np.isnan(v))[:3]
        assert top.best[column, 0, 0].tolist() == [row for _, row in ranked]
        assert top.values[column, 0, 0].tolist() == [-v for v, _ in ranked]


def test_top_k_rejects_unknown_metrics(small_data):
    with pytest.raises(ValueError, match="unknown metric 'sharp'"):
        TopKSink(_job(small_data).job, "sharp")


def test_dense_sink_refuses_missing_or_duplicated_blocks(small_data):
    job = _job(small_data).job
    sink = DenseSink(job)
    from btcore.engine import Task
    block = np.zeros((1, N_METRICS + 2, 2))
    sink.add(Task(0, 0, 0, 0, 2, 0.0), block)
    with pytest.raises(RuntimeError, match="missing"):
        sink.check_complete()


def test_sweep_table_matches_the_engine_blocks(small_data, grid):
    prepared = _job(small_data, grid)
    metrics = _run(prepared.job).metrics
    table = run_sweep(grid, data=small_data, batch_size=7, progress=False).table
    sharpe = METRIC_NAMES.index("sharpe_ratio")
    for row in table.head(5).itertuples(index=False):
        column = small_data.symbols.index(row.asset)
        grid_row = next(i for i, p in enumerate(zip(*[prepared.grid.columns[n] for n in grid]))
                        if p == (row.lookback_period, row.entry_threshold, row.exit_threshold,
                                 row.stop_loss_z))
        position = int(np.flatnonzero(prepared.job.order == grid_row)[0])
        assert metrics[column, 0, 0, sharpe, position] == row.sharpe_ratio
