"""Local clusters that btcore starts are closed to the network.

A Ray instance from ``RayExecutor()`` and a ``LocalCluster`` from ``DaskExecutor()``
must listen on loopback addresses only: every TCP socket in LISTEN state that
belongs to the cluster's processes (this process, which hosts the Ray driver,
the Dask scheduler and nannies, and the worker, GCS, raylet and agent
processes) is checked. Ray's token authentication stays on, and ``close()``
leaves ``os.environ`` as it found it.

The session fixtures (``tests/executor_fixtures.py``) build their clusters
through btcore. A process can hold only one Ray connection, and the session
fixture owns this one, so ``RayExecutor()`` with its defaults runs in a fresh
interpreter that prints a JSON report.
"""
import ipaddress
import json
import os
import pathlib
import subprocess
import sys

import psutil
import pytest

from btcore import run_sweep

ROOT = pathlib.Path(__file__).resolve().parent.parent


def is_loopback(host: str) -> bool:
    """127.0.0.0/8 and ::1, also as an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``:
    a dual-stack socket bound to IPv4 loopback)."""
    address = ipaddress.ip_address(host.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def listening(pids) -> list:
    """``(ip, port, pid, name)`` of every listening TCP socket of the processes ``pids``."""
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                name = "?"
            found.append((conn.laddr.ip, conn.laddr.port, conn.pid, name))
    return sorted(found)


def exposed(sockets) -> list:
    return [s for s in sockets if not is_loopback(s[0])]


def ray_processes() -> set:
    """This process (the driver) and the processes of its Ray instance: the GCS,
    the raylet and everything under it (workers, agents), Ray's Python services."""
    me = psutil.Process()
    pids = {me.pid}
    for child in me.children(recursive=True):
        try:
            name, cmdline = child.name(), " ".join(child.cmdline())
        except psutil.Error:
            continue
        if (name in ("gcs_server", "raylet") or name.startswith("ray::")
                or f"{os.sep}ray{os.sep}" in cmdline):
            pids.add(child.pid)
            pids.update(p.pid for p in child.children(recursive=True))
    return pids


def test_is_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2"]))


@pytest.mark.cluster
@pytest.mark.slow
def test_local_ray_listens_on_loopback_only(ray_executor, small_data, grid):
    import ray
    result = run_sweep(grid, data=small_data, executor=ray_executor, progress=False)
    assert len(result.table) == 24 * 3
    sockets = listening(ray_processes())
    names = {name for _, _, _, name in sockets}
    assert {"gcs_server", "raylet"} <= names, f"Ray's servers not found: {sockets}"
    assert not exposed(sockets), f"Ray listens beyond loopback: {exposed(sockets)}"
    assert is_loopback(ray.util.get_node_ip_address())


@pytest.mark.cluster
@pytest.mark.slow
def test_local_dask_listens_on_loopback_only(dask_executor, small_data, grid):
    result = run_sweep(grid, data=small_data, executor=dask_executor, progress=False)
    assert len(result.table) == 24 * 3
    client = dask_executor._client
    # the scheduler and the nannies run in this process, the workers in their own
    worker_pids = client.run(os.getpid)
    assert len(worker_pids) == 2
    sockets = listening({os.getpid(), *worker_pids.values()})
    assert {pid for _, _, pid, _ in sockets} >= set(worker_pids.values())
    assert not exposed(sockets), f"Dask listens beyond loopback: {exposed(sockets)}"
    addresses = [client.scheduler.address, *worker_pids]
    assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
    # the scheduler's HTTP endpoint (dashboard, /health) is on loopback too
    http = client.scheduler_info().get("services", {}).get("dashboard")
    assert http and any(port == http for _, port, pid, _ in sockets if pid == os.getpid())


# ------------------------------------------- RayExecutor() in a fresh interpreter
SCRIPT = r"""
import contextlib
import json
import os
import socket
import sys

import psutil

sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
from test_network_exposure import exposed, is_loopback, listening, ray_processes

from btcore import MarketData, run_sweep
from btcore.executors import _worker, ray_executor
from btcore.executors.ray_executor import RayExecutor

def outside_addresses():
    return [a.address for addresses in psutil.net_if_addrs().values() for a in addresses
            if a.family == socket.AF_INET and not is_loopback(a.address)]

def reachable(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False

if __name__ == "__main__":
    report = {}
    data = MarketData.synthetic(n_assets=2, start="2020-01-01", end="2020-12-31", seed=3)
    grid = {"lookback_period": [5, 10, 20], "entry_threshold": [1.0, 2.0]}
    before = dict(os.environ)
    executor = RayExecutor()
    result = run_sweep(grid, data=data, executor=executor, progress=False)
    import ray
    sockets = listening(ray_processes())
    report.update(
        rows=len(result.table), sockets=sockets, exposed=exposed(sockets),
        node_ip=ray.util.get_node_ip_address(),
        auth_mode=os.environ.get("RAY_AUTH_MODE"),
        reachable_from_outside=[(host, port) for host in outside_addresses()
                                for _, port, _, _ in sockets if reachable(host, port)])
    executor.close()
    report["environ_changed"] = sorted(k for k in set(before) | set(os.environ)
                                       if before.get(k) != os.environ.get(k))

    # a Ray that would not keep the loopback node address: refused, nothing left running
    ray_executor._loopback_only = contextlib.nullcontext
    refused = RayExecutor(num_cpus=1)
    try:
        refused.start()
        report["refused"] = None
    except RuntimeError as err:
        report["refused"] = str(err)
    report["left_running"] = _worker.marked_processes(ray_executor._MARK, refused._mark)
    report["environ_changed_after_refusal"] = sorted(
        k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
    print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def fresh_ray_report():
    pytest.importorskip("ray")
    # Ray's defaults, as a user meets them: no auth setting or cluster address inherited
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_ADDRESS", "RAY_AUTH_MODE"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"),
                                                      env.get("PYTHONPATH")]))
    completed = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=300)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("REPORT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT "):])


@pytest.mark.cluster
@pytest.mark.slow
def test_ray_executor_defaults_listen_on_loopback_only(fresh_ray_report):
    report = fresh_ray_report
    assert report["rows"] == 6 * 2
    names = {socket[3] for socket in report["sockets"]}
    assert {"gcs_server", "raylet"} <= names, report["sockets"]
    assert report["exposed"] == [], f"Ray listens beyond loopback: {report['exposed']}"
    assert is_loopback(report["node_ip"])
    assert report["reachable_from_outside"] == []


@pytest.mark.cluster
@pytest.mark.slow
def test_ray_executor_keeps_token_auth_on(fresh_ray_report):
    # a local ray.init enables token auth unless RAY_AUTH_MODE says otherwise
    assert fresh_ray_report["auth_mode"] == "token"


@pytest.mark.cluster
@pytest.mark.slow
def test_ray_executor_close_restores_the_environment(fresh_ray_report):
    assert fresh_ray_report["environ_changed"] == []  # no RAY_AUTH_MODE, nothing else


@pytest.mark.cluster
@pytest.mark.slow
def test_ray_executor_refuses_a_node_off_loopback(fresh_ray_report):
    report = fresh_ray_report
    assert report["refused"] and "not on the loopback interface" in report["refused"]
    assert report["left_running"] == []
    assert report["environ_changed_after_refusal"] == []


def test_library_code_never_disables_ray_auth():
    listed = subprocess.run(["git", "grep", "-n", "RAY_AUTH_MODE", "--", "btcore", "executors",
                             "strategies"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode not in (0, 1):
        pytest.skip(f"git grep failed: {listed.stderr.strip()}")
    assert listed.stdout == ""
