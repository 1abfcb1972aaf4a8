"""The pre-flight: a new strategy's compiled kernel runs first in a child process.

Compiled strategy code can do what Python code cannot: an ``@njit`` indicator that
writes outside its array corrupts memory or kills the process (SIGSEGV, SIGBUS,
SIGABRT). The engine runs the kernel in the driver to compile and calibrate it,
so one such bug would take down the driver and every sweep in it. Before that
first run, :func:`check` runs the job's kernel on a few small tasks (the set the
driver compiles with, the last set, the calibration's probes) in a fresh
``python -c`` child process, compiled with Numba's bounds checking
(``NUMBA_BOUNDSCHECK=1``: an index outside an array raises ``IndexError``
instead of touching memory). A crash, an abnormal exit or an out-of-bounds
index there is a ``ValueError`` naming the strategy, the parameter sets tried
and the signal; success is remembered by a marker named after the kernel module
(its name digests the strategy's code and globals), in the private kernel
directory, so later runs, in any process, pay nothing.

Skipped: btcore's built-in strategies (their code ships with btcore), kernels
without strategy code (cross-sectional), and runs as plain Python (``debug=True``,
``NUMBA_DISABLE_JIT=1``).

The child compiles into its own Numba cache (``<kernel_dir>/preflight/numba``)
and kernel directory: Numba does not key its cache on the bounds-check flag, so
bounds-checked machine code must never land in the normal cache. Meanwhile a
thread of the driver compiles the normal kernel without running it (the task
function runs against a stand-in kernel module that only compiles), so the first
run pays about the longer of the two, not their sum, when a core is free.
"""
from __future__ import annotations

import json
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings

from btcore.engine import lookahead

#: the child process: reads its work from stdin, reports JSON lines on stdout
_CHILD_CODE = "from btcore.engine.preflight import child_main; child_main()"
#: sets in each calibration-like probe the child runs
_PROBE_SETS = 32
_FIX = ("run it with debug=True (executor='serial'): plain Python raises IndexError at the "
        "faulty line")

_PASSED: set = set()  # kernel module names checked in this process
_LOCK = threading.Lock()
#: child processes started (tests count them)
children_started = 0


class PreflightError(ValueError):
    """A strategy's compiled kernel crashed, or indexed out of bounds, in the pre-flight."""


# ------------------------------------------------------------------ driver side
def check(job) -> None:
    """Run ``job``'s kernel once in a child process unless it needs no check (see
    the module docstring), then the look-ahead check of its indicators
    (:mod:`btcore.engine.lookahead`, every strategy, built-ins included);
    :class:`PreflightError` if it crashed in the child,
    :class:`~btcore.engine.lookahead.LookaheadError` if an indicator reads the future."""
    _contain(job)
    lookahead.check(job)


def _contain(job) -> None:
    spec = getattr(job, "strategy", None)
    ref = getattr(job, "kernel", None)
    if job.debug or spec is None or ref is None or _jit_disabled() or is_builtin(spec):
        return
    name = ref.module_name
    if name in _PASSED:
        return
    with _LOCK:
        if name in _PASSED:
            return
        marker = _marker(name)
        if marker is not None and _read(marker) is not None:
            _PASSED.add(name)
            return
        # the child and this process's compile of the same kernel (which runs
        # nothing) overlap: the first run pays about the longer of the two
        compiling = _compile_in_background(job)
        try:
            seconds = _run_child(job, spec)
        finally:
            if compiling is not None:
                compiling.join()
        if seconds is not None:
            _PASSED.add(name)
            if marker is not None:
                _write(marker, f"passed in {seconds:.2f} s at {time.time():.0f}\n")


def _jit_disabled() -> bool:
    """``NUMBA_DISABLE_JIT=1``: this process runs the kernel as Python, which cannot crash it."""
    from numba.core import config
    return bool(config.DISABLE_JIT)


