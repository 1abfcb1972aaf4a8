"""The keys of compiled code: what a kernel module's name and Numba's cache key
must cover so that no edit can load stale machine code.

- :data:`BTCORE_DIGEST`: btcore's compiled sources (:data:`KERNEL_SOURCES`,
  relative to ``btcore/``) as one digest; :func:`module_digest` adds a generated
  module's text, its kernel kind's own files and the source files its functions
  come from: the digest in every kernel module's name.
- :func:`globals_digest`: the code and the values of every global a function
  reads (Numba freezes them at compile time), through the functions it calls.
- :func:`key_function_caches`: a strategy's own ``cache=True`` functions get the
  same key in Numba's on-disk cache (Numba alone keys on bytecode and the file
  a function is defined in).
"""
from __future__ import annotations

import enum
import hashlib
import pathlib
import re
import types

import numpy as np

#: btcore's compiled sources, relative to ``btcore/``: every kernel module's name
#: carries their digest (a kernel kind adds its own kernel file, see
#: ``btcore.kernels.binding.KINDS``)
KERNEL_SOURCES = ("kernels/accounting.py", "kernels/single.py", "metrics.py",
                  "kernels/binding.py", "kernels/code_key.py", "kernels/cache_dir.py",
                  "indicators.py", "indicators_extra.py")
BTCORE_DIR = pathlib.Path(__file__).resolve().parent.parent


def files_digest(names) -> str:
    """Digest of the bytes of ``names`` (paths relative to ``btcore/``), in order."""
    hasher = hashlib.sha256()
    for name in names:
        hasher.update((BTCORE_DIR / name).read_bytes())
    return hasher.hexdigest()


BTCORE_DIGEST = files_digest(KERNEL_SOURCES)


def module_digest(text: str, kernel_files=(), files=()) -> str:
    """The digest in a generated kernel module's name: its ``text``, btcore's
    compiled sources (:data:`BTCORE_DIGEST`), the kind's own ``kernel_files``
    (relative to ``btcore/``) and the source ``files`` its functions come from."""
    hasher = hashlib.sha256(text.encode())
    hasher.update(BTCORE_DIGEST.encode())
    for name in kernel_files:
        hasher.update((BTCORE_DIR / name).read_bytes())
    for file in sorted(files):
        try:
            hasher.update(pathlib.Path(file).read_bytes())
        except OSError:  # e.g. a module from a zip: its name still identifies it
            hasher.update(file.encode())
    return hasher.hexdigest()


# ------------------------------------------------------------ globals digest
#: modules whose attributes a kernel may read without them entering the key
#: (numba resolves ``np.float64`` and ``math.pi`` to library code, not user values)
_OPAQUE_MODULES = frozenset({"numpy", "math", "cmath", "numba", "llvmlite", "builtins"})
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class _GlobalsDigest:
    """Digests everything Numba freezes into a compiled function: the values of the
    globals its code names (and attributes of the modules and enums among them),
    its closure cells and defaults, recursively through the functions and
    dispatchers it calls. Two processes that see the same code and values get the
    same digest (no ids, no hash-ordered sets)."""

    def __init__(self):
        self.seen: set = set()  # functions (and modules per names) already digested

    def function(self, fn, hasher) -> None:
        function = getattr(fn, "py_func", fn)
        hasher.update(f"fn {getattr(function, '__module__', None)}."
                      f"{getattr(function, '__qualname__', None)}\0".encode())
        if id(function) in self.seen or not isinstance(function, types.FunctionType):
            return
        self.seen.add(id(function))
        if hasattr(fn, "targetoptions"):
            self.value(sorted(map(repr, fn.targetoptions.items())), (), hasher)
        code = function.__code__
        names = _code_names(code)
        self.code(code, hasher)
        namespace = function.__globals__
        for name in sorted(names):
            if name in namespace:
                hasher.update(f"global {name}\0".encode())
                self.value(namespace[name], names, hasher)
        for name, cell in zip(code.co_freevars, function.__closure__ or ()):
            hasher.update(f"cell {name}\0".encode())
            try:
                self.value(cell.cell_contents, names, hasher)
            except ValueError:  # an empty cell
                hasher.update(b"empty\0")
        self.value(function.__defaults__, names, hasher)
        self.value(sorted((function.__kwdefaults__ or {}).items()), names, hasher)

    def code(self, code, hasher) -> None:
        hasher.update(code.co_code)
        hasher.update("\0".join(code.co_names + code.co_varnames).encode() + b"\0")
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const, hasher)
            else:
                self.value(const, (), hasher)

    def value(self, value, names, hasher) -> None:
        kind = type(value)
        hasher.update(f"{kind.__module__}.{kind.__qualname__}\0".encode())
        if isinstance(value, enum.Enum):
            hasher.update(f"{value.name}\0".encode())
            self.value(value.value, (), hasher)
        elif value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
            hasher.update(repr(value).encode() + b"\0")
        elif isinstance(value, np.ndarray):
            hasher.update(f"{value.dtype.str}{value.shape}\0".encode())
            hasher.update(np.ascontiguousarray(value).tobytes() if value.dtype != object
                          else repr(value.tolist()).encode())
        elif isinstance(value, np.generic):
            hasher.update(f"{value.dtype.str}\0".encode() + value.tobytes())
        elif isinstance(value, (tuple, list)):
            hasher.update(f"{len(value)}\0".encode())
            for item in value:
                self.value(item, names, hasher)
        elif isinstance(value, (set, frozenset)):
            hasher.update("".join(sorted(self.digest_of(item, names) for item in value)).encode())
        elif isinstance(value, dict):
            hasher.update("".join(sorted(self.digest_of(item, names)
                                         for item in value.items())).encode())
        elif isinstance(value, types.ModuleType):
            hasher.update(f"{value.__name__}\0".encode())
            if value.__name__.partition(".")[0] in _OPAQUE_MODULES or \
                    (id(value), names) in self.seen:
                return
            self.seen.add((id(value), names))  # other code may read other attributes
            namespace = vars(value)
            for name in sorted(names):  # the attributes the code may read
                if name in namespace:
                    hasher.update(f"attribute {name}\0".encode())
                    self.value(namespace[name], names, hasher)
        elif isinstance(value, type):
            hasher.update(f"{value.__module__}.{value.__qualname__}\0".encode())
            if issubclass(value, enum.Enum):
                for member in value:
                    self.value(member, (), hasher)
        elif isinstance(value, types.FunctionType) or hasattr(value, "py_func"):
            module = getattr(getattr(value, "py_func", value), "__module__", None) or ""
            if module.partition(".")[0] in _OPAQUE_MODULES:
                hasher.update(f"{module}.{getattr(value, '__qualname__', '')}\0".encode())
            else:
                self.function(value, hasher)
        else:  # numba types, ufuncs, dtypes...: their repr, unless it is an address
            text = repr(value)
            hasher.update((text if not _ADDRESS.search(text) else "opaque").encode() + b"\0")

    @staticmethod
    def digest_of(value, names) -> str:
        """An item of an unordered container, digested on its own (a fresh walk:
        what was seen before must not depend on the container's order)."""
        hasher = hashlib.sha256()
        _GlobalsDigest().value(value, names, hasher)
        return hasher.hexdigest()


