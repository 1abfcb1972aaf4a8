"""Buy-and-hold benchmarks beside every result, and alpha and beta against a series.

Definitions (``docs/semantics.md``, "Benchmark"): over a result's traded bars
``first .. last``, the benchmark buys at the close of the first traded bar and
holds to the close of the last, with no costs and fractional shares:

- ``benchmark_return`` = B_last / B_first - 1;
- ``benchmark_sharpe`` = the Sharpe ratio (``btcore.metrics``) of the benchmark's
  per-bar returns over the same bars: 0 on the first bar (bought at its close),
  then B_t / B_(t-1) - 1, annualised with the run's ``periods_per_year``;
- ``excess_return`` = ``total_return`` - ``benchmark_return``.

B is the asset's own close (a portfolio's benchmark holds every asset with an
equal share of the capital from its first traded bar), or the ``benchmark=``
series when one is given. With a series, ``alpha`` and ``beta`` are the OLS fit
r_t = a + beta * b_t of the strategy's per-bar returns on the series' per-bar
returns over the traded bars after the first (the bar both positions are
bought on), with ``alpha`` = a x ``periods_per_year`` (annualised, simple).

Everything here is numpy on closes, computed in the driver, never in a kernel.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from btcore.metrics import equity_metrics

#: columns every sweep table carries after its metrics
BENCHMARK_COLUMNS = ("benchmark_return", "excess_return", "benchmark_sharpe")
#: metrics a result gains with ``benchmark=`` a series
ALPHA_BETA = ("alpha", "beta")


def buy_and_hold(close: np.ndarray, first_bar: int, last_bar: int,
                 initial_capital: float = 1.0) -> np.ndarray:
    """Equity of ``initial_capital`` put into ``close`` at bar ``first_bar``'s close
    and held to ``last_bar`` (inclusive; no costs, fractional shares)."""
    prices = np.asarray(close, dtype=np.float64)[first_bar:last_bar + 1]
    return initial_capital * (prices / prices[0])


def equal_weight_buy_and_hold(close: np.ndarray, first_bars, last_bar: int,
                              initial_capital: float = 1.0) -> np.ndarray:
    """Equity from the first traded bar ``min(first_bars)`` to ``last_bar`` of
    ``initial_capital`` split equally across the assets (columns of ``close``), each
    share bought at its own first traded bar (cash until then) and held."""
    first_bars = np.asarray(first_bars, dtype=np.int64)
    start = int(first_bars.min())
    share = initial_capital / len(first_bars)
    equity = np.zeros(last_bar - start + 1)
    for column, first in enumerate(first_bars):
        held = buy_and_hold(close[:, column], int(first), last_bar, share)
        equity[:first - start] += share
        equity[first - start:] += held
    return equity


def benchmark_values(equity: np.ndarray, periods_per_year: float) -> tuple[float, float]:
    """``(benchmark_return, benchmark_sharpe)`` of a buy-and-hold equity curve whose
    first value is the capital it started with."""
    metrics = equity_metrics(equity, float(equity[0]), periods_per_year)
    return float(metrics["total_return"]), float(metrics["sharpe_ratio"])


def benchmark_columns(close: np.ndarray, first_bars, last_bar: int, periods_per_year: float,
                      series: np.ndarray | None = None) -> np.ndarray:
    """(n_columns, 2): ``benchmark_return`` and ``benchmark_sharpe`` of each column of
    ``close`` (bars x columns) over its traded bars ``first_bars[c] .. last_bar``, or
    of ``series`` (one price per bar of ``close``) over those bars."""
    close = np.asarray(close, dtype=np.float64)
    values = np.empty((close.shape[1], 2))
    for column, first in enumerate(np.asarray(first_bars, dtype=np.int64).ravel()):
        prices = close[:, column] if series is None else series
        values[column] = benchmark_values(buy_and_hold(prices, int(first), last_bar),
                                          periods_per_year)
    return values


def alpha_beta(returns, benchmark_returns, periods_per_year: float) -> tuple[float, float]:
    """``(alpha, beta)``: the OLS fit returns = a + beta * benchmark_returns, alpha =
    a x ``periods_per_year``. Pass the bars to fit (the traded bars after the first).
    NaN for both when the benchmark's returns do not vary (or fewer than 2 bars)."""
    r = np.asarray(returns, dtype=np.float64)
    b = np.asarray(benchmark_returns, dtype=np.float64)
    if r.shape != b.shape:
        raise ValueError(f"returns and benchmark returns differ in length: {r.shape} vs "
                         f"{b.shape}")
    if r.size < 2:
        return np.nan, np.nan
    b_centred = b - b.mean()
    variance = float(b_centred @ b_centred)
    if not variance > 0.0:
        return np.nan, np.nan
    beta = float(b_centred @ (r - r.mean())) / variance
    return (float(r.mean()) - beta * float(b.mean())) * periods_per_year, beta


def align_benchmark(benchmark, index: pd.DatetimeIndex, first_bar: int, last_bar: int
                    ) -> np.ndarray:
    """The ``benchmark=`` series as one price per bar of ``index`` (float64; NaN before
    it starts): each bar takes the series' last value at or before its timestamp, so a
    series on another calendar (an index on weekdays, FX around the clock) lines up.

    Raises
    ------
    TypeError
        Not a pandas Series with a DatetimeIndex (or a one-column DataFrame).
    ValueError
        No value at or before the first traded bar, or a value that is not finite
        and > 0 over the traded bars.
    """
    if isinstance(benchmark, pd.DataFrame) and benchmark.shape[1] == 1:
        benchmark = benchmark.iloc[:, 0]
    if not isinstance(benchmark, pd.Series) or not isinstance(benchmark.index,
                                                               pd.DatetimeIndex):
        raise TypeError(f"benchmark must be a pandas Series of prices with a DatetimeIndex "
                        f"(e.g. an index's closes), got {type(benchmark).__name__}")
    if not pd.api.types.is_numeric_dtype(benchmark) or pd.api.types.is_bool_dtype(benchmark):
        raise TypeError(f"benchmark must hold prices (numbers), got dtype {benchmark.dtype}")
    series = benchmark.dropna().sort_index()
    series = series[~series.index.duplicated(keep="last")]
    if (series.index.tz is None) != (index.tz is None):
        raise ValueError(f"benchmark timestamps are {'tz-aware' if series.index.tz else 'naive'}"
                         f" but the data's are {'tz-aware' if index.tz else 'naive'}; "
                         "convert one with tz_localize/tz_convert")
    values = series.reindex(index, method="ffill").to_numpy(dtype=np.float64)
    traded = values[first_bar:last_bar + 1]
    if np.isnan(traded[0]):
        raise ValueError(f"benchmark starts at {series.index[0] if len(series) else 'no date'}"
                         f", after the first traded bar {index[first_bar]}; give it history "
                         "back to the start of the window (or move start=)")
    if not (np.isfinite(traded) & (traded > 0.0)).all():
        raise ValueError("benchmark must be finite and > 0 on every traded bar (it is a "
                         "price or an index level, not a return)")
    return values


def series_label(benchmark, values: np.ndarray) -> str:
    """A short name of a ``benchmark=`` series with a digest of its aligned values (in
    a run's settings, so a store of another benchmark is not resumed)."""
    name = getattr(benchmark, "name", None)
    digest = hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()[:12]
    return f"{name if name is not None else 'series'} ({digest})"


__all__ = ["ALPHA_BETA", "BENCHMARK_COLUMNS", "alpha_beta", "align_benchmark",
           "benchmark_columns", "benchmark_values", "buy_and_hold",
           "equal_weight_buy_and_hold", "series_label"]
