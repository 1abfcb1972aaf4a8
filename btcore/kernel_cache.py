"""Numba's on-disk cache, keyed also on btcore's kernel sources.

Numba invalidates a cached function only when *its own* source file changes.
A strategy's wrapper (``batch_nb`` in the strategy module) compiles in the
shared kernel from ``btcore/kernel.py``, ``metrics.py`` and ``indicators.py``, so
editing or upgrading those would otherwise keep loading stale machine code.
``kernel_cache`` adds a digest of those files to the cache's index key.
"""
from __future__ import annotations

import hashlib
import pathlib

from numba.core.caching import FunctionCache

_KERNEL_SOURCES = ("kernel.py", "metrics.py", "indicators.py", "kernel_cache.py")


def _digest() -> str:
    here = pathlib.Path(__file__).resolve().parent
    hasher = hashlib.sha256()
    for name in _KERNEL_SOURCES:
        hasher.update((here / name).read_bytes())
    return hasher.hexdigest()


KERNEL_DIGEST = _digest()


class KernelCache(FunctionCache):
    """A FunctionCache whose index key includes :data:`KERNEL_DIGEST`."""

    def _index_key(self, sig, codegen):
        return (*super()._index_key(sig, codegen), KERNEL_DIGEST)


def kernel_cache(dispatcher):
    """Decorate a ``@njit(cache=True)`` function that compiles in btcore's kernel.

    Examples
    --------
    >>> @kernel_cache
    ... @njit(cache=True)
    ... def batch_nb(...): ...  # doctest: +SKIP
    """
    if not hasattr(dispatcher, "enable_caching"):
        raise TypeError("kernel_cache decorates a numba.njit(cache=True) function")
    dispatcher._cache = KernelCache(dispatcher.py_func)
    return dispatcher
