"""Bind btcore's kernels into generated modules, cached on disk: one generator for
every kernel kind.

For each kernel kind (:data:`KINDS`) btcore writes a small Python module (a
*kernel module*) holding one ``@njit(cache=True, nogil=True)`` wrapper of the
kernel, which Numba caches on disk like any module-level function, so a fresh
process, or a worker, loads machine code instead of compiling:

- ``single``: ``batch_nb`` wraps ``btcore.kernels.single.batch_kernel_nb``, and
  ``portfolio``: ``portfolio_batch_nb`` wraps
  ``btcore.kernels.portfolio.portfolio_kernel_nb``; both per strategy, importing
  its indicator and signal functions by name (``compute_indicator_nb``,
  ``select_series_nb``, ``load_values_nb``, the rule as ``_signal_nb``);
- ``cross_sectional``: ``cross_sectional_batch_nb`` wraps
  ``btcore.kernels.cross_sectional.cross_sectional_kernel_nb`` (no user function).

The module's file name holds a digest of its source, of btcore's kernel sources
and the kind's own kernel file, of every source file its functions come from,
and of the values of every global those functions read (Numba freezes them at
compile time), through the functions they call (:mod:`btcore.kernels.code_key`):
editing a strategy, a constant it imports, or btcore's kernels (``accounting.py``
included) makes a new module (Numba alone only watches the file a cached
function is defined in). Kernel modules and Numba's cache of them live in
directories only the current user can write (:mod:`btcore.kernels.cache_dir`).
Strategies defined in ``__main__`` (a script or a notebook) are *embedded*:
their source, and that of the ``__main__`` helpers and constants they use, is
copied into the kernel module, so workers never need the driver's ``__main__``.

Workers receive a :class:`KernelRef` (the source, a few hundred bytes), never
compiled dispatchers.
"""
from __future__ import annotations

import ast
import builtins
import dis
import importlib.util
import inspect
import os
import re
import sys
import textwrap
import types
from dataclasses import dataclass

import numpy as np

from btcore.kernels import code_key
from btcore.kernels.cache_dir import (kernel_dir, numba_cache_dir, private_dir,
                                      write_private)
from btcore.kernels.code_key import globals_digest, key_function_caches

_LOADED: dict[str, types.ModuleType] = {}
_SPECS: dict[str, object] = {}  # module name -> spec, in the process that made the ref
_REFS: dict[str, object] = {}  # kind -> KernelRef of a kind without a strategy


class StrategyCompileError(ValueError):
    """Numba could not compile a strategy's functions (the message points at them)."""


@dataclass(frozen=True)
class KernelRef:
    """What a worker needs to load a kernel module: picklable, small."""

    strategy: str
    module_name: str
    source: str
    sys_path: tuple  # import roots of the strategy's modules, added in workers


@dataclass(frozen=True)
class Kind:
    """A kernel kind: the kernel a generated module wraps, and how."""

    prefix: str        # of the module name: ``<prefix>_[<strategy>_]<digest>``
    wrapper: str       # the generated ``cache=True`` function
    kernel: str        # the wrapped kernel function, in ``module``
    module: str
    args: str          # the wrapper's (and the kernel's leading) arguments
    sources: tuple     # the kernel's own files beyond ``code_key.KERNEL_SOURCES``
    strategy: bool     # bound to a strategy's functions (one module per strategy)


KINDS = {
    "single": Kind("btcore_kernel", "batch_nb", "batch_kernel_nb", "btcore.kernels.single",
                   "close, first_bar, checkpoints, series_which, series_values, set_series, "
                   "params, options, initial_capital, cost_bps, periods_per_year, bar_block, "
                   "block_sums, out, record", (), True),
    "execution": Kind("btcore_exec", "exec_batch_nb", "exec_batch_kernel_nb",
                      "btcore.kernels.single_exec",
                      "close, open_, high, low, first_bar, checkpoints, series_which, "
                      "series_values, set_series, params, options, execution, fill_mode, "
                      "fractional, initial_capital, cost_bps, periods_per_year, bar_block, "
                      "block_sums, out, record, trades",
                      ("kernels/single_exec.py", "kernels/execution.py"), True),
    "portfolio": Kind("btcore_portfolio", "portfolio_batch_nb", "portfolio_kernel_nb",
                      "btcore.kernels.portfolio",
                      "close, first_bars, last_bar, series_which, series_values, set_series, "
                      "params, options, construction, initial_capital, cost_bps, "
                      "periods_per_year, out, record_equity, record",
                      ("kernels/portfolio.py",), True),
    "cross_sectional": Kind("btcore_cross_sectional", "cross_sectional_batch_nb",
                            "cross_sectional_kernel_nb", "btcore.kernels.cross_sectional",
                            "close, first_bars, first_valid, last_bar, params, long_only, "
                            "momentum, initial_capital, cost_bps, costs, periods_per_year, out, "
                            "record_equity, record_shares",
                            ("kernels/cross_sectional.py",), False),
}
#: the functions every generated module defines (not the user's)
_GENERATED = frozenset({"compute_indicator_nb", "select_series_nb", "load_values_nb"} |
                       {kind.wrapper for kind in KINDS.values()})


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


