"""btcore vs vectorbt, backtesting.py and a naive pandas loop on the same sweep.

Usage::

    pip install -e '.[bench]'            # the peers: vectorbt, backtesting
    python benchmarks/compare_peers.py   # ~3 min on 2 cores (--quick: ~1 min)
    python benchmarks/compare_peers.py --quick --repeats 3

Workloads (docs/semantics.md mean_reversion, 1e6 capital, 5 bps, fills at the close):
AAPL closes 2010-01-01 .. 2022-12-28 (3,270 traded bars, indicators warmed up
on the earlier history) with the seed's 135-combo grid and a 1,000-combo grid,
plus the 135-combo grid over the 20-stock sample universe.

Every section runs in a fresh subprocess, one after another, so peak memory
(VmHWM - VmRSS before the call, Linux) and first-call times are its own; all
sections share one empty Numba cache directory created for this run, so the
first section of each library pays a cold compile and later ones load the
on-disk cache. Timings are wall clock; "warm" is the best of ``--repeats``
calls after the first. Ratios all come from this one run.

btcore is timed end to end through ``run_sweep`` (validation, indicators,
kernel, result table; one batch per asset, no progress bar). vectorbt's time
includes building its z-score and signal frames, ``Portfolio.from_signals``
and the same metrics for every column. backtesting.py and the naive loop are
timed per backtest on a subset and extrapolated to the full workloads.

The peers size and fill differently from btcore; the differences table
measures how far their results are from btcore's for the same parameters,
and the diagnostics isolate why (see the notes printed at the end).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _peers  # noqa: E402
from _peers import COMPARED, PARAMS  # noqa: E402

ASSET, START, END = "AAPL", "2010-01-01", "2022-12-28"
SETTINGS = dict(initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=252)
GRID_135 = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
            "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}
GRID_1000 = {"lookback_period": [20, 40, 60, 80, 100, 120, 140, 160, 180, 200],
             "entry_threshold": [1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4, 2.6, 2.8],
             "exit_threshold": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
             "stop_loss_z": [3.0]}
GRID_8 = {"lookback_period": [20, 100], "entry_threshold": [1.5, 2.5],
          "exit_threshold": [0.25, 0.75], "stop_loss_z": [3.0]}
PEERS = ("vectorbt", "backtesting")
INSTALL_HINT = "pip install -e '.[bench]'   (from the repository root)"


# ------------------------------------------------------------------ workloads
def workloads(quick: bool) -> dict:
    """name -> (grid, assets). "sample" is where backtesting.py and the loop are timed."""
    from btcore.datasets import sp500_sample
    symbols = list(sp500_sample().symbols)
    return {
        "1000": (GRID_1000, [ASSET]),
        "135": (GRID_135, [ASSET]),
        "universe": (GRID_135, symbols[:5] if quick else symbols),
        "sample": (GRID_8 if quick else GRID_135, [ASSET]),
    }


def sections(quick: bool) -> list[dict]:
    """Run order; the first section of each numba library is its cold compile."""
    plan = [("btcore", executor, w) for w in ("1000", "135", "universe")
            for executor in ("serial", "threads")]
    plan += [("vectorbt", "aligned", w) for w in ("1000", "135", "universe")]
    plan += [("vectorbt", "defaults", "135"), ("backtesting", "run", "sample"),
             ("backtesting", "optimize", "sample"), ("naive", "loop", "sample"),
             ("diagnostics", "-", "sample")]
    return [{"library": lib, "variant": variant, "workload": w, "quick": quick}
            for lib, variant, w in plan]


# ------------------------------------------------------- memory and timing (worker)
def _status_kb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def _reset_peak() -> float:
    """Reset VmHWM to the current RSS (Linux >= 4.0) and return that RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    return _status_kb("VmRSS") / 1024


def _peak_since(baseline_mb: float) -> float:
    return _status_kb("VmHWM") / 1024 - baseline_mb


