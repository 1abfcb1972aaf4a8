"""Indicator kernels: 1-D series in, 1-D series out, O(n_bars).

Conventions: ``close`` is a float64 series that may start with NaNs (asset not
listed yet) and is finite afterwards; outputs are written into a preallocated
``out`` of the same length, 0.0 where the indicator is undefined (warm-up).
"""
import math

from numba import njit

#: relative tolerance under which a window's std counts as zero (flat prices)
FLAT_STD_TOLERANCE = 1e-12
#: re-sum the window when centring would cancel more than 3 digits
CANCELLATION_LIMIT = 1e-3


@njit(cache=True, nogil=True, error_model="numpy")
def first_valid_nb(close):
    """Index of the first non-NaN value (len(close) if there is none)."""
    for t in range(close.shape[0]):
        if not math.isnan(close[t]):
            return t
    return close.shape[0]


@njit(cache=True, nogil=True, error_model="numpy")
def _compensated_add(total, compensation, value):
    """Add ``value`` to ``total`` keeping the exact rounding error (Knuth's TwoSum,
    branch-free) in ``compensation``; returns the new (total, compensation)."""
    new_total = total + value
    virtual = new_total - total
    compensation += (total - (new_total - virtual)) + (value - virtual)
    return new_total, compensation


@njit(cache=True, nogil=True, error_model="numpy")
def _window_sums_nb(close, stop, window):
    """Exact re-sum of close[stop-window:stop]: (shift, sum of deviations, sum of squares),
    deviations taken from the window's own mean (two-pass)."""
    total = 0.0
    for i in range(stop - window, stop):
        total += close[i]
    shift = total / window
    sum_dev = 0.0
    sum_sq = 0.0
    for i in range(stop - window, stop):
        deviation = close[i] - shift
        sum_dev += deviation
        sum_sq += deviation * deviation
    return shift, sum_dev, sum_sq


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_zscore_nb(close, window, out):
    """z_t = (close_t - mean(W)) / std(W, ddof=1) with W = close[t-window:t].

    Equals, to ~1e-12 relative, ``(close - m) / s`` with
    ``m = close.shift(1).rolling(window).mean()`` and
    ``s = close.shift(1).rolling(window).std()`` computed two-pass; 0.0 where fewer
    than ``window`` valid closes precede t or where s <= 1e-12 * m (flat window).

    Rolling sums of deviations from a shift (the window mean at the last re-sum)
    use compensated (TwoSum) updates. The window is re-summed exactly every
    ``window`` bars, and at once whenever the shift has drifted so far from the
    data (after a jump) that ``sum_sq - sum_dev**2 / window`` would lose more than
    3 digits: O(n_bars) work for ordinary data. An exactly flat window (common
    with tick-rounded prices) gives exactly 0, as two-pass does.
    """
    n_bars = close.shape[0]
    for t in range(n_bars):
        out[t] = 0.0
    first = first_valid_nb(close)
    if first + window >= n_bars:  # never a full window: all zeros (and no reads past the end)
        return
    shift = 0.0
    sum_dev = 0.0
    sum_dev_comp = 0.0
    sum_sq = 0.0
    sum_sq_comp = 0.0
    bars_to_resum = 1
    inv_window = 1.0 / window  # multiply, don't divide, in the per-bar loop
    inv_degrees = 1.0 / (window - 1)
    equal_run = 1  # consecutive equal closes ending at bar t - 1
    for t in range(first + 1, first + window):
        equal_run = equal_run + 1 if close[t] == close[t - 1] else 1
    for t in range(first + window, n_bars):
        if t > first + window:
            equal_run = equal_run + 1 if close[t - 1] == close[t - 2] else 1
        bars_to_resum -= 1
        if bars_to_resum == 0:  # a countdown, not t % window: integer division is slow
            bars_to_resum = window
            shift, sum_dev, sum_sq = _window_sums_nb(close, t, window)
            sum_dev_comp = 0.0
            sum_sq_comp = 0.0
        else:
            entering = close[t - 1] - shift
            leaving = close[t - 1 - window] - shift
            sum_dev, sum_dev_comp = _compensated_add(sum_dev, sum_dev_comp, entering)
            sum_dev, sum_dev_comp = _compensated_add(sum_dev, sum_dev_comp, -leaving)
            sum_sq, sum_sq_comp = _compensated_add(sum_sq, sum_sq_comp, entering * entering)
            sum_sq, sum_sq_comp = _compensated_add(sum_sq, sum_sq_comp, -(leaving * leaving))
        if equal_run >= window:  # exactly flat: two-pass gives std == 0, so must we
            continue
        dev = sum_dev + sum_dev_comp
        squares = sum_sq + sum_sq_comp
        centered = squares - dev * (dev * inv_window)
        if centered < squares * CANCELLATION_LIMIT:
            shift, sum_dev, sum_sq = _window_sums_nb(close, t, window)
            sum_dev_comp = 0.0
            sum_sq_comp = 0.0
            dev = sum_dev
            centered = sum_sq - dev * (dev * inv_window)
        mean = shift + dev * inv_window
        variance = centered * inv_degrees
        std = math.sqrt(variance) if variance > 0.0 else 0.0
        if std > FLAT_STD_TOLERANCE * mean:
            out[t] = (close[t] - mean) / std
