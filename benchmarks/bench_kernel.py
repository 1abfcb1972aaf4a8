"""Kernel throughput: param-bars/s on 1 and all threads vs a naive per-row loop,
today's kernel against an earlier commit's side by side, and fresh-process start-up.

Run: ``python benchmarks/bench_kernel.py [--repeats 5] [--naive-runs 3]
[--baseline REV_OR_FOLDER ...] [--rounds 3]``. Every figure comes from this one
run, best of ``--repeats``; the naive loop's per-backtest time is measured on a
few backtests and extrapolated. Each ``--baseline`` (a git revision, default the
last commit before the engine-core rewrite, or a folder holding an importable
``btcore`` with ``executors/`` and ``strategies/`` inside it, e.g. a variant of
today's code) is measured in fresh processes alternating with today's code,
``--rounds`` times; repeat the flag to compare several in the same run.
"""
import argparse
import os
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _peers import naive_backtest  # noqa: E402

from btcore import Grid  # noqa: E402
from btcore.datasets import sp500_sample  # noqa: E402
from btcore.engine import Task, run_task  # noqa: E402
from btcore.workflows.base import prepare  # noqa: E402

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the last commit with the previous kernel (fused loop, strategy-written wrappers)
BASELINE = "825ead6"
#: the worked example of docs/strategies.md, as a user module outside btcore
USER_STRATEGY_DIR = os.path.join(REPOSITORY, "tests")

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}
BIG_GRID = {"lookback_period": list(range(10, 110, 10)),
            "entry_threshold": [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25],
            "exit_threshold": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
            "stop_loss_z": [3.5]}
ASSET, START = "AAPL", "2010-01-01"


def best_time(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def kernel_seconds(grid, threads, repeats, strategy="mean_reversion"):
    """Best time of the batch kernel on the whole grid (one task, one asset)."""
    job = prepare(grid, strategy, sp500_sample(), start=START, end=None,
                  initial_capital=1e6, cost_bps=5.0, periods_per_year=252.0, assets=[ASSET],
                  debug=False, options={}).job
    shared = job.payload()
    run = _runner(shared, job.n_sets, threads)
    run()  # compile / load cache
    seconds = best_time(run, repeats)
    return seconds, int(job.traded_bars[0, 0]), job.n_sets


def _runner(shared, n_sets, threads):
    """All sets as one task (1 thread) or ``threads`` tasks on the threads executor."""
    if threads == 1:
        task = Task(0, 0, 0, 0, n_sets, 0.0)
        return lambda: run_task(shared, task)
    from btcore.executors import ThreadsExecutor
    executor = ThreadsExecutor(threads)
    bounds = np.linspace(0, n_sets, threads + 1).astype(int)
    tasks = [Task(i, 0, 0, int(a), int(b), 0.0) for i, (a, b) in
             enumerate(zip(bounds[:-1], bounds[1:]))]
    return lambda: list(executor.map(run_task, shared, tasks))


# the same measurement in a fresh process, for today's code or an old checkout;
# the old API (shared dict, btcore.plan) is detected by its module names
PROBE = """
import sys, time, numba
from btcore import Grid
from btcore.datasets import sp500_sample
try:
    from btcore.workflows.base import prepare
except ImportError:  # a checkout from before the workflows package
    from btcore.sweep import prepare
grid, threads, repeats = %r, %d, %d
try:
    from btcore.engine import Task, run_task
    job = prepare(Grid(grid), "mean_reversion", sp500_sample(), start=%r, end=None,
                  initial_capital=1e6, cost_bps=5.0, periods_per_year=252.0, assets=[%r],
                  debug=False, options={}).job
    shared, n_sets = job.payload(), job.n_sets
    if threads == 1:
        task = Task(0, 0, 0, 0, n_sets, 0.0)
    else:  # today's threads executor: tasks on a thread pool, the nogil kernel
        from btcore.executors import ThreadsExecutor
        executor, half = ThreadsExecutor(threads), n_sets // 2
        tasks = [Task(0, 0, 0, 0, half, 0.0), Task(1, 0, 0, half, n_sets, 0.0)]
        task = None
        def run_task(shared, _, run_one=run_task):
            return list(executor.map(run_one, shared, tasks))
except ImportError:
    from btcore.plan import Task, run_task
    job = prepare(Grid(grid), "mean_reversion", sp500_sample(), start=%r, end=None,
                  initial_capital=1e6, cost_bps=5.0, periods_per_year=252.0, assets=[%r],
                  debug=False, options={})
    shared = dict(job.shared, parallel=threads > 1)
    n_sets = len(job.keyed.params)
    task = Task(0, 0, 0, n_sets, 0.0)
numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
run_task(shared, task)
# one thread: CPU time (the machine is shared; preemption inflates wall time);
# several threads: wall time
clock = time.process_time if threads == 1 else time.perf_counter
best = float("inf")
for _ in range(repeats):
    started = clock()
    run_task(shared, task)
    best = min(best, clock() - started)
print(best, n_sets)
"""


def probe_seconds(path, grid, threads, repeats, cache_dir):
    import subprocess
    env = dict(os.environ, PYTHONPATH=path, NUMBA_CACHE_DIR=cache_dir,
               BTCORE_KERNEL_DIR=os.path.join(cache_dir, "kernels"))
    code = PROBE % (grid, threads, repeats, START, ASSET, START, ASSET)
    output = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                            capture_output=True, text=True, cwd=path).stdout
    seconds, n_sets = output.split()
    return float(seconds), int(n_sets)


