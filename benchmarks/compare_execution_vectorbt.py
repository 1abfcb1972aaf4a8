"""btcore's execution kernel vs vectorbt ``Portfolio.from_signals``: the same trades,
then the speed of a 1,000-set grid on one thread.

Run: ``pip install -e '.[bench]'`` then
``python benchmarks/compare_execution_vectorbt.py [--repeats 5] [--rounds 2] [--sets 1000]``
(about 2 minutes; ``--sets`` lowers vectorbt's columns if memory is short).
``NUMBA_NUM_THREADS`` is set to 1 before numba loads (both libraries run one thread).

**Data.** AAPL's bundled closes from 2010 on (3,270 traded bars; earlier bars warm
the averages up) with the seeded open, high and low of ``bench_execution.py``.

**Signals both engines see.** A long-only moving-average *crossing* rule,
written here as a btcore strategy: buy when the fast simple average (closes up
to and including bar t, btcore's ``trailing_sma_nb``) crosses above the slow
one, sell when it crosses back below, otherwise keep the position. A stop exit therefore stays flat until the
next upward crossing in both engines. vectorbt gets the same decisions as
entry/exit arrays shifted one bar, ``price=open``: the order decided at the close
of bar t fills at the open of bar t+1, btcore's ``fill="next_open"``.

**vectorbt configuration** (vectorbt 1.2 source, ``portfolio/nb.py``):
``size=inf`` with ``size_granularity=1`` (all-in whole shares: floor(cash / (q ·
(1 + fee))) when there is no fixed fee), ``fees=cost_bps/1e4``, ``slippage`` (the
same ``price · (1 ± s)`` as btcore), ``sl_stop`` (``sl_trail=True`` for a
trailing stop), ``tp_stop``, ``stop_entry_price="fillprice"`` (levels from the
slipped entry fill, as btcore; the default is the entry bar's close) and
``stop_exit_price="stopmarket"`` (a stop exit is slipped from its level or the
open; the default ``stoplimit`` fills stops without slippage). With these, the
fill prices, gap rule (an open beyond a level exits at the open), trailing peak
(highs of the bars after the entry bar, up to the bar before the check), levels
and costs are the same arithmetic in both engines.

**Differences** (btcore's rules: ``docs/semantics.md`` sections 10 and 13). The
parity check runs the candidate sets in both engines, finds in btcore's trades
the first bar where one of these rules could apply, and requires identical trades
on every set where none applies (at least ``--min-parity`` sets) and, on the
others, identical trades up to that bar:

1. *Stops on the entry bar.* btcore checks the rest of a bar entered at its open
   (the low after the open can reach the stop). vectorbt checks stops from the
   bar after the entry only.
2. *An exit order at the open on a bar that also reaches a stop level.* btcore
   fills the order at the open (it comes first); vectorbt evaluates the stop over
   the whole bar first and exits at the level, later and usually worse.
3. *A gap beyond the take-profit on a bar whose low reaches the stop.* btcore
   exits at the open (take-profit); vectorbt checks the stop-loss first and exits
   at its level.
4. *A new entry decided at the close of a stop bar.* btcore drops it (a stop bar
   makes no other trade); vectorbt enters at the next open.
5. *Fixed fees in sizing.* vectorbt sizes an all-in entry from
   ``cash - fixed_fees``; btcore from the whole cash (the fee then leaves the cash
   at -F). The parity sets use ``fee_per_trade=0``; ``--fixed-fee`` shows the
   share counts that differ.
6. *Stop-loss and trailing stop together.* vectorbt has one stop-loss that is
   either fixed or trailing (``sl_trail``); btcore has both. Each set here uses
   one of the two.
7. *Shorts, not compared.* vectorbt raises on an all-in short from ``size=inf``
   unless ``lock_cash=True`` (then it sizes from its free cash), and it reverses
   in one order (one fixed fee) where btcore makes two fills. The rule here is
   long-only.

Exit reasons: vectorbt records none, so a vectorbt exit is labelled by its own
rule (the stop-loss/trailing level, then the take-profit level, each at the
open first; else the signal), from its own entry price and peak.

**Timing.** Two 1,000-set grids (10 fast x 10 slow windows x 5 stop-losses,
fixed or trailing, x 2 take-profits), each measured two ways, best of
``--repeats`` in ``--rounds`` interleaved rounds, side by side in one run:

- the simulation: btcore's ``run_task`` on one task of every set (indicators, the
  execution kernel and the metrics) against vectorbt's ``from_signals`` alone on
  entry/exit arrays built beforehand (it computes neither indicators nor
  metrics, so this favours vectorbt);
- end to end, the same outputs: btcore's ``run_sweep`` (validation, kernel, result
  table) against building the signals (pandas rolling means), ``from_signals`` and
  btcore's metric columns from the portfolio (``_peers.vectorbt_metrics``).
"""
from __future__ import annotations

