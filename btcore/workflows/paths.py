"""Simulated price paths (and candles) of one asset: :class:`PathGenerator`.

Semantics (``docs/semantics.md`` terms; ``m`` = the number of the asset's valid
log returns ``r_j = log(c_{j+1} / c_j)``, taken over *all* the asset's valid
bars in the data, from its first valid close to the last bar, whatever
``start``/``end`` say: a path covers the whole data, warm-up bars included):

- every path has as many bars as the data; bars before the asset's first valid
  bar ``f`` are NaN, ``p_f`` is the asset's first valid close, and
  ``p_{f+t} = p_f * exp(s_1 + ... + s_t)`` for ``t = 1..m`` (a running sum,
  left to right) where ``s`` are the path's ``m`` resampled log returns;
- path ``k`` draws from its own stream of the generator of
  :mod:`btcore.workflows.path_draws` (xoshiro256** seeded from ``k`` and two words
  of ``numpy.random.SeedSequence(seed)``), so a path does not depend on
  ``n_paths`` or on the other paths: the first 16 paths of a 1,000-path run are a
  16-path run with the same seed, and every executor and batch split makes the
  same bits;
- ``"bootstrap"`` (iid): step ``i`` takes data return ``r[integer(m)]``;
- ``"block"`` (stationary bootstrap, Politis & Romano 1994, mean block length
  ``b = block_size``): step 0 starts a block; step ``i > 0`` draws a uniform
  ``u`` and starts a new block when ``u < 1 / b``, else continues the current
  block at the next data return, circularly (``(j + 1) mod m``); a new block
  starts at data return ``integer(m)``;
- ``"gbm"`` (geometric Brownian motion with the fitted drift and volatility):
  ``s_i = mean(r) + std(r, ddof=1) * z_i``, ``z`` standard normals.

Candles (:meth:`PathGenerator.candles`, when fitted with open/high/low): each
bar's shape ``log(open / close), log(high / close), log(low / close)`` travels
with its resampled return: path bar ``f + 1 + i`` has the shape of the data bar
``j + 1`` whose return ``r_j`` step ``i`` took (``"gbm"`` draws the shapes iid
from a second stream of path ``k``), bar ``f`` keeps its own, and
``open = close * exp(shape)`` and so on. The close path is the same bits as
:meth:`PathGenerator.path`.

Version note: btcore 0.1.0 drew paths with ``numpy.random.default_rng`` in
Python under the GIL; since the compiled generator (every draw ``nogil``,
paths on worker threads in parallel) a given seed makes different paths than it
did then, the same ones on every executor and machine.

Bit-identity across *machines* also needs the same ``exp``/``log`` from the C
library the compiled code links (glibc's are the same everywhere they run).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from btcore.workflows import path_draws
from btcore.workflows.path_draws import BLOCK, BOOTSTRAP, GBM

#: resampling methods of :meth:`PathGenerator.fit`
METHODS = ("bootstrap", "block", "gbm")
_CODES = {"bootstrap": BOOTSTRAP, "block": BLOCK, "gbm": GBM}
_NOTHING = np.empty(0)
_NO_INDEX = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class PathGenerator:
    """Makes path ``k``'s closes (and candles) from the seed (see the module docstring).

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
    shapes : numpy.ndarray or None
        With open/high/low: (m + 1, 3) ``log(open / close), log(high / close),
        log(low / close)`` of the bars from ``first_bar`` on (read-only).
    key : tuple of int
        Two words of ``SeedSequence(seed)``: the generator's key.
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
    shapes: np.ndarray | None = None
    key: tuple = field(default=(0, 0))

    @classmethod
    def fit(cls, close: np.ndarray, method: str, seed: int, block_size: float = 20.0, *,
            open=None, high=None, low=None) -> "PathGenerator":
        """A generator for one asset's ``close`` (n_bars,), NaN before its first valid bar.

        Parameters
        ----------
        close : numpy.ndarray
        method : {"bootstrap", "block", "gbm"}
        seed : int >= 0
        block_size : float >= 1, default 20
        open, high, low : numpy.ndarray, optional
            The same bars' open, high and low (all three or none): then
            :meth:`candles` makes whole candles. From the first valid close on
            they must be finite, > 0, with ``low <= min(open, close)`` and
            ``high >= max(open, close)``.

        Raises
        ------
        ValueError
            No valid close, an unknown method, or candles that are not candles.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
        close = np.asarray(close, dtype=np.float64)
        valid = ~np.isnan(close)
        if not valid.any():
            raise ValueError("the asset has no valid close")
        first = int(np.argmax(valid))
        log_returns = np.diff(np.log(close[first:]))
        log_returns.flags.writeable = False
        n = log_returns.size
        std = float(np.std(log_returns, ddof=1)) if n > 1 else math.nan
        key = tuple(int(word) for word in
                    np.random.SeedSequence(int(seed)).generate_state(2, np.uint64))
        return cls(method, int(seed), float(block_size), int(close.size), first,
                   float(close[first]), log_returns, float(np.mean(log_returns)) if n else 0.0,
                   std, _shapes(close, first, open, high, low), key)

    def __setstate__(self, state: dict) -> None:
        # unpickled arrays come back writable: read-only again, so a worker's
        # compiled draws take the same (cached) specialisation as the driver's
        self.__dict__.update(state)
        for name in ("log_returns", "shapes"):
            if state.get(name) is not None:
                state[name].flags.writeable = False

    def _draw(self, k: int, close: np.ndarray, index: np.ndarray = _NO_INDEX,
              returns: np.ndarray = _NOTHING) -> None:
        """Path ``k``: ``close`` gets its prices, ``index``/``returns`` its draws
        when they are not empty."""
        path_draws.draw_path(
            _CODES[self.method], np.uint64(self.key[0]), np.uint64(self.key[1]),
            np.uint64(k), self.log_returns, self.mean, self.std, 1.0 / self.block_size,
            self.first_bar, self.first_close, close, index, returns)
        generated = close[self.first_bar + 1:]  # the running sums of the log returns
        with np.errstate(over="ignore", under="ignore"):  # refused just below
            np.exp(generated, out=generated)
        generated *= self.first_close
        if generated.size and not (generated.min() > 0.0 and generated.max() < np.inf):
            self._refuse(k)

    def indices(self, k: int) -> np.ndarray:
        """Which data log return each of path ``k``'s returns is (``bootstrap``/``block``)."""
        if self.method == "gbm":
            raise ValueError("a GBM path is not resampled from the data: it has no indices")
        index = np.empty(self.log_returns.size, dtype=np.int64)
        self._draw(_check_path(k), np.empty(self.n_bars), index=index)
        return index

    def returns(self, k: int) -> np.ndarray:
        """Path ``k``'s ``m`` log returns ``s``."""
        returns = np.empty(self.log_returns.size)
        self._draw(_check_path(k), np.empty(self.n_bars), returns=returns)
        return returns

    def path(self, base_close, k: int) -> np.ndarray:
        """Path ``k``'s closes (n_bars,); ``base_close`` (the job's one base series) is
        not needed: the generator holds what it fitted on it."""
        prices = np.empty(self.n_bars)
        self._draw(_check_path(k), prices)
        return prices

    def candles(self, k: int) -> tuple:
        """Path ``k``'s ``(open, high, low, close)``, each (n_bars,); ``close`` is
        :meth:`path`'s, bit for bit.

        Raises
        ------
        ValueError
            The generator was fitted without open/high/low.
        """
        if self.shapes is None:
            raise ValueError("this generator was fitted on closes only: pass open=, high= "
                             "and low= to PathGenerator.fit to make candles")
        k = _check_path(k)
        m = self.log_returns.size
        close, index = np.empty(self.n_bars), np.empty(m, dtype=np.int64)
        self._draw(k, close, index=index if self.method != "gbm" else _NO_INDEX)
        if self.method == "gbm":
            path_draws.shape_indices(np.uint64(self.key[0]), np.uint64(self.key[1]),
                                     np.uint64(k), m, index)
        # bar first_bar keeps its own shape (row 0); step i took return r_j, the
        # move into data bar j + 1 (row j + 1)
        rows = np.concatenate(([0], index + 1))
        tail = close[self.first_bar:]
        sides = []
        with np.errstate(over="ignore", under="ignore"):
            for column in range(3):
                side = np.full(self.n_bars, np.nan)
                side[self.first_bar:] = tail * np.exp(self.shapes[rows, column])
                sides.append(side)
        open_, high, low = sides
        if not (low[self.first_bar:].min() > 0.0 and high[self.first_bar:].max() < np.inf):
            self._refuse(k)
        return open_, high, low, close

    #: same as :meth:`candles` (the name the engine's OHLC wiring calls)
    generate_candles = candles

    def _refuse(self, k: int):
        raise ValueError(f"Monte Carlo path {k} left the float64 range (a price overflowed "
                         "or reached 0): the data's log returns are too extreme for "
                         f"{self.n_bars:,} bars of {self.method!r} resampling")


