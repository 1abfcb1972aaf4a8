"""Bind a strategy's functions to btcore's batch kernel, cached on disk.

For each strategy btcore writes a small Python module (its *kernel module*)
that imports the strategy's indicator and signal functions by name and wraps
``btcore.kernels.single.batch_kernel_nb`` in one ``@njit(cache=True, nogil=True)``
function, ``batch_nb``. Numba caches it on disk like any module-level
function, so a fresh process, or a worker, loads machine code instead of
compiling.

The module's file name holds a digest of its source, of btcore's kernel
sources, and of every source file its functions come from: editing a strategy
or upgrading btcore makes a new module (Numba alone only watches the file a
cached function is defined in). Strategies defined in ``__main__`` (a script
or a notebook) are *embedded*: their source, and that of the ``__main__``
helpers and constants they use, is copied into the kernel module, so workers
never need the driver's ``__main__``.

Workers receive a :class:`KernelRef` (the source, a few hundred bytes), never
compiled dispatchers.
"""
from __future__ import annotations

import ast
import builtins
import dis
import hashlib
import importlib.util
import inspect
import os
import pathlib
import re
import sys
import tempfile
import textwrap
import types
from dataclasses import dataclass

import numpy as np

#: btcore's compiled sources: every kernel module's name carries their digest
_KERNEL_SOURCES = ("kernels/single.py", "metrics.py", "binding.py", "indicators.py",
                   "indicators_extra.py")
_LOADED: dict[str, types.ModuleType] = {}
_SPECS: dict[str, object] = {}  # module name -> spec, in the process that made the ref
_BATCH_ARGS = ("close, first_bar, checkpoints, series_which, series_values, set_series, "
               "params, options, initial_capital, cost_bps, periods_per_year, bar_block, "
               "block_sums, out, record")


def _btcore_digest() -> str:
    here = pathlib.Path(__file__).resolve().parent
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


def kernel_dir() -> pathlib.Path:
    """Where kernel modules are written: ``$BTCORE_KERNEL_DIR``, else
    ``$NUMBA_CACHE_DIR/btcore_kernels``, else ``~/.cache/btcore/kernels``
    (a temporary directory if none is writable)."""
    for candidate in (os.environ.get("BTCORE_KERNEL_DIR"),
                      os.environ.get("NUMBA_CACHE_DIR") and
                      os.path.join(os.environ["NUMBA_CACHE_DIR"], "btcore_kernels"),
                      os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                   os.path.join(os.path.expanduser("~"), ".cache"),
                                   "btcore", "kernels"),
                      os.path.join(tempfile.gettempdir(), f"btcore-kernels-{os.getuid()}")):
        if not candidate:
            continue
        path = pathlib.Path(candidate)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    raise OSError("no writable directory for btcore kernel modules; set BTCORE_KERNEL_DIR")


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
    header = [f"# btcore kernel module for strategy {spec.name!r}; generated, do not edit",
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
    """Import the kernel module of ``ref``, writing its file first if needed."""
    module = _LOADED.get(ref.module_name)
    if module is not None:
        return module
    for root in ref.sys_path:
        if root not in sys.path:
            sys.path.append(root)
    path = kernel_dir() / f"{ref.module_name}.py"
    if not path.exists() or path.read_text() != ref.source:
        # written once and atomically: Numba's cache is keyed on the file's mtime
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(ref.source)
        os.replace(temporary, path)
    spec = importlib.util.spec_from_file_location(ref.module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[ref.module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[ref.module_name]
        raise
    _LOADED[ref.module_name] = module
    return module


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
    btcore_dir = str(pathlib.Path(__file__).resolve().parent) + os.sep  # kernel, metrics...
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
