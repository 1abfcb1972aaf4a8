"""btcore's Numba kernels: arrays in, metric rows out, no Python objects.

- :mod:`btcore.kernels.accounting`: the account's bookkeeping every kernel
  composes (fills, the trade cost, the out-of-money close-out, the metric
  accumulator and its finalisation);
- :mod:`btcore.kernels.single`: one strategy on one price column;
- :mod:`btcore.kernels.portfolio`: one strategy on every asset of a universe as
  the sleeves of one account;
- :mod:`btcore.kernels.cross_sectional`: a ranked book over a universe.

Kernels import numpy, numba and the metric constants of :mod:`btcore.metrics`
only (never pandas).
"""
