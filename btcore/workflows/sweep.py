"""``run_sweep``: a strategy over a parameter grid (x a universe of assets).

Data path: MarketData + Grid -> validated arrays -> key-sorted sets -> tasks
(longest first) -> executor -> kernel -> metric blocks -> SweepResult. All
validation happens before any executor starts or any kernel runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import btcore.strategies as strategies
from btcore.execution import ALL_NAMES as EXECUTION_SETTINGS
from btcore.metrics import LOWER_IS_BETTER, METRIC_NAMES
from btcore.results import RowsSink, check_memory
from btcore.settings import check_arguments
from btcore.store import ResultStore
from btcore.workflows.base import (RunOptions, check_blocks, check_output, execute, prepare)


@dataclass
class SweepResult:
    """Result of :func:`run_sweep`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per parameter set (x asset): parameter columns, ``asset`` when
        the data has several assets, the metrics, then ``benchmark_return``,
        ``excess_return`` and ``benchmark_sharpe`` (buy-and-hold of the asset over
        the same bars; ``btcore.benchmark``) and ``ruined``; best Sharpe first.
    stats : dict
        Timing and execution facts: elapsed seconds, backtests/s,
        param-bars/s, executor, workers, batches, retries, lost workers,
        seconds spent sharing data and computing.
    strategy : str
    settings : dict
        The run settings (window, capital, costs, options).
    """

    table: pd.DataFrame
    stats: dict
    strategy: str
    settings: dict = field(default_factory=dict)
    _spec: object = field(default=None, repr=False, compare=False)
    _data: object = field(default=None, repr=False, compare=False)
    #: (n_assets, n_sets, n_blocks, 2) per-block sums of r and r^2 in grid order,
    #: and bars per block, when run with ``blocks=``
    _block_sums: object = field(default=None, repr=False, compare=False)
    _block_counts: object = field(default=None, repr=False, compare=False)
    #: the strategy name came from a file: never import a module it names
    _strategy_from_file: bool = field(default=False, repr=False, compare=False)
    #: with blocks: each block's label (a year, or its number) and each table row's
    #: grid position and asset column
    _block_labels: object = field(default=None, repr=False, compare=False)
    _row_sets: object = field(default=None, repr=False, compare=False)
    _row_assets: object = field(default=None, repr=False, compare=False)

    def pbo(self, asset: str | None = None):
        """Probability of backtest overfitting (CSCV) of this sweep's parameter sets.

        Needs ``run_sweep(..., blocks=S)``: the kernel kept per-block sums of r and
        r^2, so no bars x sets matrix is built. Equals
        ``btcore.stats.probability_of_backtest_overfitting`` on the sets' return
        matrix with the same blocks.

        Parameters
        ----------
        asset : str, optional
            Required when the sweep ran several assets.

        Returns
        -------
        btcore.stats.PBOResult
        """
        from btcore.stats import pbo_from_block_sums
        if self._block_sums is None:
            raise ValueError("pbo() needs the per-block sums: run the sweep with blocks=16 "
                             "(an even number of blocks)")
        assets = self.settings["assets"]
        if asset is None:
            if len(assets) > 1:
                raise ValueError(f"the sweep ran {len(assets)} assets; pick one with asset=, "
                                 f"one of {assets}")
            asset = assets[0]
        if asset not in assets:
            raise ValueError(f"asset {asset!r} is not in this sweep; choose from {assets}")
        if self._block_labels is not None and len(self._block_labels) % 2:  # years
            raise ValueError(f"pbo() splits the blocks in halves, but blocks='year' gave "
                             f"{len(self._block_labels)} calendar years; run the sweep with "
                             "an even number of blocks (blocks=16) or of years (start/end)")
        sums = self._block_sums[assets.index(asset)]
        return pbo_from_block_sums(sums[..., 0], sums[..., 1],
                                   self._block_counts[assets.index(asset)])

    def certificate(self, asset: str | None = None, select: str = "best", radius: int = 1,
                    reps: int = 1000, seed: int = 0, data=None):
        """Is the chosen row's edge real? DSR with estimated and raw trial counts, PBO,
        White's Reality Check and Hansen's SPA (vs 0 and vs buy and hold), MinBTL and
        MinTRL with "enough history: yes/no", for the best-Sharpe row
        (``select="best"``) or the plateau centre (``"plateau"``); needs
        ``blocks=``. Returns a :class:`~btcore.workflows.certificate.Certificate`
        (``.frame``, ``print()`` for the text); ``docs/overfitting.md``."""
        from btcore.workflows.certificate import certificate
        return certificate(self, asset, select, radius, reps, seed, data)

    def fragility(self, rows: int = 10, metrics=("sharpe_ratio", "total_return"),
                  data=None) -> pd.DataFrame:
        """The top ``rows`` rows re-run with fills one bar later (``fill="next_close"``,
        and ``"next_open"`` on data with opens) and with 2x and 4x ``cost_bps``, each
        metric beside the original (:func:`btcore.workflows.fragility.fragility`)."""
        from btcore.workflows.fragility import fragility
        return fragility(self, rows, metrics, data, run_sweep=run_sweep)

    def block_sharpe(self) -> pd.DataFrame:
        """Each row's annualised Sharpe ratio per block (per calendar year with
        ``blocks="year"``): rows as in :attr:`table`, one column per block
        (:mod:`btcore.stability`); NaN for a block with fewer than 2 bars."""
        from btcore.stability import block_sharpe
        if self._block_sums is None:
            raise ValueError("block_sharpe() needs the per-block sums: run the sweep with "
                             "blocks='year' or blocks=16")
        sums = self._block_sums[self._row_assets, self._row_sets]
        values = block_sharpe(sums[..., 0], sums[..., 1], self._block_counts[self._row_assets],
                              self.settings["periods_per_year"])
        return pd.DataFrame(values, index=self.table.index, columns=self._block_labels)

    def deflated_sharpe(self, asset: str | None = None, data=None) -> float:
        """Deflated Sharpe ratio of the best row (Bailey & Lopez de Prado, 2014).

        Trials = this sweep's rows (of ``asset``), their Sharpe spread (per period)
        as the trials' Sharpe standard deviation, and the best row's skew and
        kurtosis from its replay.
        """
        from btcore.stats import deflated_sharpe_ratio
        if self.stats.get("keep") is not None:
            raise ValueError(f"the deflated Sharpe ratio counts every trial, but this sweep "
                             f"kept only its best {self.stats['keep']:,} rows (keep=); run "
                             "it without keep=, or compute it from open_results(out) rows "
                             "with btcore.stats.deflated_sharpe_ratio")
        table = self.table if asset is None else self.table[self.table["asset"] == asset]
        if "asset" in table.columns and asset is None and table["asset"].nunique() > 1:
            raise ValueError("the sweep ran several assets; pick one with asset=")
        if len(table) < 2:
            raise ValueError("the deflated Sharpe ratio needs at least 2 trials (rows)")
        ppy = self.settings["periods_per_year"]
        per_period = table["sharpe_ratio"].to_numpy() / np.sqrt(ppy)
        best = table.loc[table["sharpe_ratio"].idxmax()]
        returns = self.backtest(best, data=data).returns.to_numpy()
        centred = returns - returns.mean()
        std = returns.std()
        skew = float((centred ** 3).mean() / std ** 3) if std > 0 else 0.0
        kurtosis = float((centred ** 4).mean() / std ** 4) if std > 0 else 3.0
        return deflated_sharpe_ratio(float(per_period.max()), float(per_period.std(ddof=1)),
                                     len(table), len(returns), skew, kurtosis)

    def best(self, metric: str = "sharpe_ratio", include_ruined: bool = False,
             select: str = "best", radius: int = 1) -> pd.Series:
        """The row with the best ``metric`` (highest; lowest for volatility).

        Rows whose equity went to or below zero (``ruined``) are skipped unless
        ``include_ruined=True``: their return-based metrics are meaningless.
        ``select="plateau"`` returns the centre of the best neighbourhood instead
        (:meth:`plateau`, ``radius`` steps on every parameter axis), with its
        ``plateau_mean``, ``plateau_worst`` and ``plateau_size``.
        """
        if select not in ("best", "plateau"):
            raise ValueError(f"select must be 'best' or 'plateau', got {select!r}")
        if metric not in self.table.columns:
            raise ValueError(f"unknown metric {metric!r}; choose from {list(METRIC_NAMES)}")
        if select == "plateau":
            return self.plateau(metric, radius, include_ruined).iloc[0]
        values = self.table[metric]
        if not include_ruined:
            values = values[~self.table["ruined"]]
        if values.isna().all():
            raise ValueError(f"{metric} is NaN (or the run ruined) for every row")
        row = values.idxmin() if metric in LOWER_IS_BETTER else values.idxmax()
        return self.table.loc[row]

    def plateau(self, metric: str = "sharpe_ratio", radius: int = 1,
                include_ruined: bool = False) -> pd.DataFrame:
        """The table ranked by neighbourhood: each row's ``plateau_mean`` and
        ``plateau_worst`` of ``metric`` over the sets within ``radius`` steps on every
        parameter axis (``plateau_size`` of them; ruined ones count as the grid's
        worst), best plateau first (:mod:`btcore.selection`). Needs a full product
        grid (a dict of lists, without ``keep=``); per asset with several assets."""
        from btcore.selection import plateau_table
        if self.stats.get("keep") is not None:
            raise ValueError(f"plateau selection needs every row of the grid, but this sweep "
                             f"kept only its best {self.stats['keep']:,} (keep=); run it "
                             "without keep=")
        if metric not in self.table.columns:
            raise ValueError(f"unknown metric {metric!r}; choose from {list(METRIC_NAMES)}")
        return plateau_table(self.table, self._param_names(), metric, radius, include_ruined)

    def _param_names(self) -> list:
        if self._spec is not None and hasattr(self._spec, "param_names"):
            return list(self._spec.param_names)
        from btcore.plots.common import parameter_columns
        return parameter_columns(self.table)

    def backtest(self, row=0, data=None, **overrides):
        """Replay one row of :attr:`table` with this sweep's window, capital, costs
        and options, keeping per-bar detail (:func:`btcore.backtest`).

        Parameters
        ----------
        row : int or pandas.Series
            A position in ``table`` (0 = the best Sharpe) or a row of it.
        data : optional
            The sweep's data, when it was not the bundled sample.
        **overrides
            Settings to change, e.g. ``cost_bps=10``.
        """
        from btcore.workflows.backtest import backtest
        row, spec, settings = self._replay(row, overrides)
        return backtest(row, spec, self._data if data is None else data, **settings)

    def _row(self, row):
        """A row of :attr:`table`, given as a position in it or as a row."""
        if isinstance(row, (int, np.integer)) and not isinstance(row, bool):
            if not -len(self.table) <= row < len(self.table):
                raise IndexError(f"row {row} is outside the table's {len(self.table)} rows")
            return self.table.iloc[int(row)]
        if not isinstance(row, (pd.Series, dict)):
            raise TypeError(f"row must be a position in the table or a row of it, got "
                            f"{type(row).__name__}")
        return row

    def _replay(self, row, overrides: dict, keys: tuple = ()) -> tuple:
        """``(row, spec, settings)`` to replay ``row`` (a position or a row) with this
        run's window, capital, costs, options and ``keys``, then ``overrides``."""
        row = self._row(row)
        import btcore.strategies as strategies
        spec = strategies.get(self._spec or self.strategy,
                              import_modules=not self._strategy_from_file)
        settings = {key: self.settings[key] for key in
                    ("start", "end", "initial_capital", "cost_bps", "periods_per_year", *keys)}
        settings.update({name: self.settings[name] for name in
                         (*spec.options, *EXECUTION_SETTINGS) if name in self.settings})
        settings.update(overrides)
        return row, spec, settings

    def plot_heatmap(self, x: str, y: str, metric: str = "sharpe_ratio", agg: str = "max",
                     ax=None, plateau: int | None = None):
        """Heatmap of ``metric`` over parameters ``x`` and ``y`` (other parameters and
        assets aggregated by ``agg``); ``plateau=radius`` outlines the plateau
        :meth:`best` chooses with ``select="plateau"``. Returns the matplotlib
        Figure (``plot`` extra)."""
        from btcore.plots import sweep_heatmap
        return sweep_heatmap(self, x, y, metric=metric, agg=agg, ax=ax, plateau=plateau)

    def __len__(self) -> int:
        return len(self.table)

    def to_parquet(self, path) -> None:
        """Save the table, with strategy, settings and stats in the file's metadata."""
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pa.Table.from_pandas(self.table, preserve_index=False)
        meta = {"strategy": self.strategy, "settings": self.settings, "stats": self.stats}
        extra = {b"btcore": json.dumps(meta, default=str).encode()}
        pq.write_table(table.replace_schema_metadata({**table.schema.metadata, **extra}), path)

    @classmethod
    def read_parquet(cls, path, strategy=None) -> "SweepResult":
        """Load a result saved by :meth:`to_parquet`.

        Parameters
        ----------
        path : str or path-like
        strategy : str or StrategySpec, optional
            The strategy to replay rows with (:meth:`backtest`). Without it, only a
            strategy registered in this process under the file's name is used: a
            module named in a file (``"package.module:SPEC"``) is never imported.
        """
        import json

        import pyarrow.parquet as pq
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"btcore")
        if raw is None:
            raise ValueError(f"{path} was not written by SweepResult.to_parquet")
        meta = json.loads(raw)
        if not isinstance(meta, dict) or not {"stats", "strategy", "settings"} <= set(meta):
            raise ValueError(f"{path}: its btcore metadata is not a SweepResult's "
                             "(strategy, settings, stats); was it written by to_parquet?")
        if strategy is not None:
            strategy = strategies.get(strategy)
        return cls(table.to_pandas(), meta["stats"], str(meta["strategy"]), meta["settings"],
                   _spec=strategy, _strategy_from_file=strategy is None)

    def __repr__(self) -> str:
        s = self.stats
        head = (f"SweepResult({self.strategy}: {s['backtests']:,} backtests in "
                f"{s['elapsed_s']:.2f} s on {s['executor']} x{s['workers']}, "
                f"{s['backtests_per_s']:,.0f} backtests/s, "
                f"{s['param_bars_per_s'] / 1e6:,.1f} M param-bars/s)")
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            return head + "\n" + self.table.head(10).to_string(float_format="{:.4g}".format)