def _code_names(code) -> frozenset:
    """Every name ``code`` (and code nested in it) looks up: globals and attributes."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return frozenset(names)


def globals_digest(functions) -> str:
    """Digest of the code and of every global value ``functions`` (numba dispatchers
    or plain functions) read, recursively through what they call (see
    :class:`_GlobalsDigest`)."""
    hasher = hashlib.sha256()
    walker = _GlobalsDigest()
    for fn in functions:
        walker.function(fn, hasher)
    return hasher.hexdigest()


# ------------------------------------------------- numba's own function caches
_KEYED_CACHE = None


def _keyed_cache_class():
    """Numba's FunctionCache with the function's globals digest in its index key.

    Numba keys a cached function on its bytecode and closure only: a strategy's
    ``cache=True`` helper that reads an edited constant of another module would
    load its stale machine code (into a new kernel module, or into the plain-Python
    rule check). With this key it misses and compiles with the current values
    (older entries stay in the index, unused). The digest is taken when the cache
    is first read, i.e. when the function is first compiled: by then its module
    has finished importing.
    """
    global _KEYED_CACHE
    if _KEYED_CACHE is None:
        from numba.core.caching import FunctionCache

        class GlobalsKeyedCache(FunctionCache):
            globals_key = None

            def _index_key(self, sig, codegen):
                if self.globals_key is None:
                    self.globals_key = globals_digest([self._py_func])
                return super()._index_key(sig, codegen) + (self.globals_key,)

        _KEYED_CACHE = GlobalsKeyedCache
    return _KEYED_CACHE


def key_function_caches(functions) -> None:
    """Key the on-disk cache of every ``cache=True`` numba function in
    ``functions``, and of those they reach through globals, module attributes and
    closures, on the values of the globals it reads (see :func:`_keyed_cache_class`).
    Idempotent and cheap: StrategySpec calls it on its functions, the rule check and
    :func:`load_kernel` again before anything compiles."""
    from numba.core.caching import FunctionCache
    keyed = None
    pending = list(functions)
    seen: set[int] = set()
    while pending:
        dispatcher = pending.pop()
        function = getattr(dispatcher, "py_func", None)
        if not isinstance(function, types.FunctionType) or id(dispatcher) in seen or \
                (function.__module__ or "").partition(".")[0] in _OPAQUE_MODULES:
            continue
        seen.add(id(dispatcher))
        if type(getattr(dispatcher, "_cache", None)) is FunctionCache:
            keyed = keyed or _keyed_cache_class()
            dispatcher._cache = keyed(function)
        names = _code_names(function.__code__)
        values = [function.__globals__[n] for n in names if n in function.__globals__]
        values += [cell.cell_contents for cell in function.__closure__ or ()
                   if _filled(cell)]
        modules: set[int] = set()
        while values:
            value = values.pop()
            if isinstance(value, types.ModuleType):
                if value.__name__.partition(".")[0] not in _OPAQUE_MODULES and \
                        id(value) not in modules:
                    modules.add(id(value))
                    values += [vars(value)[n] for n in names if n in vars(value)]
            elif hasattr(value, "py_func"):
                pending.append(value)


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True
