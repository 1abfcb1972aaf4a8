"""estimate(): shape, monotonic in CPUs, costs from the price, clear errors."""
import pytest

from btcore import estimate
from btcore.engine.cost import OVERHEADS

GRID = {"lookback_period": [10, 20, 40], "entry_threshold": [1.0, 2.0],
        "exit_threshold": [0.5], "stop_loss_z": [3.0]}


def test_estimate_table(sample):
    table = estimate(GRID, data=sample, cpus=(1, 2, 16, 320), price_per_cpu_hour=0.10)
    assert list(table.columns) == ["cpus", "executor", "predicted_s", "cpu_hours", "cost_usd",
                                   "kernel_param_bars_per_s"]
    assert table["cpus"].tolist() == [1, 2, 16, 320]
    assert table["executor"].tolist()[:2] == ["threads", "threads"]
    assert table["executor"].tolist()[2:] == ["ray", "ray"]
    assert (table["predicted_s"] > 0).all()
    # a small sweep: a cluster's start-up dominates, so more CPUs do not help
    assert table["predicted_s"].iloc[1] <= table["predicted_s"].iloc[0]
    assert table["predicted_s"].iloc[3] >= OVERHEADS["ray"][0]
    assert table["cost_usd"].tolist() == pytest.approx(
        (table["predicted_s"] * table["cpus"] / 3600 * 0.10).tolist())


def test_a_named_executor_is_modelled(sample):
    table = estimate(GRID, data=sample, cpus=[4], executor="dask")
    assert table["executor"].tolist() == ["dask"]
    assert table["predicted_s"].iloc[0] >= OVERHEADS["dask"][0]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(cpus=[0]), ValueError, "cpus must be whole numbers >= 1"),
    (dict(cpus="many"), TypeError, "cpus must be an int or a list of ints"),
    (dict(price_per_cpu_hour=-1), ValueError, "price_per_cpu_hour must be a number >= 0"),
    (dict(executor="spark"), ValueError, "executor must be one of"),
    (dict(exector="ray"), TypeError, "did you mean 'executor'"),
])
def test_bad_input(sample, kwargs, error, message, no_kernel_runs):
    with pytest.raises(error, match=message):
        estimate(GRID, data=sample, **kwargs)


WORKFLOWS = [
    ("walk_forward", dict(n_splits=4, anchored=True)),
    ("walk_forward", dict(n_splits=4)),
    ("monte_carlo", dict(n_paths=50, method="block", asset="AAPL")),
    ("portfolio", dict(rebalance_every=21, assets=["AAPL", "MSFT", "KO"])),
]


@pytest.mark.parametrize("workflow, kwargs", WORKFLOWS)
def test_every_workflow_is_estimated(sample, workflow, kwargs):
    """The prediction counts the backtests the run then reports in its stats."""
    import btcore
    grid = GRID if workflow != "monte_carlo" else {"lookback_period": 20}
    table = estimate(grid, data=sample, workflow=workflow, cpus=(1, 2), start="2015-01-01",
                     **kwargs)
    assert table.attrs["workflow"] == workflow
    run = {"walk_forward": btcore.walk_forward, "monte_carlo": btcore.monte_carlo,
           "portfolio": btcore.run_portfolio_sweep}[workflow]
    stats = run(grid, data=sample, start="2015-01-01", progress=False, **kwargs).stats
    assert table.attrs["backtests"] == stats["backtests"]
    # anchored folds share one pass per set and asset; rolling ones are a pass each
    assert stats["backtests"] == {
        "walk_forward": 6 * len(sample.symbols) * (1 if kwargs.get("anchored") else 4),
        "monte_carlo": 50, "portfolio": 6}[workflow]
    assert (table["predicted_s"] > 0).all()
    assert table["predicted_s"].iloc[1] <= table["predicted_s"].iloc[0]


def test_more_work_predicts_more_time(sample):
    """Ten times the paths: about ten times the kernel time on one core (the same
    calibration is reused, so only the workload differs)."""
    import btcore.engine.cost as cost
    from btcore.workflows.monte_carlo import plan_monte_carlo
    common = dict(start="2015-01-01", asset="AAPL")
    small, big = (cost.Workload.of_job(plan_monte_carlo(
        {"lookback_period": 20}, "mean_reversion", sample, n_paths=n, **common).job)
        for n in (100, 1000))
    assert big.backtests == 10 * small.backtests
    seconds = [cost.predict_seconds(w, 1e8, "serial", 1, 2) for w in (small, big)]
    assert seconds[1] == pytest.approx(10 * seconds[0], rel=1e-9)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(workflow="optimise"), ValueError, "workflow must be one of"),
    (dict(n_paths=100), TypeError, "argument of workflow='monte_carlo'"),
    (dict(workflow="walk_forward", rebalance_every=5), TypeError,
     "argument of workflow='portfolio'"),
    (dict(workflow="walk_forward", n_splits=1), ValueError, "n_splits"),
    (dict(workflow="monte_carlo", assets=["AAPL"]), TypeError, "give asset=NAME"),
    (dict(workflow="monte_carlo", asset="AAPL", method="jackknife"), ValueError,
     "unknown method"),
])
def test_bad_workflow_input(sample, kwargs, error, message, no_kernel_runs):
    with pytest.raises(error, match=message):
        estimate(GRID, data=sample, **kwargs)