def _release_free_memory() -> None:
    """Collect garbage and hand free heap pages back to the OS (glibc), so the next
    call's peak RSS growth is its own working set, not a reuse of freed pages."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(fn, repeats: int) -> tuple[object, dict]:
    """First call, then ``repeats`` warm calls (best and median kept); the peak RSS
    growth of the first call and the largest of the warm calls; CPU / wall of the
    best warm call (< 1 means the process waited for a CPU)."""
    baseline = _reset_peak()
    started = time.perf_counter()
    result = fn()
    first = time.perf_counter() - started
    first_peak = _peak_since(baseline)
    times, cpu, peak = [], [], 0.0
    for _ in range(repeats):
        result = None
        _release_free_memory()
        baseline = _reset_peak()
        started, started_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - started)
        cpu.append((time.process_time() - started_cpu) / times[-1])
        peak = max(peak, _peak_since(baseline))
    best = int(np.argmin(times))
    return result, {"first_s": first, "warm_s": times[best], "median_s": float(np.median(times)),
                    "warm_all_s": times, "cpu_per_wall": cpu[best],
                    "first_peak_mb": first_peak, "peak_mb": peak}


def _records(frame: pd.DataFrame) -> dict:
    return {c: frame[c].tolist() for c in frame.columns}


# --------------------------------------------------------------------- workers
def worker_btcore(section, repeats):
    import btcore
    from btcore.datasets import sp500_sample
    grid, assets = workloads(section["quick"])[section["workload"]]
    market = sp500_sample()
    n_combos = len(_peers.combos_frame(grid))

    def run():
        return btcore.run_sweep(grid, data=market, assets=assets, executor=section["variant"],
                                start=START, end=END, batch_size=n_combos, progress=False,
                                **SETTINGS)

    result, timing = measure(run, repeats)
    return dict(timing, backtests=len(result.table),
                bars=result.stats["param_bars"] // len(result.table),
                workers=result.stats["workers"],
                kernel_param_bars_per_s=result.stats["param_bars_per_s"],
                results=_records(result.table[[*PARAMS, "asset", *COMPARED]]))


def _closes():
    from btcore.datasets import sp500_sample
    market = sp500_sample()
    return pd.DataFrame(np.asarray(market.close), index=market.index, columns=market.symbols)


def worker_vectorbt(section, repeats):
    grid, assets = workloads(section["quick"])[section["workload"]]
    closes, combos = _closes(), _peers.combos_frame(grid)

    def run():
        return _peers.vectorbt_sweep(closes, combos, assets, START, END,
                                     conventions=section["variant"], **SETTINGS)

    result, timing = measure(run, repeats)
    bars = len(closes.loc[START:END])
    return dict(timing, backtests=len(result), bars=bars, workers=1,
                results=_records(result[[*PARAMS, "asset", *COMPARED]]))


def per_backtest(run_one, combos: list[dict]) -> dict:
    """One first call, then ``run_one`` once per combo: mean seconds per backtest,
    peak RSS growth of the loop and the compared metrics of every combo."""
    started = time.perf_counter()
    run_one(combos[0])
    first = time.perf_counter() - started
    _release_free_memory()
    baseline = _reset_peak()
    rows, times = [], []
    started_cpu = time.process_time()
    for combo in combos:
        started = time.perf_counter()
        rows.append({**combo, "asset": ASSET, **run_one(combo)})
        times.append(time.perf_counter() - started)
    total = float(np.sum(times))
    return dict(first_s=first, warm_s=total, per_backtest_s=total / len(combos),
                median_per_backtest_s=float(np.median(times)),
                cpu_per_wall=(time.process_time() - started_cpu) / total,
                peak_mb=_peak_since(baseline), first_peak_mb=float("nan"), workers=1,
                backtests=len(combos), results=_records(pd.DataFrame(rows)))


def worker_backtesting(section, repeats):
    import backtesting.backtesting as bt_module
    warnings.simplefilter("ignore")  # "trades remain open at the end", once per run
    bt_module._tqdm = lambda seq, **_: seq  # no progress bars in a captured pipe
    grid, _ = workloads(section["quick"])["sample"]
    combos = _peers.combos_frame(grid)
    series = _closes()[ASSET]
    backtest, first_bar = _peers.backtesting_setup(
        series, START, END, int(combos["lookback_period"].max()),
        initial_capital=SETTINGS["initial_capital"], cost_bps=SETTINGS["cost_bps"])
    bars = len(series.loc[START:END])
    params = combos.to_dict("records")  # plain Python ints and floats
    if section["variant"] == "optimize":  # backtesting's own Pool: one process per CPU
        import resource
        space = {name: list(values) for name, values in grid.items()}

        def run():
            return backtest.optimize(**space, first_bar=[first_bar], return_heatmap=True)

        _, timing = measure(run, max(1, repeats // 3))
        children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        runs = len(params) + 1  # the grid, then one re-run of the best
        return dict(timing, backtests=len(params), bars=bars,
                    per_backtest_s=timing["warm_s"] / runs,
                    median_per_backtest_s=timing["median_s"] / runs, workers=os.cpu_count(),
                    child_peak_rss_mb=children_mb)

    def run_one(combo):
        stats = backtest.run(**combo, first_bar=first_bar)
        return _peers.backtesting_metrics(stats, first_bar, SETTINGS["initial_capital"],
                                          SETTINGS["periods_per_year"])

    return dict(per_backtest(run_one, params), bars=bars)


def worker_naive(section, repeats):
    grid, _ = workloads(section["quick"])["sample"]
    combos = _peers.combos_frame(grid).to_dict("records")
    series = _closes()[ASSET]
    bars = len(series.loc[START:END])
    out = {}
    for quirks in (False, True):
        def run_one(combo):
            return _peers.naive_backtest(series, **combo, start=START, end=END, **SETTINGS,
                                         seed_quirks=quirks)

        out[quirks] = dict(per_backtest(run_one, combos), bars=bars)
    return dict(out[False], seed=out[True])


def _replay_and_ruin(market, closes, universe) -> dict:
    """btcore.backtest for every 135-grid combo x asset: vectorbt replays btcore's
    position changes (accounting and metrics only), entries with |z| beyond the
    stop are counted, and backtests whose equity reaches <= 0 are set apart."""
    import btcore
    from btcore.metrics import METRIC_NAMES
    combos = _peers.combos_frame(GRID_135).to_dict("records")
    replay = {"columns": 0, "exact": 0, "max_rel_diff_solvent": 0.0, "ruined": 0,
              "ruined_positive_sharpe": 0, "max_rel_diff_ruined": 0.0,
              "metric_max_abs_diff": {name: 0.0 for name in METRIC_NAMES}}
    entries = beyond_stop = 0
    for asset in universe:
        shares, equity, solvent, metrics = [], [], [], []
        for combo in combos:
            result = btcore.backtest(combo, data=market, asset=asset, start=START, end=END,
                                     **SETTINGS)
            held = result.positions.to_numpy()
            before = np.concatenate(([0.0], held[:-1]))
            z = _peers.zscore(closes[asset], combo["lookback_period"]).loc[START:END].to_numpy()
            opened = (held != 0) & (before == 0)
            entries += int(opened.sum())
            beyond_stop += int((opened & (np.abs(z) > combo["stop_loss_z"])).sum())
            shares.append(held)
            equity.append(result.equity.to_numpy())
            solvent.append(bool((equity[-1] > 0).all()))
            metrics.append(result.metrics)
            replay["ruined_positive_sharpe"] += int(not solvent[-1]
                                                    and result.metrics["sharpe_ratio"] > 0)
        shares, equity, solvent = np.column_stack(shares), np.column_stack(equity), np.array(solvent)
        vbt_equity, vbt_metrics = _peers.vectorbt_replay(
            closes[asset].loc[START:END], shares, initial_capital=SETTINGS["initial_capital"],
            cost_bps=SETTINGS["cost_bps"], periods_per_year=SETTINGS["periods_per_year"])
        rel = np.max(np.abs(vbt_equity / equity - 1.0), axis=0)
        replay["columns"] += len(rel)
        replay["exact"] += int((rel == 0).sum())
        replay["ruined"] += int((~solvent).sum())
        if (~solvent).any():
            replay["max_rel_diff_ruined"] = max(replay["max_rel_diff_ruined"],
                                                float(rel[~solvent].max()))
        if not solvent.any():
            continue
        replay["max_rel_diff_solvent"] = max(replay["max_rel_diff_solvent"],
                                             float(rel[solvent].max()))
        ours = pd.DataFrame(metrics)[list(METRIC_NAMES)][solvent].to_numpy(dtype=np.float64)
        theirs = vbt_metrics[list(METRIC_NAMES)][solvent].to_numpy(dtype=np.float64)
        both = np.isfinite(ours) & np.isfinite(theirs)
        agree = both | (~np.isfinite(ours) & ~np.isfinite(theirs))
        for m, name in enumerate(METRIC_NAMES):
            diff = np.abs(ours[:, m] - theirs[:, m])[both[:, m]]
            worst = float(diff.max()) if diff.size else 0.0
            if not agree[:, m].all():
                worst = float("inf")  # finite on one side only
            replay["metric_max_abs_diff"][name] = max(replay["metric_max_abs_diff"][name], worst)
    return {"replay": replay, "assets": list(universe), "entries": entries,
            "entries_beyond_stop": beyond_stop}


def _zscore_accuracy(closes, universe) -> dict:
    """Max |z| difference of btcore's rolling kernel vs two-pass numpy and pandas."""
    from btcore.indicators import rolling_zscore_nb
    worst_two_pass = worst_pandas = 0.0
    for asset in universe:
        close = closes[asset].to_numpy()
        for lookback in sorted(set(GRID_135["lookback_period"])
                               | set(GRID_1000["lookback_period"])):
            fast = np.empty_like(close)
            rolling_zscore_nb(close, lookback, fast)
            windows = np.lib.stride_tricks.sliding_window_view(close[:-1], lookback)
            two_pass = (close[lookback:] - windows.mean(axis=1)) / windows.std(axis=1, ddof=1)
            pandas_z = _peers.zscore(closes[asset], lookback).to_numpy()[lookback:]
            worst_two_pass = max(worst_two_pass, float(np.max(np.abs(fast[lookback:] - two_pass))))
            worst_pandas = max(worst_pandas, float(np.max(np.abs(fast[lookback:] - pandas_z))))
    return {"z_vs_two_pass": worst_two_pass, "z_vs_pandas": worst_pandas}


