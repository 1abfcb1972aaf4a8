"""Strategy registry.

Built-in strategies are listed by dotted path and imported on first use;
third-party packages can add theirs under the ``btcore.strategies`` entry-point
group (each entry point loads a :class:`~btcore.strategies.base.StrategySpec`), or call
:func:`register` at run time.
"""
from __future__ import annotations

import importlib
from types import MappingProxyType

from btcore.registry import Registry
from btcore.strategies.base import Indicator, Param, StrategySpec

_REGISTRY = Registry("strategy", "strategies", {"mean_reversion": "btcore.strategies.mean_reversion:SPEC",
                      "ma_crossover": "btcore.strategies.ma_crossover:SPEC",
                      "donchian_breakout": "btcore.strategies.donchian_breakout:SPEC",
                      "rsi_reversion": "btcore.strategies.rsi_reversion:SPEC",
                      "bollinger_reversion": "btcore.strategies.bollinger_reversion:SPEC"},
                     "btcore.strategies")


def register(spec: StrategySpec, *, clobber: bool = False) -> StrategySpec:
    """Add ``spec`` under ``spec.name``; ``clobber=True`` replaces an existing entry."""
    if not isinstance(spec, StrategySpec):
        raise TypeError(f"register() takes a StrategySpec, got {type(spec).__name__}")
    _REGISTRY.add(spec.name, spec, clobber)
    return spec


def available() -> list[str]:
    """Sorted names of the registered strategies."""
    return _REGISTRY.names()


def registry() -> MappingProxyType:
    """Read-only view of name -> spec or not-yet-imported dotted path."""
    return _REGISTRY.view()


def get(strategy: str | StrategySpec, *, import_modules: bool = True) -> StrategySpec:
    """The spec registered as ``strategy`` (a spec is returned unchanged).

    Parameters
    ----------
    strategy : str or StrategySpec
        A registered name, ``"package.module:SPEC"``, or a spec.
    import_modules : bool, default True
        False refuses a ``"package.module:SPEC"`` name instead of importing its
        module: for names read from a file, which must never choose code to run.

    Raises
    ------
    ValueError
        Unknown name; the message lists the valid ones.
    """
    if isinstance(strategy, StrategySpec):
        return strategy
    if isinstance(getattr(strategy, "strategy", None), StrategySpec):
        return strategy.strategy  # a spec seen with a grid's execution settings
    if not isinstance(strategy, str):
        raise TypeError(f"strategy must be a name, 'package.module:SPEC' or a StrategySpec, "
                        f"got {type(strategy).__name__}")
    if ":" in strategy:
        if not import_modules:
            raise ValueError(
                f"this result names strategy {strategy!r}; btcore never imports a module "
                "named by a file. Pass strategy= (the StrategySpec, or a name you "
                "registered) to replay it, after importing that module yourself if you "
                "trust it")
        return _import_spec(strategy)
    spec = _REGISTRY.load(strategy, " (or 'package.module:SPEC' for a spec in a module)")
    if not isinstance(spec, StrategySpec):
        raise ValueError(f"strategy {strategy!r} is registered as a {type(spec).__name__}, "
                         "not a StrategySpec; fix the entry point that provides it")
    return spec


def _import_spec(path: str) -> StrategySpec:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {module_name!r} for strategy {path!r}: {err}; is it "
                         "on the Python path (run from its folder, or pip install it)?") from None
    spec = getattr(module, attribute, None)
    if not isinstance(spec, StrategySpec):
        raise ValueError(f"{path!r}: module {module_name!r} has no StrategySpec named "
                         f"{attribute!r}" + ("" if spec is None else
                                             f" ({attribute} is a {type(spec).__name__})"))
    return spec


__all__ = ["Indicator", "Param", "StrategySpec", "available", "get", "register", "registry"]