class _CompileOnly:
    """Stands in for a kernel module: calling one of its numba functions compiles it
    for the arguments' types (from Numba's cache, or compiling and caching), and
    never runs it."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if not hasattr(value, "compile"):
            return value

        def compile_only(*args):
            from numba import typeof
            from numba.core.typing.typeof import Purpose
            value.compile(tuple(typeof(arg, Purpose.argument) for arg in args))

        return compile_only


#: task functions known to load their kernel only through the payload's kernel refs
_LOADS_BY_REF = {("btcore.engine.tasks", "run_task"),
                 ("btcore.workflows.portfolio_job", "run_portfolio_task")}


def _compile_in_background(job):
    """A started thread compiling ``job``'s kernel in this process without running it
    (the task function runs with every kernel ref of the payload pointing at a
    :class:`_CompileOnly` stand-in), or None when the payload has no kernel ref."""
    from dataclasses import replace

    from btcore.engine.tasks import Task
    from btcore.kernels import binding
    fn = job.task_fn
    if (getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)) not in _LOADS_BY_REF:
        return None  # a task function that may load its kernel otherwise: no overlap
    payload = job.payload()
    refs = {key: value for key, value in payload.items()
            if isinstance(value, binding.KernelRef)}
    if not refs:
        return None

    def compile_kernel():
        names = []
        try:
            for key, ref in refs.items():
                stand_in = replace(ref, module_name=f"{ref.module_name}__compile_only")
                binding._LOADED[stand_in.module_name] = _CompileOnly(binding.load_kernel(ref))
                names.append(stand_in.module_name)
                payload[key] = stand_in
            job.task_fn(payload, Task(-1, 0, 0, 0, 1, 0.0))
        except Exception:  # noqa: BLE001 - the driver's own run reports it, trimmed
            pass
        finally:
            for name in names:
                binding._LOADED.pop(name, None)

    thread = threading.Thread(target=compile_kernel, name="btcore-preflight-compile",
                              daemon=True)
    thread.start()
    return thread


def is_builtin(spec) -> bool:
    """Whether every function of ``spec`` (indicators and rule) is btcore's own code:
    defined in a module of the installed ``btcore`` package (its strategies included)."""
    roots = _trusted_dirs()
    for fn in [indicator.fn for indicator in spec.indicators] + [spec.signal_nb]:
        function = getattr(fn, "py_func", fn)
        module = getattr(function, "__module__", None) or ""
        if module.partition(".")[0] != "btcore":
            return False
        file = getattr(sys.modules.get(module), "__file__", None)
        if not file:
            return False
        path = pathlib.Path(file).resolve()
        if not any(path.is_relative_to(root) for root in roots):
            return False
    return True


def _trusted_dirs() -> tuple:
    """btcore's package directory and its strategies' (a separate folder in a checkout)."""
    import btcore.strategies
    from btcore.kernels.code_key import BTCORE_DIR
    return tuple({BTCORE_DIR, pathlib.Path(btcore.strategies.__file__).resolve().parent})


def _preflight_dir():
    """``<kernel_dir>/preflight`` (private), or None when there is no safe kernel dir
    (the run itself then fails with the reason, when it loads the kernel)."""
    from btcore.kernels.cache_dir import kernel_dir, private_dir
    try:
        return private_dir(kernel_dir() / "preflight")
    except OSError:
        return None


def _marker(module_name: str):
    from btcore.kernels.cache_dir import private_dir
    root = _preflight_dir()
    return None if root is None else private_dir(root / "passed") / module_name


def _read(path):
    from btcore.kernels.cache_dir import read_regular
    return read_regular(path)


def _write(path, text: str) -> None:
    from btcore.kernels.cache_dir import write_private
    try:
        write_private(path, text)
    except OSError:  # not remembered: checked again next time
        pass


def probe_tasks(job) -> list:
    """The tasks the child runs: the set the driver compiles with, the last set on the
    last block, and the calibration's first probes (32 sets around the quartiles)."""
    from btcore.engine.tasks import Task
    n_sets = int(job.n_sets)
    columns, windows = job.traded_bars.shape
    tasks = [Task(-1, 0, 0, 0, 1, 0.0)]
    if n_sets > 1:
        tasks.append(Task(-1, columns - 1, windows - 1, n_sets - 1, n_sets, 0.0))
    if n_sets > 2:
        if n_sets <= 2 * _PROBE_SETS:
            tasks.append(Task(-1, 0, 0, 0, n_sets, 0.0))
        else:
            for middle in (n_sets // 4, 3 * n_sets // 4):
                start = max(0, middle - _PROBE_SETS // 2)
                tasks.append(Task(-1, 0, 0, start, start + _PROBE_SETS, 0.0))
    return tasks


def _child_env(root) -> dict:
    env = dict(os.environ)
    # bounds checked; unoptimised (a check, not a run: LLVM's -O0 compiles several
    # times faster, and the checks stay)
    env.update({"NUMBA_BOUNDSCHECK": "1", "NUMBA_OPT": "0", "NUMBA_NUM_THREADS": "1",
                "PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1"})
    from btcore.kernels.cache_dir import private_dir
    env["NUMBA_CACHE_DIR"] = str(private_dir(root / "numba"))
    env["BTCORE_KERNEL_DIR"] = str(private_dir(root / "kernels"))
    env.pop("NUMBA_DISABLE_JIT", None)
    return env


def _run_child(job, spec) -> float | None:
    """Run the probe tasks in a child; seconds it took if they passed, None if the
    pre-flight could not decide (the driver's own run then reports the error)."""
    global children_started
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - older joblib vendors it
        from joblib.externals import cloudpickle
    root = _preflight_dir()
    if root is None:
        return None
    tasks = probe_tasks(job)
    try:
        body = cloudpickle.dumps((job.task_fn, job.payload(), tasks))
    except Exception as err:  # noqa: BLE001 - cannot ship it: run unchecked, say so
        warnings.warn(f"strategy {spec.name!r}: btcore could not run its compiled code in a "
                      f"child process first ({type(err).__name__}: {err}); running it in this "
                      "process unchecked", RuntimeWarning, stacklevel=4)
        return None
    header = pickle.dumps({"sys_path": [os.path.abspath(p) if p else os.getcwd()
                                        for p in sys.path], "parent": os.getpid()})
    started = time.perf_counter()
    children_started += 1
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD_CODE], input=header + body,
                              capture_output=True, env=_child_env(root))
    except OSError as err:
        warnings.warn(f"strategy {spec.name!r}: btcore could not start a child process to run "
                      f"its compiled code first ({err}); running it in this process unchecked",
                      RuntimeWarning, stacklevel=4)
        return None
    seconds = time.perf_counter() - started
    reports = []
    for line in done.stdout.decode(errors="replace").splitlines():
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict):  # not a number the strategy printed
            reports.append(report)
    running = [r["task"] for r in reports if "task" in r]
    final = next((r for r in reversed(reports) if "outcome" in r), None)
    if done.returncode == 0 and final is not None:
        if final["outcome"] == "passed":
            return seconds
        if final["outcome"] == "index_error":
            task = tasks[running[-1]] if running else tasks[0]
            raise PreflightError(
                f"strategy {spec.name!r}: its compiled indicator or rule indexed an array out "
                f"of bounds ({final['error']}) on {_describe(job, spec, task)}. btcore ran "
                "the new strategy's compiled code in a child process first, with Numba's bounds "
                "checking, because unchecked it corrupts memory or crashes the process; "
                f"{_FIX}") from None
        if final["outcome"] == "setup_error":
            warnings.warn(f"strategy {spec.name!r}: btcore could not run its compiled code in "
                          f"a child process first ({final['error']}); running it in this "
                          "process unchecked", RuntimeWarning, stacklevel=4)
        return None  # an ordinary error: the driver's own run raises it, trimmed
    task = tasks[running[-1]] if running else tasks[0]
    raise PreflightError(
        f"strategy {spec.name!r}: its compiled code {_how_it_died(done.returncode)} on "
        f"{_describe(job, spec, task)}. btcore runs a new strategy's compiled code in a child "
        "process first, so this process survived; an indicator or the rule most likely "
        f"reads or writes outside an array; {_FIX}{_stderr_tail(done.stderr)}") from None


