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

A store is safe to share a machine with: a writer holds an exclusive lock on
it for the whole run (a second writer is refused, naming the first), the
directory must belong to the user and be writable by nobody else, temporaries
are created with ``O_EXCL`` under unpredictable names and no part, manifest or
lock is ever opened through a symbolic link. The manifest records every part's
task and SHA-256 (of the bytes written); a resume recomputes a part that does
not match, :func:`open_results` refuses it and reads only the recorded parts.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import pathlib
import shutil
import socket
import stat
import tempfile
import threading
import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd

from btcore.kernels.single import RUINED_ROW
from btcore.metrics import INTEGER_METRICS, METRIC_NAMES, N_METRICS

#: metrics where a lower value is better (ranking, ``SweepResult.best``)
LOWER_IS_BETTER = frozenset({"annual_volatility"})
MANIFEST = "_btcore.json"
#: the writer's lock file (pid, host and start of the run holding it)
LOCK = ".btcore.lock"
#: parts finished since the manifest was last written, one JSON record a line
#: (appended after each part is renamed into place; folded into the manifest
#: when a run starts and completes, so the manifest is not rewritten per part)
JOURNAL = "_btcore.parts.jsonl"
#: 2: the manifest records every part's task and SHA-256
FORMAT = 2
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

    The writer holds the directory's lock (:data:`LOCK`) from :meth:`open`
    until :meth:`complete` or :meth:`close` (it is also a context manager).
    Every part is written to an ``O_EXCL`` temporary renamed into place, then
    recorded with its task and the SHA-256 of the bytes written: in the journal
    at once, in the manifest when a run starts and completes.
    """

    path: pathlib.Path
    manifest: dict
    prepared: object = None  # the run's Prepared (driver side): rows are labelled from it

    def __post_init__(self):
        # {part file name: {"task": [id, column, window, start, stop], "sha256", "bytes"}}
        self._records = {name: dict(record) for name, record in
                         (self.manifest.pop("parts", None) or {}).items()}
        self._lock = None
        self._journal = None  # descriptor of the journal, appended to after every part
        self._guard = threading.Lock()
        self._n_tasks = None
        try:  # parts are as readable as their directory, never writable by others
            self._mode = stat.S_IMODE(os.stat(self.path).st_mode) & 0o644 | 0o600
        except OSError:
            self._mode = 0o644

    @property
    def kind(self) -> str:
        return self.manifest.get("kind", "rows")

    @classmethod
    def open(cls, out, prepared, *, batch_size, overwrite: bool, kind: str = "rows",
             extra: dict | None = None, workflow: str = "run_sweep") -> "ResultStore":
        """Create ``out`` or check that it holds this very run (before any work),
        and lock it for this run (released by :meth:`complete` or :meth:`close`).

        ``batch_size`` is the caller's: "auto" takes the stored plan's on a resume.
        An existing ``out`` must belong to this user and be writable by nobody
        else; a second writer is refused while the lock is held.
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
        if os.path.lexists(path):
            _check_owned(path, out)
            if not overwrite and _foreign(path):  # refused before a lock file is made there
                raise _not_written_by_btcore(out)
        else:
            _make_directory(path, out)
        lock = _StoreLock.acquire(path, out, workflow)  # before anything is read or deleted
        try:
            store = cls._open_locked(path, out, prepared, keys, batch_size=batch_size,
                                     overwrite=overwrite, kind=kind, workflow=workflow)
            store._lock = lock
            store._start_journal()
        except BaseException:
            lock.release()
            raise
        return store

    @classmethod
    def _open_locked(cls, path, out, prepared, keys, *, batch_size, overwrite, kind,
                     workflow) -> "ResultStore":
        manifest_file = path / MANIFEST
        if _has_content(path):
            if not os.path.lexists(manifest_file):
                if not overwrite:
                    raise _not_written_by_btcore(out)
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
                    store._resume()
                    return store
            _clear_directory(path)  # the lock file stays: this run holds it
        manifest = {"format": FORMAT, "kind": kind, "workflow": workflow,
                    "strategy": prepared.job.strategy.name, "keys": keys, "batch_size": None,
                    "settings": prepared.settings, "complete": False}
        if kind == "rows":
            manifest["columns"] = _row_columns(prepared)
        store = cls(path, manifest, prepared)
        store._write_manifest()
        return store

    # ---------------------------------------------------------- lock
    def close(self) -> None:
        """Close the journal and release the lock (idempotent)."""
        journal, self._journal = self._journal, None
        if journal is not None:
            try:
                os.close(journal)
            except OSError:
                pass
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

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

    def write(self, task, payload) -> None:
        """Write a task's rows (or raw block) to an ``O_EXCL`` temporary renamed
        into place, then record its task and SHA-256 in the journal."""
        name = self._part(task.task_id).name
        data = _serialize(self.kind, payload)
        digest = self._write_atomic(name, data)
        self._record(name, {"task": _task_key(task), "sha256": digest,
                            "bytes": memoryview(data).nbytes})

    def save_table(self, name: str, frame: pd.DataFrame) -> pathlib.Path:
        """Save a workflow's result table as ``<out>/<name>.parquet`` (atomically),
        its SHA-256 recorded in the manifest's ``tables``."""
        file = f"{name}.parquet"
        buffer = io.BytesIO()
        try:
            frame.to_parquet(buffer)
            data = buffer.getbuffer()
            digest = self._write_atomic(file, data)
        except BaseException:
            self.close()  # the run ends here: let the next one in
            raise
        self.manifest.setdefault("tables", {})[file] = {"sha256": digest,
                                                        "bytes": data.nbytes}
        return self.path / file

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
        stored intact; return their ids.

        A recorded part that is missing, a symbolic link, recorded for another
        task, or whose bytes do not match the recorded SHA-256 is deleted and
        recomputed, with a :class:`StoreIntegrityWarning` naming it. A part file
        the manifest does not record (a stray file, or one whose run died before
        recording it) is never read: its task is recomputed.
        """
        self._n_tasks = len(tasks)
        by_name = {self._part(task.task_id).name: task for task in tasks}
        dropped = {name: f"{self.path / name} is recorded in the manifest but is not a "
                   "task of this run's plan" for name in sorted(set(self._records) -
                                                                set(by_name))}
        done = set()
        for name, task in by_name.items():
            record = self._records.get(name)
            if record is None:
                continue
            try:
                payload = self._verified(name, record, task)
            except _BadPart as bad:
                dropped[name] = str(bad)
                continue
            load(task, payload)
            done.add(task.task_id)
        if dropped:
            reasons = list(dropped.values())
            more = f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""
            warnings.warn(f"{len(reasons)} stored part(s) cannot be used and are recomputed: "
                          f"{'; '.join(reasons[:3])}{more}", StoreIntegrityWarning,
                          stacklevel=3)
            for name in dropped:
                del self._records[name]
                _unlink(self.path / name)  # a planted link goes, never its target
            self.manifest["complete"] = False
            self._write_manifest()
        return done

    def complete(self, stats: dict, sort_by: str) -> None:
        """Record the finished run (every part, the stats) and release the lock."""
        try:
            if self._n_tasks is not None:
                if len(self._records) != self._n_tasks:
                    raise RuntimeError(f"internal error: {len(self._records)} parts recorded "
                                       f"for {self._n_tasks} tasks in {self.path}")
                self.manifest["n_tasks"] = self._n_tasks
            self.manifest.update(complete=True, stats=stats, sort_by=sort_by)
            self._write_manifest()
            journal, self._journal = self._journal, None
            if journal is not None:
                os.close(journal)
            _unlink(self.path / JOURNAL)  # every record is in the manifest now
        finally:
            self.close()

    # ---------------------------------------------------------- files
    def _part(self, task_id: int) -> pathlib.Path:
        suffix = "npy" if self.kind == "arrays" else "parquet"
        return self.path / f"part-{task_id:07d}.{suffix}"

    def _verified(self, name: str, record: dict, task):
        """A recorded part's rows or block, once its task, bytes and shape check out."""
        part = self.path / name
        if record.get("task") != _task_key(task):
            raise _BadPart(f"{part} is recorded for task {record.get('task')}, not "
                           f"{_task_key(task)} [id, column, window, start, stop]")
        data = _read_regular(part)
        _check_digest(part, data, record)
        try:
            payload = _parse(self.kind, data)
        except Exception as exc:
            raise _BadPart(f"{part} is corrupt ({exc})") from None
        if self.kind == "arrays":
            rows = payload.shape[-1] if payload.ndim else -1
        else:
            missing = [c for c in self.manifest.get("columns", ()) if c not in payload]
            if missing:
                raise _BadPart(f"{part} has no column {missing[0]!r}")
            rows = len(payload["set"])
        if rows != task.n_sets:
            raise _BadPart(f"{part} has {rows} rows, its task has {task.n_sets}")
        return payload

    def _write_atomic(self, name: str, data) -> str:
        """Write ``data`` (bytes-like) to ``<path>/<name>``: a ``mkstemp``
        temporary (``O_EXCL``, unpredictable name) renamed over the name, which
        replaces a planted link instead of following it. Returns the SHA-256 of
        the bytes written."""
        view = memoryview(data)
        digest = hashlib.sha256(view).hexdigest()
        descriptor, temporary = tempfile.mkstemp(dir=self.path, prefix=f".{name}.",
                                                 suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                if hasattr(os, "fchmod"):
                    os.fchmod(file.fileno(), self._mode)
                file.write(view)
            os.replace(temporary, self.path / name)
        except BaseException:
            _unlink(pathlib.Path(temporary))
            raise
        return digest

    def _write_manifest(self) -> None:
        self._write_atomic(MANIFEST, _manifest_text(self.manifest, self._records).encode())

    def _record(self, name: str, record: dict) -> None:
        """Note a part written and renamed into place: in memory and in the journal."""
        line = json.dumps({"file": name, **record}, separators=(",", ":")) + "\n"
        with self._guard:
            self._records[name] = record
            if self._journal is not None:
                os.write(self._journal, line.encode())

    def _start_journal(self) -> None:
        """Open a fresh journal (every earlier record is in the manifest by now)."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
        try:
            _unlink(self.path / JOURNAL)
            self._journal = os.open(self.path / JOURNAL, flags, self._mode)
        except OSError as exc:
            raise ValueError(f"cannot write {self.path / JOURNAL} ({exc}); delete it, or "
                             "choose another out= directory") from None

    def _resume(self) -> None:
        """With the lock held: drop leftover temporaries, fold the journal of an
        interrupted run into the manifest."""
        self._clean_temporary()
        try:
            journal = _read_journal(self.path)
        except _BadPart as bad:
            warnings.warn(f"{bad}; the parts it records are recomputed",
                          StoreIntegrityWarning, stacklevel=4)
            journal = {}
        if journal:
            self._records.update(journal)
            self._write_manifest()

    def _clean_temporary(self) -> None:
        for leftover in self.path.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)  # unlinks a link itself, never its target


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
        manifest = json.loads(_read_regular(path))
    except (_BadPart, OSError, ValueError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); pass overwrite=True to start "
                         "again") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is unreadable (not a JSON object); pass overwrite=True "
                         "to start again")
    return manifest


# ------------------------------------------------------- store safety
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a planted FIFO must not hang an open
#: where the Windows fallback (msvcrt) locks one byte, past the holder's details
_WINDOWS_LOCK_OFFSET = 1 << 20


class StoreBusyError(RuntimeError):
    """Another run (named in the message) is writing to this ``out=`` directory."""


class StoreIntegrityWarning(UserWarning):
    """A stored part did not match its manifest record and is being recomputed."""


class _BadPart(ValueError):
    """A file of a store that must not be used: missing, a link, altered, corrupt."""


class _StoreLock:
    """An exclusive, non-blocking lock on a store directory, held by one run.

    ``flock`` on :data:`LOCK` inside the directory (``msvcrt.locking`` on
    Windows): the kernel drops it when the process dies, however it dies. The
    file holds the holder's pid, host and start time for the refusal message;
    it is never deleted (deleting a lock file races with the next locker).
    Within one process, a lock still held by an earlier run of the same thread
    (one that ended with an exception whose traceback is still referenced)
    is taken over; another live thread's lock refuses like another process's.
    """

    _held = weakref.WeakValueDictionary()  # (st_dev, st_ino) of a directory -> lock
    _held_guard = threading.Lock()

    def __init__(self, path: pathlib.Path):
        self.path, self.fd = path / LOCK, None
        self.thread = threading.current_thread()

    @classmethod
    def acquire(cls, directory: pathlib.Path, out, workflow: str) -> "_StoreLock":
        info = os.stat(directory)
        key = (info.st_dev, info.st_ino)
        with cls._held_guard:
            earlier = cls._held.get(key)
            if earlier is not None and earlier.fd is not None:
                if earlier.thread is threading.current_thread() or \
                        not earlier.thread.is_alive():
                    earlier.release()  # that run is over: it raised in this thread
                else:
                    raise StoreBusyError(_busy_message(out, earlier.details(), earlier.thread))
            lock = cls(directory)
            lock._take(out, workflow)
            cls._held[key] = lock
            return lock

    def _take(self, out, workflow: str) -> None:
        flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise ValueError(f"cannot open the lock file {self.path} ({exc}); if it is a "
                             "symbolic link or not a file, delete it, or choose another "
                             "out= directory") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"the lock file {self.path} is not a regular file; delete "
                                 "it, or choose another out= directory")
            if not _try_lock(fd, self.path):
                raise StoreBusyError(_busy_message(out, _read_details(fd)))
            details = {"pid": os.getpid(), "host": socket.gethostname(),
                       "started": datetime.datetime.now().astimezone().isoformat(
                           timespec="seconds"),
                       "workflow": workflow, "thread": self.thread.name}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(details).encode())
        except BaseException:
            os.close(fd)  # closing drops a lock taken on it
            raise
        self.fd = fd

    def details(self) -> dict:
        return _read_details(self.fd) if self.fd is not None else {}

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale details for the next reader
        except OSError:
            pass
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __del__(self):
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def _try_lock(fd: int, path) -> bool:
    """Lock ``fd`` exclusively without waiting: True, or False when another holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as exc:
            raise ValueError(f"cannot lock {path} ({exc}): its file system does not support "
                             "locks; choose an out= directory on a local disk") from None
    try:  # pragma: no cover - Windows: a byte past the details, which others may read
        import msvcrt
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    except ImportError:  # pragma: no cover - neither: say so, once
        warnings.warn("this platform has no file locking: make sure only one run writes to "
                      f"{path.parent} at a time", RuntimeWarning, stacklevel=4)
        return True


def _unlock(fd: int) -> None:
    try:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_UN)
    except ImportError:  # pragma: no cover - Windows
        try:
            import msvcrt
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except (ImportError, OSError):
            pass