import os
import sys

if "numba" not in sys.modules:  # run as a script: one thread, set before numba loads
    os.environ["NUMBA_NUM_THREADS"] = "1"  # (imported by the tests: left as it is)

import argparse  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from numba import njit  # noqa: E402

from btcore import backtest, run_sweep  # noqa: E402
from btcore.engine import Task, run_task  # noqa: E402
from btcore.indicators_extra import trailing_sma_nb  # noqa: E402
from btcore.strategies import Indicator, Param, StrategySpec  # noqa: E402
from btcore.workflows.base import prepare  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_execution import START, aapl_candles  # noqa: E402

INITIAL_CAPITAL = 1_000_000.0
COST_BPS = 5.0
SETTINGS = dict(fill="next_open", slippage_bps=2.0)
STOPS = ("stop_loss", "trailing_stop", "take_profit")
#: candidate sets for the parity check: (fast, slow) x stop shapes (either a fixed
#: or a trailing stop-loss, with or without a take-profit)
PARITY_WINDOWS = list(itertools.product([5, 10, 20, 40], [50, 100, 200]))
PARITY_STOPS = [
    {"stop_loss": 0.05, "take_profit": 0.10},
    {"stop_loss": 0.08, "take_profit": 0.25},
    {"trailing_stop": 0.06, "take_profit": 0.15},
    {"trailing_stop": 0.10},
    {"stop_loss": 0.03, "take_profit": 0.06},
    {"trailing_stop": 0.05, "take_profit": 0.06},
]
#: the timed grids, 1,000 sets each (fast x slow x stop x take-profit)
TIMED_GRIDS = {
    "stop-loss + take-profit": {
        "fast_window": list(range(5, 55, 5)), "slow_window": list(range(60, 260, 20)),
        "stop_loss": [0.03, 0.05, 0.08, 0.12, 0.2], "take_profit": [0.06, 0.2]},
    "trailing stop + take-profit": {
        "fast_window": list(range(5, 55, 5)), "slow_window": list(range(60, 260, 20)),
        "trailing_stop": [0.03, 0.05, 0.08, 0.12, 0.2], "take_profit": [0.06, 0.2]},
}
REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "end")


# ------------------------------------------------------------------ the strategy
@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def crossing_signal_nb(values, price, params, options, position, state):
    """Long on an upward crossing of fast over slow, flat on a downward one; state =
    whether fast was above slow at the previous bar (0 before the first)."""
    above = 1 if values[0] > values[1] else 0  # NaN compares false
    target = position
    if above == 1 and state == 0:
        target = 1
    elif above == 0 and state == 1:
        target = 0
    return target, above


CROSSING = StrategySpec(
    name="vbt_parity_crossing",
    params=(Param("fast_window", int, 10, low=1, is_window=True),
            Param("slow_window", int, 50, low=1, is_window=True)),
    indicators=(Indicator(trailing_sma_nb, "fast_window"),
                Indicator(trailing_sma_nb, "slow_window")),
    signal_nb=crossing_signal_nb,
    description="long-only moving-average crossing events (vectorbt parity)",
)


# ------------------------------------------------------------------ shared inputs
class Candles:
    """The traded window's candles and the crossing signals, as both engines see them."""

    def __init__(self, data, start=START):
        self.data = data
        self.start = start
        first, _ = data.window(start, None)
        self.first = int(first)
        self.close_full = data.close[:, 0]
        self.index = data.index[self.first:]
        self.open = data.open[self.first:, 0]
        self.high = data.high[self.first:, 0]
        self.low = data.low[self.first:, 0]
        self.close = self.close_full[self.first:]
        self.n_bars = len(self.close)
        self._averages = {}

    def average(self, window):
        if window not in self._averages:
            out = np.full(len(self.close_full), np.nan)
            trailing_sma_nb(self.close_full, window, out)
            self._averages[window] = out[self.first:]
        return self._averages[window]

    def crossings(self, fast, slow):
        """(up, down) at the close of each traded bar, as the strategy decides them."""
        above = self.average(fast) > self.average(slow)
        before = np.concatenate(([False], above[:-1]))
        return above & ~before, ~above & before

    def orders(self, fast, slow):
        """(entries, exits) one bar later, for ``price=open``."""
        up, down = self.crossings(fast, slow)
        entries = np.concatenate(([False], up[:-1]))
        exits = np.concatenate(([False], down[:-1]))
        return entries, exits


