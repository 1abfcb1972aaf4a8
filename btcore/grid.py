"""Parameter grids: a lazy Cartesian product, or columns (one float64 array each).

A dict of lists is never expanded: the grid keeps each parameter's distinct
values (its *axes*) and finds set ``i`` by mixed-radix arithmetic (last axis
fastest, like ``itertools.product``), so ``len(grid)`` and ``grid[i]`` are
instant at 10^9 sets and a task materialises only its own rows. A constraint
keeps the product positions it passes (8 bytes per kept set, evaluated in
chunks). Frames, lists of dicts and random grids are stored as columns.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from btcore._expressions import evaluate_constraint
from btcore._sampling import is_real, sampler


class Grid:
    """A set of parameter combinations.

    Parameters
    ----------
    spec : dict of name -> list, pandas.DataFrame, list of dict, or Grid
        A dict of lists is expanded to its Cartesian product (last name varies
        fastest, like ``itertools.product``); a DataFrame or list of dicts is
        taken row by row.
    constraint : callable or str, optional
        Rows to keep: a function of the columns dict returning a boolean mask,
        or an expression such as ``"exit_threshold < entry_threshold"``. An
        expression is parsed, never evaluated as code: it may use parameter
        names, numbers, arithmetic, comparisons, ``and``/``or``/``not``
        (``&``/``|``/``~``) and ``abs``/``min``/``max``; anything else is refused.

    A strategy parameter the grid leaves out takes its declared default
    (``Param.default``) in every set, and still gets a column in the result
    table. Every parameter set must be different: a dict list naming a value
    twice, or a frame or list of dicts with two equal rows, is refused (each
    would run twice); ``DataFrame.drop_duplicates()`` removes them.

    Raises
    ------
    ValueError
        Empty grid (also after the constraint), non-numeric or missing values,
        lists of different lengths in a list of dicts, duplicate parameter sets.

    Examples
    --------
    >>> grid = Grid({"lookback_period": [20, 40], "entry_threshold": [1.5, 2.0]})
    >>> len(grid)
    4
    """

    #: materialised ``{name: values}``; None for a product
    _columns = None
    #: a product's ``{name: distinct values}`` (last varies fastest); None for columns
    _axes = None
    #: product positions kept by a constraint (sorted int64), or None: all
    _kept = None

    def __init__(self, spec, constraint: Callable | str | None = None):
        if isinstance(spec, Grid):
            self._columns, self._axes, self._kept = spec._columns, spec._axes, spec._kept
            if constraint is not None:
                self._apply_constraint(constraint)
            return
        if isinstance(spec, Mapping):
            self._axes = _axes(spec)
            if constraint is not None:
                self._apply_constraint(constraint)
            return
        if isinstance(spec, pd.DataFrame):
            if spec.columns.duplicated().any():
                duplicated = sorted(set(spec.columns[spec.columns.duplicated()]))
                raise ValueError(f"the grid frame has duplicate columns {duplicated}")
            columns = {str(c): spec[c].to_numpy() for c in spec.columns}
        elif isinstance(spec, Sequence) and not isinstance(spec, str):
            columns = _from_records(spec)
        else:
            raise TypeError("a grid is a dict of lists, a DataFrame, a list of dicts or a Grid, "
                            f"got {type(spec).__name__}")
        columns = {name: _numeric(name, values) for name, values in columns.items()}
        if not columns:
            raise ValueError("the grid has no parameters; give at least one name -> values")
        n_rows = len(next(iter(columns.values())))
        if n_rows == 0:
            raise ValueError("the grid is empty (0 parameter sets); give every parameter at "
                             "least one value")
        _check_distinct(columns)
        if constraint is not None:
            mask = _constraint_mask(constraint, columns, n_rows)
            columns = {name: values[mask] for name, values in columns.items()}
            if not mask.any():
                raise ValueError(f"the constraint {constraint!r} removes every parameter set")
        for values in columns.values():
            values.flags.writeable = False
        self._columns = columns

    def _apply_constraint(self, constraint) -> None:
        """Keep the rows ``constraint`` passes, evaluated on chunks of rows."""
        if self._columns is not None:
            mask = _constraint_mask(constraint, self._columns, len(self))
            self._columns = {name: _frozen(values[mask]) for name, values in
                             self._columns.items()}
            if not mask.any():
                raise ValueError(f"the constraint {constraint!r} removes every parameter set")
            return
        kept = []
        for start in range(0, len(self), CONSTRAINT_CHUNK):
            rows = np.arange(start, min(start + CONSTRAINT_CHUNK, len(self)), dtype=np.int64)
            mask = _constraint_mask(constraint, self.take(rows), len(rows))
            kept.append(self._product_positions(rows)[mask])
        kept = np.concatenate(kept)
        if kept.size == 0:
            raise ValueError(f"the constraint {constraint!r} removes every parameter set")
        self._kept = _frozen(kept)

    @classmethod
    def random(cls, space: Mapping[str, object], n: int, seed: int = 0,
               constraint: Callable | str | None = None) -> "Grid":
        """``n`` distinct parameter sets drawn at random from ``space``.

        ``space`` maps each name to one of:

        - a **list** (or ``range``, 1-D array, Series): the choices, drawn
          uniformly: ``[10, 20, 60]``, ``range(10, 61, 5)``;
        - a **2-tuple** ``(low, high)``: uniform over the range, high
          inclusive; whole numbers when both bounds are ints:
          ``(10, 60)`` draws 10, 11, ... 60; ``(0.5, 3.0)`` any float;
        - a **3-tuple** ``(low, high, step)``: ``low, low + step, ... high``
          drawn uniformly (``high - low`` must be a multiple of ``step``):
          ``(10, 60, 5)`` draws 10, 15, ... 60;
        - a number: that value in every set.

        Any other tuple, a set, a string or a dict is an error: write choices
        as a list. Sets are distinct (repeats are redrawn); a ``ValueError``
        says so when the space holds fewer than ``n`` of them. The
        ``constraint`` (as in :class:`Grid`) is applied after drawing, so fewer
        than ``n`` sets may remain. The same seed gives the same grid.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not isinstance(space, Mapping):
            raise TypeError(f"space must be a dict of name -> list, (low, high) or (low, high, "
                            f"step), got {type(space).__name__}")
        if not space:
            raise ValueError("the space is empty; give name -> list, (low, high) or (low, "
                             "high, step)")
        rng = np.random.default_rng(seed)
        draws = {str(name): sampler(str(name), value) for name, value in space.items()}
        counts = [count for count, _, _ in draws.values()]
        distinct = math.prod(counts) if all(c is not None for c in counts) else None
        if distinct is not None and distinct < n:
            raise ValueError(f"the space holds only {distinct:,} distinct parameter sets, "
                             f"fewer than n={n:,}; use Grid(...) for all of them, or widen "
                             "the space")
        if distinct is not None and n > distinct // 2:  # dense: without replacement
            picked = np.unravel_index(rng.choice(distinct, size=n, replace=False), counts)
            frame = pd.DataFrame({name: values()[k] for (name, (_, values, _)), k in
                                  zip(draws.items(), picked)})
            return cls(frame, constraint=constraint)
        frame = pd.DataFrame({name: draw(rng, n) for name, (_, _, draw) in draws.items()})
        for _ in range(100):  # redraw repeated sets: few rounds, at most half are taken
            repeated = _repeated({name: frame[name].to_numpy() for name in frame.columns})
            if repeated is None:
                break
            more = pd.DataFrame({name: draw(rng, int(repeated.sum()))
                                 for name, (_, _, draw) in draws.items()})
            frame = pd.concat([frame[~repeated], more], ignore_index=True)
        else:  # pragma: no cover - continuous spaces never repeat, dense ones go above
            raise ValueError(f"could not draw {n:,} distinct parameter sets from the space")
        return cls(frame, constraint=constraint)

    # ------------------------------------------------------------------ access
    @property
    def is_product(self) -> bool:
        """True for a lazy Cartesian product (a dict of lists), constrained or not."""
        return self._axes is not None

    @property
    def axes(self) -> dict:
        """A product's ``{name: distinct values}`` in grid order (last varies fastest)."""
        if self._axes is None:
            raise ValueError("this grid is a table of parameter sets, not a product")
        return dict(self._axes)

    @property
    def kept(self):
        """Product positions a constraint kept (int64, ascending), or None for all."""
        return self._kept

    @property
    def columns(self) -> dict:
        """``{name: read-only float64 array}`` in insertion order (a product is
        materialised here: use :meth:`take` for a slice of a large grid)."""
        if self._columns is not None:
            return dict(self._columns)
        cached = self.__dict__.get("_materialised")
        if cached is None:
            from btcore.results import available_memory
            needed = 2 * 8 * len(self) * len(self._axes)
            if needed > available_memory() / 2:
                raise ValueError(f"writing out all {len(self):,} parameter sets takes about "
                                 f"{needed / 1e9:,.1f} GB, more than half of the memory "
                                 "available; read slices with grid.take(positions) or "
                                 "grid[i], or sweep it as it is (run_sweep never writes it "
                                 "out)")
            cached = {name: _frozen(values) for name, values in
                      self.take(np.arange(len(self), dtype=np.int64)).items()}
            if len(self) <= CONSTRAINT_CHUNK:  # small: keep it for repeated reads
                self._materialised = cached
        return dict(cached)

    @property
    def names(self) -> tuple:
        return tuple(self._axes if self._axes is not None else self._columns)

    def __len__(self) -> int:
        if self._kept is not None:
            return len(self._kept)
        if self._axes is not None:
            return math.prod(len(values) for values in self._axes.values())
        return len(next(iter(self._columns.values())))

    def __getitem__(self, position) -> dict:
        """Parameter set ``position`` as ``{name: value}`` (negative counts from the end)."""
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
            raise TypeError(f"a grid is indexed by an int position, got {position!r}; "
                            "use take() for many")
        size = len(self)
        if not -size <= position < size:
            raise IndexError(f"position {position} is outside the grid's {size:,} sets")
        rows = self.take(np.array([position % size], dtype=np.int64))
        return {name: float(values[0]) for name, values in rows.items()}

    def take(self, positions) -> dict:
        """``{name: float64 values}`` of the sets at ``positions`` (grid order)."""
        positions = np.asarray(positions, dtype=np.int64)
        if self._columns is not None:
            return {name: values[positions] for name, values in self._columns.items()}
        digits = self.digits(positions)
        return {name: values[digits[name]] for name, values in self._axes.items()}

    def digits(self, positions) -> dict:
        """A product's ``{name: index into its axis}`` of the sets at ``positions``."""
        remaining = self._product_positions(np.asarray(positions, dtype=np.int64))
        digits = {}
        for name, values in reversed(list(self._axes.items())):
            remaining, digits[name] = np.divmod(remaining, len(values))
        return {name: digits[name] for name in self._axes}

    def _product_positions(self, positions: np.ndarray) -> np.ndarray:
        return positions if self._kept is None else self._kept[positions]

    def __repr__(self) -> str:
        if self._axes is not None:
            sizes = ", ".join(f"{k}: {len(v)} values" for k, v in self._axes.items())
            kept = " (constrained)" if self._kept is not None else ""
            return f"Grid({len(self):,} parameter sets{kept}; {sizes})"
        sizes = ", ".join(f"{k}: {len(np.unique(v))} values" for k, v in self._columns.items())
        return f"Grid({len(self)} parameter sets; {sizes})"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns)

    def value_range(self, name: str) -> tuple:
        """``(min, max)`` of parameter ``name`` over the grid's sets (a product's
        axis range; a constrained product may not reach both ends)."""
        values = self._axes[name] if self._axes is not None else self._columns[name]
        return float(values.min()), float(values.max())

    def check(self, spec) -> None:
        """Validate names and values against a strategy spec without materialising
        (a product checks its axes).

        Raises
        ------
        ValueError
            Unknown parameter names, values outside a parameter's range.
        """
        grid = self.with_defaults(spec)
        values = grid._axes if grid._axes is not None else grid._columns
        for param in spec.params:
            param.check(values[param.name])

    def with_defaults(self, spec) -> "Grid":
        """This grid with a column for every parameter of ``spec`` it leaves out,
        holding that parameter's default (``Param.default``); itself if none is missing.

        Raises
        ------
        ValueError
            Names that are not parameters of ``spec``.
        """
        self._check_names(spec)
        missing = [p for p in spec.params if p.name not in self.names]
        if not missing:
            return self
        grid = Grid.__new__(Grid)
        grid._kept = self._kept
        if self._axes is not None:  # a one-value axis at the end keeps every position
            grid._axes = {**self._axes, **{p.name: _frozen(np.array([float(p.default)]))
                                           for p in missing}}
            return grid
        columns = dict(self._columns)
        for param in missing:
            column = np.full(len(self), float(param.default))
            column.flags.writeable = False
            columns[param.name] = column
        grid._columns = columns
        return grid

    def matrix(self, spec) -> np.ndarray:
        """Validate against a strategy spec; return (n_sets, n_params) float64 in spec order.

        Parameters the grid leaves out take their default (see :meth:`with_defaults`).

        Raises
        ------
        ValueError
            Unknown parameter names, values outside a parameter's range.
        """
        self.check(spec)
        columns = self.with_defaults(spec).columns
        expected = spec.param_names
        matrix = np.column_stack([columns[n] for n in expected]).astype(np.float64)
        matrix = np.ascontiguousarray(matrix)
        matrix.flags.writeable = False
        return matrix


    def _check_names(self, spec) -> None:
        unknown = [n for n in self.names if n not in spec.param_names]
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for strategy {spec.name!r}; its "
                             f"parameters are:\n{spec.describe()}")


