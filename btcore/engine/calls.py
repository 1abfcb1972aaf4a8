"""Calling a strategy's batch kernel for one task: the kernel's arguments (prices,
candles, the task's sets, settings, output arrays), fresh per task, and the call
itself, compiled or as plain Python (``debug``)."""
from __future__ import annotations

import numpy as np

from btcore.kernels.binding import KINDS, KernelRef, debug_functions, load_kernel
from btcore.kernels.execution import TRADE_FIELDS, no_trades
from btcore.kernels.single import OUT_ROWS, batch_kernel_nb, empty_record, no_blocks
from btcore.kernels.single_exec import exec_batch_kernel_nb


def block_index(first_bar: int, last_bar: int, n_bars: int, n_blocks: int,
                starts=None) -> np.ndarray:
    """Bar -> block of ``numpy.array_split`` of the traded bars into ``n_blocks``, or
    with ``starts`` (each block's first bar, ascending) the block each bar falls in."""
    bar_block = np.full(n_bars, -1, dtype=np.int64)
    if starts is not None:
        bars = np.arange(first_bar, last_bar + 1)
        bar_block[bars] = np.searchsorted(np.asarray(starts), bars, side="right") - 1
        return bar_block
    for block, bars in enumerate(np.array_split(np.arange(first_bar, last_bar + 1), n_blocks)):
        bar_block[bars] = block
    return bar_block


def kernel_args(shared: dict, task, record: np.ndarray | None = None,
                indicators_only: bool = False, trades: np.ndarray | None = None) -> tuple:
    """``(args, out, block_sums)``: the batch kernel's arguments for ``task``, and
    the arrays it fills. ``indicators_only``: the task's indicator series, no set.
    With execution settings, the execution kernel's (``trades``: a replay's log)."""
    n_sets = 0 if indicators_only else task.n_sets
    series_ids, series_params, local, params, options = _set_arrays(shared, task.start,
                                                                    task.stop, n_sets)
    checkpoints = np.array(shared["windows"][task.window], dtype=np.int64)
    first_bar = int(shared["first_bar"][task.column, task.window])
    # indicators are causal (out[t] uses closes up to t): bars after the window's
    # last checkpoint are never read, so they are not computed
    execution = shared.get("execution")
    close, candles = column_bars(shared, task.column, int(checkpoints[-1]) + 1,
                                 execution is not None)
    n_blocks = int(shared["n_blocks"])
    if n_blocks:
        bar_block = block_index(first_bar, int(checkpoints[-1]), close.shape[0], n_blocks,
                                shared.get("block_starts"))
        block_sums = np.zeros((n_sets, n_blocks, 2))
    else:
        bar_block, block_sums = no_blocks(n_sets)
    capital, cost_bps, periods_per_year = (float(v) for v in shared["settings"])
    out = np.empty((len(checkpoints), OUT_ROWS, n_sets), dtype=np.float64)
    record = empty_record() if record is None else record
    if execution is None:
        args = (close, first_bar, checkpoints, series_ids, series_params, local, params,
                options, capital, cost_bps, periods_per_year, bar_block, block_sums, out,
                record)
        return args, out, block_sums
    # the grid's execution columns follow the strategy's parameters (ExecutionSpec)
    n_own = params.shape[1] - len(execution.grid_names)
    rows = execution.rows(execution.grid_names, params[:, n_own:])
    args = (close, *candles, first_bar, checkpoints,
            series_ids, series_params, local, np.ascontiguousarray(params[:, :n_own]),
            options, rows, execution.fill_mode, execution.fractional_shares, capital, cost_bps,
            periods_per_year, bar_block, block_sums, out, record,
            no_trades() if trades is None else trades)
    return args, out, block_sums


def column_bars(shared: dict, column: int, n_bars: int, candles: bool) -> tuple:
    """Column ``column``'s first ``n_bars`` closes and, with ``candles``, its
    ``(open, high, low)``: an asset's, or a Monte Carlo path's whole candles when the
    generator was fitted on them; close-only data passes the closes three times
    (stops then act on closes). Always fresh writable copies: one compiled
    specialisation (see :func:`column_prices`)."""
    generator = shared.get("paths")
    if candles and generator is not None and generator.shapes is not None:
        bars = generator.candles(column)
        return (np.ascontiguousarray(bars[3][:n_bars]),
                tuple(np.ascontiguousarray(side[:n_bars]) for side in bars[:3]))
    close = column_prices(shared, column)[:n_bars]
    if not candles:
        return close, None
    fields = shared.get("candles")
    if fields is None or generator is not None:
        return close, (close, close, close)
    return close, tuple(np.array(field[:n_bars, column], dtype=np.float64) for field in fields)


def trade_log(n_bars: int) -> np.ndarray:
    """A replay's empty trade log: at most one entry per bar."""
    return np.full((n_bars + 1, TRADE_FIELDS), np.nan)


#: batches of sets whose kernel arrays a payload keeps (tasks of other columns and
#: windows reuse them: every Monte Carlo path, every walk-forward fold)
SET_ARRAYS_KEPT = 256


def _set_arrays(shared: dict, start: int, stop: int, n_sets: int) -> tuple:
    """The kernel's arrays of sets ``start:stop`` (the first ``n_sets`` of them):
    ``(series ids, series parameters, each set's local series, parameters,
    options)``, C-contiguous; made once per payload and batch (the kernel only
    reads them), so a task of many columns or windows does not rebuild them."""
    kept = shared.get("_set_arrays")
    if kept is None:
        kept = shared.setdefault("_set_arrays", {})
    key = (start, stop, n_sets)
    arrays = kept.get(key)
    if arrays is None:
        sets = shared["sets"]
        set_series = sets.set_series(start, stop)
        needed, local = np.unique(set_series, return_inverse=True)
        series = sets.series[needed]
        arrays = (np.ascontiguousarray(series[:, 0], dtype=np.int64),
                  np.ascontiguousarray(series[:, 1:]),
                  np.ascontiguousarray(local.reshape(set_series.shape)[:n_sets],
                                       dtype=np.int64),
                  np.array(sets.params(start, stop)[:n_sets], dtype=np.float64),
                  np.array(shared["options"], dtype=np.float64))
        if len(kept) >= SET_ARRAYS_KEPT:
            kept.clear()
        kept[key] = arrays
    return arrays


def column_prices(shared: dict, column: int) -> np.ndarray:
    """Column ``column``'s closes as a fresh C-contiguous array: an asset's, or with
    ``paths`` the k-th generated path (``paths.path(base_close, k)``), made in the
    task so paths are never shipped."""
    generator = shared.get("paths")
    if generator is not None:
        return np.ascontiguousarray(generator.path(shared["close"][:, 0], column),
                                    dtype=np.float64)
    # a copy even when the column is contiguous already (one asset): the kernel
    # always sees a writable array, so one compiled specialisation serves every run
    # (a read-only view would compile the whole kernel a second time)
    return np.array(shared["close"][:, column], dtype=np.float64)


def run_kernel(ref: KernelRef, args: tuple, *, debug: bool = False) -> None:
    """Call the strategy's batch kernel: compiled, or as plain Python (``debug``:
    breakpoints and prints in the strategy work)."""
    execution = ref.module_name.startswith(KINDS["execution"].prefix + "_")
    if debug:
        kernel = exec_batch_kernel_nb if execution else batch_kernel_nb
        kernel.py_func(*args, *debug_functions(ref))
    elif execution:
        load_kernel(ref).exec_batch_nb(*args)
    else:
        load_kernel(ref).batch_nb(*args)
