"""Sleeve portfolio, btcore vs vectorbt on the same target positions (issue 11, part 3).

    python benchmarks/bench_universe_vs_vectorbt.py [--assets 50 500] [--sets 100]
                                                    [--vbt-sets 100 20] [--repeats 3]

Workload: ``MarketData.synthetic(n_assets=N, start="2010-01-01", end="2022-12-31",
seed=1)``; mean_reversion parameter sets from ``bench_universe.GRID`` (100 sets),
every asset a sleeve of one account per set, no rebalancing and no caps.

- **btcore**, end to end: ``run_portfolio_sweep(grid, data=...)`` (validation,
  indicators, the strategy's signals, accounting, every metric, the table),
  serial executor (one core, as vectorbt).
- **vectorbt**, given btcore's positions: for each set, ``portfolio_backtest``
  gives the per-bar shares of every sleeve (untimed). They become one
  ``(bars, sets x assets)`` frame of target amounts (NaN where a sleeve's position
  does not change, i.e. no order), and vectorbt simulates them with
  ``Portfolio.from_orders(close, size, size_type="targetamount",
  fees=cost_bps/1e4, group_by=<set>, cash_sharing=True, init_cash=capital)``:
  one group (one shared-cash account) per parameter set, columns in asset order
  (vectorbt's default call sequence = btcore's sleeve order). Timed: the
  simulation plus ``final_value()`` ("sim"), and separately the simulation plus
  total return, Sharpe and max drawdown ("sim+metrics"). vectorbt's signal
  generation is not timed at all: it is given the positions.
- Agreement: each vectorbt group's final value against the sweep row's
  ``final_value`` (relative tolerance ``TOLERANCE``), and every filled order's
  size against btcore's position change.

Both sides get one untimed warm-up (numba compile / cache load), then the best
of ``--repeats`` runs. Peak memory is the growth of the resident set (VmHWM,
reset before each timed run) over the run, in MB.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

from btcore import MarketData, portfolio_backtest, run_portfolio_sweep

GRID = {"lookback_period": [10, 20, 40, 60, 100], "entry_threshold": [1.5, 2.0, 2.5, 3.0],
        "exit_threshold": [0.0, 0.25, 0.5, 0.75, 1.0], "stop_loss_z": [3.5]}  # 100 sets
PARAMS = tuple(GRID)
CAPITAL = 1_000_000.0
COST_BPS = 5.0
#: final values must agree to this relative tolerance; the differences are float
#: rounding only (btcore and vectorbt add the same fills and fees in another order)
TOLERANCE = 1e-9


# ------------------------------------------------------------------ memory
def _status_kb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def _release() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> float:
    """Reset VmHWM to the current RSS (Linux) and return that RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    return _status_kb("VmRSS") / 1024


def timed(fn, repeats: int):
    """One warm-up call, then ``repeats`` timed calls: (result, best s, largest peak MB)."""
    fn()
    best, peak, result = np.inf, 0.0, None
    for _ in range(repeats):
        result = None
        _release()
        baseline = _reset_peak()
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
        peak = max(peak, _status_kb("VmHWM") / 1024 - baseline)
    return result, best, peak


# ------------------------------------------------------------------ workload
def grid_frame() -> pd.DataFrame:
    import itertools
    frame = pd.DataFrame(list(itertools.product(*GRID.values())), columns=list(PARAMS))
    frame["lookback_period"] = frame["lookback_period"].astype(np.int64)
    return frame


def btcore_sweep(data, sets: pd.DataFrame):
    return run_portfolio_sweep(sets[list(PARAMS)].reset_index(drop=True), data=data,
                               executor="serial", progress=False,
                               initial_capital=CAPITAL, cost_bps=COST_BPS)


def target_positions(data, sets: pd.DataFrame):
    """btcore's per-bar sleeve shares for each set: (bars, sets x assets), index."""
    blocks = []
    index = None
    lowest_sleeve_cash = np.inf
    for row in sets.to_dict("records"):
        replay = portfolio_backtest(row, data=data, initial_capital=CAPITAL, cost_bps=COST_BPS)
        shares = replay.positions.to_numpy()
        close = data.close[data.close.shape[0] - len(shares):]
        cash = replay.sleeve_values.to_numpy() - shares * close
        lowest_sleeve_cash = min(lowest_sleeve_cash, float(np.nanmin(cash)))
        blocks.append(shares)
        index = replay.positions.index
    return np.hstack(blocks), index, lowest_sleeve_cash


