"""btcore: fused Numba backtests over large parameter grids, on any executor.

>>> from btcore import run_sweep
>>> res = run_sweep({"lookback_period": [20, 40], "entry_threshold": [1.5, 2.0],
...                  "exit_threshold": [0.5], "stop_loss_z": [3.0]})  # doctest: +SKIP
"""
from btcore.data import MarketData
from btcore.engine.lookahead import LookaheadError, check_lookahead
from btcore.grid import Grid
from btcore.metrics import METRIC_NAMES
from btcore.planning import estimate
from btcore.store import StoredResults, open_results
from btcore.workflows.backtest import BacktestResult, backtest
from btcore.workflows.cross_sectional import (CrossSectionalBacktestResult,
                                              CrossSectionalSweepResult,
                                              cross_sectional_backtest,
                                              run_cross_sectional_sweep)
from btcore.workflows.cpcv import CPCVResult, cpcv
from btcore.workflows.monte_carlo import MonteCarloResult, monte_carlo
from btcore.workflows.portfolio import PortfolioSweepResult, run_portfolio_sweep
from btcore.workflows.portfolio_backtest import PortfolioBacktestResult, portfolio_backtest
from btcore.workflows.sweep import SweepResult, run_sweep
from btcore.workflows.walk_forward import WalkForwardResult, walk_forward
from btcore.workflows.warmup import warmup

__version__ = "0.1.0"
__all__ = ["BacktestResult", "Grid", "LookaheadError", "check_lookahead", "METRIC_NAMES", "MarketData", "SweepResult", "backtest",
           "cpcv", "CPCVResult", "estimate", "monte_carlo", "MonteCarloResult",
           "run_portfolio_sweep", "portfolio_backtest", "PortfolioSweepResult",
           "PortfolioBacktestResult", "run_cross_sectional_sweep", "cross_sectional_backtest",
           "CrossSectionalSweepResult", "CrossSectionalBacktestResult",
           "run_sweep", "open_results", "StoredResults", "walk_forward", "WalkForwardResult",
           "warmup", "__version__"]