def worker_diagnostics(section, repeats):
    """Untimed checks: accounting replay, ruin, entries beyond the stop, z accuracy,
    executors; plus btcore.backtest() latency and the long-only sweep for the seed."""
    import btcore
    from btcore.datasets import sp500_sample
    market, closes = sp500_sample(), _closes()
    universe = workloads(section["quick"])["universe"][1]
    out = {}
    combo = _peers.combos_frame(GRID_135).to_dict("records")[0]
    times = []
    for _ in range(max(repeats, 3) + 1):
        started = time.perf_counter()
        btcore.backtest(combo, data=market, asset=ASSET, start=START, end=END, **SETTINGS)
        times.append(time.perf_counter() - started)
    out["backtest_call"] = {"first_s": times[0], "warm_s": min(times[1:])}
    grid, _ = workloads(section["quick"])["sample"]
    long_only = btcore.run_sweep(grid, data=market, assets=[ASSET], start=START, end=END,
                                 progress=False, allow_short=False, **SETTINGS)
    out["long_only"] = _records(long_only.table[[*PARAMS, "asset", *COMPARED]])
    out.update(_replay_and_ruin(market, closes, universe))
    out.update(_zscore_accuracy(closes, universe))
    tables = [btcore.run_sweep(GRID_1000, data=market, assets=[ASSET], start=START, end=END,
                               executor=executor, progress=False, **SETTINGS).table
              for executor in ("serial", "threads")]
    out["threads_bit_identical"] = bool(tables[0].equals(tables[1]))
    return out


