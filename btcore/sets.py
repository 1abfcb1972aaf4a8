"""The parameter sets of a job, in *sorted order*, as tasks read them.

Sets are sorted by their indicator arguments so that a batch of neighbouring
sets shares few indicator series. A task asks for its range ``start:stop`` of
sorted positions and gets:

- ``params(start, stop)``: (n, n_params) float64, the strategy's parameter order;
- ``grid_rows(start, stop)``: each set's position in the grid;
- ``set_series(start, stop)``: (n, n_indicators) int64 rows of ``series``, the
  (function, argument values) table of every indicator series.

:class:`TableSets` holds these as arrays (frames, lists of dicts, random
grids). :class:`ProductSets` computes them by arithmetic from a Cartesian
product's axes, so a 10^9-set grid costs a few small arrays: the sorted order
is the product with the indicator axes first, each in ascending value order,
then the other axes in grid order, which is exactly the stable sort of the
materialised grid by indicator arguments.
"""
from __future__ import annotations

import math

import numpy as np

from btcore.kernels.binding import indicator_kinds


def sort_sets(spec, params: np.ndarray) -> np.ndarray:
    """Permutation sorting ``params`` rows by the indicator parameters (stable), so
    a batch of neighbouring sets shares few indicator series."""
    columns = [spec.param_names.index(n) for n in spec.indicator_params]
    if not columns:
        return np.arange(len(params), dtype=np.int64)
    return np.lexsort(params[:, columns].T[::-1]).astype(np.int64)


def _series_row_kinds(spec) -> tuple:
    """For each indicator: its kind (which function) and, per argument, the
    parameter name or the option's position."""
    kinds = indicator_kinds(spec)
    return [(kinds.index((indicator.fn, spec.argument_kinds(indicator))), indicator.names)
            for indicator in spec.indicators]


