"""Ranked tables, keep=N, results streamed to a resumable Parquet store, memory check."""
import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

import btcore.results as results
import btcore.store.writer as writer
from btcore import Grid, open_results, run_sweep
from btcore.store import StoreIntegrityWarning

GRID = {"lookback_period": [10, 20, 30, 40, 50], "entry_threshold": [1.5, 2.0, 2.5],
        "exit_threshold": [0.0, 0.5], "stop_loss_z": [3.0, 4.0]}
WINDOW = dict(assets=["AAPL", "MSFT", "JPM"], start="2016-01-01", end="2020-12-31",
              progress=False)


@pytest.fixture(scope="module")
def full():
    return run_sweep(GRID, **WINDOW)


def ranked_by_pandas(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The table ordered by ``metric`` with pandas: best first, NaN last, ties in
    grid order then asset order (a stable sort of the grid-ordered rows)."""
    params = list(GRID)
    assets = {a: k for k, a in enumerate(WINDOW["assets"])}
    grid = Grid(GRID).to_frame().reset_index().rename(columns={"index": "_set"})
    keyed = table.merge(grid, on=params)
    keyed["_key"] = keyed["_set"] * len(assets) + keyed["asset"].map(assets)
    keyed = keyed.sort_values("_key")
    keyed = keyed.sort_values(metric, ascending=metric == "annual_volatility",
                              na_position="last", kind="stable")
    return keyed.drop(columns=["_set", "_key"]).reset_index(drop=True)


@pytest.mark.parametrize("metric", ["sharpe_ratio", "max_drawdown", "annual_volatility",
                                    "win_rate"])
def test_sort_by_ranks_best_first_nan_last_ties_in_grid_order(full, metric):
    table = run_sweep(GRID, sort_by=metric, **WINDOW).table
    pd.testing.assert_frame_equal(table, ranked_by_pandas(full.table, metric))


@pytest.mark.parametrize("keep", [1, 7, 50, 1000])
def test_keep_holds_exactly_the_head_of_the_full_table(full, keep):
    kept = run_sweep(GRID, keep=keep, batch_size=4, **WINDOW)
    pd.testing.assert_frame_equal(kept.table, full.table.head(keep))


def test_out_streams_every_row_and_reopens(full, tmp_path):
    result = run_sweep(GRID, out=tmp_path / "run", batch_size=8, **WINDOW)
    pd.testing.assert_frame_equal(result.table, full.table)
    assert result.stats["tasks_computed"] == result.stats["batches"] == 3 * 8
    stored = open_results(tmp_path / "run")
    assert stored.complete and len(stored) == len(full.table) == 180
    assert stored.settings["assets"] == WINDOW["assets"]
    pd.testing.assert_frame_equal(stored.to_pandas(), full.table)
    frame = stored.dataset.to_table().to_pandas()  # what pandas, polars, duckdb read
    assert sorted(frame["set"].unique()) == list(range(60))
    again = run_sweep(GRID, out=tmp_path / "run", **WINDOW)  # the stored plan's batch size
    assert again.stats["tasks_resumed"] == 24 and again.stats["tasks_computed"] == 0
    pd.testing.assert_frame_equal(again.table, full.table)


def test_keep_with_out_writes_everything_but_holds_n(full, tmp_path):
    result = run_sweep(GRID, out=tmp_path / "run", keep=5, sort_by="cagr", **WINDOW)
    pd.testing.assert_frame_equal(result.table, ranked_by_pandas(full.table, "cagr").head(5))
    pd.testing.assert_frame_equal(open_results(tmp_path / "run").to_pandas(),
                                  ranked_by_pandas(full.table, "cagr"))


KILLED_RUN = """
import os, signal, sys
from btcore import run_sweep
grid = {grid!r}
done = []
def die(finished, total, rate):
    done.append(finished)
    if len(done) == {after}:
        os.kill(os.getpid(), signal.SIGKILL)
run_sweep(grid, out=sys.argv[1], batch_size=4, on_progress=die, **{window!r})
"""


@pytest.mark.slow  # a fresh interpreter
def test_a_sigkilled_sweep_resumes_to_the_same_table(full, tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(KILLED_RUN.format(grid=GRID, after=6, window=WINDOW))
    out = tmp_path / "run"
    process = subprocess.run([sys.executable, str(script), str(out)], capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert not open_results(out).complete
    assert len(list(out.glob("part-*.parquet"))) == 6
    resumed = run_sweep(GRID, out=out, executor="threads", **WINDOW)
    assert resumed.stats["tasks_resumed"] == 6
    assert resumed.stats["tasks_computed"] == resumed.stats["batches"] - 6 > 0
    pd.testing.assert_frame_equal(resumed.table, full.table)
    assert open_results(out).complete


def test_ctrl_c_keeps_finished_tasks(full, tmp_path):
    calls = []

    def interrupt(finished, total, rate):
        calls.append(finished)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(GRID, out=tmp_path / "run", batch_size=10, on_progress=interrupt, **WINDOW)
    resumed = run_sweep(GRID, out=tmp_path / "run", **WINDOW)
    assert resumed.stats["tasks_resumed"] == 3
    pd.testing.assert_frame_equal(resumed.table, full.table)


def test_a_different_sweep_in_out_is_refused(tmp_path):
    out = tmp_path / "run"
    run_sweep(GRID, out=out, **WINDOW)
    changed = [({"grid": {**GRID, "stop_loss_z": [3.0]}}, "grid"),
               ({"cost_bps": 10.0}, "settings"),
               ({"assets": ["AAPL", "MSFT"]}, "data"),
               ({"allow_short": False}, "strategy"),
               ({"batch_size": 3}, "batch_size")]
    for change, what in changed:
        kwargs = {**WINDOW, **change}
        grid = kwargs.pop("grid", GRID)
        with pytest.raises(ValueError, match=f"different run.*{what}.*overwrite=True"):
            run_sweep(grid, out=out, **kwargs)
    replaced = run_sweep({**GRID, "stop_loss_z": [3.0]}, out=out, overwrite=True, **WINDOW)
    assert replaced.stats["tasks_resumed"] == 0
    assert len(open_results(out)) == len(replaced.table) == 90


def test_corrupt_or_foreign_outputs_are_clear_errors(tmp_path):
    out = tmp_path / "run"
    run_sweep(GRID, out=out, batch_size=20, **WINDOW)
    part = sorted(out.glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"{part.name} does not match the SHA-256"):
        open_results(out)
    # a resume recomputes the damaged part, saying so
    with pytest.warns(StoreIntegrityWarning, match=f"{part.name} does not match"):
        assert run_sweep(GRID, out=out, **WINDOW).stats["tasks_computed"] == 1
    part.unlink()
    with pytest.raises(ValueError, match=f"{part.name} is missing"):
        open_results(out)
    with pytest.warns(StoreIntegrityWarning, match=f"{part.name} is missing"):
        assert run_sweep(GRID, out=out, **WINDOW).stats["tasks_computed"] == 1
    assert len(open_results(out)) == 180
    manifest = out / "_btcore.json"
    manifest.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable.*overwrite=True"):
        run_sweep(GRID, out=out, **WINDOW)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="did not write"):
        run_sweep(GRID, out=foreign, **WINDOW)
    assert (foreign / "cat.jpg").exists()
    a_file = tmp_path / "table.parquet"
    a_file.write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        run_sweep(GRID, out=a_file, **WINDOW)
    with pytest.raises(ValueError, match="no btcore results"):
        open_results(foreign)


def test_an_out_under_a_file_is_refused_before_work(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        run_sweep(GRID, out=tmp_path / "notes.txt" / "run", **WINDOW)


def test_an_unwritable_out_is_refused_before_work(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    # root may write anywhere, so the permission bits are checked through os.access
    real_access = os.access
    monkeypatch.setattr(writer.os, "access", lambda path, mode: False if
                        os.fspath(path) == os.fspath(locked) else real_access(path, mode))
    with pytest.raises(ValueError, match="not writable"):
        run_sweep(GRID, out=locked / "run", **WINDOW)
    assert list(locked.iterdir()) == []


def test_a_sweep_too_big_for_memory_is_refused_before_work(monkeypatch):
    billion = {"lookback_period": list(range(10, 110)), "entry_threshold": list(range(1, 101)),
               "exit_threshold": [k / 100 for k in range(100)],
               "stop_loss_z": list(range(2, 1002))}
    assert len(Grid(billion)) == 10 ** 9
    with pytest.raises(ValueError, match=r"GB.*keep=1000.*out="):
        run_sweep(billion, assets=["AAPL"], start="2020-01-01")
    monkeypatch.setattr(results, "available_memory", lambda: 24_000)
    with pytest.raises(ValueError, match="need about"):
        run_sweep(GRID, **WINDOW)
    assert len(run_sweep(GRID, keep=10, **WINDOW).table) == 10


def test_bad_output_arguments_are_refused(tmp_path):
    for kwargs, error, match in [
            ({"keep": 0}, ValueError, "keep must be a positive int"),
            ({"keep": 2.5}, ValueError, "keep must be a positive int"),
            ({"sort_by": "sharpe"}, ValueError, "not a metric"),
            ({"overwrite": "yes"}, TypeError, "overwrite must be"),
            ({"on_progress": 3}, TypeError, "on_progress must be a callable"),
            ({"out": 3}, TypeError, "out must be a directory path"),
            ({"out": tmp_path / "x", "blocks": 4}, ValueError, "blocks=.*out=")]:
        with pytest.raises(error, match=match):
            run_sweep(GRID, **{**WINDOW, **kwargs})
    assert not (tmp_path / "x").exists()


def test_on_progress_counts_every_backtest_once():
    calls = []
    result = run_sweep(GRID, batch_size=7, on_progress=lambda *a: calls.append(a), **WINDOW)
    done = [c[0] for c in calls]
    assert len(calls) == result.stats["batches"] and done == sorted(done)
    assert done[-1] == calls[-1][1] == 180 and all(c[2] > 0 for c in calls)


def test_stats_report_task_time_quantiles():
    stats = run_sweep(GRID, batch_size=7, **WINDOW).stats
    quantiles = stats["task_s"]
    assert 0 < quantiles["p50"] <= quantiles["p90"] <= quantiles["p99"] <= quantiles["max"]
    for straggler in stats["stragglers"]:
        assert straggler["seconds"] > 3 * quantiles["p50"]
        assert straggler["column"] in range(3)


def test_the_stored_plan_does_not_depend_on_timing(tmp_path, monkeypatch):
    import btcore.engine.plan as plan
    first = run_sweep(GRID, out=tmp_path / "a", **WINDOW).stats["batch_size"]
    monkeypatch.setattr(plan, "calibrate", lambda job, repeats=2: 1e3)  # a "slow" machine
    assert run_sweep(GRID, out=tmp_path / "b", **WINDOW).stats["batch_size"] == first
    manifest = json.loads((tmp_path / "b" / "_btcore.json").read_text())
    assert manifest["batch_size"] == first and manifest["complete"]


def test_deflated_sharpe_needs_every_trial():
    kept = run_sweep(GRID, keep=10, **{**WINDOW, "assets": ["AAPL"]})
    with pytest.raises(ValueError, match="kept only its best 10 rows"):
        kept.deflated_sharpe()
    assert kept.stats["keep"] == 10 and kept.stats["sort_by"] == "sharpe_ratio"


# --------------------------------------------- walk-forward and Monte Carlo stores
def test_walk_forward_resumes_from_its_stored_tasks(tmp_path):
    from btcore import walk_forward
    grid = {"lookback_period": [10, 20, 30], "entry_threshold": [1.5, 2.0]}
    kwargs = dict(n_splits=4, assets=["AAPL", "MSFT"], start="2014-01-01",
                  end="2021-12-31", progress=False, batch_size=2)
    fresh = walk_forward(grid, **kwargs)
    out = tmp_path / "wf"
    first = walk_forward(grid, out=out, **kwargs)
    pd.testing.assert_frame_equal(first.folds, fresh.folds)
    parts = sorted(out.glob("part-*.npy"))
    assert len(parts) == first.stats["tasks_computed"] == first.stats["batches"]
    for part in parts[::2]:  # as if the run had died before these tasks
        part.unlink()
    again = walk_forward(grid, out=out, **kwargs)
    assert again.stats["tasks_resumed"] == len(parts) - len(parts[::2])
    pd.testing.assert_frame_equal(again.folds, fresh.folds)
    pd.testing.assert_frame_equal(again.oos_equity, fresh.oos_equity)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "folds.parquet"), fresh.folds)
    # the objective only chooses among stored in-sample results: no recomputation
    by_cagr = walk_forward(grid, out=out, objective="cagr", **kwargs)
    assert by_cagr.stats["tasks_computed"] == 0
    pd.testing.assert_frame_equal(by_cagr.folds,
                                  walk_forward(grid, objective="cagr", **kwargs).folds)
    with pytest.raises(ValueError, match="different run.*settings"):
        walk_forward(grid, out=out, **{**kwargs, "n_splits": 3})
    with pytest.raises(ValueError, match="walk_forward results.*folds.parquet"):
        open_results(out)


def test_monte_carlo_resumes_and_refuses_another_seed(tmp_path):
    from btcore import monte_carlo
    params = {"lookback_period": 20, "entry_threshold": 2.0}
    kwargs = dict(n_paths=12, asset="AAPL", start="2015-01-01", progress=False,
                  batch_size=1)
    fresh = monte_carlo(params, **kwargs)
    out = tmp_path / "mc"
    monte_carlo(params, out=out, **kwargs)
    parts = sorted(out.glob("part-*.npy"))
    assert len(parts) == 12
    for part in parts[:5]:
        part.unlink()
    again = monte_carlo(params, out=out, executor="threads", **kwargs)
    assert (again.stats["tasks_resumed"], again.stats["tasks_computed"]) == (7, 5)
    pd.testing.assert_frame_equal(again.table, fresh.table)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "table.parquet"), fresh.table)
    with pytest.raises(ValueError, match="different run.*settings"):
        monte_carlo(params, out=out, **{**kwargs, "seed": 1})
    with pytest.raises(ValueError, match="different run.*workflow"):
        run_sweep({"lookback_period": [20]}, out=out, assets=["AAPL"], progress=False)


def test_a_portfolio_sweep_resumes_from_its_stored_tasks(tmp_path):
    from btcore import run_portfolio_sweep
    grid = {"lookback_period": [20, 40, 60], "rebalance_every": [21, 63]}
    kwargs = dict(assets=["AAPL", "MSFT", "JPM"], start="2016-01-01", end="2020-12-31",
                  progress=False, batch_size=1)
    fresh = run_portfolio_sweep(grid, **kwargs)
    out = tmp_path / "portfolio"
    run_portfolio_sweep(grid, out=out, **kwargs)
    parts = sorted(out.glob("part-*.npy"))
    assert len(parts) == 6
    for part in parts[1::2]:
        part.unlink()
    again = run_portfolio_sweep(grid, out=out, executor="threads", **kwargs)
    assert (again.stats["tasks_resumed"], again.stats["tasks_computed"]) == (3, 3)
    pd.testing.assert_frame_equal(again.table, fresh.table)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "table.parquet"), fresh.table)
    with pytest.raises(ValueError, match="different run.*settings"):
        run_portfolio_sweep({**grid, "rebalance_every": [21, 126]}, out=out, **kwargs)
