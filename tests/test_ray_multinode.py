"""Ray on a two-node cluster (``ray.cluster_utils.Cluster``), joined by address.

A process holds one Ray connection, and the session fixture owns this one, so
the cluster runs in a fresh interpreter that prints a JSON report. That cluster
has token authentication on, with a token of its own (``RAY_AUTH_TOKEN``, so
nothing is written to ``~/.ray``), and runs in Ray's single-machine mode, so
both nodes listen on loopback only and the test opens no port to the network.
"""
import json
import os
import pathlib
import secrets
import subprocess
import sys

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.cluster

SCRIPT = r"""
import json
import os

import psutil
from ray._raylet import AuthenticationMode, get_authentication_mode
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
        me = psutil.Process()
        pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
        listening = [(c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.pid in pids]
        exposed = [(ip, port) for ip, port in listening
                   if not ip.replace("::ffff:", "").startswith("127.") and ip != "::1"]
        auth = get_authentication_mode() == AuthenticationMode.TOKEN
    floats = [c for c in serial.columns if serial[c].dtype.kind == "f"]
    same = (serial.drop(columns=floats).equals(result.table.drop(columns=floats))
            and all((serial[c].to_numpy().view("i8") == result.table[c].to_numpy().view("i8")).all()
                    for c in floats))
    with RayExecutor(address=cluster.address) as again:  # close() left the cluster up
        workers_after_close = again.n_workers
    report = {"nodes": nodes, "workers": workers, "rows": len(result.table), "same": bool(same),
              "workers_after_close": workers_after_close, "listening": len(listening),
              "exposed": exposed, "auth": auth}
finally:
    cluster.shutdown()
print("REPORT " + json.dumps(report))
"""


def test_sweep_runs_on_both_nodes_and_matches_serial():
    root = pathlib.Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    # auth on for every process of the cluster and the driver, with a throwaway token
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    # Ray's single-machine mode (its default on macOS and Windows): node address
    # 127.0.0.1, so the GCS, raylets and workers bind to loopback only
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
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
    assert report["auth"], "the cluster ran without token authentication"
    assert report["listening"] and not report["exposed"], \
        f"the test cluster listens beyond loopback: {report['exposed']}"