def _check_path(k) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"a path is an int, got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"a path is an int >= 0, got {k}")
    return int(k)


def _shapes(close, first, open, high, low):
    """(m + 1, 3) log shapes of the bars from ``first`` on, or None without candles."""
    given = [side is not None for side in (open, high, low)]
    if not any(given):
        return None
    if not all(given):
        raise ValueError("candles need all of open=, high= and low= (or none of them)")
    sides = [np.asarray(side, dtype=np.float64) for side in (open, high, low)]
    for name, side in zip(("open", "high", "low"), sides):
        if side.shape != close.shape:
            raise ValueError(f"{name} has shape {side.shape}, close {close.shape}: "
                             "give the same bars")
    o, h, lo, c = (side[first:] for side in (*sides, close))
    bad = ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
            & (lo > 0) & (lo <= np.minimum(o, c)) & (h >= np.maximum(o, c)))
    if bad.any():
        bar = first + int(np.argmax(bad))
        raise ValueError(f"bar {bar} is not a candle (open {o[bar - first]!r}, high "
                         f"{h[bar - first]!r}, low {lo[bar - first]!r}, close "
                         f"{c[bar - first]!r}): from the first valid close on, every bar "
                         "needs finite prices > 0 with low <= min(open, close) <= "
                         "max(open, close) <= high")
    shapes = np.log(np.stack([o / c, h / c, lo / c], axis=1))
    shapes.flags.writeable = False
    return shapes
