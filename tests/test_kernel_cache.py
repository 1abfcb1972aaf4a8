"""Kernel modules and Numba's on-disk cache: a fresh process loads machine code,
an edited strategy or btcore gets a new kernel module, and a read-only install
works (kernel modules and cache live in a user cache directory)."""
import json
import os
import pathlib
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap

from btcore import binding

REPO = pathlib.Path(__file__).resolve().parent.parent
PROBE = """
import json, time
started = time.perf_counter()
from btcore import run_sweep, MarketData
from btcore.binding import kernel_ref, load_kernel
from btcore.strategies import mean_reversion
data = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-12-31", seed=1)
run_sweep({"lookback_period": [5], "entry_threshold": [1.0], "exit_threshold": [0.5],
           "stop_loss_z": [3.0]}, data=data, progress=False)
kernel = load_kernel(kernel_ref(mean_reversion.SPEC)).batch_nb
print(json.dumps({"hits": sum(kernel.stats.cache_hits.values()),
                  "misses": sum(kernel.stats.cache_misses.values()),
                  "file": kernel.py_func.__code__.co_filename}))
"""


def run_probe(env, cwd, read_only=None):
    """Run PROBE in a fresh interpreter; ``read_only`` is a directory it must not write.

    As root, permissions do not stop writes, so the directory is bind-mounted
    read-only in a private mount namespace instead.
    """
    command = [sys.executable, "-c", PROBE]
    if read_only is not None and os.geteuid() == 0:
        path = shlex.quote(str(read_only))
        command = ["unshare", "-m", "sh", "-c",
                   f"mount --bind {path} {path} && mount -o remount,bind,ro {path} && "
                   f"exec {shlex.join(command)}"]
    output = subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True,
                            text=True, timeout=300).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_fresh_process_loads_kernel_from_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    env.pop("BTCORE_KERNEL_DIR", None)
    first = run_probe(env, REPO)
    second = run_probe(env, REPO)
    assert first["misses"] >= 1
    assert second["hits"] >= 1 and second["misses"] == 0
    assert first["file"] == second["file"]
    assert first["file"].startswith(str(tmp_path / "numba" / "btcore_kernels"))


def test_module_name_follows_btcore_sources(monkeypatch):
    from btcore.strategies import mean_reversion
    spec = mean_reversion.SPEC
    name = binding.kernel_ref(spec).module_name
    spec._cache.pop("kernel_ref")
    monkeypatch.setattr(binding, "BTCORE_DIGEST", "an edited kernel")
    try:
        assert binding.kernel_ref(spec).module_name != name
    finally:
        spec._cache.pop("kernel_ref")


STRATEGY_MODULE = textwrap.dedent("""
    from numba import njit
    from btcore.strategies import Indicator, Param, StrategySpec

    THRESHOLD = {threshold}

    @njit(cache=True)
    def last_close_nb(close, window, out):
        for t in range(window, close.shape[0]):
            out[t] = close[t - window]

    @njit(cache=True, inline="always")
    def momentum_signal_nb(values, price, params, options, position, state):
        reference = values[0]
        if price > reference * (1.0 + THRESHOLD):
            return 1, state
        return 0, state

    SPEC = StrategySpec("edited_momentum", (Param("window", int, 5, low=1, is_window=True),),
                        (Indicator(last_close_nb, "window"),), momentum_signal_nb)
""")
EDIT_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from edited_strategy import SPEC
from btcore import MarketData, run_sweep
from btcore.binding import kernel_ref, load_kernel
data = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-12-31", seed=1)
table = run_sweep({"window": [3, 10]}, SPEC, data, progress=False).table
kernel = load_kernel(kernel_ref(SPEC)).batch_nb
print(json.dumps({"misses": sum(kernel.stats.cache_misses.values()),
                  "module": kernel_ref(SPEC).module_name,
                  "trades": table["num_trades"].tolist()}))
"""


def test_editing_a_strategy_module_recompiles_it(tmp_path):
    """Numba watches only the file a cached function is in; btcore's kernel module
    name follows the strategy's source, so an edit can never load stale code."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    env.pop("BTCORE_KERNEL_DIR", None)
    module = tmp_path / "edited_strategy.py"

    def probe():
        done = subprocess.run([sys.executable, "-c", EDIT_PROBE, str(tmp_path)], env=env,
                              cwd=tmp_path, check=True, capture_output=True, text=True,
                              timeout=300)
        return json.loads(done.stdout.strip().splitlines()[-1])

    module.write_text(STRATEGY_MODULE.format(threshold=0.0))
    first, again = probe(), probe()
    module.write_text(STRATEGY_MODULE.format(threshold=0.5))  # an edit the rule sees
    edited = probe()
    assert first["misses"] >= 1 and again["misses"] == 0
    assert again["module"] == first["module"] != edited["module"]
    assert edited["misses"] >= 1
    assert edited["trades"] != first["trades"]


def test_read_only_install_falls_back_to_user_cache(tmp_path):
    install = tmp_path / "site"
    # the layout of a regular install: the plug-in folders inside btcore
    for source, target in (("btcore", "btcore"), ("executors", "btcore/executors"),
                           ("strategies", "btcore/strategies")):
        shutil.copytree(REPO / source, install / target,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for path in install.rglob("*"):
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    install.chmod(0o555)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "BTCORE_KERNEL_DIR")}
    env.update(HOME=str(home), PYTHONPATH=str(install), XDG_CACHE_HOME=str(home / ".cache"))
    try:
        run_probe(env, tmp_path, read_only=install)
        second = run_probe(env, tmp_path, read_only=install)
        assert second["hits"] >= 1 and second["misses"] == 0
        assert not list(install.rglob("*.nbi")), "nothing written into the install"
        assert second["file"].startswith(str(home / ".cache" / "btcore" / "kernels"))
        assert list(home.rglob("*.nbi")), "cache written under the user's home"
    finally:
        for path in [install, *install.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
