"""Ray executor: tasks on a local Ray instance or an existing Ray cluster.

Sharing: ``share`` puts each array in the object store once (``ray.put``) and
every task receives the refs as *top-level* arguments, which Ray resolves to
zero-copy, read-only arrays mapped from shared memory (a ref nested in a dict
would not be resolved). Results stream back as they finish (``ray.wait``).

Network: a local instance listens on the loopback interface only (see
:func:`_loopback_only`) with Ray's own token authentication left as Ray sets it
(on by default for a local ``ray.init`` since Ray 2.59); btcore never turns it off.

Faults: tasks are submitted with ``max_retries=0``; a task whose worker or
node died is resubmitted by the base loop (``Executor.map``), so each loss is
counted (``retries``, ``lost_workers``). A task's own error reaches the caller
as the exception it raised (a ``ValueError`` stays a ``ValueError``, with its
message and without Ray's remote traceback), never retried.
"""
from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import logging
import os
import uuid
from collections import Counter
from dataclasses import dataclass

import numpy as np

from btcore.executors import _worker
from btcore.executors.base import (Executor, ExecutorUnavailableError, TaskLost,
                                   check_worker_count, cpu_count)

_INSTALL = "the ray executor needs Ray: pip install 'btcore[ray]'"
_ADDRESS_HINT = ("start one with `ray start --head`, or pass address=None to start a local "
                 "Ray instance")
#: environment variable marking the processes a local ``ray.init`` starts (its value is
#: unique per start), so that an interrupted start-up can find and stop all of them
_MARK = "BTCORE_RAY_START"
#: the node address of a local instance: every server of the node listens there only
_LOOPBACK = "127.0.0.1"


@dataclass
class RayShare:
    """Handle returned by :meth:`RayExecutor.share`: object refs of the payload."""

    names: tuple    # array names, in the order of ``refs[1:]``
    refs: list      # [ref of the dict of small objects, ref of each array...]


