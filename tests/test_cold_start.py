"""Cold start: what compiles, the notice a long compile prints, and warming up ahead."""
import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import btcore
from btcore.cli import main
from btcore.engine.plan import compile_notice, kernel_name
from btcore.engine.calls import column_prices
from btcore.kernels.cross_sectional import kth_smallest_nb
from btcore.workflows.base import prepare

NOTICE = "compiling mean_reversion kernel (first use; cached afterwards)..."


# ------------------------------------------------------------- the notice
def test_the_notice_prints_only_when_the_block_outlasts_the_delay():
    slow = io.StringIO()
    with compile_notice("my_rule", after=0.05, stream=slow):
        time.sleep(0.5)
    assert slow.getvalue() == "compiling my_rule kernel (first use; cached afterwards)...\n"
    quick = io.StringIO()
    with compile_notice("my_rule", after=0.5, stream=quick):
        pass
    time.sleep(0.7)  # the timer was cancelled: nothing comes later either
    assert quick.getvalue() == ""


def prepared(data, assets=None):
    return prepare({"lookback_period": [20]}, "mean_reversion", data, start=None, end=None,
                   initial_capital=1e6, cost_bps=5.0, periods_per_year=None, assets=assets,
                   debug=False, options={})


def test_kernel_names(small_data):
    job = prepared(small_data).job
    assert kernel_name(job) == "mean_reversion"
    from btcore.workflows.cross_sectional import CrossSectionalJob
    assert kernel_name(CrossSectionalJob.__new__(CrossSectionalJob)) == "cross-sectional"


PROBE = """
import btcore
btcore.run_sweep({"lookback_period": [20]}, data=btcore.MarketData.synthetic(
    n_assets=2, start="2020-01-01", end="2020-12-31", seed=0), progress=False)
"""


@pytest.mark.slow  # fresh interpreters compiling a kernel on an empty cache
def test_a_cold_first_sweep_says_it_compiles_and_a_warm_one_does_not(tmp_path):
    env = dict(os.environ, BTCORE_KERNEL_DIR=str(tmp_path / "kernels"),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"))

    def stderr():
        return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                              text=True, check=True, timeout=600).stderr
    assert stderr().count(NOTICE) == 1
    assert NOTICE not in stderr()


# ------------------------------------------------------------- warming up
def test_warmup_runs_what_it_is_asked_and_refuses_the_rest():
    timings = btcore.warmup("mean_reversion")
    assert list(timings) == [("sweep", "mean_reversion")]
    assert timings["sweep", "mean_reversion"] >= 0
    with pytest.raises(ValueError, match="unknown workflow"):
        btcore.warmup("mean_reversion", workflows=("sweep", "portfolios"))
    with pytest.raises(ValueError, match="unknown workflow"):
        btcore.warmup("mean_reversion", workflows=())
    with pytest.raises((ValueError, KeyError), match="no_such_rule"):
        btcore.warmup("no_such_rule")


def test_warmup_command(capsys):
    status = main(["warmup", "--strategy", "mean_reversion", "--workflows", "sweep"])
    out, err = capsys.readouterr()
    assert status == 0
    assert out.startswith("1 kernel(s) ready in ")
    assert "warmup: sweep kernel of mean_reversion ready in" in err


# ------------------------------------------------- one specialisation only
def test_the_kernel_always_gets_a_fresh_writable_close(small_data):
    one_asset = prepared(small_data, assets=[small_data.symbols[0]])
    shared = one_asset.job.payload()
    assert not shared["close"].flags.writeable  # the job's own prices stay read-only
    prices = column_prices(shared, 0)
    assert prices.flags.writeable and prices.flags.c_contiguous
    assert not np.shares_memory(prices, shared["close"])
    np.testing.assert_array_equal(prices, shared["close"][:, 0])


# ----------------------------------------------- cross-sectional selection
values = st.lists(st.one_of(st.integers(-3, 3).map(float), st.sampled_from([np.nan, -0.0])),
                  min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_kth_smallest_is_what_np_partition_puts_there(items, data):
    array = np.array(items)
    kth = data.draw(st.integers(0, array.size - 1))
    expected = np.partition(array, kth)[kth]
    got = kth_smallest_nb(array, kth)
    assert got == expected or (np.isnan(got) and np.isnan(expected))
    np.testing.assert_array_equal(array, np.array(items))  # the input is left alone