def stop_columns(sets):
    """vectorbt's ``sl_stop``, ``sl_trail``, ``tp_stop`` rows (1, n_sets) for ``sets``."""
    sl = np.array([s.get("stop_loss") or s.get("trailing_stop") or np.nan for s in sets])
    trail = np.array([bool(s.get("trailing_stop")) for s in sets])
    tp = np.array([s.get("take_profit") or np.nan for s in sets])
    if any(s.get("stop_loss") and s.get("trailing_stop") for s in sets):
        raise ValueError("vectorbt has one stop-loss, fixed or trailing: a set may not have both")
    return sl[None, :], trail[None, :], tp[None, :]


def vectorbt_portfolio(candles, sets, fixed_fee=0.0):
    """``Portfolio.from_signals`` with one column per set (see the module docstring)."""
    import vectorbt as vbt
    entries = np.empty((candles.n_bars, len(sets)), dtype=bool)
    exits = np.empty_like(entries)
    for j, s in enumerate(sets):
        entries[:, j], exits[:, j] = candles.orders(s["fast_window"], s["slow_window"])
    return vbt_from_signals(candles, entries, exits, sets, fixed_fee)


def vbt_from_signals(candles, entries, exits, sets, fixed_fee=0.0):
    import vectorbt as vbt
    sl, trail, tp = stop_columns(sets)
    columns = pd.RangeIndex(len(sets))
    index = candles.index

    def frame(values):
        return pd.DataFrame(values, index=index, columns=columns)

    def series(values):
        return pd.Series(values, index=index)

    return vbt.Portfolio.from_signals(
        series(candles.close), entries=frame(entries), exits=frame(exits),
        open=series(candles.open), high=series(candles.high), low=series(candles.low),
        price=series(candles.open), size=np.inf, size_granularity=1.0,
        direction="longonly", accumulate=False, init_cash=INITIAL_CAPITAL,
        fees=COST_BPS / 1e4, fixed_fees=fixed_fee, slippage=SETTINGS["slippage_bps"] / 1e4,
        sl_stop=sl, sl_trail=trail, tp_stop=tp, stop_entry_price="fillprice",
        stop_exit_price="stopmarket", freq="1D")


# ------------------------------------------------------------------ trades of each engine
def btcore_trades(candles, one_set, fixed_fee=0.0):
    """btcore's replayed trades: (entry bar, exit bar, side, shares, entry price,
    exit price, reason, P&L); an open trade has exit bar -1 and NaN exit fields."""
    params = {k: v for k, v in one_set.items() if k in ("fast_window", "slow_window")}
    stops = {k: v for k, v in one_set.items() if k in STOPS}
    result = backtest(params, strategy=CROSSING, data=candles.data, start=candles.start,
                      initial_capital=INITIAL_CAPITAL, cost_bps=COST_BPS,
                      fee_per_trade=fixed_fee, **SETTINGS, **stops)
    frame = result.trades
    positions = {stamp: i for i, stamp in enumerate(candles.index)}
    trades = []
    for row in frame.itertuples():
        ended = row.exit_reason != "end"
        trades.append((positions[pd.Timestamp(row.entry_time)],
                       positions[pd.Timestamp(row.exit_time)] if ended else -1,
                       int(row.side), float(row.shares), float(row.entry_price),
                       float(row.exit_price) if ended else math.nan, str(row.exit_reason),
                       float(row.pnl) if ended else math.nan))
    return trades