def run_sweep(grid, strategy="mean_reversion", data=None, *, executor="serial", start=None,
              end=None, initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None,
              batch_size="auto", progress=None, debug=False, assets=None, blocks=None,
              out=None, keep=None, sort_by="sharpe_ratio", overwrite=False, on_progress=None,
              benchmark=None, **strategy_options) -> SweepResult:
    """Backtest every parameter set of ``grid`` (on every asset of ``data``).

    Parameters
    ----------
    grid : dict of lists, DataFrame, list of dicts or Grid
        Parameter sets; a dict of lists is expanded to its Cartesian product.
    strategy : str or StrategySpec, default "mean_reversion"
    data : MarketData, pandas object, CSV/Parquet path, or None
        None uses the bundled 20-stock S&P 500 sample.
    executor : str or Executor, default "serial"
        "serial", "threads", "joblib", "ray", "dask", or an Executor instance
        (left open for reuse; an executor created from a name is closed here).
        "auto" measures the kernel on this job and picks the executor with the
        least predicted time: serial, threads, or a Ray/Dask cluster this process
        is connected to; ``stats["executor_choice"]`` says which and why.
    start, end : date-like, optional
        Trading window (inclusive); earlier bars only warm up indicators.
    initial_capital, cost_bps : float
        Starting cash; cost per trade in basis points of traded value (<= 10,000).
    periods_per_year : float, optional
        Bars per year for annualisation; None infers it from the bar spacing
        (daily business days 252, with weekends 365, weekly 52, monthly 12,
        intraday bars per day x 252; see ``btcore.settings``). An explicit value
        more than 2x off the spacing is warned about.
    batch_size : int or "auto"
        Parameter sets per task; "auto" aims at ~0.5 s tasks from a calibration.
    progress : bool, optional
        tqdm bar; None shows it in a terminal when the sweep takes > 2 s.
    debug : bool
        Run the kernel and strategy as plain Python (``py_func``) in this
        process, so ``breakpoint()`` and ``print`` work; results are identical.
    assets : str or list of str, optional
        Subset of the data's assets (default all).
    blocks : int or "year", optional
        Keep per-block sums of r and r^2 over this many equal blocks of the traded
        bars (even, >= 2; 16 is usual), or over each calendar year ("year"), for
        :meth:`SweepResult.pbo` (equal, even blocks), :meth:`SweepResult.block_sharpe`
        and the table's ``stability_positive_share`` and ``worst_block_sharpe``
        columns (:mod:`btcore.stability`).
    out : str or path, optional
        A directory to stream every row to, one Parquet part per finished task,
        under a manifest of the sweep (strategy code, grid, data, settings).
        Re-running the same call after a crash or Ctrl-C computes only the missing
        tasks and returns the same table; a different sweep in ``out`` is an error
        unless ``overwrite=True``. Read it with :func:`btcore.open_results`.
    keep : int, optional
        Keep only the best ``keep`` rows in memory (by ``sort_by``), so memory stays
        flat however large the sweep; None keeps every row. A sweep whose full
        table would not fit in memory is refused before any work unless ``keep``
        is given.
    sort_by : str, default "sharpe_ratio"
        The metric that ranks the table (highest first; lowest for
        ``annual_volatility``); NaN last, ties in grid order.
    overwrite : bool
        Replace results of a different sweep found in ``out``.
    on_progress : callable, optional
        ``on_progress(done, total, backtests_per_s)`` after each finished task.
    benchmark : pandas.Series, optional
        Prices of another series (e.g. an index) for the ``benchmark_return``,
        ``excess_return`` and ``benchmark_sharpe`` columns; None uses buy-and-hold
        of each row's own asset (``btcore.benchmark``).
    **strategy_options
        Strategy options, e.g. ``allow_short=False`` for mean_reversion.

    Returns
    -------
    SweepResult

    Raises
    ------
    ValueError, TypeError
        Bad grid, data, window, settings, strategy, options or executor, before
        any work starts.

    Examples
    --------
    >>> res = run_sweep({"lookback_period": [20, 60], "entry_threshold": [2.0],
    ...                  "exit_threshold": [0.5], "stop_loss_z": [3.0]},
    ...                 start="2015-01-01", end="2020-12-31")  # doctest: +SKIP
    >>> res.table.head()  # doctest: +SKIP
    """
    started = time.perf_counter()
    check_arguments(strategy_options, strategy, run_sweep)  # a misspelt keyword lands there
    options = RunOptions(executor, batch_size, progress, on_progress, debug, out,
                         overwrite).check()
    check_output(keep, sort_by, out, blocks)
    prepared = prepare(grid, strategy, data, start=start, end=end,
                       initial_capital=initial_capital, cost_bps=cost_bps,
                       periods_per_year=periods_per_year, assets=assets, debug=debug,
                       options=strategy_options, n_blocks=check_blocks(blocks),
                       benchmark=benchmark)
    check_memory(prepared, keep)
    job = prepared.job
    sink = RowsSink(prepared, sort_by, keep)
    run = execute(job, sink, options, started=started, open_store=lambda: ResultStore.open(
        out, prepared, batch_size=batch_size, overwrite=overwrite), settings=prepared.settings)
    rows = sink.table()
    run.stats["keep"], run.stats["sort_by"] = sink.keep, sink.sort_by
    stats = run.finish(sink.sort_by)
    if not job.n_blocks:
        return SweepResult(rows, stats, job.strategy.name, prepared.settings, job.strategy,
                           prepared.data)
    labels = (list(range(job.n_blocks)) if job.block_starts is None else
              [int(year) for year in prepared.data.index[job.block_starts].year])
    return SweepResult(rows, stats, job.strategy.name, prepared.settings, job.strategy,
                       prepared.data, sink.block_sums, sink.block_counts,
                       _block_labels=labels, _row_sets=sink.row_sets,
                       _row_assets=sink.row_assets)
