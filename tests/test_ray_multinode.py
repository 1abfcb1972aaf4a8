"""Ray on a two-node cluster (``ray.cluster_utils.Cluster``), joined by address.

A process holds one Ray connection, and the session fixture owns this one, so
the cluster runs in a fresh interpreter that prints a JSON report.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.cluster

SCRIPT = r"""
import json
import os

os.environ["RAY_AUTH_MODE"] = "disabled"
from ray.cluster_utils import Cluster

from btcore import MarketData, run_sweep
from btcore.executors.ray_executor import RayExecutor

node = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
cluster.add_node(**node)
cluster.wait_for_nodes()
try:
    data = MarketData.synthetic(n_assets=2, start="2015-01-01", end="2019-12-31", seed=11)
    grid = {"lookback_period": [5, 10, 20, 40], "entry_threshold": [1.0, 1.5, 2.0],
            "exit_threshold": [0.0, 0.5], "stop_loss_z": [2.5, 3.5, 4.5]}
    serial = run_sweep(grid, data=data, progress=False).table
    with RayExecutor(address=cluster.address) as executor:
        result = run_sweep(grid, data=data, executor=executor, batch_size=3, progress=False)
        nodes = dict(executor.tasks_per_node)
        workers = executor.n_workers
    floats = [c for c in serial.columns if serial[c].dtype.kind == "f"]
    same = (serial.drop(columns=floats).equals(result.table.drop(columns=floats))
            and all((serial[c].to_numpy().view("i8") == result.table[c].to_numpy().view("i8")).all()
                    for c in floats))
    with RayExecutor(address=cluster.address) as again:  # close() left the cluster up
        workers_after_close = again.n_workers
    report = {"nodes": nodes, "workers": workers, "rows": len(result.table), "same": bool(same),
              "workers_after_close": workers_after_close}
finally:
    cluster.shutdown()
print("REPORT " + json.dumps(report))
"""


def test_sweep_runs_on_both_nodes_and_matches_serial():
    root = pathlib.Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    completed = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env,
                               capture_output=True, text=True, timeout=240)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("REPORT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT "):])
    assert report["same"], "the two-node sweep differs from the serial one"
    assert report["rows"] == 72 * 2
    assert report["workers"] == report["workers_after_close"] == 2
    assert len(report["nodes"]) == 2, f"tasks ran on {report['nodes']}"
    assert sum(report["nodes"].values()) == 2 * 24  # 72 sets / 3 per task x 2 assets