def _read_details(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        details = json.loads(os.read(fd, 4096) or b"{}")
        return details if isinstance(details, dict) else {}
    except (OSError, ValueError):
        return {}


def _busy_message(out, details: dict, thread=None) -> str:
    if thread is not None:
        who = f"another thread of this process (pid {os.getpid()}, thread {thread.name!r})"
    elif details.get("pid") is not None:
        who = f"process {details['pid']} on host {details.get('host', '?')}"
        if details.get("started"):
            who += f", started {details['started']}"
        if details.get("workflow"):
            who += f" ({details['workflow']})"
        if details.get("host") == socket.gethostname() and not _alive(details["pid"]):
            who += ("; that process has exited, but a process it started (a worker) "
                    "still holds the lock: stop it")
    else:
        who = "another process (its details are not written yet)"
    return (f"out={str(out)!r} is being written by another btcore run: {who}. Wait for it "
            "to finish, or stop it (its finished tasks are kept: the same call resumes "
            "them), or choose another out= directory; open_results() reads it meanwhile")


def _alive(pid) -> bool:
    if os.name != "posix":  # pragma: no cover - os.kill(pid, 0) terminates on Windows
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, OverflowError):
        return True
    return True


def _user(uid: int) -> str:
    try:
        import pwd
        return f"{pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _check_owned(path: pathlib.Path, out) -> None:
    """ValueError unless the existing directory ``path`` belongs to this user and
    only this user can write to it (anyone else could swap its parts, or plant
    links where btcore writes). Windows keeps permissions in ACLs: not checked."""
    if not hasattr(os, "geteuid"):  # pragma: no cover - Windows
        return
    uid = os.geteuid()
    link = os.lstat(path)
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (uid, 0):
        raise ValueError(f"out={str(out)!r} is a symbolic link owned by {_user(link.st_uid)}, "
                         "who could point it elsewhere at any time; choose a directory "
                         "you own")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ValueError(f"out={str(out)!r} cannot be used ({exc.strerror}); choose another "
                         "out= directory") from None
    if info.st_uid != uid:
        raise ValueError(f"out={str(out)!r} is owned by {_user(info.st_uid)}, not by you "
                         f"({_user(uid)}): its owner could replace the results or plant "
                         "links in it. Choose a directory you own (e.g. a new one: btcore "
                         "creates it)")
    if info.st_mode & 0o022:
        mode = stat.S_IMODE(info.st_mode)
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002))
                           if mode & bit)
        raise ValueError(f"out={str(out)!r} is writable by {who} (mode {mode:04o}): they "
                         "could replace the results or plant links in it. Run "
                         f"`chmod go-w {_shell_quote(path)}` if only you should write "
                         "there, or choose a directory only you can write")