WORKERS = {"btcore": worker_btcore, "vectorbt": worker_vectorbt,
           "backtesting": worker_backtesting, "naive": worker_naive,
           "diagnostics": worker_diagnostics}


# ------------------------------------------------------------------ orchestration
def _missing_peers() -> list[str]:
    import importlib.util
    return [name for name in PEERS if importlib.util.find_spec(name) is None]


def _cpu_jiffies() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [float(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def run_sections(plan, repeats) -> tuple[dict, float]:
    """Run every section in its own subprocess; also returns the CPU share other
    processes used meanwhile (0..1 of all CPUs)."""
    import resource
    busy0, total0 = _cpu_jiffies()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cache_dir = tempfile.mkdtemp(prefix="btcore-bench-numba-")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONWARNINGS="ignore")
    results = {}
    try:
        for section in plan:
            key = (section["library"], section["variant"], section["workload"])
            print(f"  running {' / '.join(key)} ...", file=sys.stderr, flush=True)
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
                path = handle.name
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(section), "--out", path,
                 "--repeats", str(repeats)], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
                print(f"  FAILED {key}:\n{tail}", file=sys.stderr)
            else:
                with open(path) as handle:
                    results[key] = json.load(handle)
                print(f"    done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            os.unlink(path)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    busy1, total1 = _cpu_jiffies()
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks = os.sysconf("SC_CLK_TCK")
    ours = (usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime) * ticks
    other = max(busy1 - busy0 - ours, 0.0) / max(total1 - total0, 1.0)
    return results, other


# ------------------------------------------------------------------------ report
def _versions() -> str:
    from importlib.metadata import version
    names = ("btcore", "numba", "numpy", "pandas", "vectorbt", "backtesting")
    text = ", ".join(f"{n} {version(n)}" for n in names)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parent, check=True)
        return f"{text} (btcore checkout {commit.stdout.strip()})"
    except (OSError, subprocess.CalledProcessError):
        return text


