"""What the command line takes in, checked before any work starts.

The grid of ``--grid`` (name=values tokens, JSON, a .json file), ``--params``,
``--strategy``, ``--data``, ``--assets``, ``--option``, the executor of
``--executor``/``--address``, and the files of ``--out`` and ``--plot`` (checked
writable first, saved after the run). A problem is a :class:`CLIError`: one
``btcore: error: ...`` line (:func:`print_error`) and exit status
:data:`USAGE_ERROR`.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import sys

from btcore.execution import ALL_NAMES as EXECUTION_SETTINGS

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}

#: exit status of a usage or input error (argparse's convention)
USAGE_ERROR = 2
#: the accepted forms of ``--grid``, named by every error about it
GRID_FORMS = ("give name=v1,v2,... or name=start:stop:step tokens (e.g. "
              "lookback_period=20:100:20 entry_threshold=1.5,2.0), one JSON object or list "
              "of objects, or a .json file")
#: output files of ``--out`` (a directory is the other form, for ``sweep``)
TABLE_FORMATS = (".parquet", ".csv")
#: figure files of ``--plot``
PLOT_FORMATS = (".png", ".pdf", ".svg")
#: most values one ``name=start:stop:step`` token may expand to
MAX_RANGE_VALUES = 1_000_000
#: executors that join a cluster with ``--address``
CLUSTER_EXECUTORS = ("ray", "dask")


class CLIError(Exception):
    """A problem with the command line or its inputs: printed, exit status 2."""


def print_error(error) -> None:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    print(f"btcore: error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {line}", file=sys.stderr)


# ------------------------------------------------------------------- grids
_INT = re.compile(r"[+-]?\d+")


def _scalar(text: str, token: str):
    """A grid value: an int when written as one, else a float (inf allowed)."""
    text = text.strip()
    if _INT.fullmatch(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or math.isnan(value):
        raise CLIError(f"--grid: bad token {token!r}: {text!r} is not a number; {GRID_FORMS}")
    return value


def _range(text: str, token: str) -> list:
    """``start:stop:step``, stop included when the steps land on it (to a relative
    tolerance of 1e-9 of a step); ints when all three are ints."""
    parts = text.split(":")
    if len(parts) != 3:
        raise CLIError(f"--grid: bad token {token!r}: a range is start:stop:step; "
                       f"{GRID_FORMS}")
    start, stop, step = (_scalar(part, token) for part in parts)
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise CLIError(f"--grid: bad token {token!r}: a range needs finite numbers; "
                       f"{GRID_FORMS}")
    if step <= 0 or stop < start:
        raise CLIError(f"--grid: bad token {token!r}: a range needs step > 0 and "
                       f"start <= stop; {GRID_FORMS}")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_RANGE_VALUES:
        raise CLIError(f"--grid: bad token {token!r}: the range has {count:,} values, more "
                       f"than {MAX_RANGE_VALUES:,}; use a larger step")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return list(range(start, start + count * step, step))
    return [float(f"{start + i * step:.12g}") for i in range(count)]


def _grid_tokens(tokens: list[str]) -> dict:
    """``name=v1,v2`` / ``name=start:stop:step`` tokens as a dict of lists."""
    grid = {}
    for token in tokens:
        name, sep, text = token.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise CLIError(f"--grid: bad token {token!r}; {GRID_FORMS}")
        if name in grid:
            raise CLIError(f"--grid: {name!r} is given twice ({token!r}); give each "
                           "parameter once")
        if ":" in text:
            grid[name] = _range(text, token)
        else:
            grid[name] = [_scalar(part, token) for part in text.split(",")]
    return grid


def load_grid(tokens):
    """The grid of ``--grid``: name=values tokens, inline JSON (starts with ``{`` or
    ``[``) or a JSON file; the seed grid without the flag."""
    if tokens is None:
        return dict(SEED_GRID)
    if isinstance(tokens, str):
        tokens = [tokens]
    if any("=" in t and not t.lstrip().startswith(("{", "[")) and not os.path.isfile(t)
           for t in tokens):
        bad = [t for t in tokens if "=" not in t or t.lstrip().startswith(("{", "["))]
        if bad:
            raise CLIError(f"--grid: bad token {bad[0]!r} among name=values tokens (JSON and "
                           f"files go alone); {GRID_FORMS}")
        return _grid_tokens(tokens)
    if len(tokens) > 1:
        raise CLIError(f"--grid: bad token {tokens[1]!r}: one JSON string or file, or "
                       f"name=values tokens; {GRID_FORMS}")
    text = tokens[0]
    if text.lstrip().startswith(("{", "[")):
        source, where = text, "--grid"
    else:
        try:
            with open(text, encoding="utf-8") as handle:
                source = handle.read()
        except FileNotFoundError:
            if text.lower().endswith(".json") or os.sep in text or "/" in text:
                raise CLIError(f"--grid: no such file {text!r}; {GRID_FORMS}") from None
            raise CLIError(f"--grid: bad token {text!r}: not name=values, JSON, or an "
                           f"existing .json file; {GRID_FORMS}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise CLIError(f"--grid: cannot read {text!r}: {err}") from None
        where = f"--grid file {text!r}"
    try:
        grid = json.loads(source)
    except json.JSONDecodeError as err:
        raise CLIError(f"{where} is not valid JSON: {err.msg} at line {err.lineno} column "
                       f"{err.colno}; {GRID_FORMS}") from None
    if not isinstance(grid, (dict, list)):
        raise CLIError(f"{where} must be a JSON object of name -> list of values, or a list "
                       f"of objects; got a {type(grid).__name__}")
    return grid


def _default_grid(spec) -> dict:
    """The seed grid for mean_reversion, else one set of the strategy's defaults."""
    if spec.name == "mean_reversion":
        return dict(SEED_GRID)
    return {param.name: [param.default] for param in spec.params}


def _varying(grid) -> list[str]:
    """Parameters that take several values in ``grid``, in its order."""
    if isinstance(grid, dict):  # a product: its lists say it, nothing is expanded
        try:
            return [name for name, values in grid.items()
                    if isinstance(values, list) and len(set(values)) > 1]
        except TypeError:  # unhashable values: the grid's own checks name them
            pass
    from btcore.grid import Grid
    import numpy as np
    columns = Grid(grid).columns
    return [name for name, values in columns.items() if len(np.unique(values)) > 1]


def first_set(grid) -> dict:
    """The first parameter set of a grid (dict of lists, or list of objects)."""
    if isinstance(grid, list):
        if not grid or not isinstance(grid[0], dict):
            raise CLIError("--grid: a list grid must hold objects of name -> value")
        return dict(grid[0])
    first = {}
    for name, values in grid.items():
        if isinstance(values, list):
            if not values:
                raise CLIError(f"--grid: parameter {name!r} has no values")
            values = values[0]
        first[name] = values
    return first


def parse_params(tokens: list[str]) -> dict:
    """``--params name=value`` tokens, one value each."""
    params = {}
    for token in tokens:
        name, sep, text = token.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text or "," in text or ":" in text:
            raise CLIError(f"--params takes name=value tokens with one value each, e.g. "
                           f"lookback_period=40; got {token!r}")
        if name in params:
            raise CLIError(f"--params: {name!r} is given twice")
        try:
            params[name] = int(text) if _INT.fullmatch(text) else float(text)
        except ValueError:
            raise CLIError(f"--params {name}: give a number, got {text!r}") from None
    return params


# ------------------------------------------------------------ other inputs
def _make_importable(strategy: str) -> None:
    """For ``package.module:SPEC``: put the current directory on ``sys.path`` (as
    ``python -m`` does) when the module cannot be found otherwise."""
    if ":" not in strategy:
        return
    module_name = strategy.partition(":")[0]
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):  # a parent package is missing, or an empty name
        found = False
    cwd = os.getcwd()
    if not found and cwd not in sys.path:
        sys.path.insert(0, cwd)
        importlib.invalidate_caches()


def resolve_strategy(name: str):
    """The StrategySpec of ``--strategy`` (a plug-in that cannot load, or is not a
    spec, is a ValueError from the registry: an input error, not a traceback)."""
    import btcore.strategies as strategies
    _make_importable(name)
    return strategies.get(name)


def _data(text: str | None):
    """``--data``: None for the bundled sample, else an existing file's path."""
    if text is None or text == "sample":
        return None
    if not os.path.exists(text):
        raise CLIError(f"--data: no such file {text!r} (give sample, a .csv or a .parquet "
                       "file)")
    if os.path.isdir(text):
        raise CLIError(f"--data: {text!r} is a folder; give sample, a .csv or a .parquet "
                       "file")
    return text


def _assets(text: str | None):
    return [a.strip() for a in text.split(",") if a.strip()] if text else None


def _check_writable_folder(folder: str, flag: str) -> None:
    if not os.path.isdir(folder):
        raise CLIError(f"{flag}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"{flag}: the folder {folder!r} is not writable")


def _check_file(path: str, flag: str, formats: tuple, forms: str) -> str:
    """The extension of an output file ``path`` that can be written, else a CLIError."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in formats:
        has = f"extension {extension}" if extension else "no extension"
        raise CLIError(f"{flag}: {path!r} has {has}; give {forms}")
    if os.path.isdir(path):
        raise CLIError(f"{flag}: {path!r} is a folder; give {forms}")
    _check_writable_folder(os.path.dirname(os.path.abspath(path)), flag)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise CLIError(f"{flag}: {path!r} exists and is not writable")
    return extension


def _out_kind(path: str | None, directory: bool) -> str | None:
    """``"dir"``, ``".parquet"`` or ``".csv"`` for ``--out path`` (None without it),
    checked to be writable; a CLIError for any other form."""
    if path is None:
        return None
    dir_forms = "a directory (dir/, or a name without extension), " if directory else ""
    forms = f"{dir_forms}a .parquet or a .csv file"
    stripped = path.rstrip("/" + os.sep)
    named_dir = path.endswith(("/", os.sep)) or os.path.isdir(path) or (
        stripped and not os.path.splitext(stripped)[1])
    if not stripped or not named_dir:
        return _check_file(path, "--out", TABLE_FORMATS, forms)
    if not directory:
        raise CLIError(f"--out: {path!r} is a directory; resumable results are for `sweep`, "
                       "`walk-forward`, `monte-carlo` and `portfolio`: give a .parquet or a "
                       ".csv file")
    if os.path.exists(stripped) and not os.path.isdir(stripped):
        raise CLIError(f"--out: {path!r} is an existing file without an extension; give "
                       f"{forms}")
    if os.path.isdir(stripped):
        if not os.access(stripped, os.W_OK | os.X_OK):
            raise CLIError(f"--out: the folder {stripped!r} is not writable")
    else:
        _check_writable_folder(os.path.dirname(os.path.abspath(stripped)), "--out")
    return "dir"


def _check_plot(path: str | None) -> None:
    if path is None:
        return
    _check_file(path, "--plot", PLOT_FORMATS, "a .png, .pdf or .svg file")
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError("--plot needs matplotlib, which is not installed: pip install "
                       "'btcore[plot]'")


def _check_executor(name: str, address, *, auto: bool = False):
    """The executor to pass: a name, or a Ray/Dask executor joining ``address``."""
    import btcore.executors as executors
    names = executors.available()
    if name not in names and not (auto and name == "auto"):
        choices = ", ".join(names + (["auto"] if auto else []))
        raise CLIError(f"--executor: unknown executor {name!r}; choose from {choices}")
    if address is None:
        return name
    if name not in CLUSTER_EXECUTORS:
        raise CLIError(f"--address joins a Ray or Dask cluster: use it with --executor ray "
                       f"or --executor dask, not {name!r}")
    if not address.strip():
        raise CLIError("--address is empty; give a Ray address (auto, host:port) or a Dask "
                       "scheduler (tcp://host:port)")
    return executors.executor_class(name)(address=address)


@contextlib.contextmanager
def open_executor(args, *, auto: bool = False):
    """The executor of ``--executor``/``--address``; one built here is closed after."""
    executor = _check_executor(args.executor, args.address, auto=auto)
    try:
        yield executor
    finally:
        if not isinstance(executor, str):
            executor.close()


def progress_of(args):
    return False if args.no_progress else None


def _parse_options(items: list, spec) -> dict:
    """``--option NAME=VALUE`` pairs typed by the strategy's declared defaults."""
    options = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name:
            raise CLIError(f"--option takes NAME=VALUE, got {item!r}")
        if name not in spec.options:
            valid = ", ".join(spec.options) or "none"
            raise CLIError(f"--option {name}: strategy {spec.name!r} has no such option; "
                           f"valid options: {valid}")
        default = spec.options[name]
        if isinstance(default, bool):
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise CLIError(f"--option {name}: give true or false, got {text!r}")
            options[name] = lowered in ("true", "1", "yes")
        elif isinstance(default, tuple):  # named choices: validated by the spec
            options[name] = text
        else:
            try:
                options[name] = int(text) if isinstance(default, int) else float(text)
            except ValueError:
                raise CLIError(f"--option {name}: give a number, got {text!r}") from None
    return options


class Inputs:
    """What every workflow takes, checked before any work: grid, strategy, data,
    assets, window, capital, costs, options, outputs."""

    def __init__(self, args, *, grid: bool = True, directory: bool = False):
        self.tokens = getattr(args, "grid", None) if grid else None
        self.grid = load_grid(self.tokens) if self.tokens is not None else None
        self.out = getattr(args, "out", None)
        self.out_kind = _out_kind(self.out, directory)
        self.plot = getattr(args, "plot", None)
        _check_plot(self.plot)
        self.data = _data(args.data)
        # a workflow with its own rule (cross-sectional) has no --strategy
        self.spec = resolve_strategy(args.strategy) if "strategy" in args else None
        if grid and self.tokens is None:
            self.grid = _default_grid(self.spec) if self.spec else {}
        self.options = _parse_options(args.option, self.spec) if self.spec else {}
        self.assets = _assets(args.assets)
        self.common = dict(start=args.start, end=args.end, initial_capital=args.capital,
                           cost_bps=args.cost_bps, **self.options,
                           **{name: value for name, value in vars(args).items()
                              if name in EXECUTION_SETTINGS})


# ------------------------------------------------------------------ output
def _directory_note(stats: dict, out: str) -> str:
    resumed, computed = stats.get("tasks_resumed", 0), stats.get("tasks_computed", 0)
    return f"results in {out}" + (
        f" (resumed: {resumed:,} of {resumed + computed:,} tasks were already there)"
        if resumed else "")


def saved(inputs, result, table, whole=None) -> list:
    """Notes on what ``--out`` saved: the resumable directory, or ``table`` as a
    file (``whole``: the result whose own ``to_parquet`` keeps its settings)."""
    if inputs.out_kind == "dir":
        return [_directory_note(result.stats, inputs.out)]
    if inputs.out_kind:
        return [save_table(table, inputs.out, inputs.out_kind, whole)]
    return []


def store_keywords(args, inputs) -> dict:
    """``out=`` and ``overwrite=`` of a workflow, for a directory ``--out``."""
    if inputs.out_kind != "dir":
        return {}
    return {"out": inputs.out, "overwrite": bool(args.overwrite)}


def save_table(table, path: str, kind: str, result=None) -> str:
    try:
        if kind == ".csv":
            table.to_csv(path, index=False)
        elif result is not None and hasattr(result, "to_parquet"):
            result.to_parquet(path)
        else:
            table.to_parquet(path, index=False)
    except OSError as err:
        raise CLIError(f"--out: cannot write {path!r}: {err}") from None
    return f"saved {len(table):,} rows to {path}"


def save_figure(fig, path: str) -> str:
    import matplotlib.pyplot as plt
    try:
        fig.savefig(path, dpi=110)
    except OSError as err:
        raise CLIError(f"--plot: cannot write {path!r}: {err}") from None
    finally:
        plt.close(fig)
    return f"saved the plot to {path}"


def use_agg() -> None:
    """Draw off-screen unless the program already chose a backend."""
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib
        matplotlib.use("Agg")


def heatmap_axes(inputs: Inputs) -> tuple[str, str] | None:
    """The first two parameters that vary in the grid, checked before any work."""
    if inputs.plot is None:
        return None
    varying = _varying(inputs.grid)
    if len(varying) < 2:
        raise CLIError(f"--plot draws a heatmap over two parameters, but the grid varies "
                       f"{len(varying)} ({', '.join(varying) or 'none'}); give at least two "
                       "parameters several values")
    return varying[0], varying[1]
