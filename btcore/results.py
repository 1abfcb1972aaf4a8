"""Sweep results as rows: ranked in memory, kept to the best N, streamed to Parquet.

A finished task becomes a block of rows (:func:`task_rows`): the set's grid
position, its parameters, the asset, the metrics. :class:`RowsSink` ranks them
(``sort_by``, NaN last, ties by grid position then asset) and, with ``keep=N``,
holds only the best N, so memory stays flat however large the sweep.

With ``out=`` a :class:`ResultStore` writes every block to
``out/part-<task>.parquet`` as it arrives (a temporary file renamed into place,
so a killed process leaves whole parts or none) under a manifest keyed by
hashes of the strategy code, grid, data and settings. Re-running the same call
reads the finished parts and computes only the missing tasks; anything else is
refused unless ``overwrite=True``. :func:`open_results` reads a store lazily.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
from dataclasses import dataclass

import numpy as np
import pandas as pd

from btcore.kernels.single import RUINED_ROW
from btcore.metrics import INTEGER_METRICS, METRIC_NAMES, N_METRICS

#: metrics where a lower value is better (ranking, ``SweepResult.best``)
LOWER_IS_BETTER = frozenset({"annual_volatility"})
MANIFEST = "_btcore.json"
FORMAT = 1
#: sets per task when ``out=`` is given and batch_size="auto": a fixed nominal
#: kernel speed instead of a timed calibration, so a re-run cuts the same tasks
NOMINAL_PARAM_BARS_PER_S = 2.5e8
#: a sweep whose table would take more than this share of available memory is refused
MEMORY_SHARE = 0.5


# -------------------------------------------------------------------- rows
def task_rows(prepared, task, out: np.ndarray) -> dict:
    """The rows of one finished task: ``{"set": grid positions, params..., "asset"?,
    metrics..., "ruined"}`` (numpy arrays, the table's dtypes)."""
    job = prepared.job
    final = out[-1]  # (OUT_ROWS, n) at the window's last checkpoint
    rows = {"set": job.sets.grid_rows(task.start, task.stop).astype(np.int64)}
    params = job.sets.params(task.start, task.stop)
    for j, param in enumerate(job.strategy.params):
        rows[param.name] = params[:, j].astype(np.int64) if param.kind is int else params[:, j]
    if has_asset_column(prepared):
        symbol = prepared.data.symbols[prepared.asset_index[task.column]]
        rows["asset"] = np.full(task.n_sets, symbol, dtype=object)
    rows["_asset"] = np.full(task.n_sets, task.column, dtype=np.int64)
    for k, name in enumerate(METRIC_NAMES):
        rows[name] = final[k].astype(np.int64) if name in INTEGER_METRICS else final[k].copy()
    rows["ruined"] = final[RUINED_ROW] != 0.0
    return rows


def has_asset_column(prepared) -> bool:
    return prepared.data.n_assets > 1 or len(prepared.asset_index) > 1


def rank(rows: dict, sort_by: str, n_assets: int) -> np.ndarray:
    """Positions of ``rows`` best first: ``sort_by`` (highest; lowest for
    volatility), NaN last, ties by grid position then asset."""
    values = np.asarray(rows[sort_by], dtype=np.float64)
    score = values if sort_by in LOWER_IS_BETTER else -values
    score = np.where(np.isnan(score), np.inf, score)
    key = rows["set"] * n_assets + rows["_asset"]
    return np.lexsort((key, score))


def ranked_frame(rows: dict, sort_by: str, n_assets: int, keep: int | None = None):
    """The best ``keep`` of ``rows`` (all if None) as the table's DataFrame, one
    column gathered at a time (a million rows cost ~16 MB per column)."""
    order = rank(rows, sort_by, n_assets)[:keep]
    frame = pd.DataFrame(index=pd.RangeIndex(len(order)))
    for name, values in rows.items():
        if name not in ("set", "_asset"):
            frame[name] = values[order]
    return frame


def _concat(blocks: list) -> dict:
    return {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}


class RowsSink:
    """Every row (``keep=None``) or the best ``keep``, ranked by ``sort_by``.

    With ``n_blocks``, also the per-block sums (n_assets, n_sets, n_blocks, 2)
    in grid order, for :meth:`SweepResult.pbo`.
    """

    def __init__(self, prepared, sort_by: str = "sharpe_ratio", keep: int | None = None):
        self.prepared, self.sort_by, self.keep = prepared, sort_by, keep
        job = prepared.job
        self.n_assets = job.n_columns
        self.expected = job.n_sets * job.n_columns
        self.seen = 0
        self._blocks = []
        self.block_sums = (np.full((job.n_columns, job.n_sets, job.n_blocks, 2), np.nan)
                           if job.n_blocks else None)

    def add(self, task, out: np.ndarray, block_sums=None) -> dict:
        rows = task_rows(self.prepared, task, out)
        if block_sums is not None:
            self.block_sums[task.column, rows["set"]] = block_sums
        self.add_rows(rows)
        return rows

    def add_rows(self, rows: dict) -> None:
        self.seen += len(rows["set"])
        self._blocks.append(rows)
        if self.keep is not None and sum(len(b["set"]) for b in self._blocks) > 2 * self.keep:
            self._trim()

    def _trim(self) -> None:
        rows = _concat(self._blocks)
        best = rank(rows, self.sort_by, self.n_assets)[:self.keep]
        self._blocks = [{name: values[best] for name, values in rows.items()}]

    def check_complete(self) -> None:
        if self.seen != self.expected:
            raise RuntimeError(f"internal error: {self.seen:,} rows for {self.expected:,} "
                               "backtests")

    def table(self) -> pd.DataFrame:
        """The ranked table (the best ``keep`` rows), without the bookkeeping columns."""
        rows = _concat(self._blocks)
        self._blocks = [rows]
        return ranked_frame(rows, self.sort_by, self.n_assets, self.keep)


# --------------------------------------------------------------- memory
def available_memory() -> int:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
        return 1 << 62


def table_bytes(prepared, rows: int) -> int:
    """Peak bytes of building a ranked table of ``rows`` rows (blocks, the sorted
    copy and the DataFrame: ~3 copies of every column)."""
    job = prepared.job
    columns = len(job.strategy.params) + N_METRICS + 4  # set, asset, _asset, ruined
    blocks = job.n_columns * job.n_sets * job.n_blocks * 2 * 8
    return 3 * 8 * columns * rows + blocks


def check_memory(prepared, keep: int | None) -> None:
    """ValueError before any work when the results would not fit in memory."""
    job = prepared.job
    rows = job.n_sets * job.n_columns if keep is None else min(2 * keep, job.n_sets *
                                                                 job.n_columns)
    needed, available = table_bytes(prepared, rows), available_memory()
    if needed > MEMORY_SHARE * available:
        raise ValueError(
            f"the results of {job.n_sets * job.n_columns:,} backtests need about "
            f"{needed / 1e9:,.1f} GB, more than half of the {available / 1e9:,.1f} GB "
            "available; keep only the best rows in memory with keep=1000 (ranked by "
            "sort_by=), and stream every row to disk with out='results/'")


# ---------------------------------------------------------------- store
def fingerprints(prepared, n_blocks: int, extra: dict | None = None) -> dict:
    """Hashes of what decides every row: strategy code and options, grid, data,
    settings (with ``extra``: a workflow's own settings, e.g. its folds)."""
    job = prepared.job

    def digest(*parts) -> str:
        hasher = hashlib.sha256()
        for part in parts:
            hasher.update(part if isinstance(part, bytes) else str(part).encode())
            hasher.update(b"\0")
        return hasher.hexdigest()[:24]

    grid = prepared.grid
    if grid.is_product:
        grid_parts = [name.encode() + np.ascontiguousarray(values).tobytes()
                      for name, values in grid.axes.items()]
        if grid.kept is not None:
            grid_parts.append(np.ascontiguousarray(grid.kept).tobytes())
    else:
        grid_parts = [name.encode() + np.ascontiguousarray(values).tobytes()
                      for name, values in grid.columns.items()]
    data = prepared.data
    index = pd.DatetimeIndex(data.index)
    settings = {k: v for k, v in prepared.settings.items() if k != "assets"}
    return {
        # the kernel module's name digests the strategy's code and the values of
        # the globals it reads (btcore.binding.kernel_ref)
        "strategy": digest(job.strategy.name, job.kernel.module_name),
        "options": digest(job.options.tobytes()),
        "grid": digest(*grid_parts),
        "data": digest(np.ascontiguousarray(job.close).tobytes(),
                       index.asi8.tobytes(), str(index.tz), *prepared.settings["assets"]),
        "settings": digest(json.dumps(settings, default=str, sort_keys=True), n_blocks,
                           json.dumps(extra or {}, default=_jsonable, sort_keys=True)),
    }


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def deterministic_batch_size(job, slots: int) -> int:
    """Sets per task from the job's size alone (no timing), for resumable runs."""
    from btcore.engine import choose_batch_size
    traded = job.traded_bars
    return choose_batch_size(job.n_sets, traded.size, float(traded.mean()),
                             NOMINAL_PARAM_BARS_PER_S / job.strategy.cost_factor, slots)


@dataclass
class ResultStore:
    """A results directory: manifest plus one part per finished task.

    ``kind`` "rows": a sweep's rows as Parquet parts (the dataset
    :func:`open_results` reads); "arrays": a task's raw metric block as ``.npy``
    (walk-forward and Monte Carlo resume from them and save their own tables).
    """

    path: pathlib.Path
    manifest: dict
    prepared: object = None  # the run's Prepared (driver side): rows are labelled from it

    @property
    def kind(self) -> str:
        return self.manifest.get("kind", "rows")

    @classmethod
    def open(cls, out, prepared, *, batch_size, overwrite: bool, kind: str = "rows",
             extra: dict | None = None, workflow: str = "run_sweep") -> "ResultStore":
        """Create ``out`` or check that it holds this very run (before any work).

        ``batch_size`` is the caller's: "auto" takes the stored plan's on a resume.
        """
        path = pathlib.Path(out)
        if path.exists() and not path.is_dir():
            raise ValueError(f"out={str(out)!r} is a file; out= is a directory that "
                             "collects one Parquet part per task (save a single file with "
                             "SweepResult.to_parquet)")
        parent = path if path.exists() else _existing_parent(path)
        if not parent.is_dir():
            raise ValueError(f"cannot write results to {str(out)!r}: {str(parent)!r} is a "
                             "file, not a directory; choose another out= directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write results to {str(out)!r}: {str(parent)!r} is not "
                             "writable; choose another out= directory")
        keys = fingerprints(prepared, prepared.job.n_blocks, extra)
        keys["workflow"] = f"{workflow}/{kind}"
        manifest_file = path / MANIFEST
        if path.exists() and any(path.iterdir()):
            if not manifest_file.exists():
                if not overwrite:
                    raise ValueError(f"out={str(out)!r} is a non-empty directory that btcore "
                                     "did not write; choose a new or empty directory")
            else:
                stored = _read_manifest(manifest_file)
                changed = [name for name in keys if stored.get("keys", {}).get(name) !=
                           keys[name]]
                if stored.get("format") != FORMAT:
                    changed.append("format")
                if batch_size != "auto" and int(batch_size) != stored.get("batch_size"):
                    changed.append(f"batch_size ({stored.get('batch_size')} stored, "
                                   f"{batch_size} given)")
                if changed and not overwrite:
                    said = {"strategy": "strategy code changed",
                            "options": "strategy options changed"}
                    raise ValueError(
                        f"out={str(out)!r} holds results of a different run (what "
                        f"differs: {', '.join(said.get(n, n) for n in changed)}); pass "
                        "overwrite=True to replace them, or choose another out= directory")
                if not changed:
                    store = cls(path, stored, prepared)
                    store._clean_temporary()
                    return store
            shutil.rmtree(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot create the out= directory {str(out)!r} ({exc}); choose "
                             "another") from None
        manifest = {"format": FORMAT, "kind": kind, "workflow": workflow,
                    "strategy": prepared.job.strategy.name, "keys": keys, "batch_size": None,
                    "settings": prepared.settings, "complete": False}
        store = cls(path, manifest, prepared)
        store._write_manifest()
        return store

    # ----------------------------------------------------------- plan
    def plan(self, job, slots: int, batch_size) -> int:
        """The batch size of this store's tasks (stored, given, or from the job's size)."""
        if self.manifest.get("batch_size") is None:
            size = deterministic_batch_size(job, slots) if batch_size == "auto" else \
                int(batch_size)
            self.manifest["batch_size"] = size
            self.manifest["n_sets"] = job.n_sets
            self._write_manifest()
        return int(self.manifest["batch_size"])

    def finished(self, tasks) -> dict:
        """``{task_id: part path}`` of finished tasks; a part whose row count or
        schema is wrong is a clear error."""
        import pyarrow.parquet as pq
        done = {}
        for task in tasks:
            part = self._part(task.task_id)
            if not part.exists():
                continue
            try:
                rows = pq.read_metadata(part).num_rows if self.kind == "rows" else \
                    np.load(part, mmap_mode="r").shape[-1]
            except Exception as exc:
                raise ValueError(f"{part} is corrupt ({exc}); delete it to recompute that "
                                 "task, or pass overwrite=True") from None
            if rows != task.n_sets:
                raise ValueError(f"{part} has {rows} rows, its task has {task.n_sets}; delete "
                                 "it to recompute that task, or pass overwrite=True")
            done[task.task_id] = part
        return done

    def read(self, part: pathlib.Path):
        """A part's rows (``{name: array}``) or raw block (an array)."""
        if self.kind == "arrays":
            return np.load(part)
        import pyarrow.parquet as pq
        table = pq.read_table(part)
        return {name: table.column(name).to_numpy(zero_copy_only=False)
                for name in table.column_names}

    def write(self, task, payload) -> None:
        """Write a task's rows (or raw block): to a temporary file, then renamed
        into place."""
        final = self._part(task.task_id)
        temporary = self.path / f".{final.name}.{os.getpid()}.tmp"
        if self.kind == "arrays":
            with open(temporary, "wb") as file:
                np.save(file, payload)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq
            pq.write_table(pa.table(dict(payload)), temporary)
        os.replace(temporary, final)

    def save_table(self, name: str, frame: pd.DataFrame) -> pathlib.Path:
        """Save a workflow's result table as ``<out>/<name>.parquet`` (atomically)."""
        final = self.path / f"{name}.parquet"
        temporary = self.path / f".{final.name}.{os.getpid()}.tmp"
        frame.to_parquet(temporary)
        os.replace(temporary, final)
        return final

    def attach(self, job, sink, batch_size):
        """``(batch_size, resume, sink)`` for :func:`btcore.engine.run_job`: the
        stored plan, a resume that loads finished tasks into ``sink``, and a sink
        that writes every new task here first."""
        requested = batch_size

        def plan(slots):
            return self.plan(job, slots, requested)

        def load(task, payload):
            if self.kind == "arrays":
                sink.add(task, payload)
            else:
                sink.add_rows(payload)
        return plan, lambda tasks: self.load_finished(tasks, load), \
            _Stored(sink, self, self.prepared)

    def load_finished(self, tasks, load) -> set:
        """Call ``load(task, rows or block)`` for every task of ``tasks`` already
        stored; return their ids."""
        done = self.finished(tasks)
        for task in tasks:
            if task.task_id in done:
                load(task, self.read(done[task.task_id]))
        return set(done)

    def complete(self, stats: dict, sort_by: str) -> None:
        self.manifest.update(complete=True, stats=stats, sort_by=sort_by)
        self._write_manifest()

    # ---------------------------------------------------------- files
    def _part(self, task_id: int) -> pathlib.Path:
        suffix = "npy" if self.kind == "arrays" else "parquet"
        return self.path / f"part-{task_id:07d}.{suffix}"

    def _write_manifest(self) -> None:
        temporary = self.path / f".{MANIFEST}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(self.manifest, default=str, indent=1))
        os.replace(temporary, self.path / MANIFEST)

    def _clean_temporary(self) -> None:
        for leftover in self.path.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


class _Stored:
    """A sink whose every finished task is first written to ``store``."""

    def __init__(self, sink, store: ResultStore, prepared=None):
        self._sink, self._store, self._prepared = sink, store, prepared

    def add(self, task, out, block_sums=None):
        if self._store.kind == "arrays":
            self._store.write(task, out)
            self._sink.add(task, out, block_sums)
            return
        rows = task_rows(self._prepared, task, out)
        self._store.write(task, rows)
        self._sink.add_rows(rows)

    def __getattr__(self, name):
        return getattr(self._sink, name)


def check_out(out, overwrite) -> None:
    """TypeError for an ``out=`` that is not a path or an ``overwrite`` not a bool."""
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a directory path, got {type(out).__name__}")


def stored_job(out, prepared, job, *, batch_size, overwrite, extra: dict, workflow: str):
    """The arrays store of a walk-forward or Monte Carlo ``job`` in ``out`` (None
    without ``out``): its key adds the job's windows and first bars to ``extra``."""
    if out is None:
        return None
    extra = {**extra, "windows": job.windows, "first_bar": job.first_bar,
             "columns": job.n_columns}
    return ResultStore.open(out, prepared, batch_size=batch_size, overwrite=overwrite,
                            kind="arrays", extra=extra, workflow=workflow)


def _existing_parent(path: pathlib.Path) -> pathlib.Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _read_manifest(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); pass overwrite=True to start "
                         "again") from None


