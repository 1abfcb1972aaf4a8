"""Reading a result store: :func:`open_results` and :class:`StoredResults`, which
read only the parts the manifest records, each checked first."""
from __future__ import annotations

import io
import os
import pathlib

import pandas as pd

from btcore.metrics import METRIC_NAMES
from btcore.results import ranked_frame
from btcore.store.files import BadPart, open_regular
from btcore.store.manifest import FORMAT, MANIFEST, check_digest, read_journal, read_manifest


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
            journal = read_journal(self.path)
        except BadPart as bad:
            raise ValueError(f"{bad}; refusing to read {str(path)!r}") from None
        manifest = read_manifest(manifest_file)
        if manifest.get("kind", "rows") != "rows":
            raise ValueError(_not_rows_message(path, manifest, journal))
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
            except BadPart as bad:
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


def _not_rows_message(path, manifest: dict, journal: dict) -> str:
    """What a store of another workflow (walk-forward, Monte Carlo, portfolio) holds,
    and how to read or finish it."""
    workflow = manifest.get("workflow") or "another workflow's"
    tables = sorted(manifest.get("tables") or ())
    if manifest.get("complete") and tables:
        return (f"{str(path)!r} holds {workflow} results, not a sweep's rows: read its "
                f"tables {tables} with pandas.read_parquet")
    finished = len({**(manifest.get("parts") or {}), **journal})
    n_sets, batch_size = manifest.get("n_sets"), manifest.get("batch_size")
    planned = ""
    if isinstance(n_sets, int) and isinstance(batch_size, int) and batch_size > 0:
        planned = f" of {n_sets:,} parameter sets in tasks of {batch_size:,}"
    return (f"{str(path)!r} holds an unfinished {workflow} run: {finished:,} finished "
            f"task(s){planned} are kept there, and its tables are written only when it "
            f"completes. Re-run the same call with out={str(path)!r} to compute only the "
            "missing tasks; then read its tables with pandas.read_parquet (the call "
            "returns them too)")


def _check_part(part: pathlib.Path, record: dict, columns: list, verify: bool) -> None:
    """BadPart unless ``part`` is its record's task, a regular file with every
    column and its task's rows, and (``verify``) the recorded SHA-256."""
    import pyarrow.parquet as pq
    try:
        task = [int(v) for v in record["task"]]
    except (KeyError, TypeError, ValueError):
        raise BadPart(f"{part} has no valid record in the manifest") from None
    if part.name != f"part-{task[0]:07d}.parquet" or len(task) != 5:
        raise BadPart(f"{part} is recorded for task {task}, not its own")
    with open_regular(part) as file:
        data = file.read() if verify else None
        try:
            meta = pq.read_metadata(io.BytesIO(data) if verify else file)
        except Exception as exc:
            meta, broken = None, exc
    if meta is not None:  # the most precise complaint first: a column gone
        names = set(meta.schema.to_arrow_schema().names)
        missing = [column for column in columns if column not in names]
        if missing:
            raise BadPart(f"{part} has no column {missing[0]!r} (a part of this store has "
                           f"{columns})")
    if verify:
        check_digest(part, data, record)
    if meta is None:
        raise BadPart(f"{part} is corrupt ({broken})")
    if meta.num_rows != task[4] - task[3]:
        raise BadPart(f"{part} has {meta.num_rows} rows, its task {task[4] - task[3]}")


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