def checkout(revision, folder):
    """``revision``'s btcore as an importable tree in ``folder`` (plug-in folders
    moved inside the package, as the install maps them)."""
    import io
    import subprocess
    import tarfile
    archive = subprocess.run(["git", "-C", REPOSITORY, "archive", revision, "btcore",
                              "executors", "strategies"], check=True, capture_output=True).stdout
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(folder, filter="data")
    for name in ("executors", "strategies"):
        os.rename(os.path.join(folder, name), os.path.join(folder, "btcore", name))


def report_baseline(revisions, repeats, rounds):
    """Each of ``revisions`` (git revisions or folders) and today's kernel in
    alternating fresh processes, best over ``rounds``."""
    import tempfile
    labels = [os.path.basename(os.path.normpath(r)) if os.path.isdir(r) else r
              for r in revisions]
    print(f"\nkernel vs {', '.join(revisions)} (fresh processes alternating, best of {rounds} "
          f"rounds x {repeats} repeats; 1 thread: CPU time, else wall), mean_reversion on "
          f"{ASSET} from {START}; M param-bars/s and today's / theirs")
    width = max(12, *(len(label) + 2 for label in labels))
    header = (f"{'grid':<10}{'combos':>7}{'threads':>8}"
              + "".join(f"{label:>{width}}" for label in labels) + f"{'today':>{width}}"
              + "".join(f"{'/ ' + label:>{width}}" for label in labels))
    print(header)
    print("-" * len(header))
    bars = kernel_seconds(Grid(SEED_GRID), 1, 1)[1]
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as cache:
        trees = []
        for i, revision in enumerate(revisions):
            if os.path.isdir(revision):
                trees.append(os.path.abspath(revision))
            else:
                trees.append(os.path.join(folder, str(i)))
                checkout(revision, trees[-1])
        trees.append(REPOSITORY)
        for name, grid in (("seed 135", SEED_GRID), ("1,000", BIG_GRID)):
            for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
                best = [np.inf] * len(trees)
                for _ in range(rounds):
                    for i, tree in enumerate(trees):
                        seconds, combos = probe_seconds(tree, grid, threads, repeats, cache)
                        best[i] = min(best[i], seconds)
                print(f"{name:<10}{combos:>7}{threads:>8}"
                      + "".join(f"{combos * bars / b / 1e6:>{width}.1f}" for b in best)
                      + "".join(f"{b / best[-1]:>{width}.3f}" for b in best[:-1]))


STARTUP_PROBE = """
import sys, time
started = time.perf_counter()
from btcore import run_sweep
%s
imported = time.perf_counter()
from numba import njit
njit(lambda x: x + 1)(1)  # Numba's one-time start-up, paid by any jitted function
numba_ready = time.perf_counter()
run_sweep(%r, strategy=%r, assets=["%s"], start="%s", progress=False)
done = time.perf_counter()
print(imported - started, numba_ready - imported, done - numba_ready)
"""
USER_IMPORT = "sys.path.insert(0, %r)\nfrom user_strategy.crossover import SPEC" % USER_STRATEGY_DIR
CROSSOVER_GRID = {"fast_window": [5, 10, 20, 40], "slow_window": [50, 100, 150, 200],
                  "band": [0.0, 0.005, 0.01]}


