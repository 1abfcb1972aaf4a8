"""Portfolio sweeps with ``out=`` cut into tasks of sets, so an interrupted one resumes
(bit-identical to one task); ``open_results`` on an unfinished portfolio store says
what is kept and how to finish it; ``estimate()`` includes the fixed per-call costs."""
import numpy as np
import pandas as pd
import pytest

from btcore import MarketData, estimate, open_results, run_sweep
from btcore.store.writer import MIN_STORE_TASKS, deterministic_batch_size
from btcore.workflows.portfolio import run_portfolio_sweep
from btcore.workflows.portfolio_job import prepare_portfolio
from conftest import assert_tables_identical

DATA = MarketData.synthetic(n_assets=3, start="2018-01-01", end="2021-12-31", seed=5)
GRID = {"lookback_period": [5, 10, 20, 40], "entry_threshold": [1.0, 1.5, 2.0],
        "exit_threshold": [0.0, 0.5]}  # 24 sets


def test_a_large_portfolio_sweep_is_cut_into_many_tasks():
    grid = {"lookback_period": list(range(5, 105)), "entry_threshold": np.linspace(1, 3, 460)}
    pjob = prepare_portfolio(grid, "mean_reversion", DATA, start=None, end=None,
                             initial_capital=1e6, cost_bps=5.0, periods_per_year=None,
                             assets=None, options={})
    assert pjob.n_sets == 46_000  # the sweep; ~3 s at the measured speed here
    size = deterministic_batch_size(pjob, slots=1)
    assert -(-pjob.n_sets // size) >= MIN_STORE_TASKS  # a kill loses one task, not the run


def interrupt_after(tasks):
    seen = []

    def on_progress(done, total, rate):
        seen.append(done)
        if len(seen) == tasks:
            raise KeyboardInterrupt
    return on_progress


def test_an_interrupted_portfolio_sweep_resumes_exactly(tmp_path):
    whole = run_portfolio_sweep(GRID, data=DATA, batch_size=24, progress=False)
    assert whole.stats["batch_size"] == 24  # one task: the reference
    out = tmp_path / "portfolio"
    with pytest.raises(KeyboardInterrupt):
        run_portfolio_sweep(GRID, data=DATA, batch_size=5, out=out, progress=False,
                            on_progress=interrupt_after(2))
    with pytest.raises(ValueError) as caught:
        open_results(out)
    message = str(caught.value)
    assert "unfinished run_portfolio_sweep run: 2 finished task(s) of 24 parameter sets " \
           "in tasks of 5 are kept there" in message
    assert "Re-run the same call with out=" in message and "[]" not in message
    resumed = run_portfolio_sweep(GRID, data=DATA, batch_size="auto", out=out,
                                  progress=False)
    assert resumed.stats["tasks_resumed"] == 2 and resumed.stats["tasks_computed"] == 3
    assert_tables_identical(resumed.table, whole.table)
    with pytest.raises(ValueError, match=r"read its tables \['table.parquet'\]"):
        open_results(out)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "table.parquet"), whole.table)


def test_estimate_includes_the_fixed_costs_of_a_small_sweep():
    grid = {"lookback_period": [20, 40]}
    run_sweep(grid, data=DATA, progress=False)  # the kernel loaded, as after a first run
    table = estimate(grid, data=DATA, cpus=[1], executor="serial")
    assert table.attrs["setup_s"] > 0.0
    predicted = float(table["predicted_s"].iloc[0])
    measured = min(run_sweep(grid, data=DATA, progress=False).stats["elapsed_s"]
                   for _ in range(3))
    # the kernel alone is ~1 % of such a call: without its fixed costs the model was
    # 10-20x too low; with them it is within a small factor (a busy machine varies)
    kernel_only = 2 * 3 * DATA.n_bars / float(table["kernel_param_bars_per_s"].iloc[0])
    assert predicted > 5 * kernel_only
    assert measured / 4 < predicted < measured * 4