def as_grid(grid, spec=None) -> Grid:
    """``grid`` as a :class:`Grid`; with ``spec``, completed with the defaults of the
    parameters it leaves out (:meth:`Grid.with_defaults`)."""
    grid = grid if isinstance(grid, Grid) else Grid(grid)
    return grid if spec is None else grid.with_defaults(spec)


#: rows per chunk when a constraint is evaluated on a product
CONSTRAINT_CHUNK = 1 << 20


def _frozen(values: np.ndarray) -> np.ndarray:
    values = np.ascontiguousarray(values)
    values.flags.writeable = False
    return values


def _axes(spec: Mapping) -> dict:
    """``{name: read-only float64 distinct values}`` of a product spec."""
    lists = _value_lists(spec)
    if not lists:
        raise ValueError("the grid has no parameters; give at least one name -> values")
    return {name: _frozen(_numeric(name, values)) for name, values in lists.items()}


def _value_lists(spec: Mapping) -> dict:
    lists = {}
    for name, values in spec.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        values = list(values)
        if not values:
            raise ValueError(f"parameter {name!r} has no values; the grid would be empty")
        seen = {}
        for position, value in enumerate(values):
            if not is_real(value):
                break  # not a number: _numeric names the problem
            key = float(value)
            if key in seen:
                raise ValueError(f"parameter {name!r} lists {value!r} twice (positions "
                                 f"{seen[key]} and {position}); every parameter set would run "
                                 "twice: give each value once")
            seen[key] = position
        lists[str(name)] = values
    return lists


