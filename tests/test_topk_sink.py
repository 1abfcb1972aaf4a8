"""TopKSink against the plain rule it implements: the k best (metric, grid row)
pairs of every (column, window, checkpoint), ruined and NaN rows out, whatever
the tasks' split and order; its ``outputs`` are the kept sets' kernel columns."""
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from btcore.engine import Task, TopKSink
from btcore.kernels.single import OUT_ROWS, RUINED_ROW
from btcore.metrics import METRIC_NAMES

SHARPE = METRIC_NAMES.index("sharpe_ratio")


class Sets:
    def __init__(self, order):
        self.order = order

    def grid_rows(self, start, stop):
        return self.order[start:stop]


def reference(out, order, k, sign):
    """(grid rows, values) of the k best rows of ``out`` (OUT_ROWS, n_sets)."""
    ranked = sorted((sign * out[SHARPE, j], int(order[j]), out[SHARPE, j])
                    for j in range(out.shape[1])
                    if not np.isnan(out[SHARPE, j]) and out[RUINED_ROW, j] == 0.0)[:k]
    return [row for _, row, _ in ranked], [value for _, _, value in ranked]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 4), st.booleans(), st.integers(1, 12), st.data())
def test_top_k_is_the_k_best_whatever_the_split(n_sets, k, lower, batch, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    # few distinct values: ties, -0.0 beside 0.0, NaN and ruined rows
    out = rng.normal(size=(2, OUT_ROWS, n_sets))
    out[:, SHARPE] = rng.choice([-1.0, -0.0, 0.0, 0.5, 2.0, np.inf, np.nan], size=(2, n_sets))
    out[:, RUINED_ROW] = rng.random((2, n_sets)) < 0.2
    order = rng.permutation(n_sets).astype(np.int64)  # sorted position -> grid row
    job = SimpleNamespace(n_columns=1, n_sets=n_sets, windows=np.zeros((1, 2), dtype=np.int64),
                          sets=Sets(order))
    sink = TopKSink(job, "sharpe_ratio", k=k, lower_is_better=lower)
    tasks = [Task(i, 0, 0, start, min(start + batch, n_sets), 0.0)
             for i, start in enumerate(range(0, n_sets, batch))]
    for task in data.draw(st.permutations(tasks)):
        sink.add(task, out[:, :, task.start:task.stop])
    sink.check_complete()
    for check in range(2):
        rows, values = reference(out[check], order, k, 1.0 if lower else -1.0)
        best = sink.best[0, 0, check]
        assert best[:len(rows)].tolist() == rows and (best[len(rows):] == -1).all()
        np.testing.assert_array_equal(sink.values[0, 0, check][:len(rows)], values)
        position = {int(row): j for j, row in enumerate(order)}
        for i, row in enumerate(rows):  # the kept set's whole output column, same bits
            np.testing.assert_array_equal(sink.outputs[0, 0, check, i],
                                          out[check, :, position[row]])
        assert np.isnan(sink.outputs[0, 0, check, len(rows):]).all()
