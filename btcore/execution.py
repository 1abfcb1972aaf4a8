"""Execution settings: when fills happen, price stops, sizing and the costs beyond
``cost_bps`` (``docs/semantics.md``, sections 7-10).

Every workflow takes them as keywords (``run_sweep(grid, fill="next_open",
stop_loss=0.05)``), and every numeric one may also be a column of the grid, so one
sweep compares stops, sizes or costs (``{"lookback_period": [20, 60],
"stop_loss": [0.02, 0.05]}``); the table then shows it as a column. A stop or a
volatility target of 0 (or None as a keyword) is off. With every setting at its
default a run is bit-identical to one without them, and uses the leaner
market-on-close kernel.
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field

import numpy as np

from btcore.kernels import execution as slots
from btcore.strategies.base import Param

FILL_MODES = {"close": slots.FILL_CLOSE, "next_open": slots.FILL_NEXT_OPEN,
              "next_close": slots.FILL_NEXT_CLOSE}

#: the numeric settings, as grid parameters (0 turns a stop or the volatility target off)
PARAMS = (
    Param("stop_loss", float, 0.0, 0.0, 1.0, high_inclusive=False,
          description="exit when the price moves this fraction against the entry (0 = off)"),
    Param("take_profit", float, 0.0, 0.0, None,
          description="exit when the price moves this fraction in favour (0 = off)"),
    Param("trailing_stop", float, 0.0, 0.0, 1.0, high_inclusive=False,
          description="exit this fraction below the peak (above the trough) (0 = off)"),
    Param("size_fraction", float, 1.0, 0.0, None, low_inclusive=False,
          description="fraction of cash a new position takes (<= max_leverage)"),
    Param("target_volatility", float, 0.0, 0.0, None,
          description="annualised volatility a position is sized for (0 = off)"),
    Param("volatility_lookback", int, 20, 2, None,  # history: checked when targeting
          description="returns in the volatility estimate of target_volatility"),
    Param("max_leverage", float, 1.0, 0.0, None, low_inclusive=False,
          description="the largest fraction of cash a position may take"),
    Param("slippage_bps", float, 0.0, 0.0, 10_000.0, high_inclusive=False,
          description="fill prices move this many bps against every trade"),
    Param("fee_per_trade", float, 0.0, 0.0, None,
          description="fixed cash fee of every fill"),
    Param("borrow_bps", float, 0.0, 0.0, None,
          description="annual borrow cost of a short, bps of its value"),
    Param("risk_free_rate", float, 0.0, -1.0, 1.0,
          description="annual rate Sharpe and Sortino are measured against"),
)
NAMES = tuple(p.name for p in PARAMS)
SLOT = {name: i for i, name in enumerate(NAMES)}  # == btcore.kernels.execution's columns
RUN_SETTINGS = ("fill", "fractional_shares")
ALL_NAMES = RUN_SETTINGS + NAMES
_OFF_WHEN_ZERO = ("stop_loss", "take_profit", "trailing_stop", "target_volatility")
_STOPS = ("stop_loss", "take_profit", "trailing_stop")


@dataclass(frozen=True)
class Execution:
    """The execution settings of a run: ``values`` (name -> number) for the numeric
    ones, ``grid_names`` those that are grid columns instead (per set)."""

    fill: str = "close"
    fractional_shares: bool = False
    values: dict = field(default_factory=dict)
    grid_names: tuple = ()

    @property
    def fill_mode(self) -> int:
        return FILL_MODES[self.fill]

    def defaults_row(self) -> np.ndarray:
        """(N_EXECUTION,) the kernel's row for a set, before its grid columns."""
        row = np.array([float(self.values.get(p.name, p.default)) for p in PARAMS])
        return _off_as_nan(row)

    @property
    def is_default(self) -> bool:
        """Every setting at its default: the market-on-close kernel runs."""
        return (self.fill == "close" and not self.fractional_shares and not self.grid_names
                and all(self.values.get(p.name, p.default) == p.default for p in PARAMS))

    def settings(self) -> dict:
        """The settings that differ from their defaults (for result settings and stores)."""
        shown = {}
        if self.fill != "close":
            shown["fill"] = self.fill
        if self.fractional_shares:
            shown["fractional_shares"] = True
        for param in PARAMS:
            value = self.values.get(param.name, param.default)
            if value != param.default:
                shown[param.name] = value
        return shown

    def rows(self, names: tuple, columns: np.ndarray) -> np.ndarray:
        """(n_sets, N_EXECUTION): the run's values with ``columns`` (n_sets, len(names))
        of the grid's execution columns in place."""
        rows = np.tile(self.defaults_row(), (columns.shape[0], 1))
        for j, name in enumerate(names):
            rows[:, SLOT[name]] = columns[:, j]
        return _off_as_nan(rows)


def _off_as_nan(rows: np.ndarray) -> np.ndarray:
    """A stop or volatility target of 0 is off: NaN for the kernel."""
    for name in _OFF_WHEN_ZERO:
        column = rows[..., SLOT[name]]
        column[column == 0.0] = np.nan
    return rows


def split_settings(keywords: dict) -> tuple[dict, dict]:
    """``(execution settings, the rest)`` of a workflow's keywords."""
    execution = {k: v for k, v in keywords.items() if k in ALL_NAMES}
    return execution, {k: v for k, v in keywords.items() if k not in ALL_NAMES}


