"""Portfolios of one account: ``run_portfolio_sweep``.

Each parameter set of a single-asset strategy trades every asset of a universe
as a *sleeve* of one account (``docs/portfolios.md``): the job is
:mod:`btcore.workflows.portfolio_job`, the replay of one row
:mod:`btcore.workflows.portfolio_backtest`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from btcore.engine import ArraySink
from btcore.kernels.portfolio import (AVG_CORRELATION_ROW, CONSTRUCTION, PORTFOLIO_OUT_ROWS,
                                      TURNOVER_ROW)
from btcore.kernels.single import RUINED_ROW
from btcore.metrics import INTEGER_METRICS, METRIC_NAMES
from btcore.settings import check_arguments
from btcore.store import ResultStore
from btcore.workflows.base import RunOptions, execute
from btcore.workflows.portfolio_backtest import PortfolioBacktestResult, portfolio_backtest
from btcore.workflows.portfolio_job import PortfolioJob, prepare_portfolio
from btcore.workflows.sweep import SweepResult


def build_portfolio_table(pjob: PortfolioJob, out: np.ndarray) -> pd.DataFrame:
    """One row per parameter set (grid order, then best Sharpe first, stable)."""
    job = pjob.job
    n_sets = job.n_sets
    position = np.empty(n_sets, dtype=np.int64)
    position[job.order] = np.arange(n_sets)
    grid_out = out[:, position]  # grid order
    sharpe = grid_out[METRIC_NAMES.index("sharpe_ratio")]
    rows = np.argsort(-np.nan_to_num(sharpe, nan=-np.inf), kind="stable")
    front = {}
    columns = pjob.prepared.grid.columns
    for param in job.strategy.params:
        values = np.asarray(columns[param.name])[rows]
        front[param.name] = values.astype(np.int64) if param.kind is int else values
    for name in CONSTRUCTION:
        front[name] = pjob.grid_construction[name][rows]
    table = pd.DataFrame(front)
    for m, name in enumerate(METRIC_NAMES):
        values = grid_out[m, rows]
        table[name] = values.astype(np.int64) if name in INTEGER_METRICS else values
    table["turnover"] = grid_out[TURNOVER_ROW, rows]
    table["avg_correlation"] = grid_out[AVG_CORRELATION_ROW, rows]
    _, benchmark_return, benchmark_sharpe = pjob.benchmark()
    table["benchmark_return"] = np.full(n_sets, benchmark_return)
    table["excess_return"] = table["total_return"].to_numpy() - benchmark_return
    table["benchmark_sharpe"] = np.full(n_sets, benchmark_sharpe)
    table["ruined"] = grid_out[RUINED_ROW, rows] != 0.0
    return table


@dataclass
class PortfolioSweepResult(SweepResult):
    """:class:`~btcore.workflows.sweep.SweepResult` of :func:`run_portfolio_sweep`: one row per
    parameter set (one account over the universe); :meth:`backtest` replays a row
    with :func:`portfolio_backtest`."""

    def backtest(self, row=0, data=None, **overrides):
        row, spec, settings = self._replay(row, overrides, keys=("assets",))
        return portfolio_backtest(row, spec, self._data if data is None else data, **settings)

    def pbo(self, asset=None):  # pragma: no cover - not kept for portfolios
        raise ValueError("pbo() is not available for portfolio sweeps")


def run_portfolio_sweep(grid, strategy="mean_reversion", data=None, *, rebalance_every=None,
                        max_gross_exposure=None, max_position_weight=None,
                        portfolio_stop_drawdown=None, executor="serial", start=None, end=None,
                        initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None,
                        progress=None, batch_size="auto", assets=None, out=None,
                        overwrite=False, on_progress=None, debug=False,
                        **strategy_options) -> PortfolioSweepResult:
    """Backtest every parameter set of ``grid`` as one account trading every asset.

    Each asset of ``data`` (or of ``assets``) is a sleeve of the single-asset
    strategy, starting with ``initial_capital / n_assets`` and sizing from its own
    cash; the account's equity is the sum of the sleeves (``docs/portfolios.md``).

    Parameters
    ----------
    grid : dict of lists, DataFrame, list of dicts or Grid
        Strategy parameter sets; the construction settings below may be grid
        columns too (swept; ``inf`` means none).
    strategy : str or StrategySpec, default "mean_reversion"
        A single-asset strategy.
    data : MarketData, pandas object, path, or None (the bundled 20-stock sample)
    rebalance_every : int, optional
        Every this many bars from the first traded bar, each sleeve's budget is
        reset to equity / n and open positions are resized to floor(budget / close).
    max_gross_exposure : float, optional
        Cap on sum |shares x close| / equity, checked at each entry (scaled down to fit).
    max_position_weight : float, optional
        Cap on an entry's |shares x close| / equity.
    portfolio_stop_drawdown : float in (0, 1), optional
        Equity / peak - 1 <= -d closes every position; the account stays flat.
    executor, start, end, initial_capital, cost_bps, periods_per_year, progress,
    batch_size, assets, on_progress, debug, **strategy_options
        As in :func:`btcore.run_sweep`.
    out : str or path, optional
        A directory keeping every finished task, so re-running the same call
        after a crash or Ctrl-C computes only the missing ones (a different run
        there is an error unless ``overwrite=True``); the table is saved there as
        ``table.parquet``.

    Returns
    -------
    PortfolioSweepResult
        ``table``: parameters, the four construction columns, the portfolio's
        metrics, ``turnover`` and ``avg_correlation`` (NaN in sweeps; see
        :func:`portfolio_backtest`), ``benchmark_return``, ``excess_return`` and
        ``benchmark_sharpe`` (equal-weight buy-and-hold of the universe over the
        same bars, ``btcore.benchmark``), ``ruined``.

    Raises
    ------
    ValueError, TypeError
        Bad grid, data, assets, window, settings, construction values or
        options, before any work starts.
    """
    started = time.perf_counter()
    check_arguments(strategy_options, strategy, run_portfolio_sweep)
    options = RunOptions(executor, batch_size, progress, on_progress, debug, out,
                         overwrite).check()
    pjob = prepare_portfolio(grid, strategy, data, start=start, end=end,
                             initial_capital=initial_capital, cost_bps=cost_bps,
                             periods_per_year=periods_per_year, assets=assets,
                             options=strategy_options, rebalance_every=rebalance_every,
                             max_gross_exposure=max_gross_exposure,
                             max_position_weight=max_position_weight,
                             portfolio_stop_drawdown=portfolio_stop_drawdown, debug=debug)
    sink = ArraySink(PORTFOLIO_OUT_ROWS, pjob.n_sets, "portfolio")
    run = execute(pjob, sink, options, started=started, open_store=lambda: ResultStore.open(
        out, pjob.prepared, batch_size=batch_size, overwrite=overwrite, kind="arrays",
        extra=dict(pjob.grid_construction), workflow="run_portfolio_sweep"),
        settings=pjob.prepared.settings)
    table = build_portfolio_table(pjob, sink.out)
    run.stats["assets"] = pjob.n_assets
    stats = run.finish("sharpe_ratio", {"table": table})
    job = pjob.job
    return PortfolioSweepResult(table, stats, job.strategy.name, pjob.prepared.settings,
                                job.strategy, pjob.prepared.data)


__all__ = ["run_portfolio_sweep", "portfolio_backtest", "PortfolioSweepResult",
           "PortfolioBacktestResult", "build_portfolio_table", "CONSTRUCTION"]
