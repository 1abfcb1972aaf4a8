"""Containment: a memory bug in strategy code, or a driver killed mid-sweep, takes
nothing else down and leaves nothing behind.

- A new user strategy's compiled kernel runs first in a child process, bounds
  checked (``btcore.engine.preflight``): an ``@njit`` indicator writing far out
  of bounds is a clear ValueError and the driver lives on; a good strategy pays
  that once (a marker on disk), built-ins and ``debug=True`` never.
- A driver SIGKILLed mid-sweep: its loky workers exit, its local Ray instance
  (GCS, raylet, agents) goes, and what stays in /dev/shm is removed by the next
  start.

The drivers that crash or are killed run in subprocesses.
"""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import numpy as np
import psutil
import pytest

from btcore import MarketData, run_sweep
from btcore.executors import _worker

pytestmark = pytest.mark.slow

STRATEGY = '''
import numpy as np
from numba import njit
from btcore.strategies import Indicator, Param, StrategySpec

SALT = {salt!r}  # a new module, so a new kernel: the pre-flight runs


@njit(nogil=True, error_model="numpy")
def mean_nb(close, window, out):
    total = 0.0
    n = close.shape[0]
    for t in range(n):
        total += close[t]
        if t >= window:
            total -= close[t - window]
        if t >= window - 1:
            out[t] = total / window
        if {bug}:
            out[t + 10_000_000_000] = 1.0  # far out of bounds, on the last bars


@njit(nogil=True, inline="always", error_model="numpy")
def signal_nb(values, price, params, options, position, state):
    if np.isnan(values[0]):
        return 0, state
    return (1 if price > values[0] else 0), state


SPEC = StrategySpec(name={name!r}, params=(Param("window", int, 10, low=2, is_window=True),),
                    indicators=(Indicator(mean_nb, "window"),), signal_nb=signal_nb)
'''
#: the bug hides from the plain-Python rule check (default window 10, 300 bars)
BUG = "window > 30 and t >= n - 3"
GRID = {"window": [10, 20, 40]}


def write_strategy(tmp_path, *, bug: bool) -> str:
    """A strategy module in ``tmp_path``; returns its module name."""
    module = f"user_{'bad' if bug else 'good'}_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module}.py").write_text(STRATEGY.format(
        salt=uuid.uuid4().hex, bug=BUG if bug else "False", name=module))
    return module


@pytest.fixture(scope="module")
def data():
    return MarketData.synthetic(n_assets=2, start="2018-01-01", end="2020-12-31", seed=3)


