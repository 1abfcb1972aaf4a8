"""``monte_carlo``: a strategy on N simulated price paths of one asset.

The paths are resampled from the asset's log returns and generated *where they
are simulated*: the job ships one base price series and a small
:class:`PathGenerator` (the method, the seed and the fitted log returns), and
each task makes its path's closes from the seed (``btcore.engine.column_prices``),
so 10,000 paths x 8,000 bars never mean 650 MB sent to every worker.

How paths are drawn: :mod:`btcore.workflows.paths`. The strategy then runs on
every path exactly as ``run_sweep`` would on a :class:`~btcore.MarketData`
holding that path (same window, capital, costs and options), on any executor,
bit for bit the same whatever the executor or batch size.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np
import pandas as pd

import btcore.strategies as strategies
from btcore._checks import check_int, check_number, is_int
from btcore.engine import DenseSink, Task, run_task
from btcore.settings import check_arguments
from btcore.store import stored_job
from btcore.kernels.single import RECORD_EQUITY, RECORD_ROWS, RUINED_ROW
from btcore.metrics import INTEGER_METRICS, METRIC_NAMES, N_METRICS
from btcore.workflows.base import RunOptions, execute, parameters_of, prepare, resolve_data
from btcore.workflows.paths import METHODS, PathGenerator

#: quantiles of :attr:`MonteCarloResult.summary` and the default fan of ``equity_quantiles``
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: paths replayed with per-bar equity by :meth:`MonteCarloResult.equity_quantiles` by default
MAX_EQUITY_PATHS = 1000
__all__ = ["METHODS", "MonteCarloResult", "PathGenerator", "monte_carlo", "percentile_of"]


# ------------------------------------------------------------------ the result
@dataclass
class MonteCarloResult:
    """Result of :func:`monte_carlo`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per path (x parameter set when ``params`` was a grid), path-major
        and sets in grid order: ``path``, ``set`` (the grid row; grids only), the
        parameter columns, every metric of ``run_sweep`` and ``ruined``.
    stats : dict
        The engine's execution facts (as ``SweepResult.stats``) plus ``elapsed_s``
        and ``n_paths``.
    strategy : str
    settings : dict
        The run settings (window, capital, costs, options, asset) and the
        Monte Carlo ones: ``n_paths``, ``method``, ``block_size``, ``seed``,
        ``n_log_returns``, ``log_return_mean``, ``log_return_std``.
    """

    table: pd.DataFrame
    stats: dict
    strategy: str
    settings: dict = field(default_factory=dict)
    _job: object = field(default=None, repr=False, compare=False)
    _sets: pd.DataFrame = field(default=None, repr=False, compare=False)
    _index: object = field(default=None, repr=False, compare=False)
    _equity: dict = field(default_factory=dict, repr=False, compare=False)
    _observed: pd.DataFrame = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------- shape
    @property
    def n_paths(self) -> int:
        return int(self.settings["n_paths"])

    @property
    def is_grid(self) -> bool:
        """True when ``params`` was a grid (the table has a ``set`` column)."""
        return "set" in self.table.columns

    @property
    def sets(self) -> pd.DataFrame:
        """The parameter sets, indexed by ``set`` (grid row)."""
        return self._sets.copy()

    @property
    def generator(self) -> PathGenerator:
        """The :class:`PathGenerator` that made the paths."""
        return self._job.paths

    def path(self, k: int) -> pd.Series:
        """Path ``k``'s closes over the data's bars (NaN before the asset's first bar),
        generated alone from the seed."""
        self._check_path(k)
        return pd.Series(self.generator.path(None, int(k)), index=self._index,
                         name=self.settings["assets"][0])

    # ------------------------------------------------------------ summaries
    @property
    def summary(self) -> pd.DataFrame:
        """Mean, std (ddof=1) and the 5/25/50/75/95 % quantiles of every metric over
        the paths (NaN values skipped; ruined paths included), then ``observed`` (the
        metric on the real data, :attr:`observed`) and ``percentile_of_observed``
        (its percentile among the paths, :func:`percentile_of`). Rows are those
        statistics; for a grid, a (set, statistic) MultiIndex."""
        observed = self.observed

        def describe(frame, row):
            values = frame[list(METRIC_NAMES)].to_numpy(dtype=np.float64)
            real = observed.loc[row, list(METRIC_NAMES)].to_numpy(dtype=np.float64)
            described = _describe(values)
            described.loc["observed"] = real
            described.loc["percentile_of_observed"] = [
                percentile_of(values[:, m], real[m]) for m in range(len(real))]
            return described
        if not self.is_grid:
            return describe(self.table, 0)
        parts = {s: describe(group, s) for s, group in self.table.groupby("set", sort=True)}
        return pd.concat(parts, names=["set", "statistic"])

    @property
    def observed(self) -> pd.DataFrame:
        """Every metric of each parameter set on the asset's real closes (same window,
        capital, costs and options), as ``run_sweep`` gives it: one row per set
        (indexed by ``set``), with ``ruined``. Computed in this process on first use."""
        if self._observed is None:
            job = replace(self._job, paths=None, first_bar=self._job.first_bar[:1])
            out = run_task(job.payload(), Task(0, 0, 0, 0, len(self._sets), 0.0))[-1]
            out = out[:, job.order.argsort()]  # sorted order -> grid order
            frame = pd.DataFrame(out[:N_METRICS].T, columns=list(METRIC_NAMES),
                                 index=self._sets.index)
            for name in INTEGER_METRICS:
                frame[name] = frame[name].astype(np.int64)
            frame["ruined"] = out[RUINED_ROW] != 0.0
            self._observed = frame
        return self._observed.copy()

    @property
    def prob_loss(self):
        """Share of paths with ``total_return < 0`` (a Series by ``set`` for a grid)."""
        loss = self.table["total_return"] < 0.0
        if not self.is_grid:
            return float(loss.mean())
        return loss.groupby(self.table["set"]).mean().rename("prob_loss")

    def plot(self, metric: str = "sharpe_ratio", set=None, max_paths=None):
        """The metric's distribution over paths and the equity fan; returns the
        matplotlib Figure (``plot`` extra)."""
        from btcore.plots import monte_carlo_figure
        return monte_carlo_figure(self, metric=metric, set=set, max_paths=max_paths)

    def equity_quantiles(self, q=QUANTILES, *, set=None,
                         max_paths: int = MAX_EQUITY_PATHS) -> pd.DataFrame:
        """Quantiles of the equity at every traded bar across paths, for a fan chart.

        The table keeps no per-bar data, so the first ``min(n_paths, max_paths)``
        paths (independent draws, hence a fair sample) are replayed here in this
        process with per-bar recording (the run's own kernel and paths: each
        replay's last equity is the table's ``final_value``). Replays are kept
        for further calls.

        Parameters
        ----------
        q : float or sequence of float in [0, 1]
        set : int, optional
            The grid row to show; required when ``params`` was a grid of several sets.
        max_paths : int, default 1000

        Returns
        -------
        pandas.DataFrame
            Traded bars (timestamps) x quantiles; ``.attrs["paths"]`` is the number
            of paths replayed.
        """
        quantiles = np.atleast_1d(np.asarray(q, dtype=np.float64))
        if quantiles.ndim != 1 or quantiles.size == 0 or np.isnan(quantiles).any() \
                or (quantiles < 0).any() or (quantiles > 1).any():
            raise ValueError(f"q must be quantiles in [0, 1], got {q!r}")
        check_int("max_paths", max_paths, 1)
        equity = self.equity_paths(set=set, max_paths=max_paths)
        values = np.quantile(equity, quantiles, axis=0).T
        fan = pd.DataFrame(values, index=equity.columns,
                           columns=pd.Index(quantiles, name="quantile"))
        fan.attrs["paths"] = len(equity)  # how many paths were replayed
        return fan

    def equity_paths(self, *, set=None, max_paths: int = MAX_EQUITY_PATHS) -> pd.DataFrame:
        """Per-bar equity of the first ``min(n_paths, max_paths)`` paths (paths x
        traded bars), replayed as :meth:`equity_quantiles` describes."""
        row = self._set_row(set)
        n = min(self.n_paths, int(max_paths))
        cached = self._equity.get(row)
        if cached is None or cached.shape[0] < n:
            cached = self._replay(row, n)
            self._equity[row] = cached
        job = self._job
        first, last = int(job.first_bar[0, 0]), int(job.windows[0, -1])
        return pd.DataFrame(cached[:n], index=pd.RangeIndex(n, name="path"),
                            columns=self._index[first:last + 1])

    def _replay(self, row: int, n: int) -> np.ndarray:
        job = self._job
        position = int(np.flatnonzero(job.order == row)[0])  # sorted position of the set
        first, last = int(job.first_bar[0, 0]), int(job.windows[0, -1])
        shared = job.payload()
        equity = np.empty((n, last - first + 1))
        record = np.empty((RECORD_ROWS, job.close.shape[0]))
        for k in range(n):
            record.fill(np.nan)
            run_task(shared, Task(k, k, 0, position, position + 1, 0.0), record)
            equity[k] = record[RECORD_EQUITY, first:last + 1]
        return equity

    def _set_row(self, set) -> int:
        n_sets = len(self._sets)
        if set is None:
            if n_sets > 1:
                raise ValueError(f"the grid has {n_sets} parameter sets; pick one with set= "
                                 f"(a grid row, 0..{n_sets - 1})")
            return 0
        if not is_int(set):
            raise TypeError(f"set must be a grid row (int), got {type(set).__name__}")
        if not 0 <= set < n_sets:
            raise IndexError(f"set {set} is outside the grid's {n_sets} rows")
        return int(set)

    def _check_path(self, k) -> None:
        if not is_int(k):
            raise TypeError(f"a path is an int, got {type(k).__name__}")
        if not 0 <= k < self.n_paths:
            raise IndexError(f"path {k} is outside the run's {self.n_paths} paths")

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        s = self.stats
        head = (f"MonteCarloResult({self.strategy} on {self.settings['assets'][0]}: "
                f"{self.n_paths:,} {self.settings['method']} paths x {len(self._sets):,} "
                f"set(s) in {s['elapsed_s']:.2f} s on {s['executor']} x{s['workers']})")
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            return head + "\n" + self.summary.head(14).to_string(float_format="{:.4g}".format)


def _describe(values: np.ndarray) -> pd.DataFrame:
    """mean, std, quantiles of each column of ``values`` (rows = paths), NaN skipped."""
    stats = {}
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        stats["mean"] = np.nanmean(values, axis=0)
        stats["std"] = np.nanstd(values, axis=0, ddof=1)
        for q, v in zip(QUANTILES, np.nanquantile(values, QUANTILES, axis=0)):
            stats[f"{q * 100:g}%"] = v
    frame = pd.DataFrame(stats, index=list(METRIC_NAMES)).T
    frame.index.name = "statistic"
    return frame


def percentile_of(simulated: np.ndarray, observed: float) -> float:
    """Percentile (0-100) of ``observed`` among the non-NaN ``simulated`` values: the
    share strictly below plus half the share equal (``scipy.stats.percentileofscore``
    with ``kind="mean"``); NaN when ``observed`` is NaN or every value is NaN."""
    finite = simulated[~np.isnan(simulated)]
    if np.isnan(observed) or finite.size == 0:
        return np.nan
    below = np.count_nonzero(finite < observed)
    equal = np.count_nonzero(finite == observed)
    return float(100.0 * (below + 0.5 * equal) / finite.size)


class _quiet_nan_warnings:
    """All-NaN columns (e.g. win_rate without trades) give NaN without a warning."""

    def __enter__(self):
        import warnings
        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)


# ------------------------------------------------------------------ the run
def monte_carlo(params, strategy="mean_reversion", data=None, *, n_paths: int = 1000,
                method: str = "bootstrap", block_size: float = 20, seed: int = 0,
                executor="serial", asset=None, start=None, end=None,
                initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None,
                batch_size="auto", progress=None, debug=False, out=None, overwrite=False,
                on_progress=None, **strategy_options) -> MonteCarloResult:
    """Run a strategy on ``n_paths`` simulated price paths of one asset.

    Paths are resampled from the asset's log returns (module docstring: exact
    semantics) and made in the tasks from the seed, so nothing path-sized is
    shipped. Each path is backtested exactly as ``run_sweep`` would backtest a
    :class:`~btcore.MarketData` holding it.

    Parameters
    ----------
    params : dict, pandas.Series, or a grid
        One parameter set (a dict of name -> number, or a result-table row, as
        :func:`btcore.backtest` takes; parameters left out take their default),
        or a grid (dict of lists, DataFrame, list of dicts, Grid: then the table
        is paths x sets).
    strategy : str or StrategySpec, default "mean_reversion"
    data : MarketData, pandas object, CSV/Parquet path, or None
        None uses the bundled 20-stock sample.
    n_paths : int, default 1000
    method : {"bootstrap", "block", "gbm"}
        iid bootstrap of the asset's log returns, stationary block bootstrap
        (mean block length ``block_size``), or GBM with their mean and std.
    block_size : float >= 1, default 20
        Mean block length of ``"block"``; checked whatever the method.
    seed : int >= 0, default 0
        Path ``k`` draws from its own stream of a compiled generator keyed by
        ``SeedSequence(seed)`` and ``k`` (:mod:`btcore.workflows.path_draws`), so
        it is reproducible alone. Paths differ from btcore 0.1.0's (which drew
        with ``numpy.random.default_rng`` under the GIL) for the same seed.
    executor : str or Executor, default "serial"
        As in :func:`btcore.run_sweep`; results are identical on every executor.
    asset : str, optional
        Required when the data has several assets (unless ``params`` is a table
        row naming one).
    start, end, initial_capital, cost_bps, periods_per_year, batch_size, progress,
    debug, on_progress, **strategy_options
        As in :func:`btcore.run_sweep` (``batch_size`` counts parameter sets; a
        task is one path x a batch of sets).
    out : str or path, optional
        A directory keeping every finished task, so re-running the same call
        after a crash or Ctrl-C simulates only the missing paths (a different
        run there is an error unless ``overwrite=True``); the final ``table`` is
        saved there as ``table.parquet``.

    Returns
    -------
    MonteCarloResult

    Raises
    ------
    ValueError, TypeError
        Bad ``n_paths``, ``method``, ``block_size``, ``seed``, or anything
        ``run_sweep`` refuses, before any work starts.

    Examples
    --------
    >>> mc = monte_carlo({"lookback_period": 20, "entry_threshold": 2.0,
    ...                   "exit_threshold": 0.5, "stop_loss_z": 3.0},
    ...                  asset="AAPL", n_paths=1000, method="block")  # doctest: +SKIP
    >>> mc.summary.loc[["5%", "50%", "95%"], ["sharpe_ratio", "max_drawdown"]]  # doctest: +SKIP
    >>> mc.prob_loss, mc.equity_quantiles().plot()  # doctest: +SKIP
    """
    started = time.perf_counter()
    check_arguments(strategy_options, strategy, monte_carlo)  # a misspelt keyword lands there
    options = RunOptions(executor, batch_size, progress, on_progress, debug, out,
                         overwrite).check()
    plan = plan_monte_carlo(params, strategy, data, n_paths=n_paths, method=method,
                            block_size=block_size, seed=seed, asset=asset, start=start,
                            end=end, initial_capital=initial_capital, cost_bps=cost_bps,
                            periods_per_year=periods_per_year, debug=debug,
                            options=strategy_options)
    prepared, job, generator, market = plan.prepared, plan.job, plan.job.paths, plan.market
    n_paths, block_size, seed, spec = plan.n_paths, plan.block_size, plan.seed, job.strategy
    sink = DenseSink(job)
    run = execute(job, sink, options, started=started, open_store=lambda: stored_job(
        out, prepared, job, batch_size=batch_size, overwrite=overwrite,
        extra={"n_paths": n_paths, "method": method, "block_size": block_size, "seed": seed},
        workflow="monte_carlo"),
        description=f"{spec.name} x {n_paths:,} {method} paths", settings=prepared.settings)
    table, sets = _build_table(job, prepared.grid, sink.metrics[:, 0, -1],
                               grid_table=not plan.one_set)
    run.stats["n_paths"] = n_paths
    stats = run.finish("sharpe_ratio", {"table": table})
    settings = {**prepared.settings, "n_paths": n_paths, "method": method,
                "block_size": block_size, "seed": seed,
                "n_log_returns": int(generator.log_returns.size),
                "log_return_mean": generator.mean, "log_return_std": generator.std}
    return MonteCarloResult(table, stats, spec.name, settings, job, sets, market.index)


@dataclass(frozen=True)
class PathPlan:
    """A validated Monte Carlo run: its job (one column per path) and what labels it."""

    prepared: object   # btcore.workflows.sweep.Prepared of the chosen asset
    job: object        # btcore.engine.Job with ``paths`` set
    one_set: bool
    market: object     # btcore.MarketData
    n_paths: int
    block_size: float
    seed: int


def plan_monte_carlo(params, strategy, data, *, n_paths=1000, method="bootstrap",
                     block_size=20, seed=0, asset=None, start=None, end=None,
                     initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None,
                     debug=False, options=None) -> PathPlan:
    """Validate a Monte Carlo run and build its job (no kernel runs)."""
    n_paths = check_int("n_paths", n_paths, 1)
    seed = check_int("seed", seed, 0)
    if not isinstance(method, str):
        raise TypeError(f"method must be one of {list(METHODS)}, got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    block_size = check_number("block_size", block_size, 1,
                              what="a number (the mean block length)")
    spec = strategies.get(strategy)
    one_set = _is_one_set(params)
    market = resolve_data(data)
    row_asset = None
    grid = params
    if one_set:
        values, row_asset = parameters_of(params, spec)
        grid = {name: [value] for name, value in values.items()}
    asset = _choose_asset(asset if asset is not None else row_asset, market)
    prepared = prepare(grid, spec, market, start=start, end=end,
                       initial_capital=initial_capital, cost_bps=cost_bps,
                       periods_per_year=periods_per_year, assets=[asset], debug=debug,
                       options=options or {})
    base = prepared.job.close[:, 0]
    candles = prepared.job.candles if prepared.job.execution is not None else None
    generator = PathGenerator.fit(base, method, seed, block_size, **(
        {} if candles is None else dict(zip(("open", "high", "low"),
                                            (side[:, 0] for side in candles)))))
    if method == "gbm" and not generator.log_returns.size > 1:
        raise ValueError(f"GBM needs at least 2 log returns to fit a volatility; asset "
                         f"{asset!r} has {generator.log_returns.size}")
    first_bar = np.repeat(prepared.job.first_bar, n_paths, axis=0)
    first_bar.flags.writeable = False
    job = replace(prepared.job, first_bar=first_bar, paths=generator)
    return PathPlan(prepared, job, one_set, market, n_paths, block_size, seed)


def _build_table(job, grid, metrics: np.ndarray, grid_table: bool):
    """(table, sets): rows path-major, sets in grid order. ``metrics`` is
    (n_paths, OUT_ROWS, n_sets) in sorted-set order."""
    n_paths, _, n_sets = metrics.shape
    position = np.empty(n_sets, dtype=np.int64)  # sorted position of each grid row
    position[job.order] = np.arange(n_sets)
    block = metrics[:, :, position].transpose(0, 2, 1).reshape(n_paths * n_sets, -1)
    sets = {}
    for param in job.strategy.params:
        values = grid.columns[param.name]
        sets[param.name] = values.astype(np.int64) if param.kind is int else values
    sets = pd.DataFrame(sets, index=pd.RangeIndex(n_sets, name="set"))
    front = {"path": np.repeat(np.arange(n_paths, dtype=np.int64), n_sets)}
    if grid_table:
        front["set"] = np.tile(np.arange(n_sets, dtype=np.int64), n_paths)
    for name in sets.columns:
        front[name] = np.tile(sets[name].to_numpy(), n_paths)
    table = pd.concat([pd.DataFrame(front),
                       pd.DataFrame(block[:, :N_METRICS], columns=list(METRIC_NAMES))], axis=1)
    for name in INTEGER_METRICS:
        table[name] = table[name].astype(np.int64)
    table["ruined"] = block[:, RUINED_ROW] != 0.0
    return table, sets


def _is_one_set(params) -> bool:
    if isinstance(params, pd.Series):
        return True
    return isinstance(params, Mapping) and all(np.isscalar(v) for v in params.values())


def _choose_asset(asset, market) -> str:
    if asset is None:
        if market.n_assets > 1:
            raise ValueError(f"the data has {market.n_assets} assets; pick one with asset=, "
                             f"one of {list(market.symbols)}")
        return market.symbols[0]
    if not isinstance(asset, str):
        raise TypeError(f"asset must be a symbol string, got {type(asset).__name__}")
    return asset