def _how_it_died(returncode: int) -> str:
    if returncode < 0:
        try:
            number = signal.Signals(-returncode)
            return (f"crashed the process running it (signal {number.name}: "
                    f"{signal.strsignal(number) or ''})")
        except ValueError:
            return f"crashed the process running it (signal {-returncode})"
    return f"made the process running it exit abnormally (exit code {returncode})"


def _describe(job, spec, task) -> str:
    """``parameter sets a:b of n (name: low..high, ...), column c``."""
    sets = getattr(job, "sets", None)
    if sets is None:
        sets = getattr(getattr(job, "job", None), "sets", None)
    where = f"parameter sets {task.start}:{task.stop} of {job.n_sets}"
    try:
        params = sets.params(task.start, task.stop)
        ranges = []
        for column, param in enumerate(spec.params):
            low, high = float(params[:, column].min()), float(params[:, column].max())
            kind = (lambda v: f"{int(v)}") if param.kind is int else (lambda v: f"{v:g}")
            ranges.append(f"{param.name} {kind(low)}" if low == high else
                          f"{param.name} {kind(low)}..{kind(high)}")
        if ranges:
            where += f" ({', '.join(ranges)})"
    except Exception:  # noqa: BLE001 - a job without readable sets: the range only
        pass
    return where + f", column {task.column}"


