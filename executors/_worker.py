"""Code shared by the process executors (joblib, Ray, Dask).

Mostly what runs *inside* workers: one small wrapper per backend around the
task function ``fn(shared, task)``. Workers import this module by name
(module-level functions pickle by reference), so it imports no optional
backend at module level. Every wrapper

- limits Numba to one thread in the worker: the executor owns the parallelism;
- hands ``fn`` read-only arrays, so workers use the same Numba specialisation
  (and on-disk cache entry) as the driver, whatever the transport;
- relies on the strategy spec pickling by reference (``StrategySpec.__reduce_ex__``),
  so workers load compiled kernels from Numba's on-disk cache, not recompile;
- (Ray, Dask) returns ``(where, result)``: the node or worker that ran it.

Plus driver-side helpers: the file layout of joblib's shared payload, a fast
reachability check for cluster addresses, and argument checks.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import socket
from urllib.parse import urlsplit

import numpy as np

_OBJECTS_FILE = "objects.pkl"
_ARRAYS_KEY = "__memmapped_arrays__"
# per worker process: directory -> loaded payload (a few sweeps at most)
_LOADED: dict[str, dict] = {}
_MAX_LOADED = 4


def limit_numba_threads() -> None:
    """One Numba thread in this worker (cheap after the first call; per thread)."""
    import numba
    numba.set_num_threads(1)


def freeze(shared: dict) -> dict:
    """Make every array of ``shared`` read-only in place (Dask hands out writeable copies)."""
    for value in shared.values():
        if isinstance(value, np.ndarray) and value.flags.writeable:
            value.flags.writeable = False
    return shared


def ray_task(fn, task, names, objects, *arrays):
    """Ray: ``arrays`` arrive resolved (zero-copy, read-only) as top-level arguments."""
    import ray
    limit_numba_threads()
    shared = dict(objects)
    shared.update(zip(names, arrays))
    return ray.get_runtime_context().get_node_id(), fn(freeze(shared), task)


# ----------------------------------------------------------------------- Dask
def dask_task(fn, shared, task):
    """Dask: ``shared`` is this worker's scattered copy of the payload."""
    from distributed import get_worker
    limit_numba_threads()
    return get_worker().address, fn(freeze(shared), task)


async def dask_restart_gracefully(dask_worker) -> None:
    """Ask this worker to retire (its data moves elsewhere) and its nanny to restart it."""
    import asyncio
    # not awaited: the reply must leave before the worker closes
    asyncio.ensure_future(dask_worker.close_gracefully(restart=True, reason="btcore-recycle"))


# --------------------------------------------------------------------- joblib
def joblib_task(fn, directory, task):
    """joblib: the payload is loaded once per worker process from ``directory``."""
    limit_numba_threads()
    return fn(load_shared(directory), task)


def joblib_ping() -> int:
    return os.getpid()


def dump_shared(payload: dict, directory: str) -> None:
    """Write ``payload`` to ``directory``: each numeric array as ``.npy`` (memory-mapped
    by workers), everything else in one pickle."""
    try:  # strategies defined in __main__ or a notebook pickle too
        import cloudpickle  # a joblib dependency since 1.5
    except ImportError:  # pragma: no cover - older joblib vendors it
        from joblib.externals import cloudpickle

    objects, arrays = {}, []
    for name, value in payload.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size:
            np.save(os.path.join(directory, f"{name}.npy"), value, allow_pickle=False)
            arrays.append(name)
        else:  # np.memmap cannot map an empty file
            objects[name] = value
    objects[_ARRAYS_KEY] = arrays
    with open(os.path.join(directory, _OBJECTS_FILE), "wb") as file:
        cloudpickle.dump(objects, file)


