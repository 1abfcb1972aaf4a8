"""Parameter grids, stored columnar (one float64 array per parameter).

A grid is never a list of dicts internally: it is ``{name: array}`` with all
arrays the same length, so a batch is an index range and a million parameter
sets cost a few arrays.
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd


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
        or a pandas expression such as ``"exit_threshold < entry_threshold"``.

    Raises
    ------
    ValueError
        Empty grid (also after the constraint), non-numeric or missing values,
        lists of different lengths in a list of dicts.

    Examples
    --------
    >>> grid = Grid({"lookback_period": [20, 40], "entry_threshold": [1.5, 2.0]})
    >>> len(grid)
    4
    """

    def __init__(self, spec, constraint: Callable | str | None = None):
        if isinstance(spec, Grid):
            columns = dict(spec.columns)
        elif isinstance(spec, Mapping):
            columns = _product(spec)
        elif isinstance(spec, pd.DataFrame):
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
        if constraint is not None:
            mask = _constraint_mask(constraint, columns, n_rows)
            columns = {name: values[mask] for name, values in columns.items()}
            if not mask.any():
                raise ValueError(f"the constraint {constraint!r} removes every parameter set")
        for values in columns.values():
            values.flags.writeable = False
        self._columns = columns

    @classmethod
    def random(cls, space: Mapping[str, object], n: int, seed: int = 0,
               constraint: Callable | str | None = None) -> "Grid":
        """``n`` parameter sets drawn at random from ``space``.

        ``space`` maps each name to a list (drawn uniformly from its items) or a
        ``(low, high)`` tuple (uniform; integers when both bounds are ints,
        high inclusive). The same seed gives the same grid.
        """
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not space:
            raise ValueError("the space is empty; give name -> list or (low, high)")
        rng = np.random.default_rng(seed)
        columns = {}
        for name, choices in space.items():
            if isinstance(choices, tuple) and len(choices) == 2:
                low, high = choices
                if low > high:
                    raise ValueError(f"{name}: low {low} is above high {high}")
                if isinstance(low, (int, np.integer)) and isinstance(high, (int, np.integer)):
                    columns[name] = rng.integers(low, high, endpoint=True, size=n)
                else:
                    columns[name] = rng.uniform(low, high, size=n)
            else:
                options = np.asarray(list(choices))
                if options.size == 0:
                    raise ValueError(f"{name}: no values to draw from")
                columns[name] = options[rng.integers(0, options.size, size=n)]
        return cls(pd.DataFrame(columns), constraint=constraint)

    # ------------------------------------------------------------------ access
    @property
    def columns(self) -> dict:
        """``{name: read-only float64 array}`` in insertion order."""
        return dict(self._columns)

    @property
    def names(self) -> tuple:
        return tuple(self._columns)

    def __len__(self) -> int:
        return len(next(iter(self._columns.values())))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}: {len(np.unique(v))} values" for k, v in self._columns.items())
        return f"Grid({len(self)} parameter sets; {sizes})"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._columns)

    def batches(self, batch_size: int) -> Iterator[range]:
        """Consecutive index ranges of at most ``batch_size`` rows."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield range(start, min(start + batch_size, len(self)))

    def matrix(self, spec) -> np.ndarray:
        """Validate against a strategy spec; return (n_sets, n_params) float64 in spec order.

        Raises
        ------
        ValueError
            Unknown or missing parameter names, values outside a parameter's range.
        """
        expected = spec.param_names
        unknown = [n for n in self._columns if n not in expected]
        missing = [n for n in expected if n not in self._columns]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown parameter(s) {unknown}")
            if missing:
                parts.append(f"missing parameter(s) {missing}")
            raise ValueError(f"{' and '.join(parts)} for strategy {spec.name!r}; its parameters "
                             f"are:\n{spec.describe()}")
        for param in spec.params:
            param.check(self._columns[param.name])
        matrix = np.column_stack([self._columns[n] for n in expected]).astype(np.float64)
        matrix = np.ascontiguousarray(matrix)
        matrix.flags.writeable = False
        return matrix


def as_grid(grid) -> Grid:
    return grid if isinstance(grid, Grid) else Grid(grid)


def _product(spec: Mapping) -> dict:
    lists = {}
    for name, values in spec.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        values = list(values)
        if not values:
            raise ValueError(f"parameter {name!r} has no values; the grid would be empty")
        lists[str(name)] = values
    rows = list(itertools.product(*lists.values()))
    return {name: np.array([row[i] for row in rows]) for i, name in enumerate(lists)}


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
        try:
            mask = pd.DataFrame(columns).eval(constraint)
        except Exception as exc:
            raise ValueError(f"cannot evaluate constraint {constraint!r}: {exc}") from None
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
