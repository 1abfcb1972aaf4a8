"""The portfolio job: a single-asset strategy's sets over a whole universe, as
one account (``docs/portfolios.md``).

The accounting lives in :mod:`btcore.kernels.portfolio`; this module validates
the inputs, binds the strategy's functions to the portfolio kernel (the
``portfolio`` kind of :func:`btcore.kernels.binding.kernel_ref`: a generated,
disk-cached kernel module) and runs one task (a range of sets over the
universe). The engine runs the job like any other (:func:`btcore.engine.run_job`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import btcore.strategies as strategies
from btcore.benchmark import benchmark_values, equal_weight_buy_and_hold
from btcore.engine import Task, check_targets
from btcore.grid import Grid, as_grid
from btcore.kernels.binding import KernelRef, debug_functions, kernel_ref, load_kernel
from btcore.kernels.portfolio import (CONSTRUCTION, N_CONSTRUCTION, PORTFOLIO_OUT_ROWS,
                                      empty_portfolio_record, portfolio_kernel_nb)
from btcore.workflows.base import prepare

# ------------------------------------------------------------------ one task
def run_portfolio_task(shared: dict, task: Task, record=None) -> np.ndarray:
    """Evaluate parameter sets ``task.start:task.stop`` on the shared universe:
    ``out`` (PORTFOLIO_OUT_ROWS, n_sets). Every array handed to the kernel is a
    fresh C-contiguous copy (one compiled specialisation whatever the transport)."""
    rows = slice(task.start, task.stop)
    set_series = shared["set_series"][rows]
    needed, local = np.unique(set_series, return_inverse=True)
    series = shared["series"][needed]
    capital, cost_bps, periods_per_year = (float(v) for v in shared["settings"])
    close = np.ascontiguousarray(shared["close"], dtype=np.float64)
    out = np.empty((PORTFOLIO_OUT_ROWS, task.n_sets), dtype=np.float64)
    record_equity, record_layers = (empty_portfolio_record(close.shape[1]) if record is None
                                    else record)
    args = (close, np.array(shared["first_bars"], dtype=np.int64), int(shared["last_bar"]),
            np.ascontiguousarray(series[:, 0], dtype=np.int64),
            np.ascontiguousarray(series[:, 1:], dtype=np.float64),
            np.ascontiguousarray(local.reshape(set_series.shape), dtype=np.int64),
            np.array(shared["params"][rows], dtype=np.float64),
            np.array(shared["options"], dtype=np.float64),
            np.array(shared["construction"][rows], dtype=np.float64),
            capital, cost_bps, periods_per_year, out, record_equity, record_layers)
    if shared["debug"]:  # plain Python: breakpoints and prints in the strategy work
        portfolio_kernel_nb.py_func(*args, *debug_functions(shared["strategy_kernel"]))
    else:
        load_kernel(shared["kernel"]).portfolio_batch_nb(*args)
    return out


# ---------------------------------------------------------------- preparing
#: an asset-bar of the portfolio kernel costs about this many bars of the single-asset
#: kernel (49 vs 108 M param-bars/s on the bundled sample, the same mean-reversion
#: grid, run_portfolio_sweep vs run_sweep stats, one thread): the nominal speed of
#: resumable plans (``btcore.store``) divides by it
PORTFOLIO_COST_FACTOR = 2.0


@dataclass
class PortfolioJob:
    """A validated portfolio sweep (parameter sets sorted as ``sweep.prepare`` sorts)."""

    prepared: object          # btcore.workflows.sweep.Prepared (single-asset job, for its arrays)
    construction: np.ndarray  # (n_sets, N_CONSTRUCTION), sorted order
    grid_construction: dict   # construction name -> values in grid order
    kernel: KernelRef

    @property
    def job(self):
        return self.prepared.job

    @property
    def first_bar(self) -> int:
        return int(self.job.first_bar[:, 0].min())

    @property
    def last_bar(self) -> int:
        return int(self.job.windows[0, -1])

    @property
    def n_assets(self) -> int:
        return int(self.job.close.shape[1])

    @property
    def asset_bars(self) -> int:
        """Bars x assets one parameter set runs over (one task block)."""
        return (self.last_bar - self.first_bar + 1) * self.n_assets

    # the engine's job protocol (btcore.engine.Job): every set over one block, the
    # whole universe
    @property
    def n_sets(self) -> int:
        return self.job.n_sets

    @property
    def traded_bars(self) -> np.ndarray:
        return np.array([[self.asset_bars]], dtype=np.int64)

    @property
    def close(self) -> np.ndarray:
        return self.job.close

    @property
    def strategy(self):
        return self.job.strategy

    @property
    def debug(self) -> bool:
        return self.job.debug

    @property
    def name(self) -> str:
        return f"{self.job.strategy.name} portfolio"

    @property
    def cost_factor(self) -> float:
        return self.job.strategy.cost_factor * PORTFOLIO_COST_FACTOR

    @property
    def task_fn(self):
        return run_portfolio_task

    def benchmark(self) -> tuple:
        """``(equity, benchmark_return, benchmark_sharpe)`` of equal-weight buy-and-hold
        of the universe over the traded bars, from the initial capital
        (:func:`btcore.benchmark.equal_weight_buy_and_hold`)."""
        job = self.job
        equity = equal_weight_buy_and_hold(job.close, job.first_bar[:, 0], self.last_bar,
                                           job.initial_capital)
        return (equity, *benchmark_values(equity, job.periods_per_year))

    def check(self, task: Task, out: np.ndarray) -> None:
        check_targets(self.job, task, out[None])  # the flag row is where a sweep's has it

    def payload(self) -> dict:
        job = self.job
        return {"kernel": self.kernel, "close": job.close,
                "first_bars": np.ascontiguousarray(job.first_bar[:, 0]),
                "last_bar": self.last_bar, "params": job.params, "series": job.series,
                "set_series": job.set_series, "options": job.options,
                "construction": self.construction,
                "settings": np.array([job.initial_capital, job.cost_bps,
                                      job.periods_per_year]),
                "debug": job.debug, "strategy_kernel": job.kernel}


def _check_construction_value(name: str, values: np.ndarray) -> None:
    """ValueError for a construction setting outside its range (inf = none)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if np.isnan(values).any() or (values == -np.inf).any():
        raise ValueError(f"{name} must be a number (inf or None for none), got NaN or -inf")
    if name == "rebalance_every":
        bad = finite[(finite < 1) | (finite != np.round(finite))]
        if bad.size:
            raise ValueError(f"rebalance_every must be a whole number of bars >= 1 (None or inf "
                             f"for no rebalancing), got {bad[0]:g}")
    elif name == "portfolio_stop_drawdown":
        bad = finite[(finite <= 0) | (finite >= 1)]
        if bad.size:
            raise ValueError(f"portfolio_stop_drawdown is a fraction of the peak in (0, 1), "
                             f"got {bad[0]:g}")
    else:
        bad = finite[finite <= 0]
        if bad.size:
            raise ValueError(f"{name} must be > 0 (a fraction of equity; None for no cap), "
                             f"got {bad[0]:g}")