def load_shared(directory: str) -> dict:
    """The payload ``dump_shared`` wrote, arrays memory-mapped read-only (cached)."""
    shared = _LOADED.get(directory)
    if shared is None:
        with open(os.path.join(directory, _OBJECTS_FILE), "rb") as file:
            shared = pickle.load(file)
        for name in shared.pop(_ARRAYS_KEY):
            # a plain read-only ndarray view: same Numba type as the driver's arrays
            mapped = np.load(os.path.join(directory, f"{name}.npy"), mmap_mode="r")
            shared[name] = np.asarray(mapped)
        if len(_LOADED) >= _MAX_LOADED:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[directory] = shared
    return shared


# ------------------------------------------------------------- driver side
@contextlib.contextmanager
def marked_environment(name: str, value: str):
    """Set ``os.environ[name] = value`` for the block: processes started in it (and
    their children, which inherit it) carry the mark; see :func:`kill_marked`."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def marked_processes(name: str, value: str) -> list:
    """Pids of the processes (of this user; not this one) whose environment has
    ``name=value``, wherever they were reparented. Linux /proc, else psutil, else []."""
    needle = f"{name}={value}".encode()
    found = []
    if os.path.isdir("/proc"):
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as file:
                    if needle in file.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:  # gone, another user's, or a zombie
                continue
        return found
    try:  # pragma: no cover - not Linux
        import psutil
    except ImportError:  # pragma: no cover
        return found
    for process in psutil.process_iter():  # pragma: no cover
        try:
            if process.pid != os.getpid() and process.environ().get(name) == value:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def kill_marked(name: str, value: str, timeout: float = 5.0) -> list:
    """SIGKILL every process :func:`marked_processes` finds, and again what appears
    while they die (a dying parent may have forked a child), until a scan after all
    of them are gone finds none, or ``timeout`` seconds passed; return the pids killed."""
    import signal
    import time
    killed, deadline = [], time.monotonic() + timeout
    while True:
        pids = [pid for pid in marked_processes(name, value) if pid not in killed]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
        if time.monotonic() > deadline:
            return killed
        if not pids and not any(_alive(pid) for pid in killed):
            if not marked_processes(name, value):
                return killed
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        if not os.path.isdir("/proc"):  # pragma: no cover - not Linux
            try:
                os.kill(pid, 0)
                return True
            except OSError:
                return False
        return False


def check_fault_options(recycle_after, max_retries) -> tuple:
    """Validate the process executors' ``recycle_after`` (None or an int >= 1) and
    ``max_retries`` (an int >= 0); returns them."""
    from btcore.executors.base import check_worker_count
    if recycle_after is not None:
        recycle_after = check_worker_count("recycle_after", recycle_after, False)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise TypeError(f"max_retries must be an int, got {type(max_retries).__name__}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    return recycle_after, max_retries


def check_reachable(address: str, timeout: float, hint: str) -> None:
    """ValueError if ``address`` has no host:port; ConnectionError at once if nothing
    listens there (instead of a client retrying until its own timeout)."""
    url = urlsplit(address if "://" in address else "tcp://" + address)
    try:
        port = url.port
    except ValueError:  # not a number
        port = None
    if not url.hostname or port is None:
        raise ValueError(f"cannot read host:port from address {address!r}; {hint}")
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"cannot reach a cluster at {address!r} ({err}); {hint}") from None


def scheduler_losses():
    """A function for Dask's ``run_on_scheduler(fn, prefix, shared_key)``: the
    unexpected worker removals that hit a map (tasks named ``prefix...`` running
    there, or the scattered payload ``shared_key`` lost) and those tasks' keys."""
    # nested, so cloudpickle ships it by value: the scheduler needs no btcore
    def losses(prefix, shared_key, dask_scheduler=None):
        events, keys = 0, set()
        for _, msg in dask_scheduler.get_events("all"):
            if not isinstance(msg, dict) or msg.get("action") != "remove-worker" \
                    or msg.get("expected"):
                continue
            mine = {str(k) for k in msg.get("processing-tasks", ()) if str(k).startswith(prefix)}
            if mine or shared_key in msg.get("lost-scattered-tasks", ()):
                events += 1
                keys |= mine
        return events, sorted(keys)
    return losses