def _shell_quote(path) -> str:
    import shlex
    return shlex.quote(str(path))


def _make_directory(path: pathlib.Path, out) -> None:
    """Create ``out`` (and its parents) writable by this user only, whatever the
    umask or inherited ACLs; an ``out`` someone else created meanwhile is checked."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        else:
            os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~0o022)
    except OSError as exc:
        raise ValueError(f"cannot create the out= directory {str(out)!r} ({exc}); choose "
                         "another") from None
    _check_owned(path, out)


def _ignorable(name: str) -> bool:
    """The lock file and leftover temporaries do not make a directory btcore's."""
    return name == LOCK or (name.startswith(".") and name.endswith(".tmp"))


def _has_content(path: pathlib.Path) -> bool:
    return any(not _ignorable(entry.name) for entry in os.scandir(path))


def _foreign(path: pathlib.Path) -> bool:
    return not os.path.lexists(path / MANIFEST) and _has_content(path)


def _not_written_by_btcore(out) -> ValueError:
    return ValueError(f"out={str(out)!r} is a non-empty directory that btcore did not "
                      "write; choose a new or empty directory")


def _clear_directory(path: pathlib.Path) -> None:
    """Delete everything in ``path`` but the lock (links themselves, never targets)."""
    for entry in os.scandir(path):
        if entry.name == LOCK:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _unlink(path: pathlib.Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _open_regular(path: pathlib.Path):
    """``path`` opened for reading if it is a regular file, never through a link."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise _BadPart(f"{path} is missing") from None
    if stat.S_ISLNK(info.st_mode):
        try:
            target = f" (to {os.readlink(path)!r})"
        except OSError:
            target = ""
        raise _BadPart(f"{path} is a symbolic link{target}; btcore never reads or writes "
                       "through one")
    if not stat.S_ISREG(info.st_mode):
        raise _BadPart(f"{path} is not a regular file")
    try:
        descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)
    except OSError as exc:  # ELOOP: a link swapped in since the lstat
        raise _BadPart(f"{path} cannot be opened safely ({exc.strerror})") from None
    file = os.fdopen(descriptor, "rb")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        file.close()
        raise _BadPart(f"{path} is not a regular file")
    return file


def _read_regular(path: pathlib.Path) -> bytes:
    with _open_regular(path) as file:
        return file.read()


def _check_digest(part: pathlib.Path, data: bytes, record: dict) -> None:
    if len(data) != record.get("bytes") or \
            hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise _BadPart(f"{part} does not match the SHA-256 recorded in the manifest (it "
                       "changed after btcore wrote it)")


def _read_journal(path: pathlib.Path) -> dict:
    """``{part: record}`` appended since the manifest was written ({} if none); a
    torn last line (a run killed mid-append) is skipped, its part recomputed."""
    if not os.path.lexists(path / JOURNAL):
        return {}
    records = {}
    for line in _read_regular(path / JOURNAL).splitlines():
        try:
            record = json.loads(line)
            records[record.pop("file")] = record
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return records


def _task_key(task) -> list:
    return [int(task.task_id), int(task.column), int(task.window), int(task.start),
            int(task.stop)]


def _row_columns(prepared) -> list:
    """The columns of every part of a sweep (:func:`task_rows`)."""
    return ["set", *(param.name for param in prepared.job.strategy.params),
            *(["asset"] if has_asset_column(prepared) else []), "_asset", *METRIC_NAMES,
            "ruined"]


def _serialize(kind: str, payload):
    """A part's bytes: ``.npy`` of a raw block, Parquet of rows."""
    if kind == "arrays":
        buffer = io.BytesIO()
        np.save(buffer, payload)
        return buffer.getbuffer()
    import pyarrow as pa
    import pyarrow.parquet as pq
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(dict(payload)), sink)
    return sink.getvalue()


