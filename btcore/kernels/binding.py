"""Bind a strategy's functions to btcore's batch kernel, cached on disk.

For each strategy btcore writes a small Python module (its *kernel module*)
that imports the strategy's indicator and signal functions by name and wraps
``btcore.kernels.single.batch_kernel_nb`` in one ``@njit(cache=True, nogil=True)``
function, ``batch_nb``. Numba caches it on disk like any module-level
function, so a fresh process, or a worker, loads machine code instead of
compiling.

The module's file name holds a digest of its source, of btcore's kernel
sources, of every source file its functions come from, and of the values of
every global those functions read (Numba freezes them at compile time), through
the functions they call: editing a strategy, a constant it imports, or upgrading
btcore makes a new module (Numba alone only watches the file a cached function
is defined in). The strategy's own ``cache=True`` functions get the same key in
Numba's cache (:func:`key_function_caches`). Kernel modules and Numba's cache of
them live in directories only the current user can write (:func:`kernel_dir`).
Strategies defined in ``__main__`` (a script or a notebook) are *embedded*:
their source, and that of the ``__main__`` helpers and constants they use, is
copied into the kernel module, so workers never need the driver's ``__main__``.

Workers receive a :class:`KernelRef` (the source, a few hundred bytes), never
compiled dispatchers.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import dis
import enum
import hashlib
import importlib.util
import inspect
import os
import pathlib
import re
import shlex
import stat
import sys
import tempfile
import textwrap
import types
from dataclasses import dataclass

import numpy as np

#: btcore's compiled sources: every kernel module's name carries their digest
#: (relative to btcore/)
_KERNEL_SOURCES = ("kernels/accounting.py", "kernels/single.py", "metrics.py",
                   "kernels/binding.py", "indicators.py", "indicators_extra.py")
_LOADED: dict[str, types.ModuleType] = {}
_SPECS: dict[str, object] = {}  # module name -> spec, in the process that made the ref
_BATCH_ARGS = ("close, first_bar, checkpoints, series_which, series_values, set_series, "
               "params, options, initial_capital, cost_bps, periods_per_year, bar_block, "
               "block_sums, out, record")


def _btcore_digest() -> str:
    here = pathlib.Path(__file__).resolve().parent.parent
    hasher = hashlib.sha256()
    for name in _KERNEL_SOURCES:
        hasher.update((here / name).read_bytes())
    return hasher.hexdigest()


BTCORE_DIGEST = _btcore_digest()


class StrategyCompileError(ValueError):
    """Numba could not compile a strategy's functions (the message points at them)."""


@dataclass(frozen=True)
class KernelRef:
    """What a worker needs to load a strategy's kernel module: picklable, small."""

    strategy: str
    module_name: str
    source: str
    sys_path: tuple  # import roots of the strategy's modules, added in workers


_FIX = "set BTCORE_KERNEL_DIR to a directory you own with mode 0700"


class UnsafeKernelDirError(PermissionError):
    """A kernel or cache directory that someone else could write: btcore imports
    modules and Numba unpickles its index from there, so it refuses it."""


def private_dir(path) -> pathlib.Path:
    """``path`` as a directory only the current user can write.

    Components btcore creates are made mode 0700 (chmod after mkdir, whatever the
    umask); an existing directory must be owned by the current user and not be
    writable by group or others, else :class:`UnsafeKernelDirError`.
    """
    path = pathlib.Path(path)
    missing = []
    for parent in (path, *path.parents):
        if os.path.lexists(parent):
            break
        missing.append(parent)
    for component in reversed(missing):
        try:
            os.mkdir(component, 0o700)
        except FileExistsError:  # made meanwhile (another process): checked below
            continue
        os.chmod(component, 0o700)
    problem = _unsafe(path)
    if problem:
        raise UnsafeKernelDirError(f"refusing {problem}")
    return path


