"""Monte Carlo of one parameter set: 10,000 paths of ``mean_reversion`` on 8,086
daily bars, on 1 and 2 threads, per method; with ``--baseline DIR`` the same
runs of another btcore source tree (e.g. ``git archive <commit>`` unpacked),
alternated with this one's in the same run, so ratios are side by side.

Run: ``python benchmarks/bench_monte_carlo.py [--paths 10000] [--repeats 3]
[--methods bootstrap block gbm] [--baseline /tmp/btcore-before]``. Each figure
is the best of ``--repeats`` after a warm-up run (compilation excluded); each
tree runs in its own subprocess (its own imports and kernel cache).
"""
import argparse
import tempfile

from _trees import ROOT, add_baseline_flag, run_warm, trees

#: the child: runs one (method, threads) measurement and prints seconds as JSON
CHILD = r"""
import json, sys, time
from btcore import MarketData, monte_carlo
from btcore.executors.threads import ThreadsExecutor
method, threads, paths, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = MarketData.synthetic(n_assets=1, start="1993-01-01", end="2023-12-31", seed=9)
params = {"lookback_period": 20, "entry_threshold": 2.0, "exit_threshold": 0.5,
          "stop_loss_z": 3.0}
def run():
    return monte_carlo(params, data=data, n_paths=paths, method=method,
                       executor=ThreadsExecutor(threads), progress=False)
run()  # warm-up: compile, load caches
best = float("inf")
for _ in range(repeats):
    started = time.perf_counter()
    result = run()
    best = min(best, time.perf_counter() - started)
print(json.dumps({"seconds": best, "bars": len(data.index),
                  "prob_loss": float(result.prob_loss)}))
"""

#: the machine's ceiling: the same kernel calls (arguments made beforehand, no
#: Python in between, GIL released) on 1 and 2 plain threads
CONTROL = r"""
import json, threading, time
from btcore import MarketData
from btcore.engine import plan
from btcore.engine.tasks import Task, kernel_args, run_kernel
from btcore.workflows.monte_carlo import plan_monte_carlo
data = MarketData.synthetic(n_assets=1, start="1993-01-01", end="2023-12-31", seed=9)
job = plan_monte_carlo({"lookback_period": 20, "entry_threshold": 2.0, "exit_threshold": 0.5,
                        "stop_loss_z": 3.0}, "mean_reversion", data, n_paths=400).job
plan.compile_kernel(job)
shared = job.payload()
calls = [kernel_args(shared, Task(k, k, 0, 0, 1, 0.0))[0] for k in range(400)]
def run(part):
    for args in part:
        run_kernel(shared["kernel"], args)
def timed(n_threads):
    threads = [threading.Thread(target=run, args=(calls[i::n_threads] * 5,))
               for i in range(n_threads)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started
one = min(timed(1) for _ in range(3))
two = min(timed(2) for _ in range(3))
print(json.dumps({"one": one, "two": two}))
"""


def measure(tree, method, threads, args, cache):
    return run_warm(tree, CHILD, [method, threads, args.paths, args.repeats], cache)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["bootstrap", "block", "gbm"])
    add_baseline_flag(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-mc-") as cache:
        print(f"Monte Carlo, mean_reversion, one set, {args.paths:,} paths, best of "
              f"{args.repeats}, threads executor")
        header = (f"{'tree':<11}{'method':<11}{'1 thread s':>11}{'2 threads s':>12}"
                  f"{'2t/1t':>7}{'paths/s (2t)':>14}")
        print(header)
        print("-" * len(header))
        seconds = {}
        for method in args.methods:
            for name, tree in trees(args.baseline):  # alternated: same machine state
                one = measure(tree, method, 1, args, cache)
                two = measure(tree, method, 2, args, cache)
                seconds[name, method] = two["seconds"]
                print(f"{name:<11}{method:<11}{one['seconds']:>11.3f}{two['seconds']:>12.3f}"
                      f"{one['seconds'] / two['seconds']:>7.2f}"
                      f"{args.paths / two['seconds']:>14,.0f}", flush=True)
        control = run_warm(ROOT, CONTROL, [], cache)
        print(f"(control: the kernel alone, no Python between calls, 2 threads / 1 thread = "
              f"{control['one'] / control['two']:.2f}: what this machine allows now)")
        if args.baseline:
            print("\nbaseline / this tree on 2 threads: " + ", ".join(
                f"{m} {seconds['baseline', m] / seconds['this tree', m]:.2f}x"
                for m in args.methods))
        print(f"({one['bars']:,} bars)")


if __name__ == "__main__":
    main()
