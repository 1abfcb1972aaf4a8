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

import pytest

from btcore.kernels import binding, cache_dir, code_key

REPO = pathlib.Path(__file__).resolve().parent.parent
PROBE = """
import json, time
started = time.perf_counter()
from btcore import run_sweep, MarketData
from btcore.kernels.binding import kernel_ref, load_kernel
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


@pytest.mark.slow  # fresh interpreters that compile kernels
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
    kinds = {"single": spec, "portfolio": spec, "cross_sectional": None}
    names = {kind: binding.kernel_ref(owner, kind).module_name
             for kind, owner in kinds.items()}
    assert len(set(names.values())) == 3
    spec._cache.pop("kernel_ref")
    spec._cache.pop("portfolio_kernel_ref")
    monkeypatch.setattr(binding, "_REFS", {})
    monkeypatch.setattr(code_key, "BTCORE_DIGEST", "an edited kernel")
    try:
        for kind, owner in kinds.items():
            assert binding.kernel_ref(owner, kind).module_name != names[kind], kind
    finally:
        spec._cache.pop("kernel_ref")
        spec._cache.pop("portfolio_kernel_ref")


def test_every_kernel_kind_has_one_generated_module():
    """One generator writes every kind's module: a ``cache=True`` wrapper calling the
    kernel, named ``<kind prefix>_..._<digest>``."""
    from btcore.strategies import mean_reversion
    for kind, info in binding.KINDS.items():
        owner = mean_reversion.SPEC if info.strategy else None
        text, _ = binding.generate_source(owner, kind)
        ref = binding.kernel_ref(owner, kind)
        assert ref.source == text and ref.module_name.startswith(info.prefix + "_")
        assert f"from {info.module} import {info.kernel} as _{info.kernel}" in text
        assert f"@_njit(cache=True, nogil=True, error_model='numpy')\ndef {info.wrapper}(" \
            in text
        assert text.count("cache=True") == 1


def test_the_cross_sectional_sweep_runs_its_generated_kernel_module(tmp_path, monkeypatch):
    """The cross-sectional kernel is not cached on its own file (Numba would watch
    only that file, not accounting.py): its generated module is."""
    from numba.core.caching import NullCache

    from btcore import MarketData
    from btcore.kernels.cross_sectional import cross_sectional_kernel_nb
    from btcore.workflows.cross_sectional import prepare_cross_sectional, store_view
    monkeypatch.setenv("BTCORE_KERNEL_DIR", str(tmp_path / "kernels"))
    assert isinstance(cross_sectional_kernel_nb._cache, NullCache)
    data = MarketData.synthetic(n_assets=4, start="2020-01-01", end="2020-06-30", seed=1)
    job = prepare_cross_sectional({"top_k": [1]}, data, direction="reversal",
                                  long_only=False, start=None, end=None,
                                  initial_capital=1e6, cost_bps=5.0, periods_per_year=None,
                                  assets=None)
    ref = job.payload()["kernel"]
    assert ref == binding.kernel_ref(None, "cross_sectional")
    assert ref.module_name.startswith("btcore_cross_sectional_")
    assert store_view(job).job.kernel.module_name == ref.module_name  # the store's key
    wrapper = binding.load_kernel(ref).cross_sectional_batch_nb
    assert wrapper._cache.cache_path  # cached on disk, under the digest-named module
    assert pathlib.Path(wrapper.py_func.__code__.co_filename).stem == ref.module_name


CS_NAME_PROBE = """
import json, sys
import btcore
from btcore import MarketData
from btcore.workflows.cross_sectional import prepare_cross_sectional
assert btcore.__file__.startswith(sys.argv[1]), btcore.__file__
data = MarketData.synthetic(n_assets=4, start="2020-01-01", end="2020-06-30", seed=1)
job = prepare_cross_sectional({"top_k": [1]}, data, direction="reversal", long_only=False,
                              start=None, end=None, initial_capital=1e6, cost_bps=5.0,
                              periods_per_year=None, assets=None)