def _stderr_tail(stderr: bytes, lines: int = 6) -> str:
    text = [line[:200] for line in stderr.decode(errors="replace").splitlines()
            if line.strip() and not line.startswith("Extension modules:")]
    if not text:
        return ""
    return "\nlast lines of its stderr:\n    " + "\n    ".join(text[-lines:])


# ------------------------------------------------------------------- child side
def child_main() -> None:
    """The child: read ``header`` (sys.path, the driver's pid) and ``(task_fn, payload,
    tasks)`` from stdin, run the tasks, report JSON lines on stdout."""
    stdin = sys.stdin.buffer
    report = sys.stdout.write
    try:
        header = pickle.load(stdin)
        parent = int(header["parent"])
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
        for entry in header["sys_path"]:
            if entry not in sys.path:
                sys.path.append(entry)
        task_fn, payload, tasks = pickle.load(stdin)
    except Exception as err:  # noqa: BLE001 - reported, the driver decides
        report(json.dumps({"outcome": "setup_error", "error": _one_line(err)}) + "\n")
        sys.stdout.flush()
        return
    from numba.core.errors import NumbaError
    for position, task in enumerate(tasks):
        report(json.dumps({"task": position, "t": round(time.perf_counter(), 3)}) + "\n")
        sys.stdout.flush()
        try:
            task_fn(payload, task)
        except IndexError as err:  # NUMBA_BOUNDSCHECK=1: out of bounds, caught
            report(json.dumps({"outcome": "index_error", "error": _one_line(err)}) + "\n")
            break
        except NumbaError as err:  # a compile error: the driver trims and raises it
            report(json.dumps({"outcome": "compile_error", "error": _one_line(err)}) + "\n")
            break
        except Exception as err:  # noqa: BLE001 - the driver's run raises it too
            report(json.dumps({"outcome": "error", "error": _one_line(err)}) + "\n")
            break
    else:
        report(json.dumps({"outcome": "passed", "t": round(time.perf_counter(), 3)}) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip the interpreter's teardown (~1 s with Numba and LLVM loaded)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().split("\n")[0][:300]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _exit_with_parent(parent: int) -> None:
    """Exit this child when the driver that started it is gone."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)
