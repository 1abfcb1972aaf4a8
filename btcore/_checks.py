"""The scalar validators every layer uses: one notion of "an int" and "a number".

An int is a Python or NumPy integer and not a bool; a number is a real that is
not a bool. Each check returns the value as a plain Python ``int``/``float`` or
raises ``TypeError`` (wrong kind) / ``ValueError`` (out of range) naming the
argument.
"""
from __future__ import annotations

import math
import numbers

import numpy as np


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value, minimum: int | None = None) -> int:
    """``value`` as an int (>= ``minimum`` when given)."""
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_number(name: str, value, minimum: float | None = None, *,
                 finite: bool = True, what: str = "a real number") -> float:
    """``value`` as a float (finite unless ``finite=False``; >= ``minimum``)."""
    if not is_number(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    value = float(value)
    if finite and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value:g}")
    return value


def check_optional_bool(name: str, value) -> None:
    """``value`` is True, False or None."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or None, got {value!r}")


def check_callable(name: str, value, signature: str) -> None:
    """``value`` is None or callable (``signature`` shows how it is called)."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable {signature}, got {value!r}")