def vbt_stop(candles, i, entry_price, peak, one_set):
    """vectorbt's stop decision at bar ``i`` (``get_stop_price_nb``: the stop-loss
    first, then the take-profit; each at the open on a gap): (price, reason) or None."""
    bar_open, high, low = candles.open[i], candles.high[i], candles.low[i]
    fraction = one_set.get("stop_loss") or one_set.get("trailing_stop")
    if fraction:
        trailing = bool(one_set.get("trailing_stop"))
        level = (peak if trailing else entry_price) * (1 - fraction)
        reason = "trailing_stop" if trailing else "stop_loss"
        if bar_open <= level:
            return bar_open, reason
        if low <= level <= high:
            return level, reason
    if one_set.get("take_profit"):
        level = entry_price * (1 + one_set["take_profit"])
        if level <= bar_open:
            return bar_open, "take_profit"
        if low <= level <= high:
            return level, "take_profit"
    return None


def vectorbt_trades(candles, portfolio, column, one_set):
    """vectorbt's trades of ``column`` in :func:`btcore_trades`' layout; the exit
    reason from vectorbt's own stop rule (it records none)."""
    records = portfolio.trades.values  # the structured record array
    records = records[records["col"] == column]
    trades = []
    for rec in records:
        entry, exit_ = int(rec["entry_idx"]), int(rec["exit_idx"])
        side = 1 if rec["direction"] == 0 else -1
        if rec["status"] == 0:  # open at the end
            trades.append((entry, -1, side, float(rec["size"]), float(rec["entry_price"]),
                           math.nan, "end", math.nan))
            continue
        peak = max([rec["entry_price"], *candles.high[entry + 1:exit_]])
        stop = vbt_stop(candles, exit_, rec["entry_price"], peak, one_set)
        reason = "signal" if stop is None else stop[1]
        trades.append((entry, exit_, side, float(rec["size"]), float(rec["entry_price"]),
                       float(rec["exit_price"]), reason, float(rec["pnl"])))
    return trades


# ------------------------------------------------------------------ where the rules differ
def first_difference(candles, trades, one_set):
    """``(bar, rule)``: the first bar where a rule of the module docstring's list
    (1-4) applies to btcore's ``trades``, or ``(None, None)``."""
    up, _ = candles.crossings(one_set["fast_window"], one_set["slow_window"])
    found = []
    for entry, exit_, _, _, entry_price, _, reason, _ in trades:
        if exit_ < 0:
            continue
        stopped = reason in ("stop_loss", "take_profit", "trailing_stop")
        if stopped and exit_ == entry:
            found.append((exit_, 1))  # a stop on the entry bar
            continue
        peak = max([entry_price, *candles.high[entry + 1:exit_]])
        vbt = vbt_stop(candles, exit_, entry_price, peak, one_set)
        if reason == "signal" and vbt is not None:
            found.append((exit_, 2))  # vectorbt takes the stop over the open's order
        elif reason == "take_profit" and vbt is not None and vbt[1] != "take_profit":
            found.append((exit_, 3))  # a gap beyond the take-profit, the stop reached inside
        if stopped and up[exit_]:
            found.append((exit_ + 1, 4))  # an entry decided at the close of a stop bar
    return min(found) if found else (None, None)


def same_trade(a, b, tolerance):
    """Bars, side, reason equal; shares, prices and P&L within ``tolerance`` (relative)."""
    if a[0] != b[0] or a[1] != b[1] or a[2] != b[2] or a[6] != b[6]:
        return False
    for x, y in zip(a[3:6] + a[7:], b[3:6] + b[7:]):
        if math.isnan(x) and math.isnan(y):
            continue
        if not abs(x - y) <= tolerance * max(1.0, abs(x), abs(y)):
            return False
    return True


