"""Safety of ``out=`` stores: one writer at a time, no link followed, a directory
only its owner can write, and every part checked against the SHA-256 the
manifest recorded when it was written."""
import gc
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import btcore.store as store
from btcore import open_results, run_sweep, walk_forward
from btcore.metrics import METRIC_NAMES
from btcore.store.manifest import MANIFEST
from conftest import assert_tables_identical

fcntl = pytest.importorskip("fcntl", reason="the store lock is flock on Linux/macOS")

RUN = dict(executor="serial", progress=False, batch_size=4)  # 24 sets x 3 assets: 18 tasks
ROWS = 72


@pytest.fixture
def fresh(small_data, grid):
    """The table of an uninterrupted run without out=."""
    return run_sweep(grid, data=small_data, **RUN).table


@pytest.fixture
def stored(small_data, grid, tmp_path):
    """A complete store."""
    out = tmp_path / "run"
    run_sweep(grid, data=small_data, out=out, **RUN)
    return out


def part(out, task):
    return out / f"part-{task:07d}.parquet"


def lock_is_free(out) -> bool:
    """True when nobody holds the store's lock (a new open file description
    conflicts with any other, even in this process)."""
    fd = os.open(out / ".btcore.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def resumed_identical(small_data, grid, out, fresh, *, recomputed: int, warns: str | None):
    """Re-run into ``out``: ``recomputed`` tasks computed, the table bit-identical to
    ``fresh``, and the store readable afterwards."""
    if warns:
        with pytest.warns(store.StoreIntegrityWarning, match=warns):
            result = run_sweep(grid, data=small_data, out=out, **RUN)
    else:
        result = run_sweep(grid, data=small_data, out=out, **RUN)
    assert result.stats["tasks_computed"] == recomputed
    assert_tables_identical(result.table, fresh)
    assert_tables_identical(open_results(out).to_pandas(), fresh)
    assert lock_is_free(out)


# ------------------------------------------------------------------ the lock
HOLDER = """
import os, pathlib, sys, time
sys.path.insert(0, {tests!r})
from conftest import small_grid
from btcore import MarketData, run_sweep
out, ready, go = map(pathlib.Path, sys.argv[1:4])
data = MarketData.synthetic(n_assets=3, start="2020-01-01", end="2021-12-31", seed=7)
calls = []
def hold(done, total, rate):
    calls.append(done)
    if len(calls) == 2:  # two parts written: wait for the test
        ready.write_text(str(os.getpid()))
        deadline = time.time() + 240
        while not go.exists() and time.time() < deadline:
            time.sleep(0.05)
run_sweep(small_grid(), data=data, out=out, on_progress=hold, **{run!r})
"""


@pytest.mark.slow  # a second interpreter
def test_a_second_writer_is_refused_naming_the_first_and_readers_still_work(
        small_data, grid, fresh, tmp_path):
    out, ready, go = tmp_path / "run", tmp_path / "ready", tmp_path / "go"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER.format(tests=str(pathlib.Path(__file__).parent), run=RUN))
    holder = subprocess.Popen([sys.executable, str(script), str(out), str(ready), str(go)],
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not ready.exists():
            assert holder.poll() is None, holder.stderr.read()
            assert time.time() < deadline, "the first writer never got going"
            time.sleep(0.05)
        # overwrite=True, even for another grid, deletes nothing: the lock comes first
        for other_grid in (grid, {**grid, "stop_loss_z": [3.0]}):
            with pytest.raises(store.StoreBusyError,
                               match=rf"being written by another btcore run: process "
                                     rf"{holder.pid} on host \S+, started .*run_sweep.*Wait "
                                     "for it to finish"):
                run_sweep(other_grid, data=small_data, out=out, overwrite=True, **RUN)
        with pytest.raises(RuntimeError, match=f"process {holder.pid}"):
            run_sweep(grid, data=small_data, out=out, **RUN)
        assert len(list(out.glob("part-*.parquet"))) == 2
        reading = open_results(out)  # readers do not need the lock
        assert not reading.complete and len(reading) == 2 * 4
        go.touch()
        assert holder.wait(timeout=300) == 0, holder.stderr.read()
    finally:
        go.touch()
        if holder.poll() is None:
            holder.kill()
        holder.wait()
    assert_tables_identical(open_results(out).to_pandas(), fresh)  # one run, not a mix
    assert lock_is_free(out)
    again = run_sweep(grid, data=small_data, out=out, **RUN)  # the lock went with the run
    assert again.stats["tasks_computed"] == 0
    assert_tables_identical(again.table, fresh)


def test_another_thread_of_the_process_is_refused_too(small_data, grid, tmp_path):
    out, started, go = tmp_path / "run", threading.Event(), threading.Event()
    failures = []

    def hold(done, total, rate):
        started.set()
        go.wait(60)

    def first():
        try:
            run_sweep(grid, data=small_data, out=out, on_progress=hold, **RUN)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    thread = threading.Thread(target=first, name="first-writer")
    thread.start()
    try:
        assert started.wait(120)
        with pytest.raises(store.StoreBusyError, match="another thread of this process "
                                                         rf"\(pid {os.getpid()}, thread "
                                                         "'first-writer'\\)"):
            run_sweep(grid, data=small_data, out=out, overwrite=True, **RUN)
    finally:
        go.set()
        thread.join(120)
    assert not failures and lock_is_free(out)


def test_the_lock_is_released_on_completion_exception_and_ctrl_c(small_data, grid, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "run"
    run_sweep(grid, data=small_data, out=out, **RUN)
    assert lock_is_free(out)

    def fail(done, total, rate):
        raise RuntimeError("boom")

    try:
        run_sweep(grid, data=small_data, out=tmp_path / "failed", on_progress=fail, **RUN)
    except RuntimeError:
        pass
    gc.collect()  # run_sweep's lock goes with its store once the traceback is dropped
    assert lock_is_free(tmp_path / "failed")
    # walk_forward, monte_carlo and run_portfolio_sweep release it as the exception leaves
    write, calls = store.ResultStore.write, []

    def interrupted(self, task, payload):
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt
        write(self, task, payload)

    monkeypatch.setattr(store.ResultStore, "write", interrupted)
    wf_grid = {"lookback_period": [10, 20], "entry_threshold": [1.5, 2.0]}
    with pytest.raises(KeyboardInterrupt) as caught:
        walk_forward(wf_grid, data=small_data, n_splits=3, out=tmp_path / "wf",
                     executor="serial", progress=False, batch_size=1)
    assert caught.value is not None and lock_is_free(tmp_path / "wf")  # traceback still held
    monkeypatch.setattr(store.ResultStore, "write", write)
    resumed = walk_forward(wf_grid, data=small_data, n_splits=3, out=tmp_path / "wf",
                           executor="serial", progress=False, batch_size=1)
    assert resumed.stats["tasks_resumed"] == 1


# ------------------------------------------------------------------- links
def test_temporaries_are_never_opened_through_planted_links(small_data, grid, fresh,
                                                            tmp_path):
    victim = tmp_path / "victim.conf"  # e.g. a root-owned file
    victim.write_text("do not touch\n")
    out = tmp_path / "run"
    planted = []

    def plant(done, total, rate):
        if not planted:  # mid-run, at the old predictable names .<final>.<pid>.tmp
            for name in [f"part-{k:07d}.parquet" for k in range(18)] + ["_btcore.json"]:
                link = out / f".{name}.{os.getpid()}.tmp"
                if not os.path.lexists(link):
                    os.symlink(victim, link)
                    planted.append(link)

    result = run_sweep(grid, data=small_data, out=out, on_progress=plant, **RUN)
    assert planted
    assert victim.read_text() == "do not touch\n" and not victim.is_symlink()
    assert_tables_identical(result.table, fresh)
    for written in list(out.glob("part-*.parquet")) + [out / "_btcore.json"]:
        assert not written.is_symlink() and written.is_file()
    assert len(list(out.glob("part-*.parquet"))) == 18
    assert_tables_identical(open_results(out).to_pandas(), fresh)
    resumed_identical(small_data, grid, out, fresh, recomputed=0, warns=None)
    assert not list(out.glob(".*.tmp"))  # a resume deletes the links, not their targets
    assert victim.read_text() == "do not touch\n"


def test_a_part_replaced_by_a_link_is_refused_and_recomputed(stored, small_data, grid, fresh,
                                                             tmp_path):
    elsewhere = tmp_path / "attacker.parquet"
    shutil.copy(part(stored, 2), elsewhere)  # a well-formed part of the same size
    part(stored, 1).unlink()
    os.symlink(elsewhere, part(stored, 1))
    with pytest.raises(ValueError, match="part-0000001.parquet is a symbolic link"):
        open_results(stored)
    resumed_identical(small_data, grid, stored, fresh, recomputed=1,
                      warns="part-0000001.parquet is a symbolic link")
    assert not part(stored, 1).is_symlink()
    assert elsewhere.read_bytes() == part(stored, 2).read_bytes()  # the target untouched


def test_a_linked_manifest_or_lock_file_is_refused(stored, small_data, grid, tmp_path):
    manifest = stored / "_btcore.json"
    shutil.copy(manifest, tmp_path / "manifest.json")
    manifest.unlink()
    os.symlink(tmp_path / "manifest.json", manifest)
    with pytest.raises(ValueError, match="_btcore.json is unreadable.*symbolic link"):
        open_results(stored)
    with pytest.raises(ValueError, match="_btcore.json is unreadable.*overwrite=True"):
        run_sweep(grid, data=small_data, out=stored, **RUN)
    manifest.unlink()
    shutil.copy(tmp_path / "manifest.json", manifest)
    victim = tmp_path / "victim.conf"
    victim.write_text("do not touch\n")
    lock = stored / ".btcore.lock"
    lock.unlink()
    os.symlink(victim, lock)
    with pytest.raises(ValueError, match="cannot open the lock file.*delete it"):
        run_sweep(grid, data=small_data, out=stored, **RUN)
    assert victim.read_text() == "do not touch\n"


# ------------------------------------------------------- who owns the directory
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="chown to another user needs root")
def test_a_directory_owned_by_another_user_is_refused(stored, small_data, grid, tmp_path):
    before = sorted(p.name for p in stored.iterdir())
    os.chown(stored, 65534, -1)
    with pytest.raises(ValueError, match=r"is owned by .*uid 65534.*not by you.*Choose a "
                                         "directory you own"):
        run_sweep(grid, data=small_data, out=stored, **RUN)
    with pytest.raises(ValueError, match="uid 65534"):
        run_sweep(grid, data=small_data, out=stored, overwrite=True, **RUN)
    assert sorted(p.name for p in stored.iterdir()) == before
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    os.chown(empty, 65534, -1)
    with pytest.raises(ValueError, match="uid 65534"):
        run_sweep(grid, data=small_data, out=empty, **RUN)
    assert list(empty.iterdir()) == []
    # a link to a directory of ours, planted by someone else
    os.symlink(tmp_path / "mine", tmp_path / "link")
    os.lchown(tmp_path / "link", 65534, 65534)
    (tmp_path / "mine").mkdir(mode=0o700)
    with pytest.raises(ValueError, match="symbolic link owned by .*uid 65534"):
        run_sweep(grid, data=small_data, out=tmp_path / "link", **RUN)


@pytest.mark.parametrize("mode, who", [(0o775, "group"), (0o757, "others"),
                                       (0o777, "group and others")])
def test_a_directory_others_can_write_is_refused(stored, small_data, grid, mode, who):
    os.chmod(stored, mode)
    with pytest.raises(ValueError, match=rf"writable by {who} \(mode {mode:04o}\).*chmod go-w"):
        run_sweep(grid, data=small_data, out=stored, **RUN)
    with pytest.raises(ValueError, match="chmod go-w"):
        run_sweep(grid, data=small_data, out=stored, overwrite=True, **RUN)
    os.chmod(stored, 0o755)  # the fix the message gives
    assert run_sweep(grid, data=small_data, out=stored, **RUN).stats["tasks_computed"] == 0


def test_new_directories_and_parts_are_writable_by_their_owner_only(small_data, grid,
                                                                     tmp_path):
    old = os.umask(0o002)  # a umask that would make them group-writable
    try:
        out = tmp_path / "new" / "run"
        run_sweep(grid, data=small_data, out=out, **RUN)
    finally:
        os.umask(old)
    assert os.stat(out).st_mode & 0o022 == 0
    for file in out.iterdir():
        assert os.stat(file).st_mode & 0o022 == 0, file


# ---------------------------------------------------------------- integrity
def rewrite(path, change):
    import pyarrow.parquet as pq
    pq.write_table(change(pq.read_table(path)), path)


def test_a_part_with_sharpe_plus_one_is_refused_and_recomputed(stored, small_data, grid, fresh):
    import pyarrow.compute as pc
    rewrite(part(stored, 3), lambda t: t.set_column(
        t.schema.get_field_index("sharpe_ratio"), "sharpe_ratio",
        pc.add(t["sharpe_ratio"], 1.0)))
    with pytest.raises(ValueError, match="part-0000003.parquet does not match the SHA-256 "
                                         "recorded in the manifest.*re-run the same call"):
        open_results(stored)
    resumed_identical(small_data, grid, stored, fresh, recomputed=1,
                      warns="part-0000003.parquet does not match the SHA-256")


def test_a_part_replaced_by_its_neighbour_is_refused_and_recomputed(stored, small_data, grid,
                                                                    fresh):
    shutil.copy(part(stored, 5), part(stored, 4))
    with pytest.raises(ValueError, match="part-0000004.parquet does not match"):
        open_results(stored)
    resumed_identical(small_data, grid, stored, fresh, recomputed=1,
                      warns="part-0000004.parquet does not match")


def test_parts_swapped_with_their_records_are_refused(stored, small_data, grid, fresh):
    manifest = json.loads((stored / MANIFEST).read_text())
    parts = manifest["parts"]
    a, b = part(stored, 6), part(stored, 7)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    parts[a.name], parts[b.name] = parts[b.name], parts[a.name]  # hashes follow the bytes
    (stored / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="part-0000006.parquet is recorded for task"):
        open_results(stored)
    resumed_identical(small_data, grid, stored, fresh, recomputed=2,
                      warns="part-0000006.parquet is recorded for task")


def test_a_part_missing_a_column_names_the_part_and_the_column(stored, small_data, grid,
                                                               fresh):
    rewrite(part(stored, 2), lambda t: t.drop_columns(["sharpe_ratio"]))
    with pytest.raises(ValueError, match="part-0000002.parquet has no column 'sharpe_ratio'"):
        open_results(stored)
    resumed_identical(small_data, grid, stored, fresh, recomputed=1,
                      warns="part-0000002.parquet")


def test_stray_files_are_ignored(stored, small_data, grid, fresh):
    shutil.copy(part(stored, 0), part(stored, 99))  # a part no task of this run writes
    shutil.copy(part(stored, 0), stored / "extra.parquet")
    (stored / "notes.txt").write_text("not parquet\n")
    (stored / "plots").mkdir()
    stored_results = open_results(stored)
    assert len(stored_results) == ROWS
    assert_tables_identical(stored_results.to_pandas(), fresh)
    resumed_identical(small_data, grid, stored, fresh, recomputed=0, warns=None)


def test_a_complete_manifest_with_a_part_missing(stored, small_data, grid, fresh):
    part(stored, 8).unlink()
    with pytest.raises(ValueError, match="part-0000008.parquet is missing.*re-run the same "
                                         "call"):
        open_results(stored)
    resumed_identical(small_data, grid, stored, fresh, recomputed=1,
                      warns="part-0000008.parquet is missing")
    # a record deleted with its part: the count of a complete run still tells
    manifest = json.loads((stored / MANIFEST).read_text())
    del manifest["parts"][part(stored, 9).name]
    (stored / MANIFEST).write_text(json.dumps(manifest))
    part(stored, 9).unlink()
    with pytest.raises(ValueError, match="part-0000009.parquet is missing: the manifest marks "
                                         "the run complete with 18 parts but records 17"):
        open_results(stored)
    resumed_identical(small_data, grid, stored, fresh, recomputed=1, warns=None)


def test_unrecorded_parts_of_an_interrupted_run_are_recomputed(small_data, grid, fresh,
                                                               tmp_path):
    out = tmp_path / "run"

    def stop(done, total, rate):
        if done >= 3 * 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, data=small_data, out=out, on_progress=stop, **RUN)
    assert len(open_results(out)) == 3 * 4  # recorded in the journal as they finished
    # a part file no record vouches for (as if written by someone else)
    shutil.copy(part(out, 0), part(out, 5))
    assert len(open_results(out)) == 3 * 4
    result = run_sweep(grid, data=small_data, out=out, **RUN)
    assert (result.stats["tasks_resumed"], result.stats["tasks_computed"]) == (3, 15)
    assert_tables_identical(result.table, fresh)
    assert_tables_identical(open_results(out).to_pandas(), fresh)