print(json.dumps({"module": job.payload()["kernel"].module_name}))
"""


@pytest.mark.slow  # fresh interpreters that compile kernels
def test_cross_sectional_module_name_follows_the_accounting_file(tmp_path):
    """Editing kernels/accounting.py (or the cross-sectional kernel) names a new
    cross-sectional kernel module, so no stale cached kernel is ever loaded: the
    name is computed by a fresh interpreter from an edited copy of btcore."""
    source = pathlib.Path(binding.__file__).resolve().parent.parent
    copy = tmp_path / "src" / "btcore"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = dict(os.environ, PYTHONPATH=str(copy.parent),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    env.pop("BTCORE_KERNEL_DIR", None)

    def name():
        done = subprocess.run([sys.executable, "-c", CS_NAME_PROBE, str(copy)], env=env,
                              cwd=tmp_path, check=True, capture_output=True, text=True,
                              timeout=300)
        return json.loads(done.stdout.strip().splitlines()[-1])["module"]

    original = name()
    assert original == binding.kernel_ref(None, "cross_sectional").module_name  # same bytes
    for edited in ("kernels/accounting.py", "kernels/cross_sectional.py"):
        path = copy / edited
        saved = path.read_bytes()
        path.write_bytes(saved + b"\n# an edit that changes no code\n")
        assert name() != original, edited
        path.write_bytes(saved)
    assert name() == original


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
from btcore.kernels.binding import kernel_ref, load_kernel
data = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-12-31", seed=1)
table = run_sweep({"window": [3, 10]}, SPEC, data, progress=False).table
kernel = load_kernel(kernel_ref(SPEC)).batch_nb
print(json.dumps({"misses": sum(kernel.stats.cache_misses.values()),
                  "module": kernel_ref(SPEC).module_name,
                  "trades": table["num_trades"].tolist()}))
"""


@pytest.mark.slow  # fresh interpreters that compile kernels
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


@pytest.mark.slow  # fresh interpreters that compile kernels
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


# ------------------------------------------- globals the compiled code freezes
CONSTANTS_MODULE = textwrap.dedent("""
    THRESH = {thresh}
""")
THRESH_STRATEGY_MODULE = textwrap.dedent("""
    from numba import njit
    from btcore.strategies import Indicator, Param, StrategySpec
    from thresh_strategies.constants import THRESH

    @njit(cache=True)
    def lagged_close_nb(close, window, out):
        for t in range(window, close.shape[0]):
            out[t] = close[t - window]

    @njit(cache=True)
    def breaks_down_nb(price, reference):  # called, not inlined: in numba's own cache
        return price < reference * (1.0 - THRESH)

    @njit(cache=True, inline="always")
    def breakout_signal_nb(values, price, params, options, position, state):
        if price > values[0] * (1.0 + THRESH):
            return 1, state
        if breaks_down_nb(price, values[0]):
            return -1, state
        return 0, state

    SPEC = StrategySpec("thresh_breakout", (Param("window", int, 5, low=1, is_window=True),),
                        (Indicator(lagged_close_nb, "window"),), breakout_signal_nb)
""")
THRESH_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from thresh_strategies.strategy import SPEC
from btcore import MarketData, run_sweep
from btcore.kernels.binding import kernel_ref, load_kernel
data = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-12-31", seed=1)
out = sys.argv[2] if len(sys.argv) > 2 else None
try:
    table = run_sweep({"window": [3, 10]}, SPEC, data, out=out, progress=False).table
except ValueError as err:
    print(json.dumps({"error": str(err)}))
    raise SystemExit(0)
kernel = load_kernel(kernel_ref(SPEC)).batch_nb
print(json.dumps({"misses": sum(kernel.stats.cache_misses.values()),
                  "module": kernel_ref(SPEC).module_name,
                  "table": table.to_dict("list")}))