def parity(candles, sets, *, tolerance=1e-9, fixed_fee=0.0, min_parity=20):
    """Compare both engines' trades on ``sets``; raise AssertionError on a mismatch.

    Returns a dict: the sets compared in full, the sets with a known difference
    (compared up to it), the trades compared and the largest relative difference.
    """
    portfolio = vectorbt_portfolio(candles, sets, fixed_fee)
    full, partial, n_trades, largest = 0, 0, 0, 0.0
    reasons = dict.fromkeys(REASONS, 0)
    rules = {1: 0, 2: 0, 3: 0, 4: 0}
    diverged = 0  # flagged sets whose whole trade lists do differ
    for column, one_set in enumerate(sets):
        ours = btcore_trades(candles, one_set, fixed_fee)
        theirs = vectorbt_trades(candles, portfolio, column, one_set)
        cut, rule = first_difference(candles, ours, one_set)
        if cut is None:
            full += 1
        else:  # identical up to the bar where a known difference applies
            partial += 1
            rules[rule] += 1
            diverged += len(ours) != len(theirs) or not all(
                same_trade(a, b, tolerance) for a, b in zip(ours, theirs))
            ours = [t for t in ours if 0 <= t[1] < cut]
            theirs = [t for t in theirs if 0 <= t[1] < cut]
        if len(ours) != len(theirs):
            raise AssertionError(f"set {one_set}: btcore has {len(ours)} trades, vectorbt "
                                 f"{len(theirs)} (before bar {cut})")
        for a, b in zip(ours, theirs):
            if not same_trade(a, b, tolerance):
                raise AssertionError(f"set {one_set}: trades differ\n  btcore   {a}\n"
                                     f"  vectorbt {b}")
            for x, y in zip(a[3:6] + a[7:], b[3:6] + b[7:]):
                if not (math.isnan(x) or math.isnan(y)):
                    largest = max(largest, abs(x - y) / max(1.0, abs(x)))
            reasons[a[6]] += 1
        n_trades += len(ours)
    if full < min_parity:
        raise AssertionError(f"only {full} sets free of the known differences (need "
                             f"{min_parity}): widen the stops or add sets")
    return {"full": full, "partial": partial, "trades": n_trades, "largest": largest,
            "reasons": reasons, "rules": rules, "diverged": diverged}


def parity_sets():
    return [{"fast_window": f, "slow_window": s, **stops}
            for (f, s), stops in itertools.product(PARITY_WINDOWS, PARITY_STOPS)]


# ------------------------------------------------------------------ timing
def btcore_runner(candles, grid):
    """The kernel alone: ``run_task`` on one task of every set (indicators, the
    execution kernel, metrics)."""
    stops = {k: v for k, v in grid.items() if k in STOPS}
    params = {k: v for k, v in grid.items() if k not in STOPS}
    job = prepare({**params, **stops}, CROSSING, candles.data, start=candles.start, end=None,
                  initial_capital=INITIAL_CAPITAL, cost_bps=COST_BPS, periods_per_year=252.0,
                  assets=None, debug=False, options=dict(SETTINGS)).job
    shared, task = job.payload(), Task(0, 0, 0, 0, job.n_sets, 0.0)
    run_task(shared, task)  # compile or load
    return lambda: run_task(shared, task)


def btcore_sweep_runner(candles, grid):
    """End to end: ``run_sweep`` (validation, the kernel, the result table), serial."""
    def run():
        return run_sweep(grid, CROSSING, candles.data, start=candles.start,
                         initial_capital=INITIAL_CAPITAL, cost_bps=COST_BPS, progress=False,
                         **SETTINGS)
    run()
    return run


def grid_sets(grid):
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*grid.values())]


def signal_arrays(candles, sets):
    """(entries, exits) (bars, sets): the orders of each set, as a vectorbt user builds
    them (pandas rolling means per window, crossings, one bar later)."""
    history = pd.Series(candles.close_full)
    means = {w: history.rolling(w).mean().to_numpy()[candles.first:]
             for w in {s[k] for s in sets for k in ("fast_window", "slow_window")}}
    entries = np.zeros((candles.n_bars, len(sets)), dtype=bool)
    exits = np.zeros_like(entries)
    for j, s in enumerate(sets):
        above = means[s["fast_window"]] > means[s["slow_window"]]
        before = np.concatenate(([False], above[:-1]))
        entries[1:, j] = (above & ~before)[:-1]
        exits[1:, j] = (~above & before)[:-1]
    return entries, exits


def vbt_runners(candles, grid, n_sets):
    """(simulation only, end to end) for the first ``n_sets`` sets of ``grid``: the
    first times ``from_signals`` on prebuilt signals; the second builds the signals,
    simulates and computes btcore's metric columns (``_peers.vectorbt_metrics``)."""
    from _peers import vectorbt_metrics
    sets = grid_sets(grid)[:n_sets]
    entries, exits = signal_arrays(candles, sets)
    vectorbt_metrics(vbt_from_signals(candles, entries[:, :2], exits[:, :2], sets[:2]))

    def end_to_end():
        fresh_entries, fresh_exits = signal_arrays(candles, sets)
        return vectorbt_metrics(vbt_from_signals(candles, fresh_entries, fresh_exits, sets))
    return lambda: vbt_from_signals(candles, entries, exits, sets), end_to_end, len(sets)