def _unsafe(path: pathlib.Path) -> str | None:
    """Why ``path`` may not hold kernel modules or Numba's cache (None if it may)."""
    status = os.stat(path)  # a symlink counts as its target
    if not stat.S_ISDIR(status.st_mode):
        return f"{str(path)!r}: not a directory; {_FIX}"
    if status.st_uid != os.geteuid():
        return (f"{str(path)!r}: owned by uid {status.st_uid}, not by you (uid "
                f"{os.geteuid()}); {_FIX}")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"{str(path)!r}: writable by group or others (mode "
                f"{stat.S_IMODE(status.st_mode):04o}); run chmod 700 {shlex.quote(str(path))} "
                f"or {_FIX}")
    return None


def kernel_dir() -> pathlib.Path:
    """Where kernel modules are written: ``$BTCORE_KERNEL_DIR``, else
    ``$NUMBA_CACHE_DIR/btcore_kernels``, else ``~/.cache/btcore/kernels``, else
    ``$TMPDIR/btcore-kernels-<uid>``: the first writable one that only the current
    user can write (created mode 0700). An explicit ``BTCORE_KERNEL_DIR`` that is
    not owned by the user, or is writable by group or others, is an error; a
    fallback that is, is skipped."""
    explicit = os.environ.get("BTCORE_KERNEL_DIR")
    if explicit:
        path = private_dir(explicit)  # raises, naming the directory and the fix
        if not os.access(path, os.W_OK | os.X_OK):
            raise OSError(f"BTCORE_KERNEL_DIR={explicit!r} is not writable; {_FIX}")
        return path
    refused = []
    for candidate in (os.environ.get("NUMBA_CACHE_DIR") and
                      os.path.join(os.environ["NUMBA_CACHE_DIR"], "btcore_kernels"),
                      os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                   os.path.join(os.path.expanduser("~"), ".cache"),
                                   "btcore", "kernels"),
                      os.path.join(tempfile.gettempdir(), f"btcore-kernels-{os.getuid()}")):
        if not candidate:
            continue
        try:
            path = private_dir(candidate)
        except UnsafeKernelDirError as err:
            refused.append(str(err).removeprefix("refusing "))
            continue
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    if refused:
        raise UnsafeKernelDirError("no safe directory for btcore kernel modules; refused "
                                   + "; ".join(refused))
    raise OSError(f"no writable directory for btcore kernel modules; {_FIX}")


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
_GENERATED = frozenset({"compute_indicator_nb", "select_series_nb", "load_values_nb",
                        "batch_nb", "portfolio_batch_nb"})
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


