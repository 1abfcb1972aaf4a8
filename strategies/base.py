"""The strategy plug-in API: parameters, indicators and one signal rule.

A strategy is two kinds of ``@njit`` functions and a :class:`StrategySpec`
(``docs/strategies.md`` has a worked example)::

    indicator(close, *argument_values, out)   # fills out (n_bars,), NaN where undefined
    signal_nb(values, price, params, options, position, state) -> (target, state)

btcore binds them to its batch kernel (``btcore.kernels.binding``), computes each
indicator once per unique value of its own arguments, and does all sizing,
fills, costs and metrics itself. A spec is checked before any work: names,
kinds, the functions' signatures, and a plain-Python run of the rule on a
short synthetic series (``check_rule``).
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import math
import sys
import threading
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
        Integer parameters must hold whole numbers; an indicator receives them as int.
    default : float
        Used when a grid leaves the parameter out, and by ``describe()``.
    low, high : float, optional
        Bounds; ``low_inclusive`` / ``high_inclusive`` say whether they are allowed.
    is_window : bool
        A number of bars of history: must also be shorter than the data.
    description : str
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

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a parameter name must be an identifier, got {self.name!r}")
        if self.kind not in (int, float):
            raise TypeError(f"Param {self.name!r}: kind must be int or float, got {self.kind!r}")
        if isinstance(self.default, bool) or not isinstance(self.default, (int, float)):
            raise TypeError(f"Param {self.name!r}: default must be a number, "
                            f"got {self.default!r}")
        self.check(np.array([float(self.default)]), what="its default")

    def describe_range(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "[" if self.low_inclusive and self.low is not None else "("
        right = "]" if self.high_inclusive and self.high is not None else ")"
        return f"{self.kind.__name__} in {left}{lo}, {hi}{right}"

    def check(self, values: np.ndarray, what: str = "") -> None:
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
            where = f" ({what})" if what else ""
            raise ValueError(f"{self.name} must be {self.describe_range()}, got {shown}{where}")


class Indicator:
    """An indicator function and the parameter or option names it takes.

    ``Indicator(fn, "fast_window")`` makes the kernel call
    ``fn(close, fast_window, out)`` once per unique ``fast_window`` of a batch
    (int parameters are passed as int); ``out`` arrives filled with NaN.
    """

    __slots__ = ("fn", "names")

    def __init__(self, fn: Callable, *names: str):
        if not hasattr(fn, "py_func"):
            raise TypeError(f"Indicator takes a numba.njit function first, got {fn!r}")
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"Indicator({_name_of(fn)}): argument names must be str, "
                                f"got {name!r}")
        self.fn = fn
        self.names = tuple(names)

    def __repr__(self) -> str:
        return f"Indicator({_name_of(self.fn)}, {', '.join(map(repr, self.names))})"

    def __eq__(self, other):
        return isinstance(other, Indicator) and (self.fn, self.names) == (other.fn, other.names)

    def __hash__(self):
        return hash((id(self.fn), self.names))


@dataclass(frozen=True, eq=False)
class StrategySpec:
    """Everything the engine needs to run a strategy.

    Parameters
    ----------
    name : str
        Registry name (``run_sweep(strategy=name)``).
    params : tuple of Param
        Swept parameters; their order is the order of the ``params`` array the
        rule reads.
    indicators : tuple of Indicator
        The rule's ``values`` array holds these, in this order, at each bar.
    signal_nb : numba dispatcher
        ``signal_nb(values, price, params, options, position, state)`` ->
        ``(target in {-1, 0, 1}, state)``; best ``inline="always"``.
    options : mapping of str to bool, int, float or tuple of str
        Run-wide (not swept) settings and their defaults; the rule reads them,
        as float64, in declaration order. A tuple of strings lists the choices
        of a named option (the first is the default); the rule reads the index
        of the chosen one (``options={"average": ("sma", "ema")}``: 0.0 or 1.0).
    cost_factor : float
        Relative cost per param-bar, for ordering tasks longest-first.
    description : str
    """

    name: str
    params: tuple
    indicators: tuple
    signal_nb: Callable
    options: Mapping[str, object] = field(default_factory=dict)
    cost_factor: float = 1.0
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"a strategy name must be a non-empty str, got {self.name!r}")
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "indicators", tuple(self.indicators))
        object.__setattr__(self, "options", dict(self.options))
        where = f"strategy {self.name!r}"
        for param in self.params:
            if not isinstance(param, Param):
                raise TypeError(f"{where}: params must be Param objects, got {param!r}")
        names = [p.name for p in self.params] + list(self.options)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{where} declares {duplicates} twice (parameter and option "
                             "names must all differ)")
        for option, default in self.options.items():
            if not isinstance(option, str) or not option.isidentifier():
                raise ValueError(f"{where}: option name {option!r} is not an identifier")
            if _is_choices(default):
                continue
            if not isinstance(default, (bool, int, float, np.bool_, np.integer, np.floating)):
                raise TypeError(f"{where}: option {option!r} must default to a bool, int or "
                                f"float (the kernel reads float64), or be a tuple of distinct "
                                f"str choices, got {default!r}")
        if not self.indicators:
            raise ValueError(f"{where} has no indicators; declare at least one Indicator")
        for indicator in self.indicators:
            if not isinstance(indicator, Indicator):
                raise TypeError(f"{where}: indicators must be Indicator objects, "
                                f"got {indicator!r}")
            unknown = [n for n in indicator.names if n not in names]
            if unknown:
                raise ValueError(f"{where}: {indicator!r} takes {unknown}, which are neither "
                                 f"parameters nor options; declared: {names}")
            _check_arity(where, indicator.fn, 2 + len(indicator.names),
                         f"(close, {', '.join(indicator.names + ('out',))})")
        if not hasattr(self.signal_nb, "py_func"):
            raise TypeError(f"{where}: signal_nb must be a numba.njit function, "
                            f"got {self.signal_nb!r}")
        _check_arity(where, self.signal_nb, 6, "(values, price, params, options, position, "
                     "state)")
        if not (isinstance(self.cost_factor, (int, float)) and self.cost_factor > 0):
            raise ValueError(f"{where}: cost_factor must be a positive number, "
                             f"got {self.cost_factor!r}")
        object.__setattr__(self, "_cache", {})
        self.key_caches()

    def key_caches(self) -> None:
        """Key Numba's on-disk cache of this strategy's ``cache=True`` functions (and
        of the ones they call) on the values of the globals they read, before any of
        them compiles: Numba itself keys only on their bytecode, so an edited constant
        imported from another module would load stale machine code."""
        from btcore.kernels.code_key import key_function_caches
        key_function_caches([indicator.fn for indicator in self.indicators] +
                            [self.signal_nb])

    def __reduce_ex__(self, protocol):
        # pickle by reference when the spec is a module global
        module_name = getattr(self.signal_nb.py_func, "__module__", None)
        module = sys.modules.get(module_name) if module_name != "__main__" else None
        for attribute, value in (vars(module).items() if module else ()):
            if value is self:
                return _spec_from_module, (module_name, attribute)
        raise TypeError(f"strategy {self.name!r} is not a global of an importable module and "
                        "does not pickle; btcore ships its kernel source instead")

    @property
    def param_names(self) -> tuple:
        return tuple(p.name for p in self.params)

    @property
    def indicator_params(self) -> tuple:
        """Parameters any indicator takes, in first-use order (the set sort key)."""
        seen = []
        for indicator in self.indicators:
            seen += [n for n in indicator.names if n in self.param_names and n not in seen]
        return tuple(seen)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def describe(self) -> str:
        """Parameter names, ranges and defaults, one per line."""
        lines = [f"{p.name}: {p.describe_range()}, default {p.default:g}" for p in self.params]
        lines += [f"option {k}={v[0]!r} (one of {', '.join(map(repr, v))})" if _is_choices(v)
                  else f"option {k}={v!r}" for k, v in self.options.items()]
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
            if _is_choices(default):
                value = options.get(name, default[0])
                if value not in default:
                    raise ValueError(f"option {name} of strategy {self.name!r} must be one of "
                                     f"{', '.join(map(repr, default))}, got {value!r}")
                values.append(float(default.index(value)))
                continue
            value = options.get(name, default)
            if isinstance(default, (bool, np.bool_)):
                if not isinstance(value, (bool, np.bool_)):
                    raise TypeError(f"option {name} must be True or False, got {value!r}")
            elif isinstance(value, (bool, np.bool_)) or not isinstance(
                    value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
                raise TypeError(f"option {name} must be a finite number, got {value!r}")
            elif isinstance(default, (int, np.integer)) and float(value) != int(value):
                raise TypeError(f"option {name} must be a whole number, got {value!r}")
            values.append(float(value))
        return np.array(values, dtype=np.float64)

    def option_settings(self, option_values: np.ndarray) -> dict:
        """Options as a user gives them (bools stay bools, choices are names)."""
        settings = {}
        for (name, default), value in zip(self.options.items(), option_values):
            if _is_choices(default):
                settings[name] = default[int(value)]
            elif isinstance(default, (bool, np.bool_)):
                settings[name] = bool(value)
            else:
                settings[name] = float(value)
        return settings

    def max_window(self, params: np.ndarray) -> int:
        """Longest history window any parameter set asks for (0 if none)."""
        columns = [i for i, p in enumerate(self.params) if p.is_window]
        if not columns or len(params) == 0:
            return 0
        return int(math.ceil(np.max(params[:, columns])))

    def argument_kinds(self, indicator: Indicator) -> tuple:
        """``int`` or ``float`` for each argument of ``indicator`` (as passed to it)."""
        kinds = []
        for name in indicator.names:
            if name in self.param_names:
                kinds.append(self.param(name).kind)
            else:
                default = self.options[name]
                whole = _is_choices(default) or (isinstance(default, (int, np.integer))
                                                 and not isinstance(default, bool))
                kinds.append(int if whole else float)
        return tuple(kinds)


def _is_choices(default) -> bool:
    return (isinstance(default, tuple) and len(default) > 0
            and all(isinstance(v, str) for v in default) and len(set(default)) == len(default))


def _name_of(fn) -> str:
    return getattr(getattr(fn, "py_func", fn), "__name__", repr(fn))


def _check_arity(where: str, fn, n_args: int, expected: str) -> None:
    if not hasattr(fn, "py_func"):
        raise TypeError(f"{where}: {_name_of(fn)} must be a numba.njit function")
    try:
        inspect.signature(fn.py_func).bind(*range(n_args))
    except TypeError:
        raise TypeError(f"{where}: {_name_of(fn)}{inspect.signature(fn.py_func)} cannot be "
                        f"called as {_name_of(fn)}{expected}") from None


def _spec_from_module(module_name: str, attribute: str) -> StrategySpec:
    return getattr(importlib.import_module(module_name), attribute)


# ------------------------------------------------------- plain-Python rule check
class UndeclaredReadError(IndexError):
    """The rule read past the declared parameters, options or indicator values."""


class _Declared(np.ndarray):
    """An array that names what it holds when read out of bounds."""

    def __getitem__(self, item):
        try:
            return super().__getitem__(item)
        except IndexError:
            raise UndeclaredReadError(f"{self.what}[{item!r}], but only {len(self)} "
                                      f"{self.label} are declared ({self.names})") from None


def _declared(values, what, label, names):
    array = np.asarray(values, dtype=np.float64).view(_Declared)
    array.what, array.label, array.names = what, label, ", ".join(names) or "none"
    return array


class _ThreadMuted(io.TextIOBase):
    """Stands in for ``sys.stdout``: drops what one thread writes, passes the rest."""

    def __init__(self, target, thread: int):
        self._target, self._thread = target, thread

    def write(self, text):
        if threading.get_ident() == self._thread:
            return len(text)
        return self._target.write(text)

    def flush(self):
        if threading.get_ident() != self._thread:
            self._target.flush()

    def __getattr__(self, name):
        return getattr(self._target, name)


@contextlib.contextmanager
def muted():
    """Mute this thread's ``print`` (plain Python or compiled: Numba prints through
    ``sys.stdout``) and ``breakpoint()`` calls: the checks run a strategy's code on
    synthetic data, which its prints and breakpoints are not meant for. Other
    threads print and stop as usual."""
    me = threading.get_ident()
    stdout, hook = sys.stdout, sys.breakpointhook

    def no_breakpoint(*args, **kwargs):
        return None if threading.get_ident() == me else hook(*args, **kwargs)

    sys.stdout, sys.breakpointhook = _ThreadMuted(stdout, me), no_breakpoint
    try:
        yield
    finally:
        sys.stdout, sys.breakpointhook = stdout, hook


def synthetic_close(n_bars: int, seed: int = 7) -> np.ndarray:
    """A positive random-walk price series for checking rules."""
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n_bars)))


def check_rule(spec: StrategySpec, params_row: np.ndarray | None = None,
               options: np.ndarray | None = None) -> None:
    """Run ``spec``'s indicators and rule as plain Python on a synthetic series, with
    this thread's ``print`` and ``breakpoint()`` muted (:func:`muted`).

    Raises ValueError (naming the strategy) when the rule returns anything but
    ``(target in {-1, 0, 1}, int state)``, reads parameters, options or
    indicator values the spec does not declare, or an indicator fails.
    """
    with muted():
        _check_rule(spec, params_row, options)


def _check_rule(spec, params_row, options) -> None:
    where = f"strategy {spec.name!r}"
    spec.key_caches()  # again: helpers defined after the spec are reached now
    if params_row is None:
        params_row = np.array([float(p.default) for p in spec.params])
    if options is None:
        options = spec.option_values({})
    longest = spec.max_window(params_row[None, :]) if len(spec.params) else 0
    close = synthetic_close(max(300, 3 * longest + 50))
    values_by_name = dict(zip(spec.param_names, params_row))
    values_by_name.update(zip(spec.options, options))
    series = []
    for indicator in spec.indicators:
        out = np.full(close.shape[0], np.nan)
        arguments = [kind(values_by_name[n]) for n, kind in
                     zip(indicator.names, spec.argument_kinds(indicator))]
        try:
            indicator.fn.py_func(close.copy(), *arguments, out)
        except Exception as err:
            raise ValueError(f"{where}: {indicator!r} failed as plain Python on a synthetic "
                             f"series of {close.shape[0]} bars: {type(err).__name__}: {err}") \
                from err
        series.append(out)
    params_arg = _declared(params_row, "params", "parameters", spec.param_names)
    options_arg = _declared(options, "options", "options", tuple(spec.options))
    indicator_names = tuple(repr(i) for i in spec.indicators)
    position, state = 0, 0
    rule = spec.signal_nb.py_func
    for t in range(close.shape[0]):
        values = _declared([s[t] for s in series], "values", "indicator values",
                           indicator_names)
        try:
            returned = rule(values, float(close[t]), params_arg, options_arg, position, state)
        except UndeclaredReadError as err:
            raise ValueError(f"{where}: signal_nb reads {err}; declare it in the spec") \
                from None
        except Exception as err:
            raise ValueError(f"{where}: signal_nb failed as plain Python at bar {t} of a "
                             f"synthetic series: {type(err).__name__}: {err}") from err
        if not (isinstance(returned, tuple) and len(returned) == 2):
            raise ValueError(f"{where}: signal_nb must return (target, state), got "
                             f"{returned!r}")
        target, state = returned
        if not is_target(target):
            shown = show_target(target) if _is_number(target) else repr(target)
            raise ValueError(f"{where}: signal_nb returned target {shown} at bar {t} of a "
                             "synthetic series; a target is -1 (short), 0 (flat) or 1 (long)"
                             f"{target_advice(target)}")
        if not _is_int(state):
            raise ValueError(f"{where}: signal_nb returned state {state!r}; the state must "
                             "be an int")
        position, state = int(target), int(state)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return _is_int(value) or isinstance(value, (float, np.floating))


def is_target(value) -> bool:
    """An int or a float that is exactly -1, 0 or 1 (numba rules may return floats)."""
    return _is_number(value) and value in (-1, 0, 1)


def show_target(value: float) -> str:
    """A target as a message shows it: ``2``, ``0.5``, ``nan``, ``-inf``."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def target_advice(value) -> str:
    """What to do about an invalid target ``value``, as ``": ..."`` ("" if nothing
    more than "a target is -1, 0 or 1" is to say)."""
    if not _is_number(value):
        return f": it must be a number, not {type(value).__name__}"
    value = float(value)
    if math.isnan(value):
        return (": NaN usually comes from an indicator that is undefined at that bar "
                "(test np.isnan and return 0) or from 0 / 0")
    if math.isinf(value):
        return ": sign your signal (np.sign), do not return it"
    if not value.is_integer():
        return ": round or sign your signal"
    return ": sign or clip your signal"
