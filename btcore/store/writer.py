"""Writing a result store: :class:`ResultStore` (one run's directory, locked
while it writes), the sink that stores every finished task, and the arrays
store of a walk-forward or Monte Carlo job (:func:`stored_job`)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import stat
import tempfile
import threading
import warnings
from dataclasses import dataclass

import pandas as pd

from btcore.benchmark import BENCHMARK_COLUMNS
from btcore.metrics import METRIC_NAMES
from btcore.results import has_asset_column, task_rows
from btcore.store.files import (CLOEXEC, NOFOLLOW, BadPart, StoreLock, check_owned,
                                clear_directory, has_content, make_directory, read_regular,
                                unlink)
from btcore.store.manifest import (FORMAT, JOURNAL, MANIFEST, check_digest, fingerprints,
                                   manifest_text, parse, read_journal, read_manifest,
                                   serialize)

#: sets per task when ``out=`` is given and batch_size="auto": a fixed nominal
#: kernel speed instead of a timed calibration, so a re-run cuts the same tasks
NOMINAL_PARAM_BARS_PER_S = 2.5e8


class StoreIntegrityWarning(UserWarning):
    """A stored part did not match its manifest record and is being recomputed."""


#: a resumable run predicted (at the nominal speed) to take at least this long is cut
#: into at least ``MIN_STORE_TASKS`` tasks, so a kill loses a part of it, not all
STORE_SPLIT_SECONDS = 1.0
MIN_STORE_TASKS = 16


def deterministic_batch_size(job, slots: int) -> int:
    """Sets per task from the job's size alone (no timing), for resumable runs: the
    engine's choice at the nominal speed, and at most 1/16 of the sets per block when
    the run is predicted to take a second or more (a one-block job, such as a
    portfolio sweep, would otherwise often be one task: nothing to resume)."""
    from btcore.engine import choose_batch_size
    traded = job.traded_bars
    speed = NOMINAL_PARAM_BARS_PER_S / job.cost_factor
    size = choose_batch_size(job.n_sets, traded.size, float(traded.mean()), speed, slots)
    if float(traded.sum()) * job.n_sets / speed >= STORE_SPLIT_SECONDS:
        size = min(size, max(1, -(-job.n_sets // MIN_STORE_TASKS)))
    return size


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
            check_owned(path, out)
            if not overwrite and _foreign(path):  # refused before a lock file is made there
                raise _not_written_by_btcore(out)
        else:
            make_directory(path, out)
        lock = StoreLock.acquire(path, out, workflow)  # before anything is read or deleted
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
        if has_content(path):
            if not os.path.lexists(manifest_file):
                if not overwrite:
                    raise _not_written_by_btcore(out)
            else:
                stored = read_manifest(manifest_file)
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
            clear_directory(path)  # the lock file stays: this run holds it
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
        data = serialize(self.kind, payload)
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
            except BadPart as bad:
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
                unlink(self.path / name)  # a planted link goes, never its target
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
            unlink(self.path / JOURNAL)  # every record is in the manifest now
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
            raise BadPart(f"{part} is recorded for task {record.get('task')}, not "
                           f"{_task_key(task)} [id, column, window, start, stop]")
        data = read_regular(part)
        check_digest(part, data, record)
        try:
            payload = parse(self.kind, data)
        except Exception as exc:
            raise BadPart(f"{part} is corrupt ({exc})") from None
        if self.kind == "arrays":
            rows = payload.shape[-1] if payload.ndim else -1
        else:
            missing = [c for c in self.manifest.get("columns", ()) if c not in payload]
            if missing:
                raise BadPart(f"{part} has no column {missing[0]!r}")
            rows = len(payload["set"])
        if rows != task.n_sets:
            raise BadPart(f"{part} has {rows} rows, its task has {task.n_sets}")
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
            unlink(pathlib.Path(temporary))
            raise
        return digest

    def _write_manifest(self) -> None:
        self._write_atomic(MANIFEST, manifest_text(self.manifest, self._records).encode())

    def _record(self, name: str, record: dict) -> None:
        """Note a part written and renamed into place: in memory and in the journal."""
        line = json.dumps({"file": name, **record}, separators=(",", ":")) + "\n"
        with self._guard:
            self._records[name] = record
            if self._journal is not None:
                os.write(self._journal, line.encode())

    def _start_journal(self) -> None:
        """Open a fresh journal (every earlier record is in the manifest by now)."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC
        try:
            unlink(self.path / JOURNAL)
            self._journal = os.open(self.path / JOURNAL, flags, self._mode)
        except OSError as exc:
            raise ValueError(f"cannot write {self.path / JOURNAL} ({exc}); delete it, or "
                             "choose another out= directory") from None

    def _resume(self) -> None:
        """With the lock held: drop leftover temporaries, fold the journal of an
        interrupted run into the manifest."""
        self._clean_temporary()
        try:
            journal = read_journal(self.path)
        except BadPart as bad:
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


def _foreign(path: pathlib.Path) -> bool:
    return not os.path.lexists(path / MANIFEST) and has_content(path)


def _not_written_by_btcore(out) -> ValueError:
    return ValueError(f"out={str(out)!r} is a non-empty directory that btcore did not "
                      "write; choose a new or empty directory")


def _task_key(task) -> list:
    return [int(task.task_id), int(task.column), int(task.window), int(task.start),
            int(task.stop)]


def _row_columns(prepared) -> list:
    """The columns of every part of a sweep (:func:`task_rows`)."""
    return ["set", *(param.name for param in prepared.job.strategy.params),
            *(["asset"] if has_asset_column(prepared) else []), "_asset", *METRIC_NAMES,
            *BENCHMARK_COLUMNS, "ruined"]