class RayExecutor(Executor):
    """Tasks on Ray: a local instance started on demand, or a cluster joined by address.

    Parameters
    ----------
    address : {None, "auto", "host:port", "ray://host:port"}
        None starts a new local Ray instance (quietly: no dashboard, no worker
        logs) that listens on 127.0.0.1 only, and shuts it down on
        ``close()``, unless the ``RAY_ADDRESS`` environment variable names a
        cluster (as on a Ray head node or in a Ray job): then that cluster is
        joined. An address joins an existing
        cluster (``"auto"``: the one found by ``RAY_ADDRESS`` or
        ``ray start``); ``close()`` disconnects and leaves it running. If this
        process is already connected to Ray, that connection is used and left
        open (an address naming another cluster is a ValueError).
    num_cpus : int, optional
        CPUs of the local instance (default: all this process may use). With
        an address: at most this many tasks run at once.
    recycle_after : int, optional
        Replace a worker process after it has run this many tasks (Ray's
        ``max_calls``; a new worker costs ~0.5 s, so use hundreds).
    max_retries : int, default 3
        Times one task is resubmitted after its worker or node died, before
        :class:`~executors.base.BrokenExecutorError`.
    object_store_memory : int, optional
        Bytes of the local object store (Ray's default is 30 % of RAM).
    connect_timeout : float, default 5
        Seconds to wait for a cluster address to accept a connection.
    runtime_env : dict, optional
        Ray's runtime environment for the workers, e.g.
        ``{"py_modules": [my_strategies]}`` or ``{"working_dir": "."}``, so a
        remote cluster can import a strategy module (local workers find it on
        their own).
    init_kwargs : dict, optional
        More keyword arguments for ``ray.init``.

    Notes
    -----
    A local instance is a single-machine Ray: its node address is 127.0.0.1,
    so the GCS, the raylet (with its object manager), the workers and the
    raylet's agents listen on the loopback interface only, and no other
    machine can join it or submit work to it. Ray's token authentication stays
    as Ray configures it (a local ``ray.init`` enables it by default and keeps
    the token in ``~/.ray/auth_token``); btcore never disables it. If this
    version of Ray puts the node on another address, ``start()`` stops the
    instance and raises a ``RuntimeError`` rather than run with open ports. To
    choose the node address yourself, pass ``init_kwargs={"_node_ip_address":
    ...}``. ``close()`` puts back the environment variables that importing
    Ray and ``ray.init`` set in this process (Ray's auth mode, usage stats
    and client mode, ``PYTHONBREAKPOINT``), unless they were changed again
    in the meantime.

    A driver killed before ``close()`` (SIGKILL, an out-of-memory kill) leaves no
    local instance behind: Ray's GCS and raylet die with it, and the raylet's
    agents, which Ray lets linger for a minute or more, are killed at once by a
    small reaper process this executor starts with the instance (it waits on a
    pipe from this process). As a fallback, a local start kills the processes of
    instances whose driver is gone (they carry the driver's pid in a mark).

    An interrupted local start-up (Ctrl-C in ``ray.init``) or a failed one
    disconnects and stops every process that start had launched, including
    the raylet's agents that ``ray.shutdown`` does not know of yet (they are
    found by an environment variable only they inherit), then re-raises.

    Attributes
    ----------
    tasks_per_node : collections.Counter
        Node id -> tasks completed there (over this executor's lifetime).

    Examples
    --------
    >>> with RayExecutor(address="auto") as ex:  # doctest: +SKIP
    ...     res = run_sweep(grid, executor=ex)
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, *,
                 recycle_after: int | None = None, max_retries: int = 3,
                 object_store_memory: int | None = None, connect_timeout: float = 5.0,
                 runtime_env: dict | None = None, init_kwargs: dict | None = None):
        super().__init__()
        if importlib.util.find_spec("ray") is None:
            raise ExecutorUnavailableError(_INSTALL)
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be None or a str, got {type(address).__name__}")
        if address is None and os.environ.get("RAY_ADDRESS"):
            address = os.environ["RAY_ADDRESS"]  # what ray.init would join: say so up front
        self.address = address
        self._num_cpus = None if num_cpus is None else check_worker_count("num_cpus", num_cpus)
        self.recycle_after, self.max_retries = _worker.check_fault_options(recycle_after,
                                                                           max_retries)
        self._object_store_memory = object_store_memory
        self._connect_timeout = connect_timeout
        self._init_kwargs = dict(init_kwargs or {})
        if runtime_env is not None:
            if not isinstance(runtime_env, dict):
                raise TypeError(f"runtime_env must be a dict, got {type(runtime_env).__name__}")
            self._init_kwargs["runtime_env"] = runtime_env
        self._owns_ray = False
        self._reaper = None  # see _worker.start_reaper
        self._slots = None
        self._environ_changes = {}  # name -> (value before ray.init, value it set)
        self.tasks_per_node = Counter()

    @property
    def n_workers(self) -> int:
        if self._slots is None:
            if self.address is None and self._num_cpus is not None:
                return self._num_cpus
            self.start()  # a cluster's size is only known once connected
        return self._slots

    def _start(self) -> None:
        # importing Ray sets RAY_CLIENT_MODE, ray.init more: close() puts them back
        environ_before = dict(os.environ)
        try:
            import ray
        except ImportError as err:
            raise ExecutorUnavailableError(_INSTALL) from err
        if self.address not in (None, "auto"):
            _worker.check_reachable(self.address, self._connect_timeout, _ADDRESS_HINT)
        if ray.is_initialized():
            connected = ray.get_runtime_context().gcs_address
            if self.address not in (None, "auto", connected):
                raise ValueError(f"this process is already connected to Ray at {connected!r}, "
                                 f"not {self.address!r}; call ray.shutdown() first, or use "
                                 "address=None to share that connection")
        else:
            options = {"include_dashboard": False, "log_to_driver": False,
                       "logging_level": logging.ERROR}
            # a local node on loopback, unless the caller chose its address
            loopback = (self.address is None
                        and "_node_ip_address" not in self._init_kwargs)
            if self.address is None:
                options.update(num_cpus=self._num_cpus or cpu_count(),
                               object_store_memory=self._object_store_memory)
                if "address" not in self._init_kwargs:
                    # a new instance, never one a `ray start` on this machine left up
                    options["address"] = "local"
                if loopback:
                    options["_node_ip_address"] = _LOOPBACK
            else:
                options["address"] = self.address
            # every process this ray.init starts (GCS, raylet, its agents, workers)
            # inherits the mark, so an interrupted start-up can find them all; it
            # names this process, so a later start can find what a killed driver left
            self._mark = f"{_worker.driver_tag()}-{uuid.uuid4().hex}"
            if self.address is None:
                _worker.kill_stale(_MARK)  # the local instances of drivers that are gone
                # kills what this start launches as soon as this process dies unclosed
                self._reaper = _worker.start_reaper(_MARK, self._mark)
            try:
                try:
                    # SPT_NOENV: Ray's setproctitle must not overwrite the environment
                    # area (the raylet's agents and workers rename themselves), or
                    # /proc/<pid>/environ loses the mark
                    with _worker.marked_environment(_MARK, self._mark), \
                            _worker.marked_environment("SPT_NOENV",
                                                       os.environ.get("SPT_NOENV") or "1"), \
                            (_loopback_only() if loopback else contextlib.nullcontext()):
                        ray.init(**options, **self._init_kwargs)
                finally:  # what Ray set in os.environ (its auth mode "token", ...)
                    self._environ_changes = _environ_changes(environ_before)
                if loopback:
                    _check_loopback(ray)
            except BaseException:  # Ctrl-C, or a failed start: leave no processes behind
                self._abandon_start(ray)
                raise
            # we connected, so we disconnect on close (a joined cluster keeps running)
            self._owns_ray = True
        try:
            cluster_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            self._slots = min(self._num_cpus or cluster_cpus, cluster_cpus)
            self._remote = ray.remote(num_cpus=1, max_retries=0,
                                      max_calls=self.recycle_after or 0)(_worker.ray_task)
        except BaseException:
            if self._owns_ray:
                self._abandon_start(ray)
            raise

    def _abandon_start(self, ray) -> None:
        """Undo an interrupted or failed ``_start``: disconnect, and kill what the
        local instance had started. ``ray.init`` interrupted half-way leaves
        processes ``ray.shutdown`` does not know of (the raylet's dashboard and
        runtime-env agents, reparented to PID 1 once the raylet dies)."""
        self._owns_ray = False
        try:
            ray.shutdown()
        except BaseException:  # noqa: BLE001 - a second Ctrl-C: still kill below
            pass
        finally:
            if self.address is None:
                _worker.kill_marked(_MARK, self._mark)
            self._stop_reaper()
            self._restore_environ()

    def _close(self) -> None:
        if self._owns_ray:
            import ray
            try:
                ray.shutdown()
            finally:
                self._stop_reaper()
                self._restore_environ()

    def _stop_reaper(self) -> None:
        reaper, self._reaper = self._reaper, None
        _worker.stop_reaper(reaper)

    def _restore_environ(self) -> None:
        """Put back what ``ray.init`` changed in ``os.environ`` (once Ray is shut down),
        except a variable changed again since: that value is someone else's."""
        changes, self._environ_changes = self._environ_changes, {}
        for name, (before, after) in changes.items():
            if os.environ.get(name) != after:
                continue
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before

    def share(self, payload) -> RayShare:
        import ray
        self.start()
        arrays = {k: v for k, v in payload.items() if isinstance(v, np.ndarray)}
        objects = {k: v for k, v in payload.items() if k not in arrays}
        return RayShare(tuple(arrays), [ray.put(objects)] + [ray.put(v) for v in arrays.values()])

    def unshare(self, handle) -> None:
        if isinstance(handle, RayShare):
            handle.refs.clear()  # the driver owns the objects: dropping the refs frees them

    # ------------------------------------------------------ hooks of Executor.map
    def _check_handle(self, handle) -> None:
        if not isinstance(handle, RayShare) or not handle.refs:
            raise TypeError("map() takes the handle returned by share() (before unshare())")

    def _in_flight_limit(self) -> int:
        # tasks queued beyond the slots hide Ray's ~1 ms round trip per task;
        # with an address and num_cpus, num_cpus is a hard cap on tasks in flight
        if self.address and self._num_cpus:
            return self._slots
        return max(2 * self._slots, self._slots + 8)

    def _begin_map(self, run) -> None:
        from ray.exceptions import (LocalRayletDiedError, NodeDiedError, ObjectLostError,
                                    OutOfMemoryError, RayTaskError, WorkerCrashedError)
        run.lost = (WorkerCrashedError, NodeDiedError, ObjectLostError, OutOfMemoryError,
                    LocalRayletDiedError)
        run.task_error = RayTaskError

    def _submit(self, run, task, attempt):
        return self._remote.remote(run.fn, task, run.handle.names, *run.handle.refs)

    def _next_done(self, run, pending):
        import ray
        [ref], _ = ray.wait(list(pending), num_returns=1)
        return ref

    def _outcome(self, run, ref):
        import ray
        try:
            node, result = ray.get(ref)
        except run.lost as err:
            raise TaskLost(f"its Ray worker or node died: {_first_line(err)}") from err
        except run.task_error as err:
            cause = getattr(err, "cause", None)
            if not isinstance(cause, BaseException):  # pragma: no cover - no cause kept
                raise
            # the user's exception itself: its type and message, no remote traceback
            raise cause from None
        self.tasks_per_node[node] += 1
        return result

    def _cancel(self, run, refs) -> None:
        import ray
        for ref in refs:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - Ray already shut down: nothing to cancel
                pass

    def __repr__(self) -> str:
        where = "local" if self.address is None else repr(self.address)
        return f"RayExecutor({where}, workers={self._slots or self._num_cpus or '?'})"