SWEEP_ROWS = ((("btcore", "serial"), "btcore serial (1 thread)"),
              (("btcore", "threads"), "btcore threads"),
              (("vectorbt", "aligned"), "vectorbt from_signals"))
PER_BACKTEST_ROWS = ((("backtesting", "run"), "backtesting.py run() loop, 1 proc"),
                     (("backtesting", "optimize"), "backtesting.py optimize()"),
                     (("naive", "loop"), "naive pandas .iloc loop"))


def throughput_table(results, loads) -> pd.DataFrame:
    """One row per (workload, method); per-backtest peers scaled to the workload."""
    rows = []
    for workload in ("1000", "135", "universe"):
        grid, assets = loads[workload]
        n_backtests = len(_peers.combos_frame(grid)) * len(assets)
        for key, label in SWEEP_ROWS:
            section = results.get((*key, workload))
            if not section:
                continue
            if key == ("btcore", "threads"):
                label = f"btcore threads (x{section['workers']})"
            rows.append(dict(workload=workload, method=label, backtests=section["backtests"],
                             bars=section["bars"], seconds=section["warm_s"],
                             median_s=section["median_s"], cpu=section["cpu_per_wall"],
                             first_s=section["first_s"], peak_mb=section["peak_mb"],
                             source="measured"))
        for key, label in PER_BACKTEST_ROWS:
            section = results.get((*key, "sample"))
            if not section:
                continue
            if key == ("backtesting", "optimize"):
                label = f"backtesting.py optimize(), {section['workers']} procs"
            scale = n_backtests / section["backtests"]
            same = section["backtests"] == n_backtests and len(assets) == 1
            rows.append(dict(workload=workload, method=label, backtests=n_backtests,
                             bars=section["bars"],
                             seconds=section["per_backtest_s"] * n_backtests,
                             median_s=section["median_per_backtest_s"] * n_backtests,
                             cpu=section["cpu_per_wall"], first_s=np.nan,
                             peak_mb=section["peak_mb"],
                             source="measured" if same else
                             f"extrapolated x{scale:.4g} from {section['backtests']}"))
    table = pd.DataFrame(rows)
    serial = table[table.method == "btcore serial (1 thread)"].set_index("workload")["seconds"]
    table["param_bars_per_s"] = table.backtests * table.bars / table.seconds
    table["x_btcore_serial"] = table.seconds / table.workload.map(serial)
    return table


def diff_row(label, workload, peer: dict, reference: dict) -> dict:
    """How far ``peer`` is from btcore on the rows both have (same params, asset).

    Sharpe statistics use the rows where both Sharpe ratios are finite (vectorbt
    returns inf for a column that never trades; btcore returns 0 by docs/semantics.md).
    """
    keys = [*PARAMS, "asset"]
    merged = pd.DataFrame(peer).merge(pd.DataFrame(reference), on=keys, suffixes=("_p", "_b"))
    d_tr = (merged.total_return_p - merged.total_return_b).abs()
    d_dd = (merged.max_drawdown_p - merged.max_drawdown_b).abs()
    d_nt = (merged.num_trades_p - merged.num_trades_b).abs()
    finite = np.isfinite(merged.sharpe_ratio_p) & np.isfinite(merged.sharpe_ratio_b)
    sharpe = merged[finite]
    d_sh = (sharpe.sharpe_ratio_p - sharpe.sharpe_ratio_b).abs()
    best = [group.sharpe_ratio_p.idxmax() == group.sharpe_ratio_b.idxmax()
            for _, group in sharpe.groupby("asset")] if len(sharpe) else [np.nan]
    return {"peer": label, "vs": workload, "n": len(merged),
            "same trades %": 100 * float((d_nt == 0).mean()),
            "med |dTrades|": float(d_nt.median()),
            "med |dTR|": float(d_tr.median()), "p95 |dTR|": float(d_tr.quantile(0.95)),
            "max |dTR|": float(d_tr.max()), "med |dMaxDD|": float(d_dd.median()),
            "med |dSharpe|": float(d_sh.median()), "p95 |dSharpe|": float(d_sh.quantile(0.95)),
            "Sharpe corr": float(sharpe.sharpe_ratio_p.corr(sharpe.sharpe_ratio_b)),
            "rank corr": float(sharpe.sharpe_ratio_p.rank().corr(sharpe.sharpe_ratio_b.rank())),
            "same best %": 100 * float(np.mean(best)),
            "non-finite": int((~finite).sum())}


