"""estimate(): shape, monotonic in CPUs, costs from the price, clear errors."""
import pytest

from btcore import estimate
from btcore.planning import OVERHEADS

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