def _from_records(records: Sequence) -> dict:
    if len(records) == 0:
        raise ValueError("the grid is empty (an empty list of parameter sets)")
    if not all(isinstance(r, Mapping) for r in records):
        raise TypeError("a list grid must hold dicts of name -> value")
    names = list(records[0])
    for i, record in enumerate(records):
        if list(record) != names and set(record) != set(names):
            raise ValueError(f"parameter set {i} has names {sorted(record)}, the first has "
                             f"{sorted(names)}; every set needs the same names")
    return {str(n): np.array([r[n] for r in records]) for n in names}


def _numeric(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":  # not bool, complex, timedelta, strings, objects
        raise TypeError(f"parameter {name!r} must hold real numbers, got {array.dtype} values "
                        f"such as {array.ravel()[:3].tolist()}")
    if array.ndim != 1:
        raise ValueError(f"parameter {name!r} must be one value per parameter set, got an "
                         f"array of shape {array.shape} (a list inside a list?)")
    array = np.ascontiguousarray(array, dtype=np.float64)
    if np.isnan(array).any():
        raise ValueError(f"parameter {name!r} contains NaN")
    return array.copy()


def _constraint_mask(constraint, columns: dict, n_rows: int) -> np.ndarray:
    if isinstance(constraint, str):
        mask = evaluate_constraint(constraint, columns)
    elif callable(constraint):
        mask = constraint(dict(columns))
    else:
        raise TypeError(f"constraint must be a callable or a string expression, got "
                        f"{type(constraint).__name__}")
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != (n_rows,):
        raise ValueError(f"the constraint must give one boolean per parameter set "
                         f"({n_rows}), got dtype {mask.dtype} shape {mask.shape}")
    return mask


def _repeated(columns: Mapping) -> np.ndarray | None:
    """None when every row of ``columns`` is distinct, else a mask of the rows equal to
    an earlier one. A 64-bit hash per row first (~0.1 s per million rows), exact after."""
    hashes = None
    with np.errstate(over="ignore"):
        for values in columns.values():
            column = pd.util.hash_array(np.asarray(values, dtype=np.float64) + 0.0)  # -0.0 == 0.0
            hashes = column if hashes is None else hashes * np.uint64(1_000_003) ^ column
    hashes = np.sort(hashes)
    if not (hashes[1:] == hashes[:-1]).any():
        return None
    repeated = pd.DataFrame(dict(columns)).duplicated(keep="first").to_numpy()
    return repeated if repeated.any() else None


def _check_distinct(columns: dict) -> None:
    """ValueError naming the first parameter set equal to an earlier one."""
    repeated = _repeated(columns)
    if repeated is not None:
        frame = pd.DataFrame(columns)
        row = int(np.argmax(repeated))
        values = frame.iloc[row]
        first = int(np.flatnonzero((frame == values).all(axis=1).to_numpy())[0])
        shown = ", ".join(f"{k}={v:g}" for k, v in values.items())
        raise ValueError(f"parameter set {row} ({shown}) repeats parameter set {first}; "
                         f"{int(repeated.sum())} set(s) would run twice: remove them, e.g. "
                         "with DataFrame.drop_duplicates()")
