"""btcore: fused Numba backtests over large parameter grids, on any executor.

>>> from btcore import run_sweep
>>> res = run_sweep({"lookback_period": [20, 40], "entry_threshold": [1.5, 2.0],
...                  "exit_threshold": [0.5], "stop_loss_z": [3.0]})  # doctest: +SKIP
"""
from btcore.backtest import BacktestResult, backtest
from btcore.cross_sectional import cross_sectional_backtest, run_cross_sectional_sweep
from btcore.data import MarketData
from btcore.grid import Grid
from btcore.metrics import METRIC_NAMES
from btcore.monte_carlo import MonteCarloResult, monte_carlo
from btcore.planning import estimate
from btcore.results import StoredResults, open_results
from btcore.portfolio import (PortfolioBacktestResult, PortfolioSweepResult, portfolio_backtest,
                              run_portfolio_sweep)
from btcore.sweep import SweepResult, run_sweep
from btcore.walk_forward import WalkForwardResult, walk_forward

__version__ = "0.1.0"
__all__ = ["BacktestResult", "Grid", "METRIC_NAMES", "MarketData", "SweepResult", "backtest",
           "estimate", "monte_carlo", "MonteCarloResult",
           "run_portfolio_sweep", "portfolio_backtest", "PortfolioSweepResult",
           "PortfolioBacktestResult",
           "run_cross_sectional_sweep", "cross_sectional_backtest",
           "run_sweep", "open_results", "StoredResults", "walk_forward", "WalkForwardResult", "__version__"]