def _kernel_roots(module) -> list:
    """The strategy's functions a kernel module uses (imported or embedded)."""
    return [value for name, value in vars(module).items() if hasattr(value, "py_func")
            and name not in _GENERATED and
            (name == "_signal_nb" or name.startswith("_indicator_") or
             getattr(value.py_func, "__module__", None) == module.__name__)]


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------ generation
class _Source:
    """Collects the import lines and embedded definitions of one kernel module."""

    def __init__(self, strategy: str):
        self.strategy = strategy
        self.imports: dict[str, str] = {}  # local name -> import line
        self.embedded: dict[str, str] = {}  # local name -> definition
        self.files: set[str] = set()  # source files to digest
        self.roots: set[str] = set()

    def bind(self, value, name: str) -> str:
        """Make ``value`` available in the module as ``name``; returns ``name``."""
        if name in self.imports or name in self.embedded:
            return name
        if isinstance(value, types.ModuleType):
            self.imports[name] = (f"import {value.__name__}" if name == value.__name__ else
                                  f"import {value.__name__} as {name}")
            return name
        if isinstance(value, (bool, int, float, np.integer, np.floating, np.bool_)):
            self.embedded[name] = f"{name} = {value!r}"
            return name
        if isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value):
            self.embedded[name] = f"{name} = {value!r}"
            return name
        function = getattr(value, "py_func", value)
        module_name = getattr(function, "__module__", None)
        qualname = getattr(function, "__qualname__", None)
        module = sys.modules.get(module_name) if module_name else None
        if module is not None and module_name != "__main__" and qualname and \
                _lookup(module, qualname) is value:
            self.imports[name] = f"from {module_name} import {qualname} as {name}"
            self._track(module)
            return name
        if hasattr(value, "py_func") and module_name == "__main__":
            self._embed(value, name)
            return name
        raise TypeError(f"strategy {self.strategy!r}: the kernel uses {name!r} = {value!r}, "
                        "which btcore cannot ship to workers; make it a module-level "
                        "constant, module or numba function (or move the strategy to an "
                        "importable module)")

    def _track(self, module) -> None:
        file = getattr(module, "__file__", None)
        if not file:
            return
        file = os.path.abspath(file)
        if file in self.files:
            return
        self.files.add(file)
        package_depth = module.__name__.count(".") + (
            1 if os.path.basename(file) == "__init__.py" else 0)
        root = os.path.dirname(file)
        for _ in range(package_depth):
            root = os.path.dirname(root)
        self.roots.add(root)
        # helpers a strategy module imports from its own sibling modules count too
        for value in vars(module).values():
            other = getattr(getattr(value, "py_func", None), "__module__", None)
            if other and other != module.__name__ and other in sys.modules and \
                    not other.startswith(("numba", "numpy")):
                self._track(sys.modules[other])

    def _embed(self, dispatcher, name: str) -> None:
        function = dispatcher.py_func
        try:
            source = textwrap.dedent(inspect.getsource(function))
        except (OSError, TypeError):
            raise TypeError(f"strategy {self.strategy!r}: cannot read the source of "
                            f"{function.__name__} (defined in __main__ without a file?); "
                            "define it in a .py file or a notebook cell") from None
        tree = ast.parse(source)
        definition = next(node for node in tree.body if isinstance(node, ast.FunctionDef))
        body = "\n".join(source.splitlines()[definition.lineno - 1:])
        if definition.name != name:  # bound under another name: rename the def
            body = re.sub(rf"^def\s+{definition.name}\b", f"def {name}", body)
        options = dict(dispatcher.targetoptions)
        options.pop("nopython", None)
        options.pop("boundscheck", None)
        decorator = "@_njit(" + ", ".join(f"{k}={v!r}" for k, v in sorted(options.items())) + ")"
        self.embedded[name] = f"{decorator}\n{body}"
        for global_name in sorted(_global_names(function.__code__)):
            if global_name in function.__globals__:
                self.bind(function.__globals__[global_name], global_name)
            elif not hasattr(builtins, global_name):
                raise TypeError(f"strategy {self.strategy!r}: {function.__name__} uses "
                                f"{global_name!r}, which is not defined")


def _lookup(module, qualname: str):
    value = module
    for part in qualname.split("."):
        value = getattr(value, part, None)
    return value


