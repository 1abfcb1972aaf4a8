"""Strategy specification: parameters, options, indicator and signal kernels.

A strategy module defines module-level ``@njit(cache=True)`` kernels and one
frozen :class:`StrategySpec`. Module-level functions pickle by reference to
Ray/Dask workers and reuse Numba's on-disk cache there.
"""
from __future__ import annotations

import importlib
import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class Param:
    """One strategy parameter and its valid range.

    Parameters
    ----------
    name : str
        Column name in grids and result tables.
    kind : {int, float}
        Integer parameters must hold whole numbers.
    default : float
        Suggested value (shown in error messages and ``describe()``).
    low, high : float, optional
        Bounds; ``low_inclusive`` / ``high_inclusive`` say whether they are allowed.
    is_window : bool
        A number of bars of history: must also be shorter than the data.
    """

    name: str
    kind: type
    default: float
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    is_window: bool = False
    description: str = ""

    def describe_range(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "[" if self.low_inclusive and self.low is not None else "("
        right = "]" if self.high_inclusive and self.high is not None else ")"
        return f"{self.kind.__name__} in {left}{lo}, {hi}{right}"

    def check(self, values: np.ndarray) -> None:
        """Raise ValueError naming the first value outside the valid range."""
        bad = ~np.isfinite(values)
        if self.kind is int:
            bad |= values != np.round(values)
        if self.low is not None:
            bad |= (values < self.low) if self.low_inclusive else (values <= self.low)
        if self.high is not None:
            bad |= (values > self.high) if self.high_inclusive else (values >= self.high)
        if bad.any():
            value = values[int(np.argmax(bad))]
            shown = int(value) if self.kind is int and float(value).is_integer() else value
            raise ValueError(f"{self.name} must be {self.describe_range()}, got {shown}")


@dataclass(frozen=True)
class StrategySpec:
    """Everything the engine needs to run a strategy.

    Parameters
    ----------
    name : str
        Registry name (``run_sweep(strategy=name)``).
    params : tuple of Param
        Parameter order = column order of the ``params`` array the kernel sees.
    indicator_params : tuple of str
        Parameters the indicators depend on; indicators are computed once per
        unique combination of their values.
    n_indicator_outputs : int
        Columns written by ``indicator_nb``.
    indicator_nb, signal_nb : numba dispatchers
        See ``btcore.kernel`` for the contract.
    batch_nb, batch_parallel_nb : numba dispatchers
        Module-level cached wrappers of ``btcore.kernel.sweep_batch_nb`` bound to
        this strategy's kernels (serial and ``parallel=True``).
    options : mapping of str to bool
        Strategy options and their defaults (run-wide, not swept).
    cost_factor : float
        Relative cost per param-bar, for ordering tasks longest-first.
    """

    name: str
    params: tuple
    indicator_params: tuple
    n_indicator_outputs: int
    indicator_nb: Callable
    signal_nb: Callable
    batch_nb: Callable
    batch_parallel_nb: Callable
    options: Mapping[str, bool] = field(default_factory=dict)
    cost_factor: float = 1.0
    description: str = ""

    def __post_init__(self):
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"strategy {self.name!r} declares a parameter twice: {names}")
        unknown = [n for n in self.indicator_params if n not in names]
        if unknown:
            raise ValueError(f"indicator_params {unknown} are not parameters of {self.name!r}")
        for fn_name in ("indicator_nb", "signal_nb", "batch_nb", "batch_parallel_nb"):
            if not hasattr(getattr(self, fn_name), "py_func"):
                raise TypeError(f"{fn_name} of strategy {self.name!r} must be a numba.njit "
                                "function")

    def __reduce_ex__(self, protocol):
        # pickle by reference when the spec is a module global, so worker processes
        # use the module's dispatchers and load them from Numba's on-disk cache
        # (a dispatcher pickled by value arrives with caching off and recompiles)
        module_name = getattr(self.batch_nb.py_func, "__module__", None)
        module = sys.modules.get(module_name) if module_name != "__main__" else None
        for attribute, value in (vars(module).items() if module else ()):
            if value is self:
                return _spec_from_module, (module_name, attribute)
        return super().__reduce_ex__(protocol)

    @property
    def param_names(self) -> tuple:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def describe(self) -> str:
        """Parameter names, ranges and defaults, one per line."""
        lines = [f"{p.name}: {p.describe_range()}, default {p.default:g}" for p in self.params]
        lines += [f"option {k}={v}" for k, v in self.options.items()]
        return "\n".join(lines)

    def option_values(self, options: Mapping[str, object]) -> np.ndarray:
        """Validate strategy options and return them as the kernel's float64 array."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise TypeError(f"unknown option(s) {unknown} for strategy {self.name!r}; valid "
                            f"options: {valid}")
        values = []
        for name, default in self.options.items():
            value = options.get(name, default)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"option {name} must be True or False, got {value!r}")
            values.append(float(value))
        array = np.array(values, dtype=np.float64)
        array.flags.writeable = False
        return array

    def max_window(self, params: np.ndarray) -> int:
        """Longest history window any parameter set asks for (0 if none)."""
        columns = [i for i, p in enumerate(self.params) if p.is_window]
        if not columns or len(params) == 0:
            return 0
        return int(math.ceil(np.max(params[:, columns])))


def _spec_from_module(module_name: str, attribute: str) -> StrategySpec:
    return getattr(importlib.import_module(module_name), attribute)