def _parse(kind: str, data: bytes):
    if kind == "arrays":
        return np.load(io.BytesIO(data), allow_pickle=False)
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pq.read_table(pa.BufferReader(data))
    return {name: table.column(name).to_numpy(zero_copy_only=False)
            for name in table.column_names}


def _manifest_text(manifest: dict, records: dict) -> str:
    """The manifest's JSON with ``parts`` appended, one part a line."""
    head = json.dumps(manifest, default=str, indent=1)
    lines = ",\n".join(f"  {json.dumps(name)}: {json.dumps(records[name])}"
                       for name in sorted(records))
    parts = f"{{\n{lines}\n }}" if lines else "{}"
    return f"{head[:-2]},\n \"parts\": {parts}\n}}\n"


class StoredResults:
    """A results directory written by ``run_sweep(..., out=...)``, read lazily.

    Only the parts the manifest records are read (stray files are ignored), and
    each must be a regular file (not a link) with every column and, unless
    ``verify=False``, the SHA-256 recorded when it was written; a complete run
    must have all its parts. Anything else is a ValueError naming the file.

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

    def __init__(self, path, verify: bool = True):
        import pyarrow.dataset as ds
        self.path = pathlib.Path(path)
        manifest_file = self.path / MANIFEST
        if not os.path.lexists(manifest_file):
            raise ValueError(f"{str(path)!r} holds no btcore results (no {MANIFEST}); write "
                             "some with run_sweep(..., out=...)")
        try:  # the journal before the manifest: a writer folds it into the manifest first
            journal = _read_journal(self.path)
        except _BadPart as bad:
            raise ValueError(f"{bad}; refusing to read {str(path)!r}") from None
        manifest = _read_manifest(manifest_file)
        if manifest.get("kind", "rows") != "rows":
            tables = sorted(manifest.get("tables") or
                            (p.name for p in self.path.glob("*.parquet")))
            raise ValueError(f"{str(path)!r} holds {manifest.get('workflow')} results: read "
                             f"its tables {tables} with pandas.read_parquet")
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} was written by another version of btcore (store "
                             f"format {manifest.get('format')}, this one reads {FORMAT}: "
                             "with every part's SHA-256); re-run the same call with "
                             "overwrite=True to rewrite it")
        self.strategy, self.settings = manifest["strategy"], manifest["settings"]
        self.stats, self.complete = manifest.get("stats", {}), bool(manifest["complete"])
        self.sort_by = manifest.get("sort_by", "sharpe_ratio")
        records = {**(manifest.get("parts") or {}), **journal}
        self.parts = self._checked(records, manifest, verify)
        self.dataset = ds.dataset([str(part) for part in self.parts], format="parquet")

    def _checked(self, records: dict, manifest: dict, verify: bool) -> list:
        """The recorded parts, each checked; a ValueError naming the first that fails."""
        advice = ("re-run the same call (same out=) to recompute it, or pass "
                  "overwrite=True to start again")
        if self.complete:  # every task of the plan, and nothing else
            n_tasks = manifest.get("n_tasks")
            if not isinstance(n_tasks, int):
                raise ValueError(f"{self.path / MANIFEST} marks the run complete without its "
                                 f"number of tasks; {advice}")
            expected = {f"part-{k:07d}.parquet" for k in range(n_tasks)}
            missing = sorted(expected - set(records))
            if missing:
                raise ValueError(f"{self.path / missing[0]} is missing: the manifest marks the "
                                 f"run complete with {n_tasks} parts but records "
                                 f"{len(expected) - len(missing)} of them; {advice}")
            extra = sorted(set(records) - expected)
            if extra:
                raise ValueError(f"{self.path / extra[0]} is recorded but is not one of the "
                                 f"{n_tasks} parts of the complete run; {advice}")
        columns = manifest.get("columns") or ["set", "_asset"]
        parts = []
        for name in sorted(records):
            part, record = self.path / name, records[name]
            try:
                _check_part(part, record, columns, verify)
            except _BadPart as bad:
                raise ValueError(f"{bad}: refusing to read it; {advice}") from None
            parts.append(part)
        return parts

    def __len__(self) -> int:
        return self.dataset.count_rows()

    def to_pandas(self, sort_by: str | None = None) -> pd.DataFrame:
        """Every row, ranked as ``run_sweep`` ranks its table (by the run's
        ``sort_by`` unless given), without the bookkeeping columns."""
        sort_by = sort_by or self.sort_by
        if sort_by not in METRIC_NAMES:
            raise ValueError(f"unknown metric {sort_by!r}; choose from {list(METRIC_NAMES)}")
        if not self.parts:
            raise ValueError(f"{str(self.path)!r} has no finished tasks yet")
        table = self.dataset.to_table()
        rows = {name: table.column(name).to_numpy(zero_copy_only=False)
                for name in table.column_names}
        if not rows or len(rows["set"]) == 0:
            raise ValueError(f"{str(self.path)!r} has no finished tasks yet")
        return ranked_frame(rows, sort_by, int(rows["_asset"].max()) + 1)

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return f"StoredResults({self.strategy}: {len(self):,} rows, {state}, {self.path})"


def _check_part(part: pathlib.Path, record: dict, columns: list, verify: bool) -> None:
    """_BadPart unless ``part`` is its record's task, a regular file with every
    column and its task's rows, and (``verify``) the recorded SHA-256."""
    import pyarrow.parquet as pq
    try:
        task = [int(v) for v in record["task"]]
    except (KeyError, TypeError, ValueError):
        raise _BadPart(f"{part} has no valid record in the manifest") from None
    if part.name != f"part-{task[0]:07d}.parquet" or len(task) != 5:
        raise _BadPart(f"{part} is recorded for task {task}, not its own")
    with _open_regular(part) as file:
        data = file.read() if verify else None
        try:
            meta = pq.read_metadata(io.BytesIO(data) if verify else file)
        except Exception as exc:
            meta, broken = None, exc
    if meta is not None:  # the most precise complaint first: a column gone
        names = set(meta.schema.to_arrow_schema().names)
        missing = [column for column in columns if column not in names]
        if missing:
            raise _BadPart(f"{part} has no column {missing[0]!r} (a part of this store has "
                           f"{columns})")
    if verify:
        _check_digest(part, data, record)
    if meta is None:
        raise _BadPart(f"{part} is corrupt ({broken})")
    if meta.num_rows != task[4] - task[3]:
        raise _BadPart(f"{part} has {meta.num_rows} rows, its task {task[4] - task[3]}")


def open_results(path, verify: bool = True) -> StoredResults:
    """Open a results directory written by ``run_sweep(..., out=path)``.

    Reads only the parts its manifest records, each checked against the SHA-256
    recorded when it was written (``verify=False`` skips the hashing of a very
    large store but still checks every part's presence, file type and columns);
    a part that fails is a ValueError naming it. Works while a run writes there.

    Returns
    -------
    StoredResults
        ``.dataset`` (a pyarrow dataset of every row), ``.to_pandas()`` (the ranked
        table), ``.settings``, ``.stats``, ``.complete``.
    """
    return StoredResults(path, verify=verify)


__all__ = ["RowsSink", "ResultStore", "StoredResults", "open_results", "check_memory",
           "LOWER_IS_BETTER", "rank", "task_rows", "StoreBusyError", "StoreIntegrityWarning"]