def generate_source(spec, kind: str = "single") -> tuple[str, _Source]:
    """The kernel module's source for ``spec``'s kernel of ``kind`` (``spec`` is
    None for a kind without a strategy), and what it was built from."""
    info = KINDS[kind]
    kernel = f"_{info.kernel}"
    header = ["from numba import njit as _njit",
              f"from {info.module} import {info.kernel} as {kernel}"]
    if not info.strategy:
        source = _Source(kind)
        wrapper = (f"@_njit(cache=True, nogil=True, error_model='numpy')\n"
                   f"def {info.wrapper}({info.args}):\n    {kernel}({info.args})")
        text = "\n\n\n".join([f"# btcore {kind} kernel module; generated, do not edit\n"
                               + "\n".join(header), wrapper])
        return text + "\n", source
    source = _Source(spec.name)
    branches = _indicator_calls(spec, source)
    signal = source.bind(spec.signal_nb, "_signal_nb")
    # the values of the globals the strategy's functions read are frozen into the
    # compiled code: their digest is part of the source, hence of the module's name
    roots = [fn for fn, _ in indicator_kinds(spec)] + [spec.signal_nb]
    header = [f"# btcore {kind} kernel module for strategy {spec.name!r}; generated, do not "
              "edit", f"# code and globals of the strategy's functions: {globals_digest(roots)}",
              "import numpy as np", *header]
    parts = ["\n".join(header + sorted(source.imports.values()))]
    parts += [source.embedded[name] for name in sorted(source.embedded)]
    parts.append("@_njit(nogil=True, error_model='numpy')\n"
                 "def compute_indicator_nb(which, close, values, out):\n" + "\n".join(branches))
    n_indicators = len(spec.indicators)
    views = "".join(f"series[rows[{i}]], " for i in range(n_indicators))
    if kind == "portfolio":  # a row per indicator, copied element by element: an
        # array assignment would compile Numba's shape-mismatch message (~5 s cold)
        loads = "\n".join(["    for a in range(values.shape[1]):"] + [
            f"        values[{i}, a] = selected[{i}][t, a]" for i in range(n_indicators)]
            ) if n_indicators else "    pass"
    else:
        loads = "\n".join(f"    values[{i}] = selected[{i}][t]" for i in range(n_indicators))
    parts.append("@_njit(inline='always', nogil=True, error_model='numpy')\n"
                 f"def select_series_nb(series, rows):\n    return ({views})")
    parts.append("@_njit(inline='always', nogil=True, error_model='numpy')\n"
                 f"def load_values_nb(values, selected, t):\n{loads}")
    parts.append(f"@_njit(cache=True, nogil=True, error_model='numpy')\n"
                 f"def {info.wrapper}({info.args}):\n"
                 f"    {kernel}({info.args}, compute_indicator_nb, "
                 f"select_series_nb, load_values_nb, {signal})")
    return "\n\n\n".join(parts) + "\n", source


def kernel_ref(spec, kind: str = "single") -> KernelRef:
    """The :class:`KernelRef` of ``spec``'s kernel module of ``kind`` (``spec`` None
    for a kind without a strategy), generated once per spec, kind and process. Its
    name holds :func:`btcore.kernels.code_key.module_digest` of the source."""
    info = KINDS[kind]
    key = "kernel_ref" if kind == "single" else f"{kind}_kernel_ref"
    cached = spec._cache.get(key) if info.strategy else _REFS.get(kind)
    if cached is None:
        text, source = generate_source(spec, kind)
        digest = code_key.module_digest(text, info.sources, source.files)[:16]
        if info.strategy:
            slug = re.sub(r"\W", "_", spec.name)[:40]
            module_name = f"{info.prefix}_{slug}_{digest}"
        else:
            module_name = f"{info.prefix}_{digest}"
        cached = KernelRef(source.strategy, module_name, text, tuple(sorted(source.roots)))
        if info.strategy:
            spec._cache[key] = cached
            _SPECS[module_name] = spec
        else:
            _REFS[kind] = cached
    return cached


def load_kernel(ref: KernelRef) -> types.ModuleType:
    """Import the kernel module of ``ref``, writing its file first if needed.

    The module, Python's ``__pycache__`` next to it and Numba's cache directory
    for it are all in directories only the current user can write (see
    :func:`~btcore.kernels.cache_dir.kernel_dir`); the file is written to a fresh
    ``mkstemp`` temporary and renamed over the module's path, so a planted file or
    symlink is replaced, never followed."""
    module = _LOADED.get(ref.module_name)
    if module is not None:
        return module
    for root in ref.sys_path:
        if root not in sys.path:
            sys.path.append(root)
    directory = kernel_dir()
    path = directory / f"{ref.module_name}.py"
    private_dir(directory / "__pycache__")  # Python's .pyc (and Numba's in-tree cache)
    private_dir(numba_cache_dir(path))
    # written once and atomically: Numba's cache is keyed on the file's contents
    write_private(path, ref.source)
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


def _kernel_roots(module) -> list:
    """The strategy's functions a kernel module uses (imported or embedded)."""
    return [value for name, value in vars(module).items() if hasattr(value, "py_func")
            and name not in _GENERATED and
            (name == "_signal_nb" or name.startswith("_indicator_") or
             getattr(value.py_func, "__module__", None) == module.__name__)]


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
    btcore_dir = str(code_key.BTCORE_DIR) + os.sep  # kernels, metrics...
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
