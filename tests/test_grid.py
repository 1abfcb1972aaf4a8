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


def test_matrix_is_in_strategy_order():
    spec = strategies.get("mean_reversion")
    grid = Grid({"stop_loss_z": [3.0], "exit_threshold": [0.5], "entry_threshold": [2.0],
                 "lookback_period": [20]})
    np.testing.assert_array_equal(grid.matrix(spec), [[20, 2.0, 0.5, 3.0]])


# ----------------------------------------------------- Grid.random's space format
def test_random_step_tuple_draws_the_stepped_values():
    grid = Grid.random({"lookback_period": (10, 60, 5)}, 11, seed=3)
    # 11 distinct sets from 11 values: every value once, never {10, 60, 5} as choices
    assert sorted(grid.columns["lookback_period"]) == list(range(10, 61, 5))
    floats = Grid.random({"x": (0.5, 1.5, 0.25), "y": (0.0, 1.0)}, 200, seed=0).columns["x"]
    assert set(floats) == {0.5, 0.75, 1.0, 1.25, 1.5}


def test_random_two_tuple_is_a_range_and_a_list_the_choices():
    grid = Grid.random({"a": (10, 12), "b": [10, 12], "c": (0.0, 1.0), "d": 7}, 300, seed=2)
    assert set(grid.columns["a"]) == {10, 11, 12}  # ints, high inclusive
    assert set(grid.columns["b"]) == {10, 12}
    c = grid.columns["c"]
    assert 0 <= c.min() and c.max() <= 1 and len(np.unique(c)) == 300
    assert set(grid.columns["d"]) == {7}


@pytest.mark.parametrize("space, error, message", [
    ({"a": (10, 60, 7)}, ValueError, r"not a multiple of step 7 in \(10, 60, 7\)"),
    ({"a": (1, 2, 3, 4)}, ValueError, r"a tuple is a range.*write choices as a list: "
                                      r"\[1, 2, 3, 4\]"),
    ({"a": (5,)}, ValueError, r"a tuple is a range"),
    ({"a": (60, 10, 5)}, ValueError, r"low 60 is above high 10"),
    ({"a": (60, 10)}, ValueError, r"low 60 is above high 10"),
    ({"a": (10, 60, 0)}, ValueError, r"step 0 .* must be > 0"),
    ({"a": (10, 60, -5)}, ValueError, r"step -5 .* must be > 0"),
    ({"a": (0.0, float("inf"))}, ValueError, r"must be finite"),
    ({"a": (True, 5)}, TypeError, r"bounds of \(True, 5\) must be real numbers"),
    ({"a": ("1", "5")}, TypeError, r"must be real numbers"),
    ({"a": {10, 20}}, TypeError, r"got a set .*use a sorted list"),
    ({"a": "10-60"}, TypeError, r"give a list of choices, \(low, high\) or \(low, high, step\)"),
    ({"a": {"low": 1, "high": 2}}, TypeError, r"got a dict"),
    ({"a": []}, ValueError, r"no values to draw from"),
    ({"a": ["x", "y"]}, TypeError, r"choices must be real numbers"),
    ({}, ValueError, r"the space is empty"),
    ([("a", (1, 2))], TypeError, r"space must be a dict"),
], ids=["step not dividing", "4-tuple", "1-tuple", "reversed step range", "reversed range",
        "zero step", "negative step", "infinite bound", "bool bound", "string bounds", "set",
        "string", "dict", "empty list", "string choices", "empty space", "list of pairs"])
def test_random_refuses_ambiguous_or_bad_space_entries(space, error, message):
    with pytest.raises(error, match=message):
        Grid.random(space, 5)


def test_random_sets_are_distinct_and_seeded():
    space = {"a": (1, 30), "b": [0.5, 1.0, 1.5]}  # 90 distinct sets
    for n in (20, 60, 89, 90):  # redrawn repeats, then sampling without replacement
        grid = Grid.random(space, n, seed=4)
        frame = grid.to_frame()
        assert len(frame) == n and not frame.duplicated().any()
        pd.testing.assert_frame_equal(frame, Grid.random(space, n, seed=4).to_frame())
    with pytest.raises(ValueError, match=r"only 90 distinct parameter sets, fewer than n=91"):
        Grid.random(space, 91)
    with pytest.raises(ValueError, match="n must be a positive int"):
        Grid.random(space, True)


