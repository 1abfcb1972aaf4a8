"""``SweepResult.fragility``: do the top rows survive a bar of delay and higher costs?

A winner whose Sharpe ratio collapses when its fills move one bar later, or when
costs double, was trading on the close it could not have traded at, or on costs
it will not get. :func:`fragility` re-runs the top rows of a sweep, on the same
data, window, capital, options and settings, with ``fill="next_close"``, with
``fill="next_open"`` (data with open prices only), and with 2x and 4x
``cost_bps``, and puts each metric beside the original.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from btcore.workflows.base import resolve_data

#: the variants: column suffix -> the settings that change
VARIANTS = {"next_close": {"fill": "next_close"}, "next_open": {"fill": "next_open"},
            "cost_x2": {"cost_factor": 2.0}, "cost_x4": {"cost_factor": 4.0}}


def fragility(result, rows: int = 10, metrics=("sharpe_ratio", "total_return"),
              data=None, *, run_sweep) -> pd.DataFrame:
    """The top ``rows`` rows of ``result`` re-run with a one-bar delay and more costs.

    Parameters
    ----------
    result : SweepResult
    rows : int, default 10
        How many rows, from the top of ``result.table`` (its ranking).
    metrics : sequence of str
        The metrics to compare (each becomes ``<metric>`` and one column per variant,
        ``<metric>_next_close``, ``<metric>_next_open``, ``<metric>_cost_x2``,
        ``<metric>_cost_x4``).
    data : optional
        The sweep's data, when it was not the bundled sample.
    run_sweep : callable
        :func:`btcore.run_sweep` (passed in: this module sits beside it).

    Returns
    -------
    pandas.DataFrame
        One row per top row: its parameters (and asset), then each metric as swept
        and under each variant. ``next_open`` is left out for data without open
        prices.

    Raises
    ------
    ValueError
        ``rows`` not a positive int, an unknown metric.
    """
    from btcore.metrics import METRIC_NAMES
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"rows must be a positive int, got {rows!r}")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)}")
    top = result.table.head(int(rows)).reset_index(drop=True)
    _, spec, settings = result._replay(0, {})
    market = resolve_data(result._data if data is None else data)
    names = [n for n in result._param_names() if n in top.columns]
    variants = {name: change for name, change in VARIANTS.items()
                if not (change.get("fill") == "next_open" and market.open is None)}
    frame = top[names + (["asset"] if "asset" in top.columns else [])].copy()
    for metric in metrics:
        frame[metric] = top[metric].to_numpy()
    by_asset = top.groupby("asset", sort=False).indices if "asset" in top.columns else \
        {None: np.arange(len(top))}
    for suffix, change in variants.items():
        values = {metric: np.full(len(top), np.nan) for metric in metrics}
        run = dict(settings)
        if "cost_factor" in change:
            run["cost_bps"] = settings["cost_bps"] * change["cost_factor"]
        else:
            run["fill"] = change["fill"]
        for asset, positions in by_asset.items():
            sets = top.iloc[positions][names].to_dict("records")
            rerun = run_sweep(sets, spec, market, assets=None if asset is None else [asset],
                              progress=False, sort_by=result.stats.get("sort_by") or
                              "sharpe_ratio", **run).table
            # the re-run's rows come back ranked: match them to the sets by parameters
            keyed = {tuple(row[n] for n in names): row for row in rerun.to_dict("records")}
            for position, row in zip(positions, sets):
                match = keyed[tuple(row[n] for n in names)]
                for metric in metrics:
                    values[metric][position] = float(match[metric])
        for metric in metrics:
            frame[f"{metric}_{suffix}"] = values[metric]
    return frame


__all__ = ["fragility", "VARIANTS"]