"""


@pytest.mark.slow  # fresh interpreters that compile kernels
def test_editing_an_imported_constant_recompiles_and_refuses_resume(tmp_path):
    """Numba freezes globals at compile time: a constant the rule imports from
    another module is part of the kernel key (and of numba's cache key of the
    strategy's own cache=True helpers), so a fresh process after an edit computes
    with the new value, exactly as a cold compile does, and a results directory of
    the old code is not resumed."""
    package = tmp_path / "src" / "thresh_strategies"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "strategy.py").write_text(THRESH_STRATEGY_MODULE)
    constants = package / "constants.py"
    store = tmp_path / "store"

    def probe(numba_cache, *out):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / numba_cache))
        env.pop("BTCORE_KERNEL_DIR", None)
        done = subprocess.run([sys.executable, "-c", THRESH_PROBE, str(package.parent), *out],
                              env=env, cwd=tmp_path, check=True, capture_output=True,
                              text=True, timeout=300)
        return json.loads(done.stdout.strip().splitlines()[-1])

    constants.write_text(CONSTANTS_MODULE.format(thresh=0.0))
    first = probe("numba", str(store))
    again = probe("numba")
    assert first["misses"] >= 1
    assert again["misses"] == 0 and again["module"] == first["module"]  # deterministic key
    assert again["table"] == first["table"]

    constants.write_text(CONSTANTS_MODULE.format(thresh=0.02))  # only the constant changes
    edited = probe("numba")
    scratch = probe("numba-cold")  # compiled from nothing with the new value
    assert edited["module"] != first["module"]
    assert edited["misses"] >= 1
    assert edited["table"] != first["table"]
    assert edited["table"] == scratch["table"]  # bit for bit (floats round-trip JSON)
    refused = probe("numba", str(store))
    assert "strategy code changed" in refused.get("error", ""), refused


def test_globals_digest_covers_every_value_a_function_reads():
    import enum
    import types

    import numpy as np
    from numba import njit

    class Side(enum.IntEnum):
        LONG = 1

    constants = types.ModuleType("digest_constants")
    constants.LIMIT, constants.SCALE = 2.0, 1.0
    namespace = {"np": np, "constants": constants, "Side": Side, "THRESH": 0.5,
                 "NAME": "a", "FLAG": True, "PAIR": (1, 2.0), "WEIGHTS": np.zeros(3),
                 "MEMBER": Side.LONG, "UNUSED": 1}
    exec(textwrap.dedent("""
        def helper(x):
            return x * THRESH + constants.LIMIT + np.pi

        def rule(x, scale=1.0):
            return helper(x) + len(NAME) + FLAG + PAIR[1] + WEIGHTS[0] + MEMBER + \\
                Side.LONG + scale + constants.SCALE
    """), namespace)
    helper_nb = njit(namespace["helper"])
    namespace["helper"] = helper_nb  # rule calls a dispatcher, whose globals count too

    def key():
        return code_key.globals_digest([namespace["rule"]])

    base = key()
    assert key() == base  # deterministic
    edits = [("THRESH", 0.25), ("NAME", "b"), ("FLAG", False), ("PAIR", (1, 3.0)),
             ("WEIGHTS", np.array([0.0, 0.0, 1.0])),  # bytes
             ("WEIGHTS", np.zeros(3, dtype=np.int64)),  # dtype (same bytes)
             ("WEIGHTS", np.zeros((3, 1)))]  # shape (same bytes)
    for name, value in edits:
        saved, namespace[name] = namespace[name], value
        assert key() != base, name
        namespace[name] = saved
        assert key() == base
    for attribute in ("LIMIT", "SCALE"):  # module attributes the helper, the rule read
        saved = getattr(constants, attribute)
        setattr(constants, attribute, saved + 1.0)
        assert key() != base, attribute
        setattr(constants, attribute, saved)
    assert key() == base
    constants.OTHER = 9  # one it does not read
    namespace["UNUSED"] = 2
    assert key() == base

    class Side2(enum.IntEnum):
        LONG = 2
    Side2.__qualname__ = Side.__qualname__
    namespace["Side"], namespace["MEMBER"] = Side2, Side2.LONG
    assert key() != base
    namespace["Side"], namespace["MEMBER"] = Side, Side.LONG
    namespace["rule"].__defaults__ = (2.0,)
    assert key() != base
    namespace["rule"].__defaults__ = (1.0,)

    def closure(limit):
        @njit
        def inner(x):
            return x < limit
        return inner
    assert code_key.globals_digest([closure(1.0)]) != code_key.globals_digest([closure(2.0)])
    assert code_key.globals_digest([closure(1.0)]) == code_key.globals_digest([closure(1.0)])


# --------------------------------------------- who may write the kernel cache
TRIVIAL_KERNEL = textwrap.dedent("""
    from numba import njit as _njit

    @_njit(cache=True)
    def batch_nb(x):
        return x + 1
""")


def trivial_ref(tag: str) -> "binding.KernelRef":
    import uuid
    name = f"btcore_kernel_test_{tag}_{uuid.uuid4().hex[:12]}"
    return binding.KernelRef("test", name, TRIVIAL_KERNEL, ())


@pytest.fixture
def private_caches(tmp_path, monkeypatch):
    """Kernel modules in tmp_path/kernels, numba's cache in tmp_path/numba."""
    from numba.core import config
    monkeypatch.setenv("BTCORE_KERNEL_DIR", str(tmp_path / "kernels"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path / "numba"))
    return tmp_path


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cache_directories_are_created_0700_under_umask_000(private_caches, monkeypatch):
    kernels = private_caches / "deep" / "er" / "kernels"
    monkeypatch.setenv("BTCORE_KERNEL_DIR", str(kernels))
    previous = os.umask(0)
    try:
        ref = trivial_ref("umask")
        module = binding.load_kernel(ref)
        assert module.batch_nb(1) == 2  # compiled and saved in numba's cache
    finally:
        os.umask(previous)
    numba_dir = pathlib.Path(module.batch_nb._cache.cache_path)
    assert numba_dir.parent == private_caches / "numba"
    for directory in (private_caches / "deep", private_caches / "deep" / "er", kernels,
                      kernels / "__pycache__", private_caches / "numba", numba_dir):
        assert mode(directory) == 0o700, (directory, oct(mode(directory)))
    assert list(numba_dir.glob(f"{ref.module_name}*.nbi")), "numba's index is in it"
    assert mode(kernels / f"{ref.module_name}.py") & 0o077 == 0


def test_a_kernel_dir_writable_by_group_or_others_is_refused(private_caches, monkeypatch):
    for permissions in (0o770, 0o707, 0o777):
        directory = private_caches / f"shared-{permissions:o}"
        directory.mkdir()
        directory.chmod(permissions)
        monkeypatch.setenv("BTCORE_KERNEL_DIR", str(directory))
        with pytest.raises(cache_dir.UnsafeKernelDirError,
                           match=f"{directory}.*writable by group or others.*chmod 700"):
            cache_dir.kernel_dir()
        with pytest.raises(cache_dir.UnsafeKernelDirError):
            binding.load_kernel(trivial_ref("shared"))


def test_a_numba_cache_dir_writable_by_others_is_refused(private_caches):
    ref = trivial_ref("numba_shared")
    numba_dir = cache_dir.numba_cache_dir(cache_dir.kernel_dir() / f"{ref.module_name}.py")
    numba_dir.mkdir(parents=True)
    numba_dir.chmod(0o777)
    with pytest.raises(cache_dir.UnsafeKernelDirError, match=f"{numba_dir}.*chmod 700"):
        binding.load_kernel(ref)
    assert ref.module_name not in sys.modules


needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="giving a directory to another user needs root")


