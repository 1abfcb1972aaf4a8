"""The draws of ``Grid.random``: one sampler per entry of its space.

An entry is a list of choices (drawn uniformly; a repeated choice weighs more),
``(low, high)`` (whole numbers when both bounds are ints, else any float),
``(low, high, step)`` or one number. :func:`sampler` checks it and returns how
many distinct values it holds (None when continuous), those values, and a
``draw(rng, size)`` function; ``Grid.random`` combines them into distinct sets.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def sampler(name: str, value):
    """``(number of distinct values or None if continuous, values() -> the distinct
    values, draw(rng, size))`` for one entry of a ``Grid.random`` space."""
    forms = "a list of choices, (low, high) or (low, high, step)"
    if is_real(value):
        return _choices(np.array([value]))
    if isinstance(value, tuple):
        if len(value) not in (2, 3):
            raise ValueError(f"{name}: a tuple is a range, (low, high) or (low, high, step); "
                             f"got {len(value)} values {value!r}; write choices as a list: "
                             f"{list(value)!r}")
        if not all(is_real(v) for v in value):
            raise TypeError(f"{name}: the bounds of {value!r} must be real numbers")
        if not all(math.isfinite(v) for v in value):
            raise ValueError(f"{name}: the bounds of {value!r} must be finite")
        low, high = value[:2]
        if low > high:
            raise ValueError(f"{name}: low {low} is above high {high} in {value!r}")
        whole = all(isinstance(v, (int, np.integer)) for v in value)
        if len(value) == 2:
            if whole:
                return (int(high) - int(low) + 1, lambda: np.arange(low, high + 1),
                        lambda rng, size: rng.integers(low, high, endpoint=True, size=size))
            if low == high:
                return _choices(np.array([float(low)]))
            return None, None, lambda rng, size: rng.uniform(low, high, size=size)
        step = value[2]
        if step <= 0:
            raise ValueError(f"{name}: step {step} of {value!r} must be > 0")
        steps = (high - low) / step
        if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
            raise ValueError(f"{name}: high - low = {high - low:g} is not a multiple of step "
                             f"{step:g} in {value!r} (low, high, step); adjust high, or give "
                             f"the choices as a list")
        steps = int(round(steps))

        def at(k):  # the k-th value of the range
            return low + step * k if whole else low + step * k.astype(np.float64)
        return (steps + 1, lambda: at(np.arange(steps + 1)),
                lambda rng, size: at(rng.integers(0, steps, endpoint=True, size=size)))
    if isinstance(value, (list, range, np.ndarray, pd.Series, pd.Index)):
        options = np.asarray(list(value))
        if options.size == 0:
            raise ValueError(f"{name}: no values to draw from")
        if options.ndim != 1 or options.dtype.kind not in "iuf":
            raise TypeError(f"{name}: the choices must be real numbers, got {list(value)[:3]!r}")
        return _choices(options)
    kind = type(value).__name__
    hint = " (a set has no order, so a seed could not fix the draw; use a sorted list)" \
        if isinstance(value, (set, frozenset)) else ""
    raise TypeError(f"{name}: give {forms}, got a {kind} {value!r}{hint}")


def _choices(options: np.ndarray):
    """Uniform draws from ``options`` (a repeated choice weighs more)."""
    distinct = np.unique(options)
    return (distinct.size, lambda: distinct,
            lambda rng, size: options[rng.integers(0, options.size, size=size)])


def is_real(value) -> bool:
    return not isinstance(value, (bool, np.bool_, np.timedelta64)) and isinstance(
        value, (int, float, np.integer, np.floating))