class StoredResults:
    """A results directory written by ``run_sweep(..., out=...)``, read lazily.

    Attributes
    ----------
    dataset : pyarrow.dataset.Dataset
        Every row written so far (pandas, polars and duckdb read it), with a
        ``set`` column: the parameter set's position in the grid.
    strategy : str
    settings : dict
    stats : dict
        The run's stats (empty until it completed).
    complete : bool
        False while a run is going on, or after one was interrupted.
    """

    def __init__(self, path):
        import pyarrow.dataset as ds
        self.path = pathlib.Path(path)
        manifest_file = self.path / MANIFEST
        if not manifest_file.exists():
            raise ValueError(f"{str(path)!r} holds no btcore results (no {MANIFEST}); write "
                             "some with run_sweep(..., out=...)")
        manifest = _read_manifest(manifest_file)
        if manifest.get("kind", "rows") != "rows":
            tables = sorted(p.name for p in self.path.glob("*.parquet"))
            raise ValueError(f"{str(path)!r} holds {manifest.get('workflow')} results: read "
                             f"its tables {tables} with pandas.read_parquet")
        self.strategy, self.settings = manifest["strategy"], manifest["settings"]
        self.stats, self.complete = manifest.get("stats", {}), bool(manifest["complete"])
        self.sort_by = manifest.get("sort_by", "sharpe_ratio")
        self.dataset = ds.dataset(self.path, format="parquet")

    def __len__(self) -> int:
        return self.dataset.count_rows()

    def to_pandas(self, sort_by: str | None = None) -> pd.DataFrame:
        """Every row, ranked as ``run_sweep`` ranks its table (by the run's
        ``sort_by`` unless given), without the bookkeeping columns."""
        sort_by = sort_by or self.sort_by
        if sort_by not in METRIC_NAMES:
            raise ValueError(f"unknown metric {sort_by!r}; choose from {list(METRIC_NAMES)}")
        table = self.dataset.to_table()
        rows = {name: table.column(name).to_numpy(zero_copy_only=False)
                for name in table.column_names}
        if not rows or len(rows["set"]) == 0:
            raise ValueError(f"{str(self.path)!r} has no finished tasks yet")
        return ranked_frame(rows, sort_by, int(rows["_asset"].max()) + 1)

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return f"StoredResults({self.strategy}: {len(self):,} rows, {state}, {self.path})"


def open_results(path) -> StoredResults:
    """Open a results directory written by ``run_sweep(..., out=path)``.

    Returns
    -------
    StoredResults
        ``.dataset`` (a pyarrow dataset of every row), ``.to_pandas()`` (the ranked
        table), ``.settings``, ``.stats``, ``.complete``.
    """
    return StoredResults(path)


__all__ = ["RowsSink", "ResultStore", "StoredResults", "open_results", "check_memory",
           "LOWER_IS_BETTER", "rank", "task_rows"]