def run_driver(script: str, tmp_path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter (tests' environment, ``tmp_path`` importable)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                          capture_output=True, text=True, timeout=timeout)


SWEEP_SCRIPT = """
import importlib
from btcore import MarketData, run_sweep
spec = importlib.import_module({module!r}).SPEC
data = MarketData.synthetic(n_assets=2, start="2018-01-01", end="2020-12-31", seed=3)
{prelude}
try:
    run_sweep({grid!r}, spec, data, progress=False)
except ValueError as err:
    print("RAISED", type(err).__name__, err)
print("ALIVE")
"""


# ---------------------------------------------------------------- the pre-flight
@pytest.mark.fault
def test_an_out_of_bounds_indicator_is_a_clear_error_and_the_driver_survives(tmp_path):
    module = write_strategy(tmp_path, bug=True)
    done = run_driver(SWEEP_SCRIPT.format(module=module, grid=GRID, prelude=""), tmp_path)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "ALIVE" in done.stdout
    message = done.stdout.split("RAISED", 1)[1]
    assert f"strategy {module!r}" in message
    assert "out of bounds" in message
    assert "window 40" in message  # the parameter set tried
    assert "debug=True" in message and "IndexError at the faulty line" in message


@pytest.mark.fault
def test_a_crash_names_the_signal(tmp_path):
    """Without bounds checking the child dies by SIGSEGV: the error says so."""
    module = write_strategy(tmp_path, bug=True)
    unchecked = tmp_path / "unchecked"
    prelude = f"""
import os
from btcore.engine import preflight
checked_env = preflight._child_env
def unchecked_env(root):
    env = checked_env(root)
    del env["NUMBA_BOUNDSCHECK"]
    env["NUMBA_CACHE_DIR"] = {str(unchecked / "numba")!r}
    env["BTCORE_KERNEL_DIR"] = {str(unchecked / "kernels")!r}
    return env
os.makedirs({str(unchecked)!r}, mode=0o700)
preflight._child_env = unchecked_env
"""
    done = run_driver(SWEEP_SCRIPT.format(module=module, grid=GRID, prelude=prelude), tmp_path)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    message = done.stdout.split("RAISED", 1)[1]
    assert "SIGSEGV" in message or "SIGBUS" in message, message
    assert f"strategy {module!r}" in message and "window 40" in message
    assert "debug=True" in message


def test_debug_finds_the_faulty_line(tmp_path, monkeypatch, data):
    """The way out the error names: plain Python raises IndexError at the line."""
    from btcore.engine import preflight
    module = write_strategy(tmp_path, bug=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = __import__(module).SPEC
    monkeypatch.setattr(preflight, "_run_child", _no_child)
    with pytest.raises(IndexError) as caught:
        run_sweep(GRID, spec, data, debug=True, progress=False)
    assert caught.traceback[-1].path.name == f"{module}.py"


def _no_child(*args, **kwargs):
    raise AssertionError("the pre-flight started a child process")


def test_a_good_user_strategy_pays_the_preflight_once(tmp_path, monkeypatch, data):
    from btcore.engine import preflight
    module = write_strategy(tmp_path, bug=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = __import__(module).SPEC
    before = preflight.children_started
    first = run_sweep(GRID, spec, data, progress=False)
    assert preflight.children_started == before + 1
    marker = preflight._marker(spec._cache["kernel_ref"].module_name)
    assert marker.is_file()
    print(f"pre-flight of a new user strategy: {marker.read_text().strip()}")
    monkeypatch.setattr(preflight, "_run_child", _no_child)
    second = run_sweep(GRID, spec, data, progress=False)  # this process remembers
    assert second.table.equals(first.table)
    # a fresh process reads the marker
    done = run_driver(f"""
        import importlib
        from btcore import MarketData, run_sweep
        from btcore.engine import preflight
        spec = importlib.import_module({module!r}).SPEC
        data = MarketData.synthetic(n_assets=2, start="2018-01-01", end="2020-12-31", seed=3)
        run_sweep({GRID!r}, spec, data, progress=False)
        print("CHILDREN", preflight.children_started)
    """, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CHILDREN 0" in done.stdout


def test_builtins_and_debug_runs_never_start_one(tmp_path, monkeypatch, data):
    from btcore import strategies
    from btcore.engine import preflight
    from user_strategy import crossover
    monkeypatch.setattr(preflight, "_run_child", _no_child)
    for name in ("mean_reversion", "ma_crossover", "donchian_breakout", "rsi_reversion",
                 "bollinger_reversion"):
        assert preflight.is_builtin(strategies.get(name)), name
    assert not preflight.is_builtin(crossover.SPEC)
    run_sweep({"lookback_period": [10, 20]}, "mean_reversion", data, progress=False)
    run_sweep({"fast_window": [5], "slow_window": [20]}, "ma_crossover", data, progress=False)
    module = write_strategy(tmp_path, bug=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    run_sweep(GRID, __import__(module).SPEC, data, debug=True, progress=False)


# ------------------------------------------------------------- killed drivers
def _alive(pids) -> list:
    return [pid for pid in pids if _worker._alive(pid)]


def _wait_gone(pids, seconds: float) -> list:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(pids)


def _start_driver(script: str) -> tuple:
    """Start ``script`` in a fresh interpreter; ``(process, lines up to READY)``."""
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []
    deadline = time.monotonic() + 120
    for line in process.stdout:
        lines.append(line.strip())
        if line.startswith("READY") or time.monotonic() > deadline:
            break
    if not (lines and lines[-1].startswith("READY")):
        _kill([*(child.pid for child in psutil.Process(process.pid).children(recursive=True)),
               process.pid] if process.poll() is None else [])
        raise AssertionError(f"the driver did not get ready: {lines}")
    return process, lines


def _kill(pids) -> None:
    """SIGKILL what a failed test left running."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _value(lines, key):
    return next(line.split(None, 1)[1] for line in lines if line.startswith(key + " "))


@pytest.mark.fault
def test_loky_workers_exit_when_the_joblib_driver_is_killed(tmp_path):
    shares_before = set(_shm_shares())
    process, lines = _start_driver("""
        import os, sys, psutil
        from btcore import MarketData, run_sweep
        from btcore.executors.joblib_executor import JoblibExecutor
        data = MarketData.synthetic(n_assets=1, start="2000-01-01", end="2019-12-31", seed=3)
        grid = {"lookback_period": list(range(10, 110, 10)),
                "entry_threshold": [0.5 + 0.1 * i for i in range(20)],
                "exit_threshold": [0.05 * i for i in range(18)],
                "stop_loss_z": [1.5 + 0.1 * i for i in range(40)]}
        said = []
        def progress(done, total, rate):
            if not said:
                said.append(1)
                workers = [p.pid for p in psutil.Process().children(recursive=True)]
                print("WORKERS", *workers)
                print("READY", flush=True)
        with JoblibExecutor(n_jobs=2) as ex:
            run_sweep(grid, data=data, executor=ex, batch_size=200, progress=False,
                      on_progress=progress)
        print("FINISHED", flush=True)
    """)
    workers = [int(pid) for pid in _value(lines, "WORKERS").split()]
    assert workers
    shares = set(_shm_shares()) - shares_before
    assert shares
    process.kill()
    process.wait()
    try:
        left = _wait_gone(workers, 20)
        assert not left, [" ".join(psutil.Process(pid).cmdline())[:100] for pid in left]
        # its shared payload stays until the next start of a joblib executor removes it
        from btcore.executors.joblib_executor import JoblibExecutor
        with JoblibExecutor(n_jobs=1) as executor:
            executor.start()
        assert not shares & set(_shm_shares())
    finally:
        _kill(workers)


def _shm_shares() -> list:
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return [entry for entry in os.listdir(folder) if entry.startswith("btcore-share-")]


RAY_DRIVER = """
    import time
    import psutil
    from btcore.executors.ray_executor import RayExecutor
    executor = RayExecutor(num_cpus=1, object_store_memory=80_000_000)
    executor.start()
    deadline = time.monotonic() + 60  # the raylet's agents start after ray.init returns
    while time.monotonic() < deadline:
        names = []
        for child in psutil.Process().children(recursive=True):
            try:
                names.append(" ".join(child.cmdline()))
            except psutil.Error:
                pass
        if sum("Agent" in name for name in names) >= 2:  # dashboard and runtime-env
            break
        time.sleep(0.2)
    time.sleep(1)
    reaper = getattr(executor, "_reaper", None)
    print("REAPER", reaper.pid if reaper else 0)
    print("READY", flush=True)
    time.sleep(600)
"""


def _ray_processes(driver: int, reaper: int) -> list:
    """Every process the driver started (the GCS, the raylet, its agents and workers),
    but btcore's reaper."""
    return [child.pid for child in psutil.Process(driver).children(recursive=True)
            if child.pid != reaper]


@pytest.mark.fault
def test_a_local_ray_instance_dies_with_its_killed_driver():
    pytest.importorskip("ray")
    process, lines = _start_driver(RAY_DRIVER)
    ray_pids = _ray_processes(process.pid, int(_value(lines, "REAPER")))
    assert len(ray_pids) >= 4  # GCS, raylet, its agents, workers
    process.kill()
    process.wait()
    try:
        left = _wait_gone(ray_pids, 15)
        assert not left, [" ".join(psutil.Process(pid).cmdline())[:80] for pid in left]
    finally:
        _kill(ray_pids)


@pytest.mark.fault
def test_the_next_ray_start_removes_what_a_killed_driver_left(tmp_path):
    """Driver and reaper killed together (as an out-of-memory kill might): the raylet's
    agents linger, and the next local start kills them."""
    pytest.importorskip("ray")
    process, lines = _start_driver(RAY_DRIVER)
    reaper = int(_value(lines, "REAPER"))
    ray_pids = _ray_processes(process.pid, reaper)
    if reaper:
        os.kill(reaper, signal.SIGKILL)
    process.kill()
    process.wait()
    time.sleep(2)
    try:
        if not _alive(ray_pids):
            pytest.skip("nothing of the killed driver's Ray instance lingered: no clean-up "
                        "to test")
        done = run_driver("""
            from btcore.executors.ray_executor import RayExecutor
            with RayExecutor(num_cpus=1, object_store_memory=80_000_000) as executor:
                executor.start()
        """, tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        left = _wait_gone(ray_pids, 5)
        assert not left, [" ".join(psutil.Process(pid).cmdline())[:80] for pid in left]
    finally:
        _kill(ray_pids)


@pytest.mark.fault
def test_a_single_backtest_of_an_out_of_bounds_strategy_is_a_clear_error_too(tmp_path):
    module = write_strategy(tmp_path, bug=True)
    script = SWEEP_SCRIPT.format(module=module, grid=GRID, prelude="").replace(
        "run_sweep({grid!r}, spec, data, progress=False)".format(grid=GRID),
        "from btcore import backtest\n    backtest({'window': 40}, spec, data, asset=data.symbols[0])")
    assert "backtest(" in script
    done = run_driver(script, tmp_path)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "ALIVE" in done.stdout and "out of bounds" in done.stdout.split("RAISED", 1)[1]