def make_execution(settings: dict, grid_names=()) -> Execution:
    """Validate ``settings`` (keywords, see :data:`ALL_NAMES`) into an
    :class:`Execution`; ``grid_names``: settings the grid holds as columns.

    Raises
    ------
    ValueError, TypeError
        A value outside its range, an unknown fill, a setting given both ways.
    """
    fill = settings.get("fill", "close")
    if fill not in FILL_MODES:
        raise ValueError(f"fill must be one of {list(FILL_MODES)}, got {fill!r}")
    fractional = settings.get("fractional_shares", False)
    if not isinstance(fractional, (bool, np.bool_)):
        raise TypeError(f"fractional_shares must be True or False, got {fractional!r}")
    both = sorted(set(settings) & set(grid_names))
    if both:
        raise ValueError(f"{both} given both as a keyword and as a grid column; keep one")
    values = {}
    for param in PARAMS:
        if param.name not in settings:
            continue
        value = settings[param.name]
        if param.name in _OFF_WHEN_ZERO and (value is None or (
                isinstance(value, (float, np.floating)) and np.isnan(value))):
            value = 0.0  # None or NaN: off
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"{param.name} must be a number, got {value!r}")
        param.check(np.array([float(value)]))
        values[param.name] = float(value)
    execution = Execution(str(fill), bool(fractional), values, tuple(grid_names))
    return execution


def check_leverage(execution: Execution, value_range) -> None:
    """``size_fraction`` above ``max_leverage`` is refused (``value_range(name)`` gives
    a grid column's (min, max))."""
    def extremes(name):
        if name in execution.grid_names:
            return value_range(name)
        value = execution.values.get(name, dict(zip(NAMES, (p.default for p in PARAMS)))[name])
        return value, value
    largest_size = extremes("size_fraction")[1]
    smallest_cap = extremes("max_leverage")[0]
    if largest_size > smallest_cap:
        raise ValueError(f"size_fraction={largest_size:g} is above max_leverage="
                         f"{smallest_cap:g}: a position may take at most max_leverage times "
                         "the cash; raise max_leverage (e.g. max_leverage=2) to size above 1")


def check_data(execution: Execution, has_candles: bool) -> None:
    """``next_open`` needs open prices; stops on close-only data act on closes
    (a warning, once per call)."""
    if execution.fill == "next_open" and not has_candles:
        raise ValueError("fill='next_open' needs open prices, and this data has closes only; "
                         "load OHLC data (a frame or file with Open/High/Low/Close columns) "
                         "or use fill='next_close'")
    stops = [n for n in _STOPS if n in execution.grid_names or execution.values.get(n, 0.0)]
    if stops and not has_candles:
        warnings.warn(f"{', '.join(stops)} on close-only data: stops are checked against "
                      "closes only (open = high = low = close), so they fill later and "
                      "further from their level than on candles; load OHLC data to check "
                      "them against each bar's range", UserWarning, stacklevel=4)


def unknown_name_hint(name: str, known) -> str:
    """``; did you mean 'stop_loss'?`` for a misspelt name, or ''."""
    close = difflib.get_close_matches(name, list(known) + list(ALL_NAMES), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ExecutionSpec:
    """A strategy whose parameters are followed by the execution settings a grid
    holds as columns: what the grid, set and table code see, so those settings
    vary per set like parameters (the kernel gets the strategy's own columns and
    the settings apart, :func:`split_params`)."""

    def __init__(self, spec, names: tuple):
        self._spec = spec
        self.execution_names = tuple(names)
        self.params = tuple(spec.params) + tuple(p for p in PARAMS if p.name in names)

    def __getattr__(self, name):
        return getattr(self._spec, name)

    @property
    def strategy(self):
        return self._spec

    @property
    def param_names(self) -> tuple:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def __reduce__(self):
        return ExecutionSpec, (self._spec, self.execution_names)


def grid_execution_names(names, spec) -> tuple:
    """The execution settings among a grid's column ``names`` (in PARAMS order), after
    refusing names that are neither parameters of ``spec`` nor settings."""
    unknown = [n for n in names if n not in spec.param_names and n not in NAMES]
    if unknown:
        hint = unknown_name_hint(unknown[0], spec.param_names)
        kind = " (fill and fractional_shares are run settings: pass them as keywords)" \
            if set(unknown) & set(RUN_SETTINGS) else ""
        raise ValueError(f"unknown parameter(s) {unknown} for strategy {spec.name!r}{hint}{kind}"
                         f"; its parameters are:\n{spec.describe()}\nand the execution "
                         f"settings a grid may hold: {', '.join(NAMES)}")
    return tuple(n for n in NAMES if n in names)


def with_settings(spec, names: tuple):
    """``spec`` itself, or an :class:`ExecutionSpec` when the grid holds settings."""
    return ExecutionSpec(spec, names) if names else spec


__all__ = ["Execution", "ExecutionSpec", "FILL_MODES", "NAMES", "ALL_NAMES", "PARAMS",
           "make_execution", "split_settings", "check_leverage", "check_data",
           "grid_execution_names", "with_settings"]
