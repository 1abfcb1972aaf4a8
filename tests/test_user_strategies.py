"""A strategy written from docs/strategies.md, in its own module and in ``__main__``,
gives the same bits on every executor, compiled or as plain Python (debug=True),
and equals the reference accounting driven by its own rule."""
import hashlib
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from btcore import MarketData, backtest, run_sweep
from conftest import assert_tables_identical
from executor_fixtures import EXECUTOR_NAMES
from reference import METRIC_KEYS, simulate_reference, spec_rule
from user_strategy import crossover

GRID = {"fast_window": [3, 5, 8], "slow_window": [10, 20], "band": [0.0, 0.01]}
HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def data():
    return MarketData.synthetic(n_assets=2, start="2018-01-01", end="2020-12-31", seed=3)


@pytest.fixture(scope="module")
def serial_table(data):
    return run_sweep(GRID, crossover.SPEC, data, progress=False).table


def table_digest(table) -> str:
    return hashlib.sha256(table.to_csv(float_format="%.17g").encode()).hexdigest()


def test_module_strategy_is_identical_on_every_executor(all_executors, data, serial_table):
    for name in EXECUTOR_NAMES[1:]:
        table = run_sweep(GRID, crossover.SPEC, data, executor=all_executors[name],
                          batch_size=3, progress=False).table
        assert_tables_identical(table, serial_table)


def test_debug_is_identical_to_compiled(data, serial_table):
    table = run_sweep(GRID, crossover.SPEC, data, debug=True, progress=False).table
    assert_tables_identical(table, serial_table)


def test_by_name_and_by_module_path(data, serial_table):
    assert_tables_identical(run_sweep(GRID, "test_sma_crossover", data, progress=False).table,
                            serial_table)
    table = run_sweep(GRID, "user_strategy.crossover:SPEC", data, progress=False).table
    assert_tables_identical(table, serial_table)


def test_crossover_matches_the_reference_accounting(data, serial_table):
    """The compiled kernel's accounting equals the reference's, for this rule."""
    options = crossover.SPEC.option_values({})
    for row in serial_table.head(8).itertuples(index=False):
        column = data.symbols.index(row.asset)
        close = data.close[:, column]
        params = np.array([row.fast_window, row.slow_window, row.band], dtype=float)
        expected = simulate_reference(close, 0, len(close) - 1,
                                      spec_rule(crossover.SPEC, close, params, options))
        for name in METRIC_KEYS:
            got, want = getattr(row, name), expected[name]
            assert got == want or math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) or \
                (math.isnan(got) and math.isnan(want)), (name, got, want)


def test_each_unique_window_is_computed_once(data, monkeypatch):
    """A 4 x 4 fast x slow grid computes 8 moving averages, not 16 pairs."""
    import btcore.engine as engine
    seen = []
    original = engine.run_task

    def spy(shared, task, record=None):
        seen.append(shared["sets"].series[np.unique(shared["sets"].set_series(task.start,
                                                                             task.stop))])
        return original(shared, task, record)

    monkeypatch.setattr("btcore.engine.tasks.run_task", spy)
    run_sweep({"fast_window": [2, 3, 4, 5], "slow_window": [10, 11, 12, 13], "band": [0.0]},
              crossover.SPEC, data, progress=False, batch_size=16)
    series = seen[-1]  # the one task of the sweep (earlier calls calibrate)
    assert len(series) == 8
    assert sorted(series[:, 1]) == [2, 3, 4, 5, 10, 11, 12, 13]


def test_shared_windows_are_computed_once(data, monkeypatch):
    """fast = slow = 10 uses one series (same function, same argument)."""
    import btcore.engine as engine
    series, set_series = engine.plan_series(crossover.SPEC, np.array([[10.0, 10.0, 0.0],
                                                                      [5.0, 10.0, 0.0]]),
                                            np.array([1.0]))
    assert len(series) == 2
    assert set_series.tolist() == [[1, 1], [0, 1]]