def test_a_tampered_walk_forward_block_is_recomputed(small_data, tmp_path):
    wf_grid = {"lookback_period": [10, 20, 30], "entry_threshold": [1.5, 2.0]}
    kwargs = dict(data=small_data, n_splits=3, executor="serial", progress=False,
                  batch_size=2)
    fresh = walk_forward(wf_grid, **kwargs)
    out = tmp_path / "wf"
    walk_forward(wf_grid, out=out, **kwargs)
    block_file = out / "part-0000001.npy"
    block = np.load(block_file)  # (checkpoints, metric rows, sets)
    block[:, METRIC_NAMES.index("sharpe_ratio")] = 1e6  # its sets look best everywhere
    np.save(block_file, block)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = walk_forward(wf_grid, out=out, **kwargs)
    assert_tables_identical(again.folds, fresh.folds)
    assert again.stats["tasks_computed"] == 1
    assert any(w.category is store.StoreIntegrityWarning and
               "part-0000001.npy does not match the SHA-256" in str(w.message) for w in caught)
    assert_tables_identical(again.oos_equity, fresh.oos_equity)
    assert_tables_identical(again.oos_metrics, fresh.oos_metrics)
    import pandas as pd
    assert_tables_identical(pd.read_parquet(out / "folds.parquet"), fresh.folds)


def test_a_store_of_the_previous_format_is_refused_clearly(stored, small_data, grid):
    manifest = json.loads((stored / "_btcore.json").read_text())
    manifest["format"] = 1
    del manifest["parts"]
    (stored / "_btcore.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="another version of btcore.*overwrite=True"):
        open_results(stored)
    with pytest.raises(ValueError, match="different run.*format.*overwrite=True"):
        run_sweep(grid, data=small_data, out=stored, **RUN)
    assert run_sweep(grid, data=small_data, out=stored, overwrite=True,
                     **RUN).stats["tasks_computed"] == 18
    assert len(open_results(stored)) == ROWS