def _global_names(code) -> set:
    """Names ``code`` (and code nested in it) loads as globals."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname == "LOAD_GLOBAL"}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _indicator_calls(spec, source: _Source) -> list[str]:
    """The branches of the generated ``compute_indicator_nb`` dispatcher."""
    lines = []
    for which, (fn, arg_kinds) in enumerate(indicator_kinds(spec)):
        local = source.bind(fn, f"_indicator_{which}")
        arguments = "".join(f"{'int' if kind is int else 'float'}(values[{j}]), "
                            for j, kind in enumerate(arg_kinds))
        keyword = "if" if which == 0 else "elif"
        lines.append(f"    {keyword} which == {which}:\n        {local}(close, {arguments}out)")
    return lines


def indicator_kinds(spec) -> list[tuple]:
    """Unique (function, argument kinds) of ``spec``'s indicators: the ``which``
    of each series, in the order the generated dispatcher numbers them."""
    kinds: list[tuple] = []
    for indicator in spec.indicators:
        key = (indicator.fn, spec.argument_kinds(indicator))
        if key not in kinds:
            kinds.append(key)
    return kinds


def generate_source(spec) -> tuple[str, _Source]:
    """The kernel module's source for ``spec`` (and what it was built from)."""
    source = _Source(spec.name)
    branches = _indicator_calls(spec, source)
    signal = source.bind(spec.signal_nb, "_signal_nb")
    # the values of the globals the strategy's functions read are frozen into the
    # compiled code: their digest is part of the source, hence of the module's name
    roots = [fn for fn, _ in indicator_kinds(spec)] + [spec.signal_nb]
    header = [f"# btcore kernel module for strategy {spec.name!r}; generated, do not edit",
              f"# code and globals of the strategy's functions: {globals_digest(roots)}",
              "import numpy as np", "from numba import njit as _njit",
              "from btcore.kernels.single import batch_kernel_nb as _batch_kernel_nb"]
    parts = ["\n".join(header + sorted(source.imports.values()))]
    parts += [source.embedded[name] for name in sorted(source.embedded)]
    parts.append("@_njit(nogil=True, error_model='numpy')\n"
                 "def compute_indicator_nb(which, close, values, out):\n" + "\n".join(branches))
    n_indicators = len(spec.indicators)
    views = "".join(f"series[rows[{i}]], " for i in range(n_indicators))
    loads = "\n".join(f"    values[{i}] = selected[{i}][t]" for i in range(n_indicators))
    parts.append("@_njit(inline='always', nogil=True, error_model='numpy')\n"
                 f"def select_series_nb(series, rows):\n    return ({views})")
    parts.append("@_njit(inline='always', nogil=True, error_model='numpy')\n"
                 f"def load_values_nb(values, selected, t):\n{loads}")
    for name in ("batch_nb",):
        parts.append(f"@_njit(cache=True, nogil=True, error_model='numpy')\n"
                     f"def {name}({_BATCH_ARGS}):\n"
                     f"    _batch_kernel_nb({_BATCH_ARGS}, compute_indicator_nb, "
                     f"select_series_nb, load_values_nb, {signal})")
    return "\n\n\n".join(parts) + "\n", source


def kernel_ref(spec) -> KernelRef:
    """The :class:`KernelRef` of ``spec`` (generated once per spec and process)."""
    cached = spec._cache.get("kernel_ref")
    if cached is None:
        text, source = generate_source(spec)
        hasher = hashlib.sha256(text.encode())
        hasher.update(BTCORE_DIGEST.encode())
        for file in sorted(source.files):
            try:
                hasher.update(pathlib.Path(file).read_bytes())
            except OSError:  # e.g. a module from a zip: its name still identifies it
                hasher.update(file.encode())
        slug = re.sub(r"\W", "_", spec.name)[:40]
        module_name = f"btcore_kernel_{slug}_{hasher.hexdigest()[:16]}"
        cached = KernelRef(spec.name, module_name, text, tuple(sorted(source.roots)))
        spec._cache["kernel_ref"] = cached
        _SPECS[module_name] = spec
    return cached


