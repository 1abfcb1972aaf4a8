"""Time around the kernel, this tree against another side by side: a walk-forward
study (1,000 sets x 10 folds on a few assets, ``threads``) and a small serial
sweep (1,000 sets on one asset), each as wall time, the kernel's own time (every
kernel call timed in the process) and their ratio.

Run: ``python benchmarks/bench_overhead_trees.py [--baseline DIR] [--assets 5]
[--repeats 5] [--threads 2]``. ``--baseline`` is another btcore source tree
(e.g. ``git archive <commit>`` unpacked); each tree runs in its own subprocess,
alternated case by case. Figures are the best of ``--repeats`` after a warm-up
run; ``wall / kernel`` divides the wall time by the kernel seconds per worker
(kernel seconds / workers), so 1.0 means nothing but the kernel.
"""
import argparse
import tempfile

from _trees import add_baseline_flag, run_warm, trees

CHILD = r"""
import json, sys, threading, time
import numpy as np
import btcore.engine.tasks as tasks
from btcore import MarketData, run_sweep, walk_forward
from btcore.executors.threads import ThreadsExecutor
case, assets, repeats, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
kernel_seconds, lock = [0.0], threading.Lock()
original = tasks.run_kernel
def timed(*args, **kwargs):
    started = time.perf_counter()
    try:
        return original(*args, **kwargs)
    finally:
        took = time.perf_counter() - started
        with lock:
            kernel_seconds[0] += took
tasks.run_kernel = timed
grid = {"lookback_period": [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
        "entry_threshold": list(np.round(np.linspace(1.0, 3.0, 10), 3)),
        "exit_threshold": list(np.round(np.linspace(0.0, 0.9, 10), 3)), "stop_loss_z": [3.5]}
if case == "walk_forward":
    data = MarketData.synthetic(n_assets=assets, start="2010-01-01", end="2022-12-31", seed=5)
    workers = threads
    def run():
        return walk_forward(grid, data=data, n_splits=10, executor=ThreadsExecutor(threads),
                            progress=False)
else:
    data = MarketData.synthetic(n_assets=1, start="2008-01-01", end="2022-12-31", seed=5)
    workers = 1
    def run():
        return run_sweep(grid, data=data, progress=False)
run()
best = None
for _ in range(repeats):
    kernel_seconds[0] = 0.0
    started = time.perf_counter()
    run()
    wall = time.perf_counter() - started
    if best is None or wall < best[0]:
        best = (wall, kernel_seconds[0])
print(json.dumps({"wall": best[0], "kernel": best[1], "workers": workers,
                  "bars": len(data.index)}))
"""

CASES = ("walk_forward", "sweep")


def measure(tree, case, args, cache):
    return run_warm(tree, CHILD, [case, args.assets, args.repeats, args.threads], cache)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    add_baseline_flag(parser)
    args = parser.parse_args(argv)
    print(f"1,000 sets of mean_reversion; walk_forward: 10 folds x {args.assets} assets on "
          f"{args.threads} threads; sweep: serial, one asset; best of {args.repeats}")
    header = f"{'tree':<11}{'case':<14}{'wall s':>9}{'kernel s':>10}{'wall/kernel':>13}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as cache:
        for case in args.cases:
            for name, tree in trees(args.baseline):
                got = measure(tree, case, args, cache)
                per_worker = got["kernel"] / got["workers"]
                print(f"{name:<11}{case:<14}{got['wall']:>9.3f}{got['kernel']:>10.3f}"
                      f"{got['wall'] / per_worker:>13.2f}", flush=True)


if __name__ == "__main__":
    main()
