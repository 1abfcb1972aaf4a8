"""Cold start: the first sweep in a fresh process on an empty kernel cache
(``BTCORE_KERNEL_DIR`` and ``NUMBA_CACHE_DIR`` pointed at a new temporary
directory), then the same sweep in a second fresh process on the now-filled
cache, for a single-asset sweep, a portfolio sweep and a cross-sectional sweep.

Run: ``python benchmarks/bench_cold_start.py [--repeats 2] [--baseline DIR]``.
``--baseline`` runs the same cases from another btcore source tree (e.g. ``git
archive <commit>`` unpacked) in the same run, alternated with this one. Each
figure is the best of ``--repeats`` (each repeat a new empty cache); the
``import`` column is ``import btcore`` alone, the others the first call's
seconds after it. The compile notice lines the run printed on stderr are counted.
"""
import argparse
import pathlib
import tempfile

from _trees import add_baseline_flag, run_child, trees

CHILD = r"""
import json, sys, time
started = time.perf_counter()
import btcore
imported = time.perf_counter()
case = sys.argv[1]
grid = {"lookback_period": [20, 40], "entry_threshold": [1.5, 2.0]}
if case == "single":
    btcore.run_sweep(grid, assets=["AAPL"], progress=False)
elif case == "portfolio":
    btcore.run_portfolio_sweep(grid, progress=False)
else:
    btcore.run_cross_sectional_sweep({"lookback_period": [20, 60], "top_k": [2, 4]},
                                     progress=False)
print(json.dumps({"import": imported - started, "first": time.perf_counter() - imported}))
"""

CASES = ("single", "portfolio", "cross_sectional")


def run_case(tree, case, cache):
    figures, stderr = run_child(tree, CHILD, [case], kernel_dir=cache / "kernels",
                                numba_dir=cache / "numba")
    figures["notices"] = stderr.count("(first use; cached afterwards)")
    return figures


def best_cold_and_warm(tree, case, repeats):
    cold = warm = None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-cold-") as folder:
            cache = pathlib.Path(folder)
            first = run_case(tree, case, cache)
            second = run_case(tree, case, cache)
        if cold is None or first["first"] < cold["first"]:
            cold = first
        if warm is None or second["first"] < warm["first"]:
            warm = second
    return cold, warm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    add_baseline_flag(parser)
    args = parser.parse_args(argv)
    print(f"cold start: first sweep on an empty kernel cache, best of {args.repeats}")
    header = (f"{'tree':<11}{'case':<17}{'import s':>9}{'cold s':>9}{'warm s':>9}"
              f"{'notices':>9}")
    print(header)
    print("-" * len(header))
    for case in args.cases:
        for name, tree in trees(args.baseline):
            cold, warm = best_cold_and_warm(tree, case, args.repeats)
            print(f"{name:<11}{case:<17}{cold['import']:>9.2f}{cold['first']:>9.2f}"
                  f"{warm['first']:>9.2f}{cold['notices']:>9}", flush=True)


if __name__ == "__main__":
    main()