def test_random_with_a_constraint_keeps_only_matching_sets():
    grid = Grid.random({"entry_threshold": (0.5, 3.0), "exit_threshold": (0.0, 2.0)}, 400,
                       seed=1, constraint="exit_threshold < entry_threshold")
    assert 0 < len(grid) < 400
    assert (grid.columns["exit_threshold"] < grid.columns["entry_threshold"]).all()


# ------------------------------------------------------- missing parameters
def test_missing_parameters_take_their_defaults():
    spec = strategies.get("mean_reversion")
    grid = Grid({"lookback_period": [20, 40]})
    defaults = {p.name: p.default for p in spec.params}
    np.testing.assert_array_equal(
        grid.matrix(spec), [[20, defaults["entry_threshold"], defaults["exit_threshold"],
                             defaults["stop_loss_z"]],
                            [40, defaults["entry_threshold"], defaults["exit_threshold"],
                             defaults["stop_loss_z"]]])
    full = grid.with_defaults(spec)
    assert set(full.names) == set(spec.param_names) and grid.names == ("lookback_period",)
    assert not full.columns["stop_loss_z"].flags.writeable
    assert full.with_defaults(spec) is full
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['lookback'\]"):
        Grid({"lookback": [5]}).with_defaults(spec)


def test_a_sweep_with_missing_parameters_shows_their_columns(small_data):
    from btcore import run_sweep
    spec = strategies.get("mean_reversion")
    partial = run_sweep({"lookback_period": [10, 20], "entry_threshold": [1.5]},
                        data=small_data, assets="SYN000", progress=False)
    stop = spec.param("stop_loss_z").default
    exit_ = spec.param("exit_threshold").default
    assert list(partial.table.columns[:4]) == list(spec.param_names)
    assert (partial.table["stop_loss_z"] == stop).all()
    full = run_sweep({"lookback_period": [10, 20], "entry_threshold": [1.5],
                      "exit_threshold": [exit_], "stop_loss_z": [stop]},
                     data=small_data, assets="SYN000", progress=False)
    pd.testing.assert_frame_equal(partial.table, full.table)


# ---------------------------------------------------------- duplicate sets
@pytest.mark.parametrize("spec, message", [
    ({"a": [1, 2, 1]}, r"parameter 'a' lists 1 twice \(positions 0 and 2\)"),
    ({"a": [0.0, -0.0]}, r"parameter 'a' lists -0.0 twice"),
    (pd.DataFrame({"a": [1, 2, 3, 2], "b": [5.0, 6.0, 7.0, 6.0]}),
     r"parameter set 3 \(a=2, b=6\) repeats parameter set 1; 1 set\(s\) would run twice"),
    ([{"a": 1, "b": 2.0}, {"a": 1, "b": 3.0}, {"a": 1, "b": 2.0}],
     r"parameter set 2 \(a=1, b=2\) repeats parameter set 0"),
    (pd.DataFrame({"a": [0.0, -0.0]}), r"parameter set 1 .* repeats parameter set 0"),
], ids=["dict list", "signed zero", "frame", "records", "frame signed zero"])
def test_duplicate_parameter_sets_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        Grid(spec)


def test_distinct_rows_pass_even_when_hashes_collide(monkeypatch):
    rows = pd.DataFrame({"a": [1, 2, 1], "b": [5.0, 5.0, 6.0]})
    monkeypatch.setattr(pd.util, "hash_array", lambda values: np.zeros(len(values), np.uint64))
    assert len(Grid(rows)) == 3  # the exact check after a hash match: no false alarm
    with pytest.raises(ValueError, match="repeats parameter set 0"):
        Grid(pd.concat([rows, rows.iloc[:1]]))


def test_duplicate_sets_are_refused_before_any_work(no_kernel_runs, small_data):
    from btcore import run_sweep
    with pytest.raises(ValueError, match="repeats parameter set 0"):
        run_sweep([{"lookback_period": 10}, {"lookback_period": 10}], data=small_data,
                  progress=False)
