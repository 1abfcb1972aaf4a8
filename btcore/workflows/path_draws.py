"""The compiled half of :mod:`btcore.workflows.paths`: a small random number
generator and one fused loop that draws a path, all ``nogil`` so paths made on
worker threads run in parallel.

The generator (exact definition; ``tests/test_monte_carlo.py`` re-implements it
in plain Python):

- all arithmetic is on unsigned 64-bit integers, modulo 2**64;
- ``mix(z)`` is SplitMix64's finaliser: ``z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
  z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31``;
- path ``k`` of a run keyed ``(key0, key1)`` (two words of
  ``numpy.random.SeedSequence(seed).generate_state(2, numpy.uint64)``) seeds
  SplitMix64 with ``x = key0 ^ mix(key1 + k)``; the first four SplitMix64 outputs
  (``x += 0x9E3779B97F4A7C15; output mix(x)``) are the state of a
  xoshiro256** generator (Blackman & Vigna 2018), whose outputs are the path's
  draws: one stream per path, so path ``k`` never depends on another path;
- a uniform float in [0, 1) is ``(draw >> 11) * 2**-53``;
- a uniform integer in [0, m) is ``draw >> (64 - b)`` where ``b`` is the bit
  length of ``m - 1`` (0 when ``m == 1``: no draw), drawn again until it is
  below ``m`` (no modulo bias);
- a standard normal is Marsaglia's polar method on ``u = 2 * uniform - 1``
  pairs: accept ``s = u1**2 + u2**2`` in (0, 1), ``f = sqrt(-2 log(s) / s)``,
  and return ``u1 * f`` then, on the next call, ``u2 * f``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

#: method codes of :func:`draw_path`
BOOTSTRAP, BLOCK, GBM = 0, 1, 2

_GOLDEN = uint64(0x9E3779B97F4A7C15)
_MIX1 = uint64(0xBF58476D1CE4E5B9)
_MIX2 = uint64(0x94D049BB133111EB)
_TO_UNIT = 2.0 ** -53


@njit(cache=True, nogil=True, inline="always")
def _mix(z):
    z = (z ^ (z >> uint64(30))) * _MIX1
    z = (z ^ (z >> uint64(27))) * _MIX2
    return z ^ (z >> uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(cache=True, nogil=True)
def seed_state(key0, key1, k, state):
    """Path ``k``'s xoshiro256** state (4 words, filled in place)."""
    x = uint64(key0) ^ _mix(uint64(key1) + uint64(k))
    for i in range(4):
        x += _GOLDEN
        state[i] = _mix(x)


@njit(cache=True, nogil=True, inline="always")
def _next(s):
    result = _rotl(s[1] * uint64(5), 7) * uint64(9)
    t = s[1] << uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True, nogil=True, inline="always")
def _uniform(s):
    return float(_next(s) >> uint64(11)) * _TO_UNIT


@njit(cache=True, nogil=True, inline="always")
def _bits_for(m):
    """Bit length of ``m - 1`` (m >= 1)."""
    bits, top = 0, m - 1
    while top > 0:
        bits += 1
        top >>= 1
    return bits


@njit(cache=True, nogil=True, inline="always")
def _integer(s, m, shift):
    """Uniform in [0, m); ``shift = 64 - bit length of m - 1`` (64: m == 1)."""
    if shift == 64:
        return 0
    while True:
        v = np.int64(_next(s) >> uint64(shift))
        if v < m:
            return v


@njit(cache=True, nogil=True)
def _normals(s, out):
    """``out`` filled with standard normals (polar method, pairs in order)."""
    n = out.size
    i = 0
    while i < n:
        while True:
            u1 = 2.0 * _uniform(s) - 1.0
            u2 = 2.0 * _uniform(s) - 1.0
            r2 = u1 * u1 + u2 * u2
            if 0.0 < r2 < 1.0:
                break
        f = np.sqrt(-2.0 * np.log(r2) / r2)
        out[i] = u1 * f
        if i + 1 < n:
            out[i + 1] = u2 * f
        i += 2


@njit(cache=True, nogil=True)
def draw_path(method, key0, key1, k, log_returns, mean, std, new_block, first_bar,
              first_close, close, index, returns):
    """Path ``k``'s draws: ``close`` (n_bars,) gets NaN before ``first_bar``,
    ``first_close`` at it and the running sum of the path's log returns after it
    (the caller takes ``first_close * numpy.exp`` of those: NumPy's SIMD ``exp``
    is several times faster than a scalar one and releases the GIL too); when they
    are not empty, ``index`` (m,) gets the data return each step took
    (bootstrap/block) and ``returns`` (m,) the path's log returns.

    ``new_block`` is ``1 / block_size`` (block: a step starts a new block when a
    uniform draw is below it).
    """
    m = log_returns.size
    state = np.empty(4, dtype=np.uint64)
    seed_state(key0, key1, k, state)
    keep_index = index.size > 0
    keep_returns = returns.size > 0
    close[:first_bar] = np.nan
    close[first_bar] = first_close
    shift = 64 - _bits_for(m) if m > 0 else 64
    normals = np.empty(m if method == GBM else 0)
    if method == GBM:
        _normals(state, normals)
    total = 0.0
    at = 0
    for i in range(m):
        if method == BOOTSTRAP:
            at = _integer(state, m, shift)
            step = log_returns[at]
        elif method == BLOCK:
            if i == 0 or _uniform(state) < new_block:
                at = _integer(state, m, shift)
            else:
                at += 1
                if at == m:
                    at = 0
            step = log_returns[at]
        else:
            step = mean + std * normals[i]
        if keep_index:
            index[i] = at
        if keep_returns:
            returns[i] = step
        total += step
        close[first_bar + 1 + i] = total


@njit(cache=True, nogil=True)
def shape_indices(key0, key1, k, n, index):
    """GBM candles: ``index`` (n,) filled with uniform bar shapes in [0, n) from
    path ``k``'s second stream (keyed ``key1, key0``: the close path's draws are
    untouched)."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(key1, key0, k, state)
    shift = 64 - _bits_for(n) if n > 0 else 64
    for i in range(index.size):
        index[i] = _integer(state, n, shift)
