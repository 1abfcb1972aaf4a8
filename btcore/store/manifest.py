"""What a result store records: the run's fingerprints, the manifest and the
journal of finished parts, and a part's bytes (``.npy`` or Parquet)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib

import numpy as np
import pandas as pd

from btcore.store.files import BadPart, read_regular

MANIFEST = "_btcore.json"
#: parts finished since the manifest was last written, one JSON record a line
#: (appended after each part is renamed into place; folded into the manifest
#: when a run starts and completes, so the manifest is not rewritten per part)
JOURNAL = "_btcore.parts.jsonl"
#: 2: the manifest records every part's task and SHA-256
FORMAT = 2


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
        # the globals it reads (btcore.kernels.binding.kernel_ref)
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


def read_manifest(path: pathlib.Path) -> dict:
    try:
        manifest = json.loads(read_regular(path))
    except (BadPart, OSError, ValueError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); pass overwrite=True to start "
                         "again") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is unreadable (not a JSON object); pass overwrite=True "
                         "to start again")
    return manifest


def check_digest(part: pathlib.Path, data: bytes, record: dict) -> None:
    if len(data) != record.get("bytes") or \
            hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise BadPart(f"{part} does not match the SHA-256 recorded in the manifest (it "
                       "changed after btcore wrote it)")


def read_journal(path: pathlib.Path) -> dict:
    """``{part: record}`` appended since the manifest was written ({} if none); a
    torn last line (a run killed mid-append) is skipped, its part recomputed."""
    if not os.path.lexists(path / JOURNAL):
        return {}
    records = {}
    for line in read_regular(path / JOURNAL).splitlines():
        try:
            record = json.loads(line)
            records[record.pop("file")] = record
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return records


def serialize(kind: str, payload):
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


def parse(kind: str, data: bytes):
    if kind == "arrays":
        return np.load(io.BytesIO(data), allow_pickle=False)
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pq.read_table(pa.BufferReader(data))
    return {name: table.column(name).to_numpy(zero_copy_only=False)
            for name in table.column_names}


def manifest_text(manifest: dict, records: dict) -> str:
    """The manifest's JSON with ``parts`` appended, one part a line."""
    head = json.dumps(manifest, default=str, indent=1)
    lines = ",\n".join(f"  {json.dumps(name)}: {json.dumps(records[name])}"
                       for name in sorted(records))
    parts = f"{{\n{lines}\n }}" if lines else "{}"
    return f"{head[:-2]},\n \"parts\": {parts}\n}}\n"