def timed(runners, repeats, rounds):
    """Best seconds of each runner, ``rounds`` interleaved rounds of ``repeats`` calls."""
    best = dict.fromkeys(runners, math.inf)
    for _ in range(rounds):
        for name, run in runners.items():
            for _ in range(repeats):
                started = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - started)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--sets", type=int, default=1000,
                        help="vectorbt columns timed (lower it if memory is short)")
    parser.add_argument("--min-parity", type=int, default=20)
    parser.add_argument("--fixed-fee", type=float, default=1.0,
                        help="fee_per_trade / fixed_fees of the extra sizing comparison")
    args = parser.parse_args(argv)
    import vectorbt as vbt
    candles = Candles(aapl_candles())

    sets = parity_sets()
    report = parity(candles, sets, min_parity=args.min_parity)
    print(f"parity (vectorbt {vbt.__version__}): {len(sets)} sets, next-open fills, "
          f"{COST_BPS:g} bps fees, {SETTINGS['slippage_bps']:g} bps slippage")
    print(f"  identical trades on {report['full']} sets in full and on {report['partial']} "
          f"up to a documented difference; {report['trades']} trades, largest relative "
          f"difference {report['largest']:.1e}")
    print(f"  first known difference on those {report['partial']} sets, by rule (1-4 of the "
          f"docstring): " + ", ".join(f"{k}: {v}" for k, v in report["rules"].items())
          + f"; {report['diverged']} of them do end with different trades")
    print("  exit reasons compared: " + ", ".join(f"{k} {v}" for k, v in
                                                  report["reasons"].items()))
    print(f"  with fixed fees of {args.fixed_fee:g}: " + fixed_fee_summary(candles, sets,
                                                                            args.fixed_fee))

    print(f"\ntiming: one thread, {candles.n_bars:,} bars, best of {args.repeats} x "
          f"{args.rounds} interleaved rounds")
    print(f"{'grid':<28} {'what':<36} {'sets':>5} {'seconds':>8} {'M param-bars/s':>15} "
          f"{'btcore faster':>14}")
    for name, grid in TIMED_GRIDS.items():
        n_ours = len(grid_sets(grid))
        simulate, end_to_end, n_theirs = vbt_runners(candles, grid, args.sets)
        runners = {"btcore kernel (run_task)": btcore_runner(candles, grid),
                   "vectorbt from_signals": simulate,
                   "btcore run_sweep (table)": btcore_sweep_runner(candles, grid),
                   "vectorbt signals+from_signals+metrics": end_to_end}
        sizes = {"btcore kernel (run_task)": n_ours, "vectorbt from_signals": n_theirs,
                 "btcore run_sweep (table)": n_ours,
                 "vectorbt signals+from_signals+metrics": n_theirs}
        best = timed(runners, args.repeats, args.rounds)
        speed = {k: sizes[k] * candles.n_bars / best[k] for k in runners}
        pairs = {"vectorbt from_signals": "btcore kernel (run_task)",
                 "vectorbt signals+from_signals+metrics": "btcore run_sweep (table)"}
        for what in runners:
            ratio = f"{speed[pairs[what]] / speed[what]:>13.1f}x" if what in pairs else ""
            print(f"{name:<28} {what:<36} {sizes[what]:>5} {best[what]:>8.3f} "
                  f"{speed[what] / 1e6:>15.1f} {ratio}")
    if args.sets < 1000:
        print(f"(vectorbt timed on the first {args.sets} sets of each grid)")


def fixed_fee_summary(candles, sets, fixed_fee):
    """Difference 5: the same bars, prices and reasons; how many share counts differ."""
    portfolio = vectorbt_portfolio(candles, sets, fixed_fee)
    compared = differing = 0
    for column, one_set in enumerate(sets):
        ours = btcore_trades(candles, one_set, fixed_fee)
        if first_difference(candles, ours, one_set)[0] is not None:
            continue
        theirs = vectorbt_trades(candles, portfolio, column, one_set)
        assert [(t[0], t[1], t[2], t[6]) for t in ours] == \
            [(t[0], t[1], t[2], t[6]) for t in theirs], one_set
        for a, b in zip(ours, theirs):
            assert abs(a[4] - b[4]) <= 1e-9 * a[4], (one_set, a, b)
            compared += 1
            differing += a[3] != b[3]
    return (f"same bars, sides, prices and reasons on {compared} trades; {differing} "
            f"share counts differ (vectorbt sizes from cash - fixed fee)")


if __name__ == "__main__":
    main()
