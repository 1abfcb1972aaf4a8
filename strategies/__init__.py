"""Strategy registry.

Built-in strategies are listed by dotted path and imported on first use;
third-party packages can add theirs under the ``btcore.strategies`` entry-point
group (each entry point loads a :class:`~strategies.base.StrategySpec`), or call
:func:`register` at run time.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from types import MappingProxyType

from strategies.base import Param, StrategySpec

_BUILTIN = {
    "mean_reversion": "strategies.mean_reversion:SPEC",
}
_registry: dict[str, StrategySpec | str] = dict(_BUILTIN)
_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group="btcore.strategies"):
        _registry.setdefault(ep.name, ep.value)


def register(spec: StrategySpec, *, clobber: bool = False) -> StrategySpec:
    """Add ``spec`` under ``spec.name``; ``clobber=True`` replaces an existing entry."""
    if not isinstance(spec, StrategySpec):
        raise TypeError(f"register() takes a StrategySpec, got {type(spec).__name__}")
    _load_entry_points()
    if spec.name in _registry and not clobber:
        raise ValueError(f"strategy {spec.name!r} is already registered; pass clobber=True "
                         "to replace it")
    _registry[spec.name] = spec
    return spec


def available() -> list[str]:
    """Sorted names of the registered strategies."""
    _load_entry_points()
    return sorted(_registry)


def registry() -> MappingProxyType:
    """Read-only view of name -> spec or not-yet-imported dotted path."""
    _load_entry_points()
    return MappingProxyType(_registry)


def get(strategy: str | StrategySpec) -> StrategySpec:
    """The spec registered as ``strategy`` (a spec is returned unchanged).

    Raises
    ------
    ValueError
        Unknown name; the message lists the valid ones.
    """
    if isinstance(strategy, StrategySpec):
        return strategy
    if not isinstance(strategy, str):
        raise TypeError(f"strategy must be a name or a StrategySpec, got "
                        f"{type(strategy).__name__}")
    _load_entry_points()
    try:
        entry = _registry[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; valid strategies are "
                         f"{available()}") from None
    if isinstance(entry, str):
        module_name, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), attribute)
        _registry[strategy] = entry
    return entry


__all__ = ["Param", "StrategySpec", "available", "get", "register", "registry"]