def differences_table(results) -> pd.DataFrame:
    rows = []
    serial = {w: results.get(("btcore", "serial", w)) for w in ("1000", "135", "universe")}
    for variant, workloads_ in (("aligned", ("1000", "135", "universe")), ("defaults", ("135",))):
        for w in workloads_:
            peer = results.get(("vectorbt", variant, w))
            if peer and serial[w]:
                rows.append(diff_row(f"vectorbt ({variant})", w, peer["results"],
                                     serial[w]["results"]))
    btc_sample = serial["135"]
    for label, section in (("backtesting.py", results.get(("backtesting", "run", "sample"))),
                           ("naive loop", results.get(("naive", "loop", "sample")))):
        if section and btc_sample:
            rows.append(diff_row(label, "135", section["results"], btc_sample["results"]))
    naive, diag = results.get(("naive", "loop", "sample")), results.get(("diagnostics", "-", "sample"))
    if naive and diag:
        rows.append(diff_row("naive seed quirks", "allow_short=False",
                             naive["seed"]["results"], diag["long_only"]))
    return pd.DataFrame(rows)


def _fmt(value, digits=3):
    if isinstance(value, str):
        return value
    if value is None or not np.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def _print_header(loads, quick, repeats, load) -> None:
    from btcore.datasets import sp500_sample
    index = sp500_sample().index
    bars = int(((index >= START) & (index <= END)).sum())
    print(f"\nbtcore vs peers -- mean_reversion sweep, {ASSET} {START}..{END} "
          f"({bars:,} traded bars, indicators warmed up on 1990-2009), 1e6 capital, 5 bps, "
          "fills at the close")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; {_versions()}")
    print(f"grids: 135 = the seed grid; 1000 = 10 lookbacks (20..200) x 10 entries (1.0..2.8) "
          f"x 10 exits (0.1..1.0), stop 3.0; universe = 135 x {len(loads['universe'][1])} "
          f"stocks; backtesting.py and the naive loop timed on "
          f"{len(_peers.combos_frame(loads['sample'][0]))} combos of AAPL and scaled")
    print(f"btcore/vectorbt: best (and median) of {repeats} warm calls"
          f"{'; --quick' if quick else ''}. Machine load from other processes during the "
          f"run: {load:.0%} of all CPUs (timings are noisier the higher this is)")


def _print_throughput(table, results) -> None:
    print("\n== Throughput (seconds: warm wall clock; x btcore serial = seconds / btcore "
          "serial seconds; cpu/wall < 1 = waited for a CPU) ==")
    shown = table.assign(**{
        "seconds": table.seconds.map(_fmt), "median s": table.median_s.map(_fmt),
        "param-bars/s": table.param_bars_per_s.map(_fmt),
        "x btcore serial": table.x_btcore_serial.map(_fmt), "cpu/wall": table.cpu.map(_fmt),
        "first call s": table.first_s.map(_fmt), "peak MB": table.peak_mb.map(_fmt)})
    print(shown[["workload", "method", "backtests", "seconds", "median s", "param-bars/s",
                 "x btcore serial", "cpu/wall", "first call s", "peak MB", "source"]]
          .to_string(index=False))
    kernel = {w: results[("btcore", "serial", w)]["kernel_param_bars_per_s"]
              for w in ("1000", "135", "universe") if ("btcore", "serial", w) in results}
    print("btcore serial, kernel only (SweepResult.stats['param_bars_per_s']): "
          + ", ".join(f"{w}: {_fmt(v)}" for w, v in kernel.items()))
    print("peak MB = largest RSS growth of one warm call (after freeing the previous "
          "result); 'first call s' of btcore/vectorbt rows includes compile or cache load")


