"""Running a benchmark's child script in this source tree and, with ``--baseline``,
in another one (e.g. ``git archive <commit>`` unpacked), each in its own
subprocess with that tree first on ``PYTHONPATH``, so figures of both are
measured side by side in one run."""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def add_baseline_flag(parser) -> None:
    parser.add_argument("--baseline", help="another btcore source tree to compare with")


def trees(baseline) -> list:
    """``[(label, path)]``: the baseline first (when given), then this tree."""
    found = [("this tree", ROOT)]
    if baseline:
        found.insert(0, ("baseline", pathlib.Path(baseline).resolve()))
    return found


def run_child(tree, code: str, argv, *, kernel_dir, numba_dir) -> tuple[dict, str]:
    """``(the JSON the child printed last, its stderr)``; exits naming the tree
    when the child fails."""
    env = dict(os.environ, PYTHONPATH=str(tree), BTCORE_KERNEL_DIR=str(kernel_dir),
               NUMBA_CACHE_DIR=str(numba_dir))
    done = subprocess.run([sys.executable, "-c", code, *map(str, argv)], env=env,
                          capture_output=True, text=True, cwd=tree, check=False)
    if done.returncode:
        sys.exit(f"{tree}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def run_warm(tree, code: str, argv, cache) -> dict:
    """:func:`run_child` with this tree's own Numba cache under ``cache`` (kept for
    its next runs) and ``BTCORE_KERNEL_DIR`` if set, else one under ``cache``."""
    figures, _ = run_child(tree, code, argv,
                           kernel_dir=os.environ.get("BTCORE_KERNEL_DIR",
                                                     os.path.join(cache, "kernels")),
                           numba_dir=os.path.join(cache, pathlib.Path(tree).name + "-numba"))
    return figures
