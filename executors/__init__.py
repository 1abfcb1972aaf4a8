"""Executor registry: names -> executor classes, imported only when named.

``get_executor("ray")`` imports Ray only then; a missing optional dependency
raises :class:`ExecutorUnavailableError` naming the extra to install.
Third-party executors register under the ``btcore.executors`` entry-point group.
"""
from __future__ import annotations

from types import MappingProxyType

from btcore.registry import Registry
from btcore.executors.base import (BrokenExecutorError, Executor, ExecutorUnavailableError,
                            cpu_count)

_BUILTIN = {
    "dask": "btcore.executors.dask_executor:DaskExecutor",
    "joblib": "btcore.executors.joblib_executor:JoblibExecutor",
    "ray": "btcore.executors.ray_executor:RayExecutor",
    "serial": "btcore.executors.serial:SerialExecutor",
    "threads": "btcore.executors.threads:ThreadsExecutor",
}
_REGISTRY = Registry("executor", "executors", _BUILTIN, "btcore.executors")


def available() -> list[str]:
    """Sorted executor names (whether or not their optional backend is installed)."""
    return _REGISTRY.names()


def registry() -> MappingProxyType:
    return _REGISTRY.view()


def register(name: str, cls: type, *, clobber: bool = False) -> None:
    """Register an :class:`Executor` subclass under ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise TypeError(f"register() takes an Executor subclass, got {cls!r}")
    _REGISTRY.add(name, cls, clobber)


def executor_class(name: str) -> type:
    """The class registered as ``name`` (imports its module)."""
    return _REGISTRY.load(name, " or an Executor instance")


def get_executor(executor, **kwargs) -> tuple[Executor, bool]:
    """Resolve ``executor`` (name or instance) -> ``(instance, owned)``.

    ``owned`` is True when this call created the executor, so the caller must
    close it when done; an instance passed in stays open for reuse.
    """
    if isinstance(executor, Executor):
        return executor, False
    if executor == "auto":
        raise ValueError("executor='auto' is chosen by the workflows (run_sweep, "
                         "walk_forward, monte_carlo, run_portfolio_sweep, "
                         "run_cross_sectional_sweep) from a measured prediction; here name "
                         f"one of {', '.join(available())}")
    if isinstance(executor, str):
        return executor_class(executor)(**kwargs), True
    raise TypeError(f"executor must be a name ({', '.join(available())}) or an Executor "
                    f"instance, got {type(executor).__name__}")


def __getattr__(name):  # lazy access: from btcore.executors import RayExecutor
    for key, path in _BUILTIN.items():
        if path.endswith(":" + name):
            return executor_class(key)
    raise AttributeError(f"module 'executors' has no attribute {name!r}")


__all__ = ["BrokenExecutorError", "Executor", "ExecutorUnavailableError", "available",
           "cpu_count", "executor_class", "get_executor", "register", "registry"]