def vbt_inputs(data, sets: pd.DataFrame, held: np.ndarray, index, dense: bool = False):
    n_assets = data.close.shape[1]
    n_sets = len(sets)
    columns = pd.MultiIndex.from_arrays(
        [np.repeat(np.arange(n_sets), n_assets), np.tile(np.asarray(data.symbols), n_sets)],
        names=["set", "asset"])
    first = data.close.shape[0] - len(index)
    close = np.tile(data.close[first:], (1, n_sets))
    previous = np.vstack([np.zeros((1, held.shape[1])), held[:-1]])
    # an order only where the position moves (dense: the target on every bar; the
    # unchanged ones are size-0 orders vectorbt ignores, same fills, slower)
    size = held.copy() if dense else np.where(held != previous, held, np.nan)
    close = pd.DataFrame(close, index=index, columns=columns)
    size = pd.DataFrame(size, index=index, columns=columns)
    groups = np.repeat(np.arange(n_sets), n_assets)
    return close, size, groups


def vbt_portfolio(close, size, groups):
    import vectorbt as vbt
    return vbt.Portfolio.from_orders(close, size, size_type="targetamount",
                                     fees=COST_BPS / 1e4, group_by=groups, cash_sharing=True,
                                     init_cash=CAPITAL, freq="1D")


def vbt_sim(close, size, groups):
    pf = vbt_portfolio(close, size, groups)
    return pf, np.asarray(pf.final_value())


def vbt_sim_metrics(close, size, groups):
    pf = vbt_portfolio(close, size, groups)
    return (np.asarray(pf.final_value()), np.asarray(pf.total_return()),
            np.asarray(pf.sharpe_ratio()), np.asarray(pf.max_drawdown()))


def match_rows(table: pd.DataFrame, sets: pd.DataFrame) -> pd.DataFrame:
    """The sweep table's rows for ``sets``, in ``sets``' order."""
    keyed = table.set_index(list(PARAMS))
    return keyed.loc[[tuple(r) for r in sets[list(PARAMS)].itertuples(index=False)]]


