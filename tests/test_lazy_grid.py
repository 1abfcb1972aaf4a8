"""Lazy Cartesian grids: indexed by arithmetic, equal to the materialised product."""
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import btcore.strategies as strategies
from btcore import Grid, run_sweep
from btcore.sets import ProductSets, TableSets

NAMES = ("a", "b", "c", "d")


@st.composite
def product_specs(draw):
    n_axes = draw(st.integers(1, 4))
    spec = {}
    for name in NAMES[:n_axes]:
        values = draw(st.lists(st.integers(-20, 20), min_size=1, max_size=5, unique=True))
        spec[name] = [v / 4 for v in values]
    return spec


def materialised(spec: dict) -> pd.DataFrame:
    """The product written out with itertools (last name fastest)."""
    return pd.DataFrame(list(itertools.product(*spec.values())), columns=list(spec),
                        dtype=np.float64)


@settings(max_examples=60, deadline=None)
@given(product_specs(), st.sampled_from([None, "a < 1", "a + 0 * a >= 0"]),
       st.data())
def test_lazy_grid_equals_the_materialised_product(spec, constraint, data):
    frame = materialised(spec)
    if constraint is not None:
        frame = frame[frame.eval(constraint)].reset_index(drop=True)
    if frame.empty:
        with pytest.raises(ValueError, match="removes every parameter set"):
            Grid(spec, constraint=constraint)
        return
    grid = Grid(spec, constraint=constraint)
    assert grid.is_product and len(grid) == len(frame)
    pd.testing.assert_frame_equal(grid.to_frame(), frame)
    position = data.draw(st.integers(-len(frame), len(frame) - 1))
    assert grid[position] == frame.iloc[position].to_dict()
    positions = data.draw(st.lists(st.integers(0, len(frame) - 1), max_size=10))
    taken = grid.take(np.array(positions, dtype=np.int64))
    for name in spec:
        np.testing.assert_array_equal(taken[name], frame[name].to_numpy()[positions])


def test_a_billion_sets_cost_nothing_and_index_by_unravel():
    axes = {f"p{k}": np.arange(64) * (k + 1.0) for k in range(5)}
    grid = Grid({name: list(values) for name, values in axes.items()})
    assert len(grid) == 64 ** 5 > 10 ** 9
    for position in (0, 123_456_789, len(grid) - 1):
        digits = np.unravel_index(position, (64,) * 5)
        assert grid[position] == {name: float(values[d]) for (name, values), d in
                                  zip(axes.items(), digits)}
    assert grid.kept is None and "1,073,741,824" in repr(grid)
    with pytest.raises(ValueError, match="grid.take"):
        grid.columns  # 43 GB: refused, not a MemoryError minutes later


def test_index_errors():
    grid = Grid({"a": [1, 2, 3]})
    with pytest.raises(IndexError, match="outside the grid's 3 sets"):
        grid[3]
    with pytest.raises(TypeError, match="indexed by an int"):
        grid["a"]


def test_constraint_is_evaluated_in_chunks(monkeypatch):
    import btcore.grid as grid_module
    monkeypatch.setattr(grid_module, "CONSTRAINT_CHUNK", 7)
    calls = []

    def rule(columns):
        calls.append(len(columns["a"]))
        return columns["a"] > columns["b"]

    spec = {"a": list(range(6)), "b": list(range(5))}
    grid = Grid(spec, constraint=rule)
    frame = materialised(spec)
    frame = frame[frame["a"] > frame["b"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(grid.to_frame(), frame)
    assert calls == [7, 7, 7, 7, 2]


@st.composite
def strategy_grids(draw):
    name = draw(st.sampled_from(["mean_reversion", "ma_crossover", "donchian_breakout"]))
    spec = strategies.get(name)
    grid = {}
    for param in spec.params:
        if draw(st.booleans()):
            continue  # left out: the default
        low = param.default if param.kind is float else int(param.default)
        steps = draw(st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True))
        grid[param.name] = [low + (s if param.kind is int else s / 8) for s in steps]
    order = draw(st.permutations(list(grid)))
    return name, {key: grid[key] for key in order}


@settings(max_examples=40, deadline=None)
@given(strategy_grids(), st.data())
def test_product_sets_equal_the_sorted_table(named, data):
    name, spec_dict = named
    spec = strategies.get(name)
    options = spec.option_values({})
    if not spec_dict:
        spec_dict = {spec.params[0].name: [spec.params[0].default]}
    grid = Grid(spec_dict).with_defaults(spec)
    lazy, table = ProductSets(spec, grid, options), TableSets.from_matrix(
        spec, grid.matrix(spec), options)
    n = lazy.n_sets
    assert n == table.n_sets == len(grid)
    start = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(start + 1, n))
    np.testing.assert_array_equal(lazy.params(start, stop), table.params(start, stop))
    np.testing.assert_array_equal(lazy.grid_rows(start, stop), table.grid_rows(start, stop))
    np.testing.assert_array_equal(lazy.series[lazy.set_series(start, stop)],
                                  table.series[table.set_series(start, stop)])


def test_a_product_sweep_is_bit_identical_to_the_same_sets_as_a_frame():
    spec = {"lookback_period": [40, 20, 60], "entry_threshold": [2.0, 1.5],
            "exit_threshold": [0.5, 0.0], "stop_loss_z": [3.0]}
    constraint = "exit_threshold < entry_threshold - 1.2"
    lazy = run_sweep(Grid(spec, constraint=constraint), assets=["AAPL", "MSFT"],
                     start="2016-01-01", end="2019-12-31", progress=False, batch_size=3)
    frame = Grid(spec, constraint=constraint).to_frame()
    table = run_sweep(frame, assets=["AAPL", "MSFT"], start="2016-01-01", end="2019-12-31",
                      progress=False, batch_size=5)
    assert len(lazy.table) == 2 * len(frame) == 18
    pd.testing.assert_frame_equal(lazy.table, table.table)