def _keyword_value(name: str, value) -> float:
    if value is None:
        return np.inf
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number or None, got {value!r}")
    _check_construction_value(name, np.array([float(value)]))
    return float(value)


def _strategy_grid(columns: dict, n_rows: int, spec):
    """A :class:`~btcore.grid.Grid` of the strategy's columns; its rows may repeat once
    the construction columns are split off (they differ there), so it is built
    without ``Grid``'s distinct-rows check."""
    unknown = [n for n in columns if n not in spec.param_names]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for strategy {spec.name!r} (the "
                         f"portfolio construction columns are {list(CONSTRUCTION)}); its "
                         f"parameters are:\n{spec.describe()}")
    if not columns:  # only construction columns: the strategy runs its defaults
        first = spec.params[0]
        columns = {first.name: np.full(n_rows, float(first.default))}
    grid = Grid.__new__(Grid)
    grid._columns = {name: np.asarray(values, dtype=np.float64) for name, values in
                     columns.items()}
    for values in grid._columns.values():
        values.flags.writeable = False
    return grid.with_defaults(spec)


def prepare_portfolio(grid, strategy, data, *, start, end, initial_capital, cost_bps,
                      periods_per_year, assets, options, rebalance_every=None,
                      max_gross_exposure=None, max_position_weight=None,
                      portfolio_stop_drawdown=None, debug=False) -> PortfolioJob:
    """Validate every input and build the portfolio job (no kernel runs here)."""
    spec = strategies.get(strategy)
    keywords = {"rebalance_every": rebalance_every, "max_gross_exposure": max_gross_exposure,
                "max_position_weight": max_position_weight,
                "portfolio_stop_drawdown": portfolio_stop_drawdown}
    full = as_grid(grid)
    columns = full.columns
    n_rows = len(full)
    construction = {}
    for name in CONSTRUCTION:
        if name in columns:
            if keywords[name] is not None:
                raise ValueError(f"{name} is both a grid column and a keyword; give it once")
            values = np.asarray(columns.pop(name), dtype=np.float64)
            _check_construction_value(name, values)
            construction[name] = values
        else:
            construction[name] = np.full(n_rows, _keyword_value(name, keywords[name]))
    strategy_grid = _strategy_grid(columns, n_rows, spec)
    prepared = prepare(strategy_grid, spec, data, start=start, end=end,
                       initial_capital=initial_capital, cost_bps=cost_bps,
                       periods_per_year=periods_per_year, assets=assets, debug=debug,
                       options=options)
    if prepared.job.execution is not None:
        given = sorted(set(prepared.job.execution.settings()) |
                       set(prepared.job.execution.grid_names))
        raise ValueError(f"{given}: fills at the next bar, price stops, sizing and the costs "
                         "beyond cost_bps apply to single-asset runs (run_sweep, backtest, "
                         "walk_forward, monte_carlo); portfolio sweeps do not model them yet")
    order = prepared.job.order
    matrix = np.column_stack([construction[name] for name in CONSTRUCTION])[order]
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    matrix.flags.writeable = False
    assert matrix.shape[1] == N_CONSTRUCTION
    prepared.settings["portfolio"] = True
    prepared.settings.update({name: keywords[name] for name in CONSTRUCTION})
    return PortfolioJob(prepared, matrix, construction, kernel_ref(spec, "portfolio"))
