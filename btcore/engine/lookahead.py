"""The look-ahead check: no indicator may read bars after the one it writes.

An indicator fills ``out[t]`` from ``close``; a backtest is honest only if
``out[t]`` depends on ``close[0..t]`` alone. An indicator that writes
``close[t + 1] - close[t]`` into ``out[t]`` trades on tomorrow's price and
shows a spectacular Sharpe ratio. So before a strategy's first run (in the
driver, after the pre-flight of :mod:`btcore.engine.preflight`), :func:`check`
runs each indicator's **compiled** function on a synthetic, real-looking price
series (:func:`realistic_close`: volatility clusters, fat tails, a drift, runs
of equal closes) and on prefixes of it cut at several bars: the prefix values
must equal the full series' values on the prefix. A difference means the value
at some bar changed when later bars were added: :class:`LookaheadError` names
the indicator, its argument values and that first bar.

Recursive indicators (an EMA, Wilder's RSI) depend on where the series *starts*,
not on what comes after, so they pass; for every indicator the check also
measures the **warm-up** (:attr:`IndicatorCheck.warmup_bars`): how many bars
after a later start its values take to agree, within :data:`WARMUP_TOLERANCE`
of the indicator's scale, with the ones computed from the series' first bar
(a window's length for a simple average; more for an EMA).

Each indicator is tried with up to three argument tuples of the run's grid (the
smallest, middle and largest values of each argument). A pass is remembered by
the indicators' code key (:func:`btcore.kernels.code_key.globals_digest`: their
code and every global value they read, with the option values they take and
this module's own source), in this process and as a file in
``<kernel dir>/lookahead/``, so later runs in any process pay nothing. Output
the indicators print during the check is muted (only in the checking thread).
Skipped: ``debug=True`` and ``NUMBA_DISABLE_JIT=1`` runs (plain Python), and
jobs without a strategy's indicators (cross-sectional).
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import asdict, dataclass, field

import numpy as np

from btcore.strategies.base import muted

#: fractions of the synthetic series where prefixes are cut
CUTS = (0.3, 0.45, 0.6, 0.75, 0.9)
#: fractions of the series where the warm-up runs start
WARMUP_STARTS = (0.1, 0.25)
#: a prefix value equals the full series' when within this share of the indicator's scale
EXACT_TOLERANCE = 1e-12
#: a later-started run has warmed up once within this share of the indicator's scale
WARMUP_TOLERANCE = 1e-4
#: argument tuples tried per indicator
MAX_ARGUMENTS = 3
MIN_BARS, MAX_BARS = 1_000, 200_000

_PASSED: dict = {}  # code key -> LookaheadReport (this process)
_LOCK = threading.Lock()
#: how many times the check itself ran (tests count them)
checks_run = 0


class LookaheadError(ValueError):
    """An indicator's value at a bar depends on bars after it."""


@dataclass(frozen=True)
class IndicatorCheck:
    """What the check found for one indicator at one tuple of argument values.

    Attributes
    ----------
    indicator : str
        ``Indicator(fn, names...)`` as the spec declares it.
    arguments : dict
        Argument name -> value it was called with.
    future_bar : int or None
        The first bar whose value changed when later bars were added (None: none did).
    cut : int or None
        The prefix length that showed it (bars ``cut`` onward were missing).
    warmup_bars : int or None
        Bars a run started later needs before its values agree with a run from the
        first bar (None: not within the synthetic series).
    recursive : bool
        Whether it needs more warm-up than its longest window argument (+ 1): its
        values depend on where the series starts (an EMA, Wilder's RSI), not only
        on a window of past bars.
    """

    indicator: str
    arguments: dict
    future_bar: int | None
    cut: int | None
    warmup_bars: int | None
    recursive: bool

    @property
    def reads_future(self) -> bool:
        return self.future_bar is not None