def test_replaying_a_row_gives_its_metrics_and_trade_pnl(data, serial_table):
    sweep = run_sweep(GRID, crossover.SPEC, data, progress=False)
    for position in (0, len(sweep.table) - 1):
        row = sweep.table.iloc[position]
        replay = sweep.backtest(position, data=data)
        for name in METRIC_KEYS:
            assert replay.metrics[name] == row[name] or (
                math.isnan(replay.metrics[name]) and math.isnan(row[name])), name
        assert replay.metrics["ruined"] == row["ruined"]
        # crossovers reverse: every closed trip still has a P&L, and they add up
        closed = replay.trades.dropna(subset=["exit_time"])
        assert closed["pnl"].notna().all() and len(closed) > 0
        assert (closed["pnl"] > 0).mean() == row["win_rate"]
        assert backtest(row, crossover.SPEC, data).metrics == replay.metrics


# the module strategy's own source, run as a script: its functions live in __main__
MAIN_SCRIPT = (HERE / "user_strategy" / "crossover.py").read_text().replace(
    'name="test_sma_crossover"', 'name="main_sma_crossover"').replace(
    "SPEC = register(StrategySpec(", "SPEC = (StrategySpec(").replace("), clobber=True)", "))")
MAIN_SCRIPT += textwrap.dedent('''
    import hashlib
    from btcore import MarketData, run_sweep

    if __name__ == "__main__":
        from btcore.executors import DaskExecutor, JoblibExecutor, RayExecutor
        data = MarketData.synthetic(n_assets=2, start="2018-01-01", end="2020-12-31", seed=3)
        grid = {"fast_window": [3, 5, 8], "slow_window": [10, 20], "band": [0.0, 0.01]}
        executors = {"serial": "serial", "threads": "threads",
                     "joblib": JoblibExecutor(n_jobs=2),
                     "ray": RayExecutor(num_cpus=2, object_store_memory=100_000_000),
                     "dask": DaskExecutor(n_workers=2)}
        for name, executor in executors.items():
            table = run_sweep(grid, SPEC, data, executor=executor, batch_size=3,
                              progress=False).table
            print(name, hashlib.sha256(table.to_csv(float_format="%.17g").encode()).hexdigest())
            if not isinstance(executor, str):
                executor.close()
''')


@pytest.mark.cluster
def test_main_strategy_is_identical_on_every_executor(tmp_path, serial_table):
    """Defined in a script's ``__main__``: every executor runs it (workers get its
    source, not the driver's ``__main__``) and gives the module strategy's bits."""
    script = tmp_path / "my_strategy_script.py"
    script.write_text(MAIN_SCRIPT)
    env = dict(os.environ, PYTHONPATH="")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    digests = dict(line.split() for line in done.stdout.splitlines() if line.strip())
    assert list(digests) == list(EXECUTOR_NAMES)
    assert set(digests.values()) == {table_digest(serial_table)}


SYS_PATH_SCRIPT = textwrap.dedent('''
    import sys
    sys.path.insert(0, {folder!r})
    from user_strategy.crossover import SPEC
    from btcore import MarketData, run_sweep
    from btcore.executors import RayExecutor
    data = MarketData.synthetic(n_assets=2, start="2018-01-01", end="2020-12-31", seed=3)
    grid = {{"fast_window": [3, 5], "slow_window": [10], "band": [0.0]}}
    with RayExecutor(num_cpus=2, object_store_memory=100_000_000) as ray_executor:
        ray_table = run_sweep(grid, SPEC, data, executor=ray_executor, batch_size=1,
                              progress=False).table
    assert ray_table.equals(run_sweep(grid, SPEC, data, progress=False).table)
    print("ok")
''')


@pytest.mark.cluster
def test_a_module_found_through_sys_path_insert_reaches_ray_workers(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(SYS_PATH_SCRIPT.format(folder=str(HERE)))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=""))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


@pytest.mark.cluster
def test_dask_uploads_files_to_its_workers(tmp_path):
    """``upload_files`` ships modules a remote cluster would not have."""
    from btcore.executors import DaskExecutor
    module = tmp_path / "uploaded_helper_mod.py"
    module.write_text("ANSWER = 42\n")
    with pytest.raises(ValueError, match="is not a file"):
        DaskExecutor(upload_files=[str(tmp_path / "missing.py")])
    with DaskExecutor(n_workers=1, upload_files=[str(module)]) as executor:
        answers = executor._client.run(lambda: __import__("uploaded_helper_mod").ANSWER)
    assert list(answers.values()) == [42]
