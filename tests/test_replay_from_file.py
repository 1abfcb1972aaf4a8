"""A result file names its strategy, but never chooses code to run: replaying a row
from a file uses a strategy the user names or one registered in this process."""
import json
import sys

import pyarrow.parquet as pq
import pytest

from btcore import SweepResult, run_sweep
from conftest import assert_tables_identical


def planted_file(result, path, strategy_name):
    """``result`` saved, then its metadata edited as someone sharing the file could."""
    result.to_parquet(path)
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"btcore"])
    meta["strategy"] = strategy_name
    pq.write_table(table.replace_schema_metadata(
        {**table.schema.metadata, b"btcore": json.dumps(meta).encode()}), path)


def test_a_module_named_by_a_file_is_never_imported(small_data, grid, tmp_path, monkeypatch):
    evil = tmp_path / "evilmod.py"
    marker = tmp_path / "imported.txt"
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                    "from btcore.strategies.mean_reversion import SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run_sweep(grid, data=small_data, progress=False)
    planted_file(result, tmp_path / "shared.parquet", "evilmod:SPEC")
    loaded = SweepResult.read_parquet(tmp_path / "shared.parquet")
    with pytest.raises(ValueError, match="never imports a module named by a file.*strategy="):
        loaded.backtest(0, data=small_data)
    assert not marker.exists() and "evilmod" not in sys.modules


def test_replay_with_the_strategy_the_user_names(small_data, grid, tmp_path):
    result = run_sweep(grid, data=small_data, progress=False)
    planted_file(result, tmp_path / "shared.parquet", "evilmod:SPEC")
    loaded = SweepResult.read_parquet(tmp_path / "shared.parquet", strategy="mean_reversion")
    assert_tables_identical(loaded.table, result.table)
    replay, original = loaded.backtest(0, data=small_data), result.backtest(0)
    assert replay.metrics == original.metrics


def test_a_registered_name_from_a_file_replays(small_data, grid, tmp_path):
    result = run_sweep(grid, data=small_data, progress=False)
    result.to_parquet(tmp_path / "sweep.parquet")
    loaded = SweepResult.read_parquet(tmp_path / "sweep.parquet")
    assert loaded.backtest(0, data=small_data).metrics == result.backtest(0).metrics


def test_metadata_that_is_not_a_result_is_refused(tmp_path, small_data, grid):
    result = run_sweep(grid, data=small_data, progress=False)
    result.to_parquet(tmp_path / "sweep.parquet")
    table = pq.read_table(tmp_path / "sweep.parquet")
    pq.write_table(table.replace_schema_metadata(
        {**table.schema.metadata, b"btcore": b"[1, 2]"}), tmp_path / "odd.parquet")
    with pytest.raises(ValueError, match="not a SweepResult's"):
        SweepResult.read_parquet(tmp_path / "odd.parquet")
