"""btcore's plug-in folders install as ``btcore.executors`` / ``btcore.strategies``:
a user's own top-level ``strategies`` or ``executors`` package must not clash."""
import subprocess
import sys
import textwrap


def test_import_beside_a_users_own_strategies_package(tmp_path):
    for name in ("strategies", "executors"):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(f"OWNER = 'user {name}'\n")
    script = textwrap.dedent("""
        import strategies, executors
        import btcore
        import btcore.strategies as bt_strategies
        from btcore.executors import SerialExecutor
        assert strategies.OWNER == "user strategies", strategies.__file__
        assert executors.OWNER == "user executors", executors.__file__
        assert bt_strategies.get("mean_reversion").name == "mean_reversion"
        assert SerialExecutor.name == "serial"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