@dataclass
class LookaheadReport:
    """The check's findings for a strategy: one :class:`IndicatorCheck` per indicator
    and argument tuple, on a synthetic series of ``n_bars`` bars."""

    strategy: str
    n_bars: int
    checks: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(check.reads_future for check in self.checks)

    @property
    def frame(self):
        """The checks as a DataFrame (one row per indicator and argument tuple)."""
        import pandas as pd
        return pd.DataFrame([{**asdict(c), "reads_future": c.reads_future}
                             for c in self.checks])

    def __str__(self) -> str:
        lines = [f"look-ahead check of strategy {self.strategy!r} on a synthetic series of "
                 f"{self.n_bars:,} bars:"]
        for c in self.checks:
            where = _arguments_text(c.arguments)
            if c.reads_future:
                lines.append(f"  {c.indicator} ({where}): READS THE FUTURE from bar "
                             f"{c.future_bar} (cut at {c.cut})")
                continue
            warmup = ("does not converge within the series" if c.warmup_bars is None
                      else f"warm-up {c.warmup_bars} bars")
            kind = " (recursive: depends on where the series starts)" if c.recursive else ""
            lines.append(f"  {c.indicator} ({where}): causal, {warmup}{kind}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"strategy": self.strategy, "n_bars": self.n_bars,
                           "checks": [asdict(c) for c in self.checks]})

    @classmethod
    def from_json(cls, text: str) -> "LookaheadReport":
        data = json.loads(text)
        return cls(data["strategy"], int(data["n_bars"]),
                   [IndicatorCheck(**c) for c in data["checks"]])


