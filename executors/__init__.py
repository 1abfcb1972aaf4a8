"""Executor registry: names -> executor classes, imported only when named.

``get_executor("ray")`` imports Ray only then; a missing optional dependency
raises :class:`ExecutorUnavailableError` naming the extra to install.
Third-party executors register under the ``btcore.executors`` entry-point group.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from types import MappingProxyType

from executors.base import (BrokenExecutorError, Executor, ExecutorUnavailableError,
                            cpu_count)

_BUILTIN = {
    "dask": "executors.dask_executor:DaskExecutor",
    "joblib": "executors.joblib_executor:JoblibExecutor",
    "ray": "executors.ray_executor:RayExecutor",
    "serial": "executors.serial:SerialExecutor",
    "threads": "executors.threads:ThreadsExecutor",
}
_registry: dict[str, type | str] = dict(_BUILTIN)
_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in entry_points(group="btcore.executors"):
            _registry.setdefault(ep.name, ep.value)


def available() -> list[str]:
    """Sorted executor names (whether or not their optional backend is installed)."""
    _load_entry_points()
    return sorted(_registry)


def registry() -> MappingProxyType:
    _load_entry_points()
    return MappingProxyType(_registry)


def register(name: str, cls: type, *, clobber: bool = False) -> None:
    """Register an :class:`Executor` subclass under ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise TypeError(f"register() takes an Executor subclass, got {cls!r}")
    _load_entry_points()
    if name in _registry and not clobber:
        raise ValueError(f"executor {name!r} is already registered; pass clobber=True")
    _registry[name] = cls


def executor_class(name: str) -> type:
    """The class registered as ``name`` (imports its module)."""
    _load_entry_points()
    try:
        entry = _registry[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; valid executors are {available()} or "
                         "an Executor instance") from None
    if isinstance(entry, str):
        module_name, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), attribute)
        _registry[name] = entry
    return entry


def get_executor(executor, **kwargs) -> tuple[Executor, bool]:
    """Resolve ``executor`` (name or instance) -> ``(instance, owned)``.

    ``owned`` is True when this call created the executor, so the caller must
    close it when done; an instance passed in stays open for reuse.
    """
    if isinstance(executor, Executor):
        return executor, False
    if isinstance(executor, str):
        return executor_class(executor)(**kwargs), True
    raise TypeError(f"executor must be a name ({', '.join(available())}) or an Executor "
                    f"instance, got {type(executor).__name__}")


def __getattr__(name):  # lazy access: from executors import RayExecutor
    for key, path in _BUILTIN.items():
        if path.endswith(":" + name):
            return executor_class(key)
    raise AttributeError(f"module 'executors' has no attribute {name!r}")


__all__ = ["BrokenExecutorError", "Executor", "ExecutorUnavailableError", "available",
           "cpu_count", "executor_class", "get_executor", "register", "registry"]