# ------------------------------------------------------------------ one universe
def run_universe(n_assets: int, n_sets: int, n_vbt_sets: int, repeats: int,
                 dense: bool = False) -> dict:
    data = MarketData.synthetic(n_assets=n_assets, start="2010-01-01", end="2022-12-31", seed=1)
    sets = grid_frame()
    bt_sets = sets.iloc[np.linspace(0, len(sets) - 1, n_sets).round().astype(int)]
    bt_sets = bt_sets.reset_index(drop=True)
    vbt_sets = bt_sets.iloc[np.linspace(0, len(bt_sets) - 1, n_vbt_sets).round().astype(int)]
    vbt_sets = vbt_sets.reset_index(drop=True)
    print(f"\n== {n_assets} assets x {data.n_bars} bars: btcore {len(bt_sets)} sets, "
          f"vectorbt {len(vbt_sets)} sets ==", flush=True)

    res, bt_s, bt_mb = timed(lambda: btcore_sweep(data, bt_sets), repeats)
    traded_bars = res.stats["param_bars"] // (len(bt_sets) * n_assets)
    print(f"btcore: {bt_s:.3f} s end to end, of which the kernel {res.stats['compute_s']:.3f} s "
          f"({res.stats['param_bars_per_s'] / 1e6:.1f} M asset-bars/s kernel only)", flush=True)

    started = time.perf_counter()
    held, index, lowest_sleeve_cash = target_positions(data, vbt_sets)
    print(f"positions from portfolio_backtest (untimed): {time.perf_counter() - started:.1f} s, "
          f"{held.shape[0]} bars x {held.shape[1]} sleeve columns; lowest cash of any btcore "
          f"sleeve {lowest_sleeve_cash:,.2f} ({'no sleeve borrows' if lowest_sleeve_cash >= 0 else 'a sleeve borrows'})",
          flush=True)
    assert len(index) == traded_bars
    close, size, groups = vbt_inputs(data, vbt_sets, held, index, dense)
    del held
    _release()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (pf, vbt_final), vbt_s, vbt_mb = timed(lambda: vbt_sim(close, size, groups), repeats)
        # agreement with btcore (untimed)
        rows = match_rows(res.table, vbt_sets)
        bt_final = rows["final_value"].to_numpy()
        rel = np.abs(vbt_final / bt_final - 1.0)
        orders = pf.orders.records_readable
        n_orders = len(orders)
        status = pf.orders.count().sum()
        bt_trades = int(rows["num_trades"].sum())
        # every requested order filled in full? (requested = non-NaN size cells)
        moves = size.to_numpy()
        moves = np.where(moves != np.vstack([np.zeros((1, moves.shape[1])), moves[:-1]]),
                         moves, np.nan) if dense else moves
        requested = int(np.isfinite(moves).sum())
        del moves
        filled_size = pf.assets().to_numpy()
        size_err = float(np.nanmax(np.abs(filled_size - pd.DataFrame(
            size).ffill().fillna(0.0).to_numpy())))
        min_cash = float(np.min(pf.cash().to_numpy()))
        del pf, orders
        _release()
        (_, vbt_tr, vbt_sharpe, vbt_dd), vbtm_s, vbtm_mb = timed(
            lambda: vbt_sim_metrics(close, size, groups), repeats)
    tr_err = float(np.max(np.abs(vbt_tr - rows["total_return"].to_numpy())))
    dd_err = float(np.max(np.abs(vbt_dd - rows["max_drawdown"].to_numpy())))
    print(f"agreement on {len(vbt_sets)} sets: final_value max rel diff {rel.max():.2e} "
          f"(tolerance {TOLERANCE:g}: {'OK' if rel.max() <= TOLERANCE else 'EXCEEDED'}); "
          f"total_return max abs diff {tr_err:.2e}, max_drawdown {dd_err:.2e}")
    print(f"orders: vectorbt filled {n_orders:,} (orders.count {int(status):,}) of "
          f"{requested:,} requested; btcore num_trades {bt_trades:,}; max |vectorbt shares - "
          f"btcore shares| = {size_err:g}; lowest shared cash of any account {min_cash:,.0f}")
    bars_bt = traded_bars * n_assets * len(bt_sets)
    bars_vbt = traded_bars * n_assets * len(vbt_sets)
    return {
        "assets": n_assets, "bars": traded_bars,
        "btcore": {"sets": len(bt_sets), "s": bt_s, "mb": bt_mb,
                   "bt_per_s": len(bt_sets) / bt_s, "bars_per_s": bars_bt / bt_s},
        "vbt sim": {"sets": len(vbt_sets), "s": vbt_s, "mb": vbt_mb,
                    "bt_per_s": len(vbt_sets) / vbt_s, "bars_per_s": bars_vbt / vbt_s},
        "vbt sim+metrics": {"sets": len(vbt_sets), "s": vbtm_s, "mb": vbtm_mb,
                            "bt_per_s": len(vbt_sets) / vbtm_s, "bars_per_s": bars_vbt / vbtm_s},
        "max_rel": float(rel.max()), "sleeve_cash": lowest_sleeve_cash, "orders_ok": n_orders == requested and size_err == 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--sets", type=int, default=100, help="btcore parameter sets")
    parser.add_argument("--vbt-sets", type=int, nargs="+", default=[100, 20],
                        help="vectorbt parameter sets, one per --assets value")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dense", action="store_true",
                        help="give vectorbt the target on every bar, not only where it changes")
    args = parser.parse_args()
    vbt_sets = args.vbt_sets + [args.vbt_sets[-1]] * (len(args.assets) - len(args.vbt_sets))
    import numba
    import vectorbt as vbt
    import btcore
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, numba {numba.__version__}, "
          f"vectorbt {vbt.__version__}, btcore {getattr(btcore, '__version__', '?')}, "
          f"{os.cpu_count()} CPUs; best of {args.repeats} after a warm-up; vectorbt size: "
          f"{'target on every bar' if args.dense else 'target where it changes, NaN elsewhere'}")
    results = [run_universe(n, args.sets, v, args.repeats, args.dense) for n, v in zip(args.assets, vbt_sets)]
    lines = []
    header = (f"{'assets':>6} {'engine':<16} {'sets':>5} {'best s':>8} {'backtests/s':>12} "
              f"{'M asset-bars/s':>15} {'peak MB':>8} {'btcore/this':>12}")
    lines.append(header)
    lines.append("-" * len(header))
    for r in results:
        ref = r["btcore"]["bt_per_s"]
        for engine in ("btcore", "vbt sim", "vbt sim+metrics"):
            e = r[engine]
            ratio = ref / e["bt_per_s"]
            lines.append(f"{r['assets']:>6} {engine:<16} {e['sets']:>5} {e['s']:>8.3f} "
                         f"{e['bt_per_s']:>12.2f} {e['bars_per_s'] / 1e6:>15.1f} "
                         f"{e['mb']:>8.0f} {ratio:>11.1f}x")
    print("\nbtcore: run_portfolio_sweep end to end, serial. vectorbt: from_orders on btcore's "
          "positions\n(sim = simulation + final_value; sim+metrics adds total_return, sharpe, "
          "max_drawdown).\nbacktests/s = portfolios (one per parameter set) per second; "
          "ratio = btcore backtests/s / engine backtests/s.")
    print("\n".join(lines))
    for r in results:
        print(f"{r['assets']} assets: final values agree to {r['max_rel']:.1e} relative, "
              f"orders identical: {r['orders_ok']}, lowest btcore sleeve cash "
              f"{r['sleeve_cash']:,.2f}")


if __name__ == "__main__":
    main()
