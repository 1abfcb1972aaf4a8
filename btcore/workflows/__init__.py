"""The research workflows, each a thin layer on one run template
(:func:`btcore.workflows.base.execute`): a sweep, a single backtest, walk-forward
optimisation, Monte Carlo paths, portfolio and cross-sectional sweeps.

The functions are re-exported by :mod:`btcore`; the modules here are named by
what they hold, so ``btcore.walk_forward`` (the function) never hides
``btcore.workflows.walk_forward`` (the module).
"""
