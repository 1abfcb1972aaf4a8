"""btcore's plug-in folders install as ``btcore.executors`` / ``btcore.strategies``:
a user's own top-level ``strategies`` or ``executors`` package must not clash."""
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # fresh interpreters (and a pip wheel build)


def test_import_beside_a_users_own_strategies_package(tmp_path):
    for name in ("strategies", "executors"):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(f"OWNER = 'user {name}'\n")
    script = textwrap.dedent("""
        import importlib
        # the user's own top-level packages (not btcore's)
        user_strategies = importlib.import_module("strategies")
        user_executors = importlib.import_module("executors")
        import btcore
        import btcore.strategies as bt_strategies
        from btcore.executors import SerialExecutor
        assert user_strategies.OWNER == "user strategies", user_strategies.__file__
        assert user_executors.OWNER == "user executors", user_executors.__file__
        assert bt_strategies.get("mean_reversion").name == "mean_reversion"
        assert SerialExecutor.name == "serial"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_regular_install_has_the_plug_in_packages_inside_btcore(tmp_path):
    """Build a wheel and install it (no editable finder): the plug-in folders
    land as btcore/executors and btcore/strategies, and a sweep runs from it."""
    import pathlib
    repo = pathlib.Path(__file__).resolve().parent.parent
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(wheels), str(repo)], check=True, capture_output=True,
                   timeout=300)
    [wheel] = wheels.glob("btcore-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    assert (target / "btcore" / "strategies" / "mean_reversion.py").is_file()
    assert (target / "btcore" / "executors" / "ray_executor.py").is_file()
    assert not (target / "strategies").exists() and not (target / "executors").exists()
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        import btcore
        assert btcore.__file__.startswith(sys.argv[1]), btcore.__file__
        from btcore import run_sweep, MarketData
        from btcore.executors import SerialExecutor
        data = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-12-31", seed=1)
        table = run_sweep({"lookback_period": [5], "entry_threshold": [1.0],
                           "exit_threshold": [0.5], "stop_loss_z": [3.0]}, data=data,
                          executor=SerialExecutor(), progress=False).table
        print(len(table))
    """)
    # run outside the repository, with the editable install's path hooks out of the way
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-S", "-c",
                           "import site, sys; site.main(); "
                           "sys.meta_path[:] = [f for f in sys.meta_path "
                           "if 'editable' not in type(f).__module__.lower()]; "
                           "sys.path[:] = [p for p in sys.path if '__editable__' not in p]; "
                           "sys.argv = ['-', sys.argv[1]]; exec(sys.stdin.read())",
                           str(target)], input=script, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1"
