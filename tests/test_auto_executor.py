"""executor="auto": the executor with the least predicted time, and why."""
import pandas as pd
import pytest

import btcore.engine.cost as cost
from btcore import run_sweep
from btcore.workflows.base import prepare
from conftest import assert_tables_identical

WINDOW = dict(assets=["AAPL"], start="2018-01-01", end="2020-12-31", progress=False)


def job_of(grid, **kwargs):
    return prepare(grid, "mean_reversion", None, start=WINDOW["start"], end=WINDOW["end"],
                   initial_capital=1e6, cost_bps=5.0, periods_per_year=None,
                   assets=WINDOW["assets"], debug=False, options={}, **kwargs).job


def workload_of(grid):
    return cost.Workload.of_job(job_of(grid))


def test_auto_runs_a_tiny_sweep_in_process_and_says_why():
    grid = {"lookback_period": [20, 40]}
    result = run_sweep(grid, executor="auto", **WINDOW)
    choice = result.stats["executor_choice"]
    assert result.stats["executor"] == choice["executor"] in ("serial", "threads")
    assert set(choice["predicted_s"]) >= {"serial", "threads"}
    assert "M param-bars/s per core" in choice["reason"]
    pd.testing.assert_frame_equal(result.table, run_sweep(grid, **WINDOW).table)


def test_auto_in_debug_mode_is_serial():
    result = run_sweep({"lookback_period": [20]}, executor="auto", debug=True, **WINDOW)
    assert result.stats["executor_choice"]["executor"] == result.stats["executor"] == "serial"


def test_a_connected_cluster_wins_a_long_sweep_and_loses_a_short_one(monkeypatch):
    monkeypatch.setattr(cost, "cluster_cpus", lambda: {"ray": 320})
    monkeypatch.setattr("btcore.executors.base.cpu_count", lambda: 2)
    work = workload_of({"lookback_period": list(range(10, 650))})
    assert cost.choose_executor(work, throughput=1e12)["executor"] == "serial"
    # an hour of kernel time on one core: 320 CPUs pay for Ray's start-up
    long = cost.choose_executor(work, throughput=float(work.block_bars.sum()) *
                                    work.n_sets / 3600.0)
    assert long["executor"] == "ray" and long["cpus"] == 320
    assert long["predicted_s"]["ray"] < long["predicted_s"]["threads"] \
        < long["predicted_s"]["serial"]


def test_predictions_fall_with_cpus_and_never_below_one_task():
    work = workload_of({"lookback_period": list(range(10, 110))})
    seconds = [cost.predict_seconds(work, 1e5, "threads", n, 2) for n in (1, 2)]
    assert seconds[1] < seconds[0]
    one_task = workload_of({"lookback_period": [20]})
    assert cost.predict_seconds(one_task, 1e8, "ray", 320, 2) >= \
        cost.predict_seconds(one_task, 1e8, "ray", 1, 2) - 1e-12 + cost.CLUSTER_START_S


def test_an_unknown_executor_name_is_still_an_error():
    with pytest.raises(ValueError, match="auto|serial|threads"):
        run_sweep({"lookback_period": [20]}, executor="automatic", **WINDOW)


def test_walk_forward_and_monte_carlo_take_auto_too():
    from btcore import monte_carlo, walk_forward
    grid = {"lookback_period": [20, 40], "entry_threshold": [1.5, 2.0]}
    wf = walk_forward(grid, n_splits=3, executor="auto", **WINDOW)
    assert wf.stats["executor_choice"]["executor"] == wf.stats["executor"]
    pd.testing.assert_frame_equal(wf.folds, walk_forward(grid, n_splits=3, **WINDOW).folds)
    params = {"lookback_period": 20}
    mc = monte_carlo(params, n_paths=8, executor="auto", asset="AAPL", progress=False)
    assert mc.stats["executor_choice"]["executor"] == mc.stats["executor"]
    pd.testing.assert_frame_equal(mc.table, monte_carlo(params, n_paths=8, asset="AAPL",
                                                        progress=False).table)


def test_a_portfolio_sweep_takes_auto_too():
    from btcore import run_portfolio_sweep
    grid = {"lookback_period": [20, 40], "entry_threshold": [1.5, 2.0]}
    window = dict(assets=["AAPL", "MSFT", "KO"], start="2019-01-01", progress=False)
    auto = run_portfolio_sweep(grid, executor="auto", **window)
    assert auto.stats["executor_choice"]["executor"] == auto.stats["executor"]
    assert set(auto.stats["executor_choice"]["predicted_s"]) >= {"serial", "threads"}
    pd.testing.assert_frame_equal(auto.table, run_portfolio_sweep(grid, **window).table)


def test_every_sweep_workflow_takes_auto():
    """Cross-sectional sweeps run on the same template: auto chooses, results equal serial."""
    from btcore import run_cross_sectional_sweep
    grid = {"lookback_period": [20, 40], "top_k": [2, 3]}
    auto = run_cross_sectional_sweep(grid, executor="auto", start="2019-01-01", progress=False)
    serial = run_cross_sectional_sweep(grid, start="2019-01-01", progress=False)
    assert auto.stats["executor_choice"]["executor"] in ("serial", "threads")
    assert_tables_identical(auto.table, serial.table)
