"""Indicator kernels: 1-D series in, 1-D series out, O(n_bars).

Conventions: ``close`` is a float64 series that may start with NaNs (asset not
listed yet) and is finite afterwards; outputs are written into a preallocated
``out`` of the same length, 0.0 where the indicator is undefined (warm-up).
"""
import math

from numba import njit

#: relative tolerance under which a window's std counts as zero (flat prices)
FLAT_STD_TOLERANCE = 1e-12


@njit(cache=True, nogil=True, error_model="numpy")
def first_valid_nb(close):
    """Index of the first non-NaN value (len(close) if there is none)."""
    for t in range(close.shape[0]):
        if not math.isnan(close[t]):
            return t
    return close.shape[0]


@njit(cache=True, nogil=True, error_model="numpy")
def _neumaier_add(total, compensation, value):
    """Compensated summation step: returns the new (total, compensation)."""
    new_total = total + value
    if abs(total) >= abs(value):
        compensation += (total - new_total) + value
    else:
        compensation += (value - new_total) + total
    return new_total, compensation


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_zscore_nb(close, window, out):
    """z_t = (close_t - mean(W)) / std(W, ddof=1) with W = close[t-window:t].

    Equals, to ~1e-12 relative, ``(close - m) / s`` with
    ``m = close.shift(1).rolling(window).mean()`` and
    ``s = close.shift(1).rolling(window).std()`` computed two-pass; 0.0 where fewer
    than ``window`` valid closes precede t or where s <= 1e-12 * m (flat window).

    Rolling sums of deviations from a shift (the window mean at the last re-sum)
    are kept with compensated (Neumaier) summation and re-summed exactly every
    ``window`` bars, so round-off cannot drift: O(n_bars) work in total.
    """
    n_bars = close.shape[0]
    for t in range(n_bars):
        out[t] = 0.0
    first = first_valid_nb(close)
    shift = 0.0
    sum_dev = 0.0
    sum_dev_comp = 0.0
    sum_sq = 0.0
    sum_sq_comp = 0.0
    for t in range(first + window, n_bars):
        if (t - first - window) % window == 0:
            total = 0.0
            for i in range(t - window, t):
                total += close[i]
            shift = total / window
            sum_dev = 0.0
            sum_sq = 0.0
            for i in range(t - window, t):
                deviation = close[i] - shift
                sum_dev += deviation
                sum_sq += deviation * deviation
            sum_dev_comp = 0.0
            sum_sq_comp = 0.0
        else:
            entering = close[t - 1] - shift
            leaving = close[t - 1 - window] - shift
            sum_dev, sum_dev_comp = _neumaier_add(sum_dev, sum_dev_comp, entering)
            sum_dev, sum_dev_comp = _neumaier_add(sum_dev, sum_dev_comp, -leaving)
            sum_sq, sum_sq_comp = _neumaier_add(sum_sq, sum_sq_comp, entering * entering)
            sum_sq, sum_sq_comp = _neumaier_add(sum_sq, sum_sq_comp, -(leaving * leaving))
        dev = sum_dev + sum_dev_comp
        mean_dev = dev / window
        mean = shift + mean_dev
        variance = ((sum_sq + sum_sq_comp) - dev * mean_dev) / (window - 1)
        std = math.sqrt(variance) if variance > 0.0 else 0.0
        if std > FLAT_STD_TOLERANCE * mean:
            out[t] = (close[t] - mean) / std