@contextlib.contextmanager
def _loopback_only():
    """Ray's single-machine mode for the duration of a local ``ray.init``.

    On Linux, Ray replaces a loopback node address (``_node_ip_address=
    "127.0.0.1"``) by the machine's network address, and the GCS, raylet,
    object manager, workers and agents then listen on every interface. In its
    single-machine mode (``ray_constants.ENABLE_RAY_CLUSTER`` false, Ray's
    default on macOS and Windows) the loopback address is kept, and with a
    loopback node address every one of those servers binds to loopback only.
    The flag is read when ``ray.init`` resolves the node address, so it is set
    for the call and put back after; :func:`_check_loopback` verifies the result.
    """
    try:
        from ray._private import ray_constants
    except ImportError:  # pragma: no cover - another layout: _check_loopback decides
        ray_constants = None
    if ray_constants is None or not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        yield  # pragma: no cover
        return
    previous = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


def _check_loopback(ray) -> None:
    """RuntimeError unless the local instance's node address is a loopback one."""
    node_ip = ray.util.get_node_ip_address()
    try:
        loopback = ipaddress.ip_address(node_ip).is_loopback
    except ValueError:
        loopback = node_ip == "localhost"
    if not loopback:
        raise RuntimeError(
            f"the local Ray instance came up on {node_ip!r}, not on the loopback "
            f"interface (Ray {ray.__version__}), so its ports would be reachable from "
            "the network; it was stopped. Pass init_kwargs={'_node_ip_address': ...} to "
            "choose the node address deliberately, or join a cluster you secured with "
            "address=...")


def _environ_changes(before: dict) -> dict:
    """name -> (value in ``before`` or None, value now or None) of every variable that differs."""
    names = set(before) | set(os.environ)
    return {name: (before.get(name), os.environ.get(name)) for name in names
            if before.get(name) != os.environ.get(name)}


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = str(err).strip().split("\n")[0]
    return f"{type(err).__name__}: {text[:limit]}"
