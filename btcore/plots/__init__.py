"""Figures of btcore results (matplotlib, the ``plot`` extra, imported lazily).

Every function validates its arguments first (a clear ``ValueError`` for an
unknown column, metric, aggregation or asset), then imports matplotlib and
returns the :class:`matplotlib.figure.Figure` it drew:

- :func:`sweep_heatmap` -- ``SweepResult.plot_heatmap``: a metric over two
  parameters, the other parameters and assets aggregated;
- :func:`backtest_figure` -- ``BacktestResult.plot``: equity with trade
  markers, drawdown and position;
- :func:`portfolio_figure` -- ``PortfolioBacktestResult.plot``: equity,
  drawdown and the per-asset weights over time with the gross exposure;
- :func:`walk_forward_figure` -- ``WalkForwardResult.plot``: in- vs
  out-of-sample metric per fold and the stitched out-of-sample equity;
- :func:`monte_carlo_figure` -- a ``MonteCarloResult``: a metric's
  distribution over the paths and the equity fan.

One module per figure (:mod:`~btcore.plots.sweep`, ``backtest``, ``portfolio``,
``walk_forward``, ``monte_carlo``) and :mod:`~btcore.plots.common` for what they
share; matplotlib is imported by a figure's function, never by importing btcore.
"""
from __future__ import annotations

from btcore.plots.backtest import backtest_figure
from btcore.plots.common import LABEL_COLUMNS, LOG_SPAN
from btcore.plots.monte_carlo import monte_carlo_figure
from btcore.plots.portfolio import MAX_NAMED_ASSETS, portfolio_figure, weight_bands
from btcore.plots.sweep import (AGGREGATIONS, ANNOTATE_CELLS, heatmap_values,
                                sweep_heatmap)
from btcore.plots.walk_forward import walk_forward_figure

__all__ = ["AGGREGATIONS", "backtest_figure", "monte_carlo_figure", "portfolio_figure",
           "sweep_heatmap", "walk_forward_figure", "weight_bands"]