def startup_seconds(cache_dir, user_strategy):
    """(import s, numba start s, first sweep s, whole process s) of a fresh interpreter."""
    import subprocess
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir,
               BTCORE_KERNEL_DIR=os.path.join(cache_dir, "kernels"))
    if user_strategy:
        code = STARTUP_PROBE % (USER_IMPORT, CROSSOVER_GRID, "test_sma_crossover", ASSET, START)
    else:
        code = STARTUP_PROBE % ("", SEED_GRID, "mean_reversion", ASSET, START)
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                            capture_output=True, text=True).stdout
    total = time.perf_counter() - started
    return (*map(float, output.split()), total)


def report_startup():
    import tempfile
    print("\nfresh process, first sweep on one asset: import s, numba start s, "
          "first sweep s, process s")
    for label, user in (("mean_reversion, seed grid", False),
                        ("user sma crossover (docs example), 48 sets", True)):
        with tempfile.TemporaryDirectory() as cache_dir:
            cold = startup_seconds(cache_dir, user)
            warm = min((startup_seconds(cache_dir, user) for _ in range(3)),
                       key=lambda r: r[-1])
        print(f"  {label}")
        print("    cold cache (compiles):  " + "  ".join(f"{v:.2f}" for v in cold))
        print("    warm cache (loads):     " + "  ".join(f"{v:.2f}" for v in warm))


def _user_strategy():
    sys.path.insert(0, USER_STRATEGY_DIR)
    from user_strategy.crossover import SPEC
    return SPEC


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-runs", type=int, default=3)
    parser.add_argument("--no-startup", action="store_true", help="skip the fresh-process timing")
    parser.add_argument("--baseline", action="append",
                        help="git revision, or folder with an importable btcore, to compare "
                             f"the kernel with (repeat for several; default {BASELINE}; "
                             "'' to skip)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    close = sp500_sample()
    series = __import__("pandas").Series(close.close[:, close.symbols.index(ASSET)],
                                         index=close.index)
    started = time.perf_counter()
    for _ in range(args.naive_runs):
        naive_backtest(series, 40, 2.0, 0.5, 3.0, start=START, end=None)
    naive_per_backtest = (time.perf_counter() - started) / args.naive_runs
    all_threads = numba.config.NUMBA_NUM_THREADS
    print(f"btcore kernel, mean_reversion on {ASSET} from {START} "
          f"(best of {args.repeats}); naive .iloc loop {naive_per_backtest:.3f} s/backtest\n")
    header = (f"{'grid':<10}{'combos':>7}{'bars':>6}{'threads':>8}{'seconds':>10}"
              f"{'M param-bars/s':>16}{'vs 1 thread':>12}{'naive loop s':>14}{'speed-up':>11}")
    print(header)
    print("-" * len(header))
    for name, grid in (("seed 135", SEED_GRID), ("1,000", BIG_GRID)):
        single = None
        for threads in sorted({1, all_threads}):
            seconds, bars, combos = kernel_seconds(Grid(grid), threads, args.repeats)
            single = single or seconds
            naive_total = naive_per_backtest * combos
            print(f"{name:<10}{combos:>7}{bars:>6}{threads:>8}{seconds:>10.4f}"
                  f"{combos * bars / seconds / 1e6:>16.1f}{single / seconds:>12.2f}"
                  f"{naive_total:>14.1f}{naive_total / seconds:>11,.0f}x")
    numba.set_num_threads(all_threads)
    seconds, bars, combos = kernel_seconds(Grid(CROSSOVER_GRID), 1, args.repeats,
                                           _user_strategy())
    print(f"\nuser sma crossover (docs example), {combos} sets x {bars} bars, 1 thread: "
          f"{combos * bars / seconds / 1e6:.1f} M param-bars/s")
    baselines = [b for b in (args.baseline or [BASELINE]) if b]
    if baselines:
        report_baseline(baselines, args.repeats, args.rounds)
    if not args.no_startup:
        report_startup()


if __name__ == "__main__":
    main()