def _print_first_calls(results) -> None:
    print("\n== First calls (a fresh process each; compile or cache load ~= first - warm) ==")
    rows = []
    for key, state in ((("btcore", "serial", "1000"), "cold: compiles"),
                       (("btcore", "threads", "1000"), "cold: compiles parallel kernel"),
                       (("btcore", "serial", "135"), "loads on-disk cache"),
                       (("btcore", "threads", "135"), "loads on-disk cache"),
                       (("vectorbt", "aligned", "1000"), "cold: compiles"),
                       (("vectorbt", "aligned", "135"), "loads on-disk cache"),
                       (("backtesting", "run", "sample"), "no JIT (one backtest)"),
                       (("naive", "loop", "sample"), "no JIT (one backtest)")):
        section = results.get(key)
        if section:
            warm = section.get("per_backtest_s", section["warm_s"])
            rows.append({"section": " / ".join(key), "numba cache": state,
                         "first call s": _fmt(section["first_s"]), "warm s": _fmt(warm),
                         "first - warm s": _fmt(section["first_s"] - warm),
                         "first-call peak MB": _fmt(section.get("first_peak_mb", np.nan))})
    print(pd.DataFrame(rows).to_string(index=False))
    diag = results.get(("diagnostics", "-", "sample"))
    if diag:
        call = diag["backtest_call"]
        print(f"btcore.backtest(), one parameter set end to end (validation, kernel with "
              f"per-bar records, trade list): {call['warm_s'] * 1e3:.2f} ms warm")


def _print_goals(table, results) -> None:
    print("\n== Goals (1000-combo sweep on AAPL, this run) ==")
    t = table[table.workload == "1000"].set_index("method")
    if "btcore serial (1 thread)" not in t.index:
        return
    serial = t.loc["btcore serial (1 thread)", "seconds"]
    bars = t.loc["btcore serial (1 thread)", "bars"]
    if "vectorbt from_signals" in t.index:
        ratio = t.loc["vectorbt from_signals", "seconds"] / serial
        median = (t.loc["vectorbt from_signals", "median_s"]
                  / t.loc["btcore serial (1 thread)", "median_s"])
        vbt_first = results[("vectorbt", "aligned", "1000")]["first_s"]
        btc_first = results[("btcore", "serial", "1000")]["first_s"]
        print(f">= 50x faster than vectorbt, single thread: {ratio:,.1f}x best-of-N, "
              f"{median:,.1f}x median -> {'MET' if ratio >= 50 else 'NOT MET'}; "
              f"first calls with cold compile: {vbt_first:.2f} s vs {btc_first:.2f} s "
              f"({vbt_first / btc_first:,.1f}x)")
    naive = results.get(("naive", "loop", "sample"))
    if naive:
        per_btc = serial / t.loc["btcore serial (1 thread)", "backtests"]
        ratio = naive["per_backtest_s"] / per_btc
        print(f">= 1e5x faster per backtest than the naive .iloc loop: "
              f"{naive['per_backtest_s'] * 1e3:.1f} ms vs {per_btc * 1e6:.1f} us per backtest "
              f"in the serial sweep = {ratio:,.0f}x -> {'MET' if ratio >= 1e5 else 'NOT MET'} "
              f"(1e5x would need {naive['per_backtest_s'] / 1e5 * 1e6:.2f} us per backtest, "
              f"{1e5 * bars / naive['per_backtest_s']:.1e} param-bars/s on one thread)")
        diag = results.get(("diagnostics", "-", "sample"))
        if diag:
            print(f"   vs one btcore.backtest() call: "
                  f"{naive['per_backtest_s'] / diag['backtest_call']['warm_s']:,.0f}x")


def _print_diagnostics(results) -> None:
    diag = results.get(("diagnostics", "-", "sample"))
    if not diag:
        return
    r = diag["replay"]
    print("\n== Diagnostics (why the results differ) ==")
    print(f"vectorbt fed btcore's own position changes (135 grid x {len(diag['assets'])} "
          f"stocks = {r['columns']:,} backtests, whole shares): equity bit-identical in "
          f"{r['exact']:,}; max |equity_vbt / equity_btcore - 1| = "
          f"{r['max_rel_diff_solvent']:.1e} where btcore's equity stays > 0")
    worst = r["metric_max_abs_diff"]
    print("  metrics there, max |vectorbt - btcore| (max_drawdown/calmar: see notes): "
          + ", ".join(f"{name} {_fmt(value)}" for name, value in worst.items()))
    print(f"equity <= 0 at some bar (shorts without margin calls): {r['ruined']:,} of "
          f"{r['columns']:,} btcore backtests ({r['ruined_positive_sharpe']:,} of them with a "
          f"positive Sharpe); there vectorbt cannot cover the short with negative cash "
          f"(max rel equity diff {r['max_rel_diff_ruined']:.2g})")
    print(f"btcore entries opened with |z| already beyond the stop (vectorbt ignores "
          f"those bars): {diag['entries_beyond_stop']:,} of {diag['entries']:,} "
          f"({100 * diag['entries_beyond_stop'] / max(diag['entries'], 1):.1f}%)")
    print(f"z-score, max abs difference over the universe and all lookbacks: btcore vs "
          f"two-pass numpy {diag['z_vs_two_pass']:.1e}, btcore vs pandas rolling "
          f"{diag['z_vs_pandas']:.1e}")
    print(f"btcore serial and threads tables bit-identical (1000 grid, auto batches): "
          f"{diag['threads_bit_identical']}")
    opt = results.get(("backtesting", "optimize", "sample"))
    if opt:
        print(f"backtesting.py optimize() ran {opt['workers']} worker processes (its default "
              f"Pool); its peak MB is the parent's, largest worker RSS "
              f"{opt['child_peak_rss_mb']:.0f} MB")


