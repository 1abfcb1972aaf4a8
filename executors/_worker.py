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


# ------------------------------------------- what a driver that died leaves behind
def driver_tag(pid: int | None = None) -> str:
    """``"<pid>.<start time>"`` of process ``pid`` (default: this one): names it for
    :func:`tag_alive` even after its pid is reused (Linux; elsewhere ``"<pid>"``)."""
    pid = os.getpid() if pid is None else pid
    started = _start_time(pid)
    return f"{pid}.{started}" if started is not None else str(pid)


def _start_time(pid: int):
    """Process ``pid``'s start time in clock ticks after boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return int(file.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def tag_alive(tag: str) -> bool:
    """Whether the process :func:`driver_tag` named ``tag`` still runs (an unreadable
    tag counts as alive: never clean up what might be someone's)."""
    pid, _, started = tag.partition(".")
    if not pid.isdigit():
        return True
    if not _alive(int(pid)):
        return False
    return not started.isdigit() or _start_time(int(pid)) in (None, int(started))


def exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """In a worker process: exit (at once, even mid-task) once process ``parent``, the
    driver that started it, is gone (its pid changes when it is reparented). A daemon
    thread polls ``os.getppid()``: robust where ``PR_SET_PDEATHSIG`` is not (it fires
    when the *thread* that started the worker ends)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(70)

    if os.getppid() != parent:  # already orphaned while starting
        os._exit(70)
    threading.Thread(target=watch, name="btcore-exit-with-parent", daemon=True).start()


def stale_marked(name: str) -> list:
    """Pids of processes (of this user) whose environment has ``name=<tag>[-...]`` for a
    :func:`driver_tag` whose process is gone: what a killed driver left behind."""
    prefix = f"{name}=".encode()
    found = []
    if not os.path.isdir("/proc"):  # pragma: no cover - not Linux
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                values = [item[len(prefix):] for item in file.read().split(b"\0")
                          if item.startswith(prefix)]
        except OSError:
            continue
        if values and not tag_alive(values[0].decode(errors="replace").partition("-")[0]):
            found.append(int(entry))
    return found


def kill_stale(name: str, timeout: float = 5.0) -> list:
    """SIGKILL what :func:`stale_marked` finds (again until none is left, or
    ``timeout`` seconds); return the pids killed."""
    import signal
    import time
    killed, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for pid in stale_marked(name) if _alive(pid)]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
        time.sleep(0.05)
    return killed


def share_prefix() -> str:
    """The name prefix of this driver's shared-payload directories (its tag inside)."""
    return f"btcore-share-{driver_tag()}-"


def remove_stale_shares(folder: str) -> list:
    """Remove the shared-payload directories in ``folder`` (e.g. /dev/shm) of drivers
    that are gone (:func:`share_prefix`; only this user's); return their paths."""
    import re
    import shutil
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        found = re.fullmatch(r"btcore-share-(\d+(?:\.\d+)?)-.*", entry)
        path = os.path.join(folder, entry)
        if found is None or tag_alive(found.group(1)):
            continue
        try:
            if os.lstat(path).st_uid != os.geteuid() or not os.path.isdir(path):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


#: the reaper: waits for its stdin to close; unless told "close" first (the driver
#: shut down cleanly), SIGKILLs every process whose environment has NAME=VALUE
_REAPER = r"""
import os, signal, sys, time
name, value = sys.argv[1], sys.argv[2]
needle = (name + "=" + value).encode()
told = sys.stdin.buffer.read()
if told.strip() == b"close":
    sys.exit(0)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open("/proc/%s/environ" % entry, "rb") as file:
                    if needle in file.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                pass
    live = []
    for pid in found:
        try:
            with open("/proc/%d/stat" % pid, "rb") as file:
                if file.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            os.kill(pid, signal.SIGKILL)
            live.append(pid)
        except (OSError, IndexError):
            pass
    if not live:
        break
    time.sleep(0.1)
"""


def start_reaper(name: str, value: str):
    """A small process that SIGKILLs every process marked ``name=value`` (see
    :func:`marked_environment`) as soon as this one dies without calling
    :func:`stop_reaper`: it waits for its stdin, a pipe only this process writes, to
    close. None where there is no /proc (the next start cleans up instead)."""
    import subprocess
    import sys
    if not os.path.isdir("/proc"):  # pragma: no cover - not Linux
        return None
    environ = {key: val for key, val in os.environ.items() if key != name}
    try:
        return subprocess.Popen([sys.executable, "-I", "-S", "-c", _REAPER, name, value],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=environ,
                                start_new_session=True)
    except OSError:  # pragma: no cover - no process to spare: the next start cleans up
        return None


def stop_reaper(reaper, kill: bool = False) -> None:
    """Let ``reaper`` exit; with ``kill`` it first SIGKILLs what is still marked."""
    if reaper is None:
        return
    try:
        if not kill:
            reaper.stdin.write(b"close")
        reaper.stdin.close()
    except OSError:
        pass
    try:
        reaper.wait(timeout=15)
    except Exception:  # noqa: BLE001 - a stuck reaper is not worth an error
        reaper.kill()


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