def load_kernel(ref: KernelRef) -> types.ModuleType:
    """Import the kernel module of ``ref``, writing its file first if needed.

    The module, Python's ``__pycache__`` next to it and Numba's cache directory
    for it are all in directories only the current user can write (see
    :func:`kernel_dir`); the file is written to a fresh ``mkstemp`` temporary and
    renamed over the module's path, so a planted file or symlink is replaced, never
    followed."""
    module = _LOADED.get(ref.module_name)
    if module is not None:
        return module
    for root in ref.sys_path:
        if root not in sys.path:
            sys.path.append(root)
    directory = kernel_dir()
    path = directory / f"{ref.module_name}.py"
    private_dir(directory / "__pycache__")  # Python's .pyc (and Numba's in-tree cache)
    private_dir(_numba_cache_dir(path))
    if _read_regular(path) != ref.source:
        # written once and atomically: Numba's cache is keyed on the file's contents
        descriptor, temporary = tempfile.mkstemp(prefix=f".{ref.module_name}.",
                                                 suffix=".tmp", dir=directory)
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(ref.source)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    spec = importlib.util.spec_from_file_location(ref.module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[ref.module_name] = module
    try:
        spec.loader.exec_module(module)
        for name in _GENERATED:  # where Numba actually put the cache: checked too
            cache_path = getattr(getattr(getattr(module, name, None), "_cache", None),
                                 "cache_path", None)
            if cache_path:
                private_dir(cache_path)
        key_function_caches(_kernel_roots(module))
    except Exception:
        del sys.modules[ref.module_name]
        raise
    _LOADED[ref.module_name] = module
    return module


def _numba_cache_dir(module_file: pathlib.Path) -> pathlib.Path:
    """The directory Numba caches a kernel module's functions in (its locators:
    ``$NUMBA_CACHE_DIR/<dir>_<sha1>`` when set, else ``__pycache__`` beside it)."""
    from numba.core import config
    from numba.core.caching import _CacheLocator
    if config.CACHE_DIR:
        return pathlib.Path(config.CACHE_DIR) / _CacheLocator.get_suitable_cache_subpath(
            str(module_file))
    return module_file.parent / "__pycache__"


def _read_regular(path: pathlib.Path) -> str | None:
    """The text of ``path`` if it is a regular file (a symlink is never read)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
        try:
            return file.read().decode()
        except UnicodeDecodeError:
            return None


def debug_functions(ref: KernelRef):
    """The kernel's function arguments as plain Python, for ``debug=True`` (in the
    process that made ``ref``): ``(compute_indicator, select_series, load_values,
    signal)``."""
    spec = _SPECS[ref.module_name]
    calls = []
    for fn, kinds in indicator_kinds(spec):
        calls.append((fn.py_func, kinds))

    def compute_indicator(which, close, values, out):
        fn, kinds = calls[which]
        fn(close, *(kind(v) for kind, v in zip(kinds, values)), out)

    def select_series(series, rows):
        return tuple(series[row] for row in rows)

    def load_values(values, selected, t):
        for i, view in enumerate(selected):
            values[i] = view[t]

    return compute_indicator, select_series, load_values, spec.signal_nb.py_func


def _standalone_error(spec) -> Exception | None:
    """Compile the strategy's functions on their own, with the kernel's argument
    types: an inlined rule's error carries no location, its own compile does."""
    from numba import types
    from numba.core.errors import NumbaError
    array = types.float64[::1]
    candidates = [(spec.signal_nb, (array, types.float64, array, array, types.int64,
                                    types.int64))]
    for indicator in spec.indicators:
        kinds = spec.argument_kinds(indicator)
        candidates.append((indicator.fn, (array, *(types.int64 if k is int else types.float64
                                                   for k in kinds), array)))
    for dispatcher, signature in candidates:
        try:
            dispatcher.compile(signature)
        except NumbaError as err:
            return err
    return None


def compile_error(spec, err: Exception) -> StrategyCompileError:
    """A numba error trimmed to the strategy's own functions, files and lines."""
    err = _standalone_error(spec) or err
    text = str(err)
    lines = [line for line in text.splitlines() if line.strip()]
    headline = next((line for line in lines if not line.startswith(("Failed in ", "During:"))),
                    lines[0] if lines else type(err).__name__)
    btcore_dir = str(pathlib.Path(__file__).resolve().parent.parent) + os.sep  # kernels...
    locations = []
    for match in re.finditer(r'File "([^"]+)", line (\d+):\n((?:.*\n?){1,4})', text):
        file = os.path.abspath(match.group(1))  # numba prints paths relative to the cwd
        in_btcore = file.startswith(btcore_dir) and os.sep + "strategies" + os.sep not in file
        if "site-packages" + os.sep + "numba" in file or in_btcore or "btcore_kernel_" in file:
            continue
        snippet = "\n".join("    " + line for line in match.group(3).rstrip().splitlines())
        locations.append(f'  File "{match.group(1)}", line {match.group(2)}:\n{snippet}')
    where = "\n".join(dict.fromkeys(locations)) or "  (no location in the strategy's files)"
    return StrategyCompileError(f"strategy {spec.name!r}: numba cannot compile its indicator "
                                f"or signal functions: {headline}\n{where}")
