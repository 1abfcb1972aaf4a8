"""The cost model behind ``executor="auto"`` (and :func:`btcore.estimate`).

Wall = start-up + share + (kernel + per-task overhead) / busy CPUs, with the
kernel's param-bars/s measured on this job (:func:`btcore.engine.plan.calibrate`)
and each executor's overheads measured on a 2-core VM (``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from btcore.engine import plan

#: measured one-off and per-task costs: (start-up s, CPU s per task, s per MB shared)
OVERHEADS = {
    "serial": (0.0, 0.00002, 0.0),
    "threads": (0.0, 0.00002, 0.0),
    "joblib": (0.5, 0.0005, 0.002),
    "dask": (0.35, 0.002, 0.005),
    "ray": (2.6, 0.0014, 0.0025),
}
#: starting (or joining and scaling) a multi-node Ray cluster, measured with a
#: 2-node ``ray.cluster_utils.Cluster``; a real cloud cluster takes minutes to boot
CLUSTER_START_S = 3.6


@dataclass(frozen=True)
class Workload:
    """What a run costs the kernel, whatever the workflow: ``n_sets`` parameter sets,
    each run over every block of ``block_bars`` (the bars of one column x window a
    task covers: an asset, a fold, a path, or a whole universe), and the bytes of
    prices shared with the workers once."""

    n_sets: int
    block_bars: np.ndarray
    shared_bytes: int

    @classmethod
    def of_job(cls, job) -> "Workload":
        return cls(int(job.n_sets), np.asarray(job.traded_bars, dtype=np.float64),
                   int(job.close.nbytes))

    @property
    def backtests(self) -> int:
        """Kernel passes, as the run's ``stats["backtests"]`` counts them: sets x
        blocks (anchored walk-forward folds share one pass per set and asset)."""
        return int(self.n_sets * self.block_bars.size)


def predict_seconds(workload: Workload, throughput: float, executor: str, cpus: int,
                    local_cpus: int, connected: bool = False) -> float:
    """Predicted wall seconds of ``workload`` on ``cpus`` CPUs of ``executor``, from
    the kernel's measured param-bars/s on one core and the executor's overheads
    (``connected``: a cluster this process has already joined, no start-up)."""
    bars = workload.block_bars
    kernel_s = float(bars.sum()) * workload.n_sets / throughput
    start_s, task_s, mb_s = OVERHEADS[executor]
    if connected:
        start_s = 0.0  # already up: no start-up to pay
    elif cpus > local_cpus:
        start_s += CLUSTER_START_S
    n_tasks = planned_tasks(workload, throughput, cpus)
    # a task is the smallest unit of work: fewer tasks than CPUs leaves CPUs idle
    busy = max(1, min(cpus, n_tasks))
    return start_s + workload.shared_bytes / 1e6 * mb_s + (kernel_s + n_tasks * task_s) / busy


def planned_tasks(workload: Workload, throughput: float, cpus: int) -> int:
    """Tasks the engine cuts ``workload`` into on ``cpus`` CPUs (batch_size="auto")."""
    bars = workload.block_bars
    sets_per_task = plan.choose_batch_size(workload.n_sets, bars.size, float(bars.mean()),
                                           throughput, cpus)
    return bars.size * math.ceil(workload.n_sets / sets_per_task)


def cluster_cpus() -> dict:
    """CPUs of clusters this process is already connected to: ``{"ray": n}`` when
    Ray is initialised, ``{"dask": n}`` when a Dask client is the default."""
    found = {}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        found["ray"] = int(ray.cluster_resources().get("CPU", 0))
    if "distributed" in sys.modules:
        from distributed import default_client
        try:
            client = default_client()
        except ValueError:  # no client
            client = None
        if client is not None:
            found["dask"] = int(sum(client.nthreads().values()))
    return found


def choose_executor(workload: Workload, throughput: float) -> dict:
    """The executor ``executor="auto"`` runs ``workload`` on, and why.

    Candidates: ``serial`` (one core), ``threads`` (this machine's cores) and any
    Ray or Dask cluster this process is already connected to; the one with the
    least predicted wall time wins (serial on a tie: nothing to start).

    Returns ``{"executor", "reason", "predicted_s": {name: seconds}, "cpus",
    "param_bars_per_s"}`` (the last: ``throughput``, reused by the run).
    """
    from btcore.executors.base import cpu_count
    local = cpu_count()
    candidates = {"serial": 1, "threads": local, **cluster_cpus()}
    predicted = {name: predict_seconds(workload, throughput, name, cpus, local,
                                       connected=name in ("ray", "dask"))
                 for name, cpus in candidates.items() if cpus > 0}
    chosen = min(predicted, key=predicted.get)
    shown = ", ".join(f"{name} x{candidates[name]} {seconds:.3g} s"
                      for name, seconds in predicted.items())
    reason = (f"predicted {shown} from the measured kernel speed "
              f"({throughput / 1e6:.0f} M param-bars/s per core) and each executor's "
              "start-up and per-task overheads")
    return {"executor": chosen, "reason": reason, "predicted_s": predicted,
            "cpus": candidates[chosen], "param_bars_per_s": throughput}


def resolve_auto(executor, job):
    """``(executor, choice)``: ``executor`` unchanged with choice None, or for
    ``"auto"`` the name :func:`choose_executor` picks for ``job`` (an engine Job,
    serial in debug mode) and its ``{"executor", "reason", "predicted_s", "cpus"}``."""
    if job.debug and _is_auto(executor):
        return "serial", {"executor": "serial", "reason": "debug=True runs plain Python in "
                          "this process", "predicted_s": {}, "cpus": 1}
    return resolve_auto_workload(executor, Workload.of_job(job), lambda: plan.calibrate(job))


def resolve_auto_workload(executor, workload: Workload, measure):
    """:func:`resolve_auto` for any workload; ``measure()`` returns the kernel's
    param-bars/s on one core (called only for ``"auto"``)."""
    if not _is_auto(executor):
        return executor, None
    choice = choose_executor(workload, measure())
    return choice["executor"], choice


def _is_auto(executor) -> bool:
    return isinstance(executor, str) and executor == "auto"


__all__ = ["OVERHEADS", "CLUSTER_START_S", "Workload", "predict_seconds", "planned_tasks",
           "cluster_cpus",
           "choose_executor", "resolve_auto", "resolve_auto_workload"]