def plan_series(spec, params: np.ndarray, options: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unique indicator series of ``params`` and each set's series per indicator.

    A series is (which function, argument values); two indicators with the same
    function and arguments share one. Returns ``series`` (n_series, 1 + n_values)
    and ``set_series`` (n_sets, n_indicators) int64.
    """
    n_values = max(len(i.names) for i in spec.indicators)
    n_sets = len(params)
    rows = np.zeros((len(spec.indicators), n_sets, 1 + n_values))
    for i, (kind, names) in enumerate(_series_row_kinds(spec)):
        rows[i, :, 0] = kind
        for j, name in enumerate(names):
            if name in spec.param_names:
                rows[i, :, 1 + j] = params[:, spec.param_names.index(name)]
            else:
                rows[i, :, 1 + j] = options[list(spec.options).index(name)]
    series, inverse = np.unique(rows.reshape(-1, 1 + n_values), axis=0, return_inverse=True)
    set_series = inverse.reshape(len(spec.indicators), n_sets).T
    return series, np.ascontiguousarray(set_series, dtype=np.int64)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


class TableSets:
    """Sets held as arrays: ``params`` sorted, ``order`` their grid rows."""

    def __init__(self, params: np.ndarray, order: np.ndarray, series: np.ndarray,
                 set_series: np.ndarray):
        self._params, self._order = _frozen(params), _frozen(order)
        self.series, self._set_series = _frozen(series), _frozen(set_series)

    @classmethod
    def from_matrix(cls, spec, params: np.ndarray, options: np.ndarray) -> "TableSets":
        """Sort ``params`` (grid order, (n_sets, n_params)) and plan its series."""
        order = sort_sets(spec, params)
        sorted_params = params[order]
        return cls(sorted_params, order, *plan_series(spec, sorted_params, options))

    @property
    def n_sets(self) -> int:
        return self._params.shape[0]

    def params(self, start: int, stop: int) -> np.ndarray:
        return self._params[start:stop]

    def grid_rows(self, start: int, stop: int) -> np.ndarray:
        return self._order[start:stop]

    def set_series(self, start: int, stop: int) -> np.ndarray:
        return self._set_series[start:stop]


class ProductSets:
    """The sets of a Cartesian-product grid (optionally constrained), by arithmetic.

    Parameters
    ----------
    spec : StrategySpec
    grid : Grid
        A product grid holding every parameter of ``spec`` (``with_defaults``).
    options : ndarray
        The strategy's option values (indicator arguments may be options).
    """

    def __init__(self, spec, grid, options: np.ndarray):
        axes = grid.axes
        names = list(axes)
        first = [n for n in spec.indicator_params]
        self.axis_names = first + [n for n in names if n not in first]
        # sorted digit -> value, and -> digit of the grid's own axis order
        self.values, self.to_grid_digit, self.from_grid_digit = {}, {}, {}
        for name in self.axis_names:
            values = axes[name]
            order = np.argsort(values, kind="stable") if name in first else \
                np.arange(len(values), dtype=np.int64)
            self.values[name] = _frozen(values[order])
            self.to_grid_digit[name] = _frozen(order.astype(np.int64))
            self.from_grid_digit[name] = _frozen(np.argsort(order).astype(np.int64))
        self.radix = [len(axes[n]) for n in self.axis_names]
        strides = np.cumprod([1] + [len(axes[n]) for n in reversed(names)])[:-1][::-1]
        self.grid_names, self.grid_radix = names, [len(axes[n]) for n in names]
        self.stride = dict(zip(names, (int(s) for s in strides)))
        self.param_names = spec.param_names
        self._kept, self._order = grid.kept, None
        if self._kept is not None:  # the kept positions, in sorted order
            self._order = _frozen(np.argsort(self._sorted_index(self._kept), kind="stable")
                                  .astype(np.int64))
        self.series, self._lookups = self._plan_series(spec, options)
        self._last = None

    def __getstate__(self):
        return {**self.__dict__, "_last": None}

    @property
    def n_sets(self) -> int:
        return len(self._kept) if self._kept is not None else math.prod(self.radix)

    # ----------------------------------------------------------- arithmetic
    def _sorted_index(self, positions: np.ndarray) -> np.ndarray:
        """Sorted-product index of product positions (constrained grids)."""
        digits = self._grid_digits(positions)
        index = np.zeros(len(positions), dtype=np.int64)
        for name, radix in zip(self.axis_names, self.radix):
            index = index * radix + self.from_grid_digit[name][digits[name]]
        return index

    def _grid_digits(self, positions: np.ndarray) -> dict:
        digits, remaining = {}, np.asarray(positions, dtype=np.int64)
        for name, radix in zip(reversed(self.grid_names), reversed(self.grid_radix)):
            remaining, digits[name] = np.divmod(remaining, radix)
        return digits

    def digits(self, start: int, stop: int) -> dict:
        """``{axis: sorted digit}`` of sorted positions ``start:stop`` (the last
        range's are remembered: a task asks for its parameters, then its series)."""
        last = self._last
        if last is not None and last[0] == start and last[1] == stop:
            return last[2]
        digits = self._digits(start, stop)
        self._last = (start, stop, digits)  # one immutable tuple: safe across threads
        return digits

    def _digits(self, start: int, stop: int) -> dict:
        if self._kept is not None:
            grid_digits = self._grid_digits(self._kept[self._order[start:stop]])
            return {name: self.from_grid_digit[name][grid_digits[name]]
                    for name in self.axis_names}
        digits, remaining = {}, np.arange(start, stop, dtype=np.int64)
        for name, radix in zip(reversed(self.axis_names), reversed(self.radix)):
            remaining, digits[name] = np.divmod(remaining, radix)
        return digits

    def params(self, start: int, stop: int) -> np.ndarray:
        digits = self.digits(start, stop)
        return np.column_stack([self.values[name][digits[name]]
                                for name in self.param_names]).astype(np.float64)

    def grid_rows(self, start: int, stop: int) -> np.ndarray:
        if self._kept is not None:
            return self._order[start:stop]
        digits = self.digits(start, stop)
        rows = np.zeros(stop - start, dtype=np.int64)
        for name in self.axis_names:
            rows += self.to_grid_digit[name][digits[name]] * self.stride[name]
        return rows

    def set_series(self, start: int, stop: int) -> np.ndarray:
        digits = self.digits(start, stop)
        columns = []
        for axes, lookup in self._lookups:
            if not axes:
                columns.append(np.full(stop - start, lookup[0], dtype=np.int64))
                continue
            radix = [self.radix[self.axis_names.index(a)] for a in axes]
            columns.append(lookup[np.ravel_multi_index([digits[a] for a in axes], radix)])
        return np.ascontiguousarray(np.column_stack(columns), dtype=np.int64)

    # -------------------------------------------------------------- series
    def _plan_series(self, spec, options: np.ndarray):
        """Every series any set can use, and per indicator a lookup from the mixed
        radix of its parameter axes' digits to a row of the table."""
        n_values = max(len(i.names) for i in spec.indicators)
        blocks, axes_of = [], []
        for kind, names in _series_row_kinds(spec):
            axes = list(dict.fromkeys(n for n in names if n in spec.param_names))
            radix = [self.radix[self.axis_names.index(a)] for a in axes]
            combos = np.indices(radix).reshape(len(axes), -1) if axes else \
                np.zeros((0, 1), dtype=np.int64)
            rows = np.zeros((combos.shape[1], 1 + n_values))
            rows[:, 0] = kind
            for j, name in enumerate(names):
                if name in spec.param_names:
                    rows[:, 1 + j] = self.values[name][combos[axes.index(name)]]
                else:
                    rows[:, 1 + j] = options[list(spec.options).index(name)]
            blocks.append(rows)
            axes_of.append(axes)
        series, inverse = np.unique(np.concatenate(blocks), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1).astype(np.int64)
        bounds = np.cumsum([0] + [len(b) for b in blocks])
        lookups = [(axes, _frozen(inverse[lo:hi]))
                   for axes, lo, hi in zip(axes_of, bounds[:-1], bounds[1:])]
        return _frozen(series), lookups


def job_sets(spec, grid, options: np.ndarray):
    """:class:`ProductSets` for a product grid, else :class:`TableSets`
    (``grid`` holds every parameter of ``spec``)."""
    if grid.is_product:
        return ProductSets(spec, grid, options)
    return TableSets.from_matrix(spec, grid.matrix(spec), options)


__all__ = ["ProductSets", "TableSets", "job_sets", "plan_series", "sort_sets"]