def realistic_close(n_bars: int, seed: int = 2024) -> np.ndarray:
    """A positive price series that looks like a stock's: GARCH(1, 1) volatility
    clusters, Student-t (5 degrees of freedom) shocks, a small drift, and a few
    runs of equal closes (a halted or illiquid stock)."""
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(5, n_bars) / math.sqrt(5 / 3)
    returns = np.empty(n_bars)
    variance = 1.6e-4
    for t in range(n_bars):
        returns[t] = 2e-4 + math.sqrt(variance) * shocks[t]
        variance = 2e-6 + 0.08 * returns[t] ** 2 + 0.9 * variance
    close = 50.0 * np.exp(np.cumsum(returns))
    for start in rng.integers(1, n_bars - 6, size=max(1, n_bars // 400)):
        close[start:start + 5] = close[start - 1]
    return close


# ------------------------------------------------------------------ the check
def check(job) -> LookaheadReport | None:
    """Check ``job``'s strategy's indicators once per code version (module docstring);
    :class:`LookaheadError` if one reads the future. Returns the report (None when
    skipped or undecided)."""
    spec = getattr(job, "strategy", None)
    inner = job if hasattr(job, "sets") else getattr(job, "job", None)
    if spec is None or inner is None or job.debug or not getattr(spec, "indicators", ()):
        return None
    from numba.core import config
    if config.DISABLE_JIT:
        return None
    key = code_key(spec, inner.options)
    if key in _PASSED:
        return _PASSED[key]
    with _LOCK:
        if key in _PASSED:
            return _PASSED[key]
        stored = _load(key)
        if stored is not None:
            _PASSED[key] = stored
            return stored
        report = check_indicators(spec, argument_rows(spec, inner.sets, inner.options))
        if report is None:
            return None
        refuse(spec, report)
        _PASSED[key] = report
        _store(key, report)
        return report


def check_lookahead(strategy, grid=None, **options) -> LookaheadReport:
    """The look-ahead check of ``strategy``'s indicators, as a report (never raises for
    a finding, never cached): what a run does before its first kernel call, to read.

    Parameters
    ----------
    strategy : str or StrategySpec
    grid : dict of lists, DataFrame, list of dicts or Grid, optional
        The argument values to try (each parameter's smallest, middle and largest);
        None tries the defaults.
    **options
        Strategy options (an indicator may take one).

    Returns
    -------
    LookaheadReport
        ``print(report)`` for the text, ``report.frame`` for a DataFrame,
        ``report.ok`` False when an indicator reads the future.

    Examples
    --------
    >>> print(check_lookahead("ma_crossover", average="ema"))  # doctest: +SKIP
    look-ahead check of strategy 'ma_crossover' on a synthetic series of 1,000 bars:
      Indicator(moving_average_nb, 'fast_window', 'average') (fast_window=10, average=1): \
causal, warm-up 27 bars (recursive: depends on where the series starts)
    ...
    """
    import btcore.strategies as strategies
    from btcore.grid import as_grid
    from btcore.sets import job_sets
    spec = strategies.get(strategy)
    values = spec.option_values(options)
    if grid is None:
        grid = {p.name: [p.default] for p in spec.params}
    grid = as_grid(grid, spec)
    grid.check(spec)
    report = check_indicators(spec, argument_rows(spec, job_sets(spec, grid, values), values))
    if report is None:
        raise ValueError(f"strategy {spec.name!r}: an indicator failed on the synthetic "
                         "series (run a backtest for the error)")
    return report


def refuse(spec, report: LookaheadReport) -> None:
    """:class:`LookaheadError` naming the first indicator of ``report`` that reads the
    future, its argument values and the first bar."""
    for c in report.checks:
        if c.reads_future:
            raise LookaheadError(
                f"strategy {spec.name!r}: indicator {c.indicator} with "
                f"{_arguments_text(c.arguments)} reads the future: on a synthetic series of "
                f"{report.n_bars:,} bars its value at bar {c.future_bar} changes when bars "
                f"{c.cut} onward are added (computed on the first {c.cut} bars it differs "
                f"from the full series from bar {c.future_bar} on). out[t] may depend on "
                "close[0..t] only; use past closes (e.g. close[t] - close[t - 1]). btcore "
                "checks every strategy's indicators once per code version "
                "(docs/strategies.md, 'What runs where on first use')")


def code_key(spec, options) -> str:
    """The code key of ``spec``'s indicators with these option values: their code and
    globals (:func:`~btcore.kernels.code_key.globals_digest`), the options they take,
    and this module's source."""
    from btcore.kernels.code_key import files_digest, globals_digest
    hasher = hashlib.sha256(globals_digest([i.fn for i in spec.indicators]).encode())
    hasher.update(files_digest(["engine/lookahead.py"]).encode())
    names = list(spec.options)
    for indicator in spec.indicators:
        hasher.update(repr(indicator.names).encode())
        hasher.update(repr([float(options[names.index(n)]) for n in indicator.names
                            if n in names]).encode())
    return hasher.hexdigest()[:32]


def argument_rows(spec, sets, options) -> list:
    """Per indicator, up to :data:`MAX_ARGUMENTS` tuples of its argument values from
    ``sets``: each parameter at its smallest, middle and largest value (options at
    their value)."""
    option_names = list(spec.options)
    axes = getattr(sets, "values", None)  # ProductSets: each axis's values
    table = None
    rows = []
    for indicator in spec.indicators:
        tuples = []
        for share in (0.0, 0.5, 1.0)[:MAX_ARGUMENTS]:
            values = []
            for name, kind in zip(indicator.names, spec.argument_kinds(indicator)):
                if name in option_names:
                    values.append(kind(options[option_names.index(name)]))
                    continue
                if axes is not None:
                    column = axes[name]
                else:
                    if table is None:
                        table = sets.params(0, sets.n_sets)
                    column = table[:, spec.param_names.index(name)]
                column = np.unique(column)
                values.append(kind(column[round(share * (len(column) - 1))]))
            if tuple(values) not in tuples:
                tuples.append(tuple(values))
        rows.append(tuples)
    return rows


def check_indicators(spec, rows: list, n_bars: int | None = None) -> LookaheadReport | None:
    """Run the check on ``spec``'s indicators with ``rows`` (per indicator, tuples of
    argument values); the report, or None when an indicator could not run (a compile
    error, an exception: the run itself reports it)."""
    global checks_run
    checks_run += 1
    windows = [abs(v) for indicator, tuples in zip(spec.indicators, rows)
               for arguments in tuples
               for name, v in zip(indicator.names, arguments)
               if name in spec.param_names and spec.param(name).is_window]
    if n_bars is None:
        n_bars = int(min(MAX_BARS, max(MIN_BARS, 8 * max(windows, default=0) + 200)))
    close = realistic_close(n_bars)
    report = LookaheadReport(spec.name, n_bars)
    with muted():
        for indicator, tuples in zip(spec.indicators, rows):
            for arguments in tuples:
                longest = max([abs(v) for n, v in zip(indicator.names, arguments)
                               if n in spec.param_names and spec.param(n).is_window],
                              default=0)
                try:
                    found = _check_one(indicator.fn, close, arguments, longest)
                except Exception:  # noqa: BLE001 - a compile error or a bug: the run says
                    return None
                report.checks.append(IndicatorCheck(
                    repr(indicator), dict(zip(indicator.names, arguments)), *found))
    return report


def _run(fn, close: np.ndarray, arguments) -> np.ndarray:
    out = np.full(close.shape[0], np.nan)
    fn(np.ascontiguousarray(close), *arguments, out)
    return out


def _differs(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    """Bars where ``a`` and ``b`` differ: one NaN and not the other, or further apart
    than ``tolerance``."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        far = np.abs(a - b) > tolerance
    return (nan_a != nan_b) | (far & ~nan_a & ~nan_b)


def _scale(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def _check_one(fn, close: np.ndarray, arguments, window: float) -> tuple:
    """``(future_bar, cut, warmup_bars, recursive)`` of one indicator called with
    ``arguments`` (``window``: its longest window argument, 0 if none)."""
    n_bars = close.shape[0]
    full = _run(fn, close, arguments)
    exact = EXACT_TOLERANCE * _scale(full)
    future_bar = cut = None
    for share in CUTS:
        length = int(n_bars * share)
        bad = _differs(_run(fn, close[:length].copy(), arguments), full[:length], exact)
        if bad.any():
            future_bar, cut = int(np.argmax(bad)), length
            break
    warmup = 0
    for share in WARMUP_STARTS:
        start = int(n_bars * share)
        later = _run(fn, close[start:].copy(), arguments)
        reference = full[start:]
        bad = _differs(later, reference, WARMUP_TOLERANCE * _scale(reference))
        if bad[-1]:
            return future_bar, cut, None, True
        warmup = max(warmup, int(np.flatnonzero(bad)[-1]) + 1 if bad.any() else 0)
    return future_bar, cut, warmup, warmup > window + 1


def _arguments_text(arguments: dict) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in arguments.items()) or \
        "no arguments"


# ------------------------------------------------------------------ storing
def _path(key: str):
    from btcore.kernels.cache_dir import kernel_dir, private_dir
    try:
        return private_dir(kernel_dir() / "lookahead") / key
    except OSError:
        return None


def _load(key: str) -> LookaheadReport | None:
    from btcore.kernels.cache_dir import read_regular
    path = _path(key)
    text = None if path is None else read_regular(path)
    if text is None:
        return None
    try:
        return LookaheadReport.from_json(text)
    except (ValueError, KeyError, TypeError):
        return None


def _store(key: str, report: LookaheadReport) -> None:
    from btcore.kernels.cache_dir import write_private
    path = _path(key)
    if path is not None:
        try:
            write_private(path, report.to_json())
        except OSError:  # not remembered: checked again next time
            pass


__all__ = ["IndicatorCheck", "LookaheadError", "LookaheadReport", "check", "check_lookahead",
           "check_indicators", "realistic_close"]