@needs_root
def test_a_kernel_dir_owned_by_another_user_is_refused(private_caches, monkeypatch):
    foreign = private_caches / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    monkeypatch.setenv("BTCORE_KERNEL_DIR", str(foreign))
    with pytest.raises(cache_dir.UnsafeKernelDirError,
                       match=f"{foreign}.*owned by uid 65534.*BTCORE_KERNEL_DIR to a "
                             "directory you own with mode 0700"):
        cache_dir.kernel_dir()


@needs_root
def test_unsafe_fallback_kernel_dirs_are_skipped_then_refused(private_caches, monkeypatch):
    import tempfile
    monkeypatch.delenv("BTCORE_KERNEL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(private_caches / "xdg"))
    monkeypatch.setattr(tempfile, "tempdir", str(private_caches / "tmp"))
    planted = [private_caches / "numba" / "btcore_kernels",
               private_caches / "xdg" / "btcore" / "kernels",
               private_caches / "tmp" / f"btcore-kernels-{os.getuid()}"]
    for directory in planted:  # pre-created by another user
        directory.mkdir(parents=True)
        os.chown(directory, 65534, 65534)
    with pytest.raises(cache_dir.UnsafeKernelDirError) as refused:
        cache_dir.kernel_dir()
    for directory in planted:
        assert str(directory) in str(refused.value)
    assert "BTCORE_KERNEL_DIR to a directory you own with mode 0700" in str(refused.value)
    os.chown(planted[1], os.getuid(), os.getgid())
    planted[1].chmod(0o700)
    assert cache_dir.kernel_dir() == planted[1]  # the first safe one


def test_a_planted_symlink_is_replaced_not_followed(private_caches):
    ref = trivial_ref("symlink")
    kernels = cache_dir.kernel_dir()
    victims = {}
    # the module's path and the temporary name btcore used to write it at
    for name in (f"{ref.module_name}.py", f"{ref.module_name}.{os.getpid()}.tmp"):
        victim = private_caches / f"victim-{len(victims)}.txt"
        victim.write_text("precious")
        (kernels / name).symlink_to(victim)
        victims[victim] = kernels / name
    module = binding.load_kernel(ref)
    assert module.batch_nb(2) == 3
    for victim in victims:
        assert victim.read_text() == "precious"
    path = kernels / f"{ref.module_name}.py"
    assert not path.is_symlink() and path.read_text() == ref.source
    assert not list(kernels.glob("*.tmp")) or \
        all(p.is_symlink() for p in kernels.glob("*.tmp"))  # no temporary left behind
