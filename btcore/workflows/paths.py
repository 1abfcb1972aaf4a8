"""Simulated price paths of one asset: :class:`PathGenerator`.

Semantics (``docs/semantics.md`` terms; ``m`` = the number of the asset's valid
log returns ``r_j = log(c_{j+1} / c_j)``, taken over *all* the asset's valid
bars in the data, from its first valid close to the last bar, whatever
``start``/``end`` say: a path covers the whole data, warm-up bars included):

- every path has as many bars as the data; bars before the asset's first valid
  bar ``f`` are NaN, ``p_f`` is the asset's first valid close, and
  ``p_{f+t} = p_f * exp(s_1 + ... + s_t)`` for ``t = 1..m`` (``numpy.cumsum``
  then ``numpy.exp``) where ``s`` are the path's ``m`` resampled log returns;
- path ``k`` draws from ``numpy.random.default_rng(SeedSequence(seed).spawn(n_paths)[k])``
  (the same generator as ``SeedSequence(seed, spawn_key=(k,))``), so a path
  does not depend on ``n_paths`` or on the other paths: the first 16 paths of a
  1,000-path run are a 16-path run with the same seed;
- ``"bootstrap"`` (iid): ``s = r[rng.integers(0, m, size=m)]``;
- ``"block"`` (stationary bootstrap, Politis & Romano 1994, mean block length
  ``b = block_size``): ``u = rng.random(m)``; return ``i`` starts a new block
  when ``i == 0`` or ``u_i < 1 / b``, else it continues the current block at the
  next index, circularly (``(j + 1) mod m``); the blocks' start indices are then
  drawn in order as ``rng.integers(0, m, size=number of blocks)``;
- ``"gbm"`` (geometric Brownian motion with the fitted drift and volatility):
  ``s = rng.normal(mean(r), std(r, ddof=1), size=m)``.

Bit-identity across *machines* also needs the same ``numpy.exp`` (numpy
picks a SIMD implementation by CPU).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: resampling methods of :meth:`PathGenerator.fit`
METHODS = ("bootstrap", "block", "gbm")


@dataclass(frozen=True, eq=False)
class PathGenerator:
    """Makes path ``k``'s closes from the seed (see the module docstring).

    Small and picklable: it travels once with the job's payload and is called
    in the task (``btcore.engine.column_prices``) as ``path(base_close, k)``.

    Attributes
    ----------
    method : {"bootstrap", "block", "gbm"}
    seed : int
    block_size : float
        Mean block length of ``"block"`` (unused otherwise).
    n_bars : int
        Bars of every path (the data's).
    first_bar : int
        The asset's first valid bar; earlier bars are NaN.
    first_close : float
        The asset's first valid close, every path's first price.
    log_returns : numpy.ndarray
        The asset's ``m = n_bars - 1 - first_bar`` valid log returns (read-only).
    mean, std : float
        ``mean(log_returns)`` and ``std(log_returns, ddof=1)`` (GBM's drift and
        volatility per bar; NaN std for a single return).
    """

    method: str
    seed: int
    block_size: float
    n_bars: int
    first_bar: int
    first_close: float
    log_returns: np.ndarray
    mean: float
    std: float

    @classmethod
    def fit(cls, close: np.ndarray, method: str, seed: int,
            block_size: float = 20.0) -> "PathGenerator":
        """A generator for one asset's ``close`` (n_bars,), NaN before its first valid bar."""
        close = np.asarray(close, dtype=np.float64)
        valid = ~np.isnan(close)
        if not valid.any():
            raise ValueError("the asset has no valid close")
        first = int(np.argmax(valid))
        log_returns = np.diff(np.log(close[first:]))
        log_returns.flags.writeable = False
        n = log_returns.size
        std = float(np.std(log_returns, ddof=1)) if n > 1 else math.nan
        return cls(method, int(seed), float(block_size), int(close.size), first,
                   float(close[first]), log_returns, float(np.mean(log_returns)) if n else 0.0,
                   std)

    def rng(self, k: int) -> np.random.Generator:
        """Path ``k``'s generator: ``default_rng(SeedSequence(seed).spawn(n)[k])`` for any n > k."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(int(k),)))

    def indices(self, k: int) -> np.ndarray:
        """Which data log return each of path ``k``'s returns is (``bootstrap``/``block``)."""
        if self.method == "gbm":
            raise ValueError("a GBM path is not resampled from the data: it has no indices")
        return self._indices(self.rng(k))

    def _indices(self, rng: np.random.Generator) -> np.ndarray:
        m = self.log_returns.size
        if self.method == "bootstrap":
            return rng.integers(0, m, size=m)
        new = rng.random(m) < 1.0 / self.block_size  # block_size >= 1
        new[0] = True
        first = np.flatnonzero(new)  # where each block starts in the path
        starts = rng.integers(0, m, size=first.size)  # and at which data return
        index = np.repeat(starts - first, np.diff(first, append=m))
        index += np.arange(m)  # = starts[block] + position in the block, wrapped below
        while True:  # (index % m, without an integer division per return)
            over = index >= m
            if not over.any():
                return index
            np.subtract(index, m, out=index, where=over)

    def returns(self, k: int) -> np.ndarray:
        """Path ``k``'s ``m`` log returns ``s``."""
        rng = self.rng(k)
        if self.method == "gbm":
            return rng.normal(self.mean, self.std, size=self.log_returns.size)
        return self.log_returns[self._indices(rng)]

    def path(self, base_close, k: int) -> np.ndarray:
        """Path ``k``'s closes (n_bars,); ``base_close`` (the job's one base series) is
        not needed: the generator holds what it fitted on it."""
        prices = np.full(self.n_bars, np.nan)
        prices[self.first_bar] = self.first_close
        generated = prices[self.first_bar + 1:]
        np.cumsum(self.returns(k), out=generated)
        with np.errstate(over="ignore", under="ignore"):  # refused just below
            np.exp(generated, out=generated)
        generated *= self.first_close
        if generated.size and not (generated.min() > 0.0 and generated.max() < np.inf):
            raise ValueError(f"Monte Carlo path {k} left the float64 range (a price overflowed "
                             "or reached 0): the data's log returns are too extreme for "
                             f"{self.n_bars:,} bars of {self.method!r} resampling")
        return prices
