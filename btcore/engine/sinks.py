"""Sinks: where a job's finished blocks go (placed by task indices, never by
completion order)."""
from __future__ import annotations

import numpy as np

from btcore.engine.tasks import Job, Task
from btcore.kernels.single import OUT_ROWS, RUINED_ROW
from btcore.metrics import METRIC_NAMES


class ArraySink:
    """Every result of a job over one block: ``out`` (rows, n_sets) in sorted-set
    order, for jobs whose task returns (rows, sets) (portfolio, cross-sectional)."""

    def __init__(self, rows: int, n_sets: int, kind: str = ""):
        self.out = np.full((rows, n_sets), np.nan)
        self.kind = kind
        self._filled = np.zeros(n_sets, dtype=np.int64)

    def add(self, task: Task, out: np.ndarray, block_sums=None) -> None:
        self.out[:, task.start:task.stop] = out
        self._filled[task.start:task.stop] += 1

    def check_complete(self) -> None:
        if not (self._filled == 1).all():
            raise RuntimeError(f"internal error: {self.kind} backtests missing or duplicated")


class DenseSink:
    """Every result: ``metrics`` (n_columns, n_windows, n_checks, OUT_ROWS, n_sets)
    in sorted-set order, plus ``block_sums`` (n_columns, n_windows, n_sets, n_blocks, 2)."""

    def __init__(self, job: Job):
        shape = (job.n_columns, job.windows.shape[0], job.windows.shape[1], OUT_ROWS,
                 job.n_sets)
        self.metrics = np.full(shape, np.nan)
        self.block_sums = (np.full(shape[:2] + (job.n_sets, job.n_blocks, 2), np.nan)
                           if job.n_blocks else None)
        self._filled = np.zeros(shape[:2] + (job.n_sets,), dtype=np.int64)

    def add(self, task: Task, out: np.ndarray, block_sums=None) -> None:
        rows = slice(task.start, task.stop)
        self.metrics[task.column, task.window, :, :, rows] = out
        if block_sums is not None:
            self.block_sums[task.column, task.window, rows] = block_sums
        self._filled[task.column, task.window, rows] += 1

    def check_complete(self) -> None:
        if not (self._filled == 1).all():
            raise RuntimeError(f"internal error: {int((self._filled == 0).sum())} backtests "
                               f"missing, {int((self._filled > 1).sum())} duplicated")


class TopKSink:
    """The ``k`` best sets by ``metric`` per (column, window, checkpoint), ruined
    rows excluded; ties go to the first set in grid order.

    ``best`` after the run: (n_columns, n_windows, n_checks, k) grid rows (-1
    where fewer than k rows qualify), ``values`` the metric of each, ``outputs``
    their whole kernel output (every metric: no replay needed to report them).
    """

    def __init__(self, job: Job, metric: str = "sharpe_ratio", k: int = 1,
                 lower_is_better: bool = False):
        if metric not in METRIC_NAMES:
            raise ValueError(f"unknown metric {metric!r}; choose from {list(METRIC_NAMES)}")
        self.row = METRIC_NAMES.index(metric)
        self.k, self.sign = int(k), (1.0 if lower_is_better else -1.0)
        shape = (job.n_columns, job.windows.shape[0], job.windows.shape[1])
        self._sets = job.sets
        self._candidates = {index: [] for index in np.ndindex(*shape)}
        self._shape = shape
        self._seen = np.zeros(shape[:2], dtype=np.int64)
        self._n_sets = job.n_sets

    def add(self, task: Task, out: np.ndarray, block_sums=None) -> None:
        grid_rows = self._sets.grid_rows(task.start, task.stop)
        for check in range(out.shape[0]):
            values = out[check, self.row]
            keep = np.flatnonzero(~np.isnan(values) & (out[check, RUINED_ROW] == 0.0))
            scores = self.sign * values[keep]  # ascending = better first
            if scores.size > self.k:  # only the k best (ties at the k-th included) matter
                threshold = np.partition(scores, self.k - 1)[self.k - 1]
                near = scores <= threshold
                keep, scores = keep[near], scores[near]
            rows = grid_rows[keep]
            bucket = self._candidates[(task.column, task.window, check)]
            for i in np.lexsort((rows, scores))[:self.k]:  # grid row breaks ties
                bucket.append((float(scores[i]), int(rows[i]), out[check, :, keep[i]].copy()))
            bucket.sort(key=_score_then_row)
            del bucket[self.k:]
        self._seen[task.column, task.window] += task.n_sets

    @property
    def best(self) -> np.ndarray:
        best = np.full(self._shape + (self.k,), -1, dtype=np.int64)
        for index, bucket in self._candidates.items():
            best[index][:len(bucket)] = [grid_row for _, grid_row, _ in bucket]
        return best

    @property
    def values(self) -> np.ndarray:
        values = np.full(self._shape + (self.k,), np.nan)
        for index, bucket in self._candidates.items():
            values[index][:len(bucket)] = [column[self.row] for _, _, column in bucket]
        return values

    @property
    def outputs(self) -> np.ndarray:
        """(n_columns, n_windows, n_checks, k, OUT_ROWS): each kept set's kernel
        output (NaN where fewer than k rows qualify)."""
        outputs = np.full(self._shape + (self.k, OUT_ROWS), np.nan)
        for index, bucket in self._candidates.items():
            for i, (_, _, column) in enumerate(bucket):
                outputs[index][i] = column
        return outputs

    def check_complete(self) -> None:
        if not (self._seen == self._n_sets).all():
            raise RuntimeError("internal error: the top-k sink missed or duplicated blocks")


def _score_then_row(candidate):
    return candidate[0], candidate[1]
