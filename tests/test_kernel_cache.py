"""Numba's on-disk cache: hits in a fresh process, keyed on the kernel sources,
and usable from a read-only install (falls back to a user cache directory)."""
import json
import os
import pathlib
import shlex
import shutil
import stat
import subprocess
import sys


from btcore import kernel_cache

REPO = pathlib.Path(__file__).resolve().parent.parent
PROBE = """
import json, time
started = time.perf_counter()
from btcore import run_sweep, MarketData
from btcore.strategies import mean_reversion
data = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-12-31", seed=1)
run_sweep({"lookback_period": [5], "entry_threshold": [1.0], "exit_threshold": [0.5],
           "stop_loss_z": [3.0]}, data=data, progress=False)
print(json.dumps({"hits": sum(mean_reversion.batch_nb.stats.cache_hits.values()),
                  "misses": sum(mean_reversion.batch_nb.stats.cache_misses.values()),
                  "seconds": time.perf_counter() - started}))
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


def test_index_key_includes_kernel_digest(monkeypatch):
    from numba.core.registry import cpu_target

    from btcore import MarketData, run_sweep
    from btcore.strategies import mean_reversion
    data = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-06-30", seed=1)
    run_sweep({"lookback_period": [5], "entry_threshold": [1.0], "exit_threshold": [0.5],
               "stop_loss_z": [3.0]}, data=data, progress=False)
    cache = mean_reversion.batch_nb._cache
    assert isinstance(cache, kernel_cache.KernelCache)
    signature = next(iter(mean_reversion.batch_nb.signatures))
    codegen = cpu_target.target_context.codegen()
    key = cache._index_key(signature, codegen)
    assert kernel_cache.KERNEL_DIGEST in key
    monkeypatch.setattr(kernel_cache, "KERNEL_DIGEST", "edited kernel")
    assert cache._index_key(signature, codegen) != key


def test_fresh_process_loads_kernel_from_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    first = run_probe(env, REPO)
    second = run_probe(env, REPO)
    assert first["misses"] >= 1
    assert second["hits"] >= 1 and second["misses"] == 0
    assert second["seconds"] < first["seconds"]


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
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(HOME=str(home), PYTHONPATH=str(install), XDG_CACHE_HOME=str(home / ".cache"))
    try:
        run_probe(env, tmp_path, read_only=install)
        second = run_probe(env, tmp_path, read_only=install)
        assert second["hits"] >= 1
        assert not list(install.rglob("*.nbi")), "nothing written into the install"
        assert list(home.rglob("*.nbi")), "cache written under the user's home"
    finally:
        for path in [install, *install.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
