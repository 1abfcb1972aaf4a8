"""``warmup``: compile the kernels runs will use ahead of them (images, cluster workers).

A kernel is compiled on its first use and cached on disk
(``BTCORE_KERNEL_DIR``, ``NUMBA_CACHE_DIR``); a fresh machine pays that once
per strategy and workflow. :func:`warmup` pays it up front by running one
parameter set on a few bars of synthetic data through each workflow asked for,
exactly as a real run calls the kernel (same argument types, hence the same
cached specialisation).
"""
from __future__ import annotations

import sys
import time

import btcore.strategies as strategies

#: what :func:`warmup` can compile: a single-asset sweep (also what backtest,
#: walk_forward and monte_carlo run), a portfolio sweep, a cross-sectional sweep
WORKFLOWS = ("sweep", "portfolio", "cross_sectional")


def warmup(strategy=None, *, workflows=("sweep",), verbose: bool = False) -> dict:
    """Compile (or load from the cache) the kernels of ``strategy`` for ``workflows``.

    Parameters
    ----------
    strategy : str, StrategySpec, or a list of them, optional
        The strategies to compile; None: every registered one.
    workflows : sequence of {"sweep", "portfolio", "cross_sectional"}, default ("sweep",)
        ``"sweep"`` compiles what ``run_sweep``, ``backtest``, ``walk_forward`` and
        ``monte_carlo`` run (Monte Carlo's path draws and the execution kernel of
        fills, stops, sizing and costs included); ``"portfolio"``
        the strategy's portfolio kernel;
        ``"cross_sectional"`` the (strategy-free) cross-sectional kernel.
    verbose : bool, default False
        One line per kernel on stderr with the seconds it took.

    Returns
    -------
    dict
        ``{(workflow, strategy name or None): seconds}``.

    Raises
    ------
    ValueError, TypeError
        An unknown workflow or strategy, before anything is compiled.

    Examples
    --------
    >>> import btcore
    >>> btcore.warmup("mean_reversion", workflows=("sweep", "portfolio"))  # doctest: +SKIP
    """
    if isinstance(workflows, str):
        workflows = (workflows,)
    workflows = tuple(workflows)
    unknown = [w for w in workflows if w not in WORKFLOWS]
    if unknown or not workflows:
        raise ValueError(f"unknown workflow(s) {unknown or workflows!r}; choose from "
                         f"{list(WORKFLOWS)}")
    if strategy is None:
        names = strategies.available()
    else:
        names = [strategy] if not isinstance(strategy, (list, tuple)) else list(strategy)
    specs = [strategies.get(name) for name in names]  # an unknown name fails here
    data = _small_data()
    timings = {}
    runs = [(workflow, spec) for workflow in workflows if workflow != "cross_sectional"
            for spec in specs]
    if "cross_sectional" in workflows:
        runs.append(("cross_sectional", None))
    for workflow, spec in runs:
        started = time.perf_counter()
        _run_once(workflow, spec, data)
        seconds = time.perf_counter() - started
        name = spec.name if spec is not None else None
        timings[workflow, name] = seconds
        if verbose:
            print(f"warmup: {workflow} kernel{'' if name is None else ' of ' + name} "
                  f"ready in {seconds:.1f} s", file=sys.stderr, flush=True)
    return timings


def _small_data():
    from btcore.data import MarketData
    return MarketData.synthetic(n_assets=3, start="2020-01-01", end="2020-12-31", seed=0)


def _run_once(workflow: str, spec, data) -> None:
    """One parameter set through ``workflow``'s kernel, serially, without a progress bar."""
    if workflow == "cross_sectional":
        from btcore.workflows.cross_sectional import run_cross_sectional_sweep
        run_cross_sectional_sweep({"lookback_period": [20], "top_k": [1]}, data=data,
                                  progress=False)
        return
    one_set = {param.name: [param.default] for param in spec.params}
    if workflow == "sweep":
        from btcore.workflows.paths import PathGenerator
        from btcore.workflows.sweep import run_sweep
        run_sweep(one_set, spec, data=data, assets=[data.symbols[0]], progress=False)
        # and the execution kernel (fills, stops, sizing, costs), compiled apart
        run_sweep({**one_set, "slippage_bps": [0.0]}, spec, data=data,
                  assets=[data.symbols[0]], progress=False)
        close = data.close[:, 0]  # and Monte Carlo's compiled path draws (any method)
        PathGenerator.fit(close, "gbm", 0, open=close, high=close, low=close).candles(0)
    else:
        from btcore.workflows.portfolio import run_portfolio_sweep
        run_portfolio_sweep(one_set, spec, data=data, progress=False)