def report(results, loads, quick, repeats, load) -> None:
    _print_header(loads, quick, repeats, load)
    table = throughput_table(results, loads)
    _print_throughput(table, results)
    _print_first_calls(results)
    _print_goals(table, results)
    print("\n== Differences from btcore serial, same parameters (TR = total_return; "
          "trades = position changes) ==")
    diffs = differences_table(results)
    if len(diffs):
        print(diffs.map(_fmt).to_string(index=False))
    _print_diagnostics(results)
    print(NOTES)


NOTES = """
Why the peers differ (measured above, not hidden):
- vectorbt (aligned): same fills at the close, same 5 bps per leg, whole shares
  (size_granularity=1), no reversal on an opposite entry. Fed btcore's decisions it
  reproduces btcore's equity (diagnostics; sub-cent exceptions where vectorbt's
  tolerance arithmetic snaps a leftover cash of < 0.01 to 0) and its metrics,
  except max_drawdown/calmar when the equity never exceeds the initial capital
  before its trough (vectorbt starts the running peak at the first bar's value,
  docs/semantics.md at the initial capital), until btcore's equity goes negative:
  vectorbt then cannot buy back a short in full. The rest is signal handling: a
  bar with both an entry and an exit signal (flat with |z| beyond the stop) is
  skipped by from_signals when flat, while docs/semantics.md rule 3 enters there and
  usually stops out on the next bar (reenter_after_stop=True, the seed's
  behaviour). With entry == stop (2.5/2.5 in the seed grid) every entry bar is
  such a bar, so vectorbt never trades (Sharpe inf, counted as non-finite) while
  btcore churns. from_signals has no setting that enters when flat and exits
  when in a position on the same conflicting bar.
- vectorbt (defaults): fractional shares; conflicting entry+exit bars are ignored
  also in a position (a long is never stopped out while z < -stop, because the
  entry signal is on too); an opposite entry reverses within one bar.
- backtesting.py: trade_on_close=True fills at the same close; it sizes
  floor(cash*(1-eps) / (close*(1+fee))) and books an order placed at bar t in
  the equity curve at bar t+1 (at close t): same decisions and final value,
  slightly different daily returns (Sharpe, drawdown). An order placed on the
  last bar never fills (there is no next bar), so a btcore exit on the final bar
  is one trade and one fee more than backtesting.py's.
- naive loop: docs/semantics.md semantics with z from pandas rolling sums (not
  compensated, off by up to ~2e-8 here): a decision that close to a threshold
  could flip (none did on AAPL).
- naive seed quirks vs btcore allow_short=False: same decisions; the seed sizes
  floor(cash/close) without the cost (cash can go negative), so share counts and
  equity differ slightly.
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="8-combo sample for the slow peers, 5-stock universe")
    parser.add_argument("--repeats", type=int, default=None,
                        help="warm calls per section, best kept (default 7, --quick 3)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.worker:
        section = json.loads(args.worker)
        result = WORKERS[section["library"]](section, repeats)
        with open(args.out, "w") as handle:
            json.dump(result, handle)
        return 0
    missing = _missing_peers()
    if missing:
        print(f"compare_peers needs the benchmark-only peers {missing}; install them with\n"
              f"    {INSTALL_HINT}", file=sys.stderr)
        return 2
    loads = workloads(args.quick)
    results, load = run_sections(sections(args.quick), repeats)
    report(results, loads, args.quick, repeats, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
