"""Grid construction, constraints, random grids and batches."""
import numpy as np
import pandas as pd
import pytest

import btcore.strategies as strategies
from btcore import Grid


def test_product_order_and_columns():
    grid = Grid({"a": [1, 2], "b": [10.0, 20.0, 30.0]})
    assert len(grid) == 6
    np.testing.assert_array_equal(grid.columns["a"], [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(grid.columns["b"], [10, 20, 30, 10, 20, 30])
    assert all(v.dtype == np.float64 and not v.flags.writeable for v in grid.columns.values())


def test_frame_records_and_scalars_are_equivalent():
    records = [{"a": 1, "b": 2.0}, {"a": 3, "b": 4.0}]
    from_records = Grid(records)
    from_frame = Grid(pd.DataFrame(records))
    for name in ("a", "b"):
        np.testing.assert_array_equal(from_records.columns[name], from_frame.columns[name])
    assert len(Grid({"a": 5, "b": [1, 2]})) == 2


def test_constraints_callable_and_expression():
    spec = {"entry_threshold": [1.0, 2.0], "exit_threshold": [0.5, 1.5, 2.5]}
    by_expression = Grid(spec, constraint="exit_threshold < entry_threshold")
    by_callable = Grid(spec, constraint=lambda c: c["exit_threshold"] < c["entry_threshold"])
    assert len(by_expression) == len(by_callable) == 3
    with pytest.raises(ValueError, match="removes every parameter set"):
        Grid(spec, constraint="exit_threshold > 100")
    with pytest.raises(ValueError, match="one boolean per parameter set"):
        Grid(spec, constraint=lambda c: True)
    with pytest.raises(ValueError, match="cannot evaluate constraint"):
        Grid(spec, constraint="no_such_column > 1")


def test_random_grid_is_seeded_and_in_range():
    space = {"lookback_period": (5, 50), "entry_threshold": (0.5, 3.0),
             "exit_threshold": [0.0, 0.25, 0.5], "stop_loss_z": (2.0, 4.0)}
    a = Grid.random(space, 500, seed=1)
    b = Grid.random(space, 500, seed=1)
    for name in space:
        np.testing.assert_array_equal(a.columns[name], b.columns[name])
    lookbacks = a.columns["lookback_period"]
    assert lookbacks.min() >= 5 and lookbacks.max() <= 50
    assert (lookbacks == np.round(lookbacks)).all()
    assert set(a.columns["exit_threshold"]) <= {0.0, 0.25, 0.5}
    a.matrix(strategies.get("mean_reversion"))  # valid for the strategy
    with pytest.raises(ValueError, match="n must be a positive int"):
        Grid.random(space, 0)


def test_batches_cover_every_row_once():
    grid = Grid({"a": list(range(10))})
    batches = list(grid.batches(3))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [i for b in batches for i in b] == list(range(10))


def test_matrix_is_in_strategy_order():
    spec = strategies.get("mean_reversion")
    grid = Grid({"stop_loss_z": [3.0], "exit_threshold": [0.5], "entry_threshold": [2.0],
                 "lookback_period": [20]})
    np.testing.assert_array_equal(grid.matrix(spec), [[20, 2.0, 0.5, 3.0]])
