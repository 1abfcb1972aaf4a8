"""Combinatorial purged cross-validation (CPCV) of a grid: groups as one more batch axis.

López de Prado's CPCV (*Advances in Financial Machine Learning*, ch. 12): the
traded bars [start, end] (B bars) are cut into ``n_groups`` consecutive groups of
B // n_groups bars (the last group takes the remainder), as skfolio's
``CombinatorialPurgedCV`` cuts them. Each of the C(n_groups, n_test_groups)
splits tests on ``n_test_groups`` groups (``itertools.combinations`` order) and
trains on the others, less ``purge`` bars of a train group just before a test
group and ``purge + embargo`` bars of a train group just after one (the same
bars skfolio leaves out).

One job, sent to the executor once: every set runs on every group as its own
trading window (fresh capital, indicators warmed up on all earlier bars), so a
set's returns in a group never depend on the split. The kernel keeps each
window's sums of r and r² per segment (a group, or with purge/embargo its head,
middle and tail), from which the Sharpe ratio over any union of segments
follows exactly (:func:`btcore.stability.block_sharpe`):

- train score of a set in a split: its Sharpe ratio over the union of the train
  segments (``objective="sharpe_ratio"``), or for another metric the mean of
  the metric over the train groups (each group's value as ``run_sweep`` on that
  group's window reports it; purge/embargo do not apply to those);
- the chosen set: the best score (ties: first in grid order; sets ruined in a
  train group are out), or with ``select="plateau"`` the centre of the best
  neighbourhood (:mod:`btcore.selection`);
- its out-of-sample Sharpe ratio over the union of the test groups, its rank
  among every set's, and the CSCV logit log(w / (1 - w)), w = rank / (N + 1):
  PBO is the share of splits with logit <= 0;
- the C(n_groups - 1, n_test_groups - 1) recombined out-of-sample paths: path p
  takes for group g the chosen set of the p-th split (in order) that tests g,
  and its Sharpe ratio is over the whole path.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from btcore._checks import check_int
from btcore.engine import DenseSink
from btcore.kernels.single import RUINED_ROW
from btcore.metrics import LOWER_IS_BETTER, METRIC_NAMES
from btcore.settings import check_arguments
from btcore.stability import block_sharpe
from btcore.workflows.base import RunOptions, execute, frozen, prepare
from btcore.workflows.walk_forward import _check_product, _plateau_scores

__all__ = ["CPCVResult", "cpcv", "cpcv_groups", "cpcv_split_indices", "cpcv_test_groups",
           "cpcv_path_splits"]


@dataclass
class CPCVResult:
    """Result of :func:`cpcv`.

    Attributes
    ----------
    splits : pandas.DataFrame
        One row per split (x asset): ``split``, ``asset`` (several assets),
        ``train_groups``, ``test_groups``, the chosen parameters, ``is_score`` (the
        train score the choice maximised), ``is_sharpe_ratio`` (over the train
        union), ``oos_sharpe_ratio`` (over the test groups), ``oos_ruined``,
        ``oos_rank`` (1 = worst of the sets) and ``logit``.
    paths : pandas.DataFrame
        Out-of-sample Sharpe ratio of each recombined path (paths x assets).
    pbo : pandas.Series
        Per asset: the share of splits whose chosen set ranks in the lower half
        out of sample (logit <= 0).
    chosen_counts : pandas.DataFrame
        How often each set was chosen: its parameters and ``count`` (and
        ``asset``), most chosen first.
    summary : pandas.DataFrame
        Per asset: splits, paths, PBO and the paths' Sharpe ratio mean, std,
        min, median and share above zero.
    groups : pandas.DataFrame
        ``start``, ``end`` and ``bars`` of each group.
    stats, settings : dict
    """

    splits: pd.DataFrame
    paths: pd.DataFrame
    pbo: pd.Series
    chosen_counts: pd.DataFrame
    summary: pd.DataFrame
    groups: pd.DataFrame
    stats: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        s = self.stats
        return (f"CPCVResult({s['splits']} splits, {s['paths']} paths, {s['backtests']:,} "
                f"group backtests in {s['elapsed_s']:.2f} s on {s['executor']} "
                f"x{s['workers']})\n" + self.summary.to_string(float_format="{:.4g}".format))


# ------------------------------------------------------------- split arithmetic
def cpcv_groups(first: int, last: int, n_groups: int) -> np.ndarray:
    """(n_groups, 2) inclusive ``start, end`` bars of the groups of [first, last]:
    B // n_groups bars each, the last group with the remainder (as skfolio)."""
    size = (last - first + 1) // n_groups
    starts = first + np.arange(n_groups, dtype=np.int64) * size
    ends = starts + size - 1
    ends[-1] = last
    return np.column_stack([starts, ends])


def cpcv_test_groups(n_groups: int, n_test_groups: int) -> np.ndarray:
    """(n_splits, n_test_groups) test groups of each split, lexicographic order."""
    return np.array(list(itertools.combinations(range(n_groups), n_test_groups)),
                    dtype=np.int64).reshape(-1, n_test_groups)


def cpcv_path_splits(n_groups: int, n_test_groups: int) -> np.ndarray:
    """(n_paths, n_groups): the split whose test set gives path p its group g (the
    p-th split, in order, that tests g); n_paths = C(n_groups - 1, n_test_groups - 1)."""
    tests = cpcv_test_groups(n_groups, n_test_groups)
    return np.array([np.flatnonzero((tests == g).any(axis=1)) for g in range(n_groups)]).T


def _segments(groups: np.ndarray, purge: int, embargo: int):
    """Segments of the groups that purge/embargo keep or drop whole: ``starts``,
    ``lengths``, ``group``, ``head`` (in the first purge + embargo bars of its group),
    ``tail`` (in its last purge bars)."""
    starts, lengths, group, head, tail = [], [], [], [], []
    for g, (start, end) in enumerate(groups):
        cuts = sorted({int(start), int(start) + purge + embargo, int(end) + 1 - purge,
                       int(end) + 1})
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b <= a or a < start or b > end + 1:
                continue
            starts.append(a)
            lengths.append(b - a)
            group.append(g)
            head.append(a < start + purge + embargo)
            tail.append(b > end + 1 - purge)
    return (np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64),
            np.array(group), np.array(head), np.array(tail))


def _train_masks(tests: np.ndarray, n_groups: int, segments) -> np.ndarray:
    """(n_splits, n_segments) bool: the segments each split trains on."""
    _, _, group, head, tail = segments
    masks = np.empty((len(tests), group.size), dtype=bool)
    for c, test in enumerate(tests):
        is_test = np.zeros(n_groups + 2, dtype=bool)  # padded: groups -1 and n are not tests
        is_test[test + 1] = True
        masks[c] = (~is_test[group + 1] & ~(head & is_test[group]) &
                    ~(tail & is_test[group + 2]))
    return masks


def cpcv_split_indices(n_bars: int, n_groups: int = 6, n_test_groups: int = 2, purge: int = 0,
                       embargo: int = 0):
    """``[(train, [test of each test group]), ...]`` bar offsets 0..n_bars-1 of every
    split, for comparison with skfolio's ``CombinatorialPurgedCV.split``."""
    groups = cpcv_groups(0, n_bars - 1, n_groups)
    segments = _segments(groups, purge, embargo)
    tests = cpcv_test_groups(n_groups, n_test_groups)
    out = []
    for test, mask in zip(tests, _train_masks(tests, n_groups, segments)):
        train = np.concatenate([np.arange(s, s + n) for s, n in
                                zip(segments[0][mask], segments[1][mask])] or [[]])
        out.append((train.astype(np.int64),
                    [np.arange(groups[g, 0], groups[g, 1] + 1) for g in test]))
    return out


def _check_design(n_bars, n_groups, n_test_groups, purge, embargo):
    n_groups = check_int("n_groups", n_groups, minimum=2)
    n_test_groups = check_int("n_test_groups", n_test_groups, minimum=1)
    if n_test_groups >= n_groups:
        raise ValueError(f"n_test_groups={n_test_groups} must be below n_groups={n_groups} "
                         "(every split needs a train group)")
    purge = check_int("purge", purge, minimum=0)
    embargo = check_int("embargo", embargo, minimum=0)
    size = n_bars // n_groups
    if size < 4:
        raise ValueError(f"{n_bars} traded bars give {n_groups} groups of {size} bar(s); "
                         "each group needs at least 4: use fewer groups or a wider start/end")
    if purge + embargo >= size - 1:
        raise ValueError(f"purge + embargo = {purge + embargo} bars is not shorter than a "
                         f"group of {size} bars less one; use a smaller purge/embargo or "
                         "fewer groups")
    return n_groups, n_test_groups, purge, embargo


# ---------------------------------------------------------------------- cpcv
def cpcv(grid, strategy="mean_reversion", data=None, *, n_groups=6, n_test_groups=2, purge=0,
         embargo=0, objective="sharpe_ratio", select="best", radius=1, executor="serial",
         start=None, end=None, progress=None, batch_size="auto", assets=None,
         initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=None, debug=False,
         on_progress=None, **strategy_options) -> CPCVResult:
    """Combinatorial purged cross-validation of ``grid`` (see the module docstring).

    Parameters
    ----------
    grid, strategy, data, executor, start, end, progress, batch_size, assets,
    initial_capital, cost_bps, periods_per_year, debug, on_progress, **strategy_options
        As in :func:`btcore.run_sweep` (``on_progress`` counts group backtests).
    n_groups : int, default 6
        Consecutive groups of the traded bars (>= 2, each at least 4 bars).
    n_test_groups : int, default 2
        Test groups per split (1 <= n_test_groups < n_groups).
    purge, embargo : int, default 0
        Bars of a train group left out just before a test group (``purge``) and
        just after one (``purge + embargo``), as skfolio; their sum must be below
        a group's bars less one.
    objective : str
        The train score: ``"sharpe_ratio"`` over the train union (exact, from the
        per-segment sums), or another metric's mean over the train groups (lower-is-
        better metrics minimised). Functions are not supported.
    select : {"best", "plateau"}
        The best score, or the centre of the best neighbourhood of the score
        within ``radius`` steps on every parameter axis (a product grid).
    radius : int, default 1

    Returns
    -------
    CPCVResult
    """
    started = time.perf_counter()
    check_arguments(strategy_options, strategy, cpcv)
    if select not in ("best", "plateau"):
        raise ValueError(f"select must be 'best' or 'plateau', got {select!r}")
    radius = check_int("radius", radius, 0)
    if callable(objective) or objective not in METRIC_NAMES:
        raise ValueError(f"objective must be a metric name from {list(METRIC_NAMES)}, got "
                         f"{objective!r} (cpcv scores train sets by a metric)")
    options = RunOptions(executor, batch_size, progress, on_progress, debug).check()
    prepared = prepare(grid, strategy, data, start=start, end=end,
                       initial_capital=initial_capital, cost_bps=cost_bps,
                       periods_per_year=periods_per_year, assets=assets, debug=debug,
                       options=strategy_options)
    if select == "plateau":
        _check_product(prepared.grid)
    job = prepared.job
    first, last = int(job.first_bar.min()), int(job.windows[0, -1])
    n_groups, n_test_groups, purge, embargo = _check_design(
        last - first + 1, n_groups, n_test_groups, purge, embargo)
    groups = cpcv_groups(first, last, n_groups)
    for column, bar in enumerate(job.first_bar[:, 0]):
        if bar > first:
            symbol = prepared.data.symbols[prepared.asset_index[column]]
            raise ValueError(f"asset {symbol!r} starts trading at "
                             f"{prepared.data.index[bar].date()}, after the first group "
                             "starts; leave it out (assets=) or start later")
    size = int(groups[0, 1] - groups[0, 0] + 1)
    longest = job.strategy.max_window(job.params)
    if longest >= size:
        raise ValueError(f"a window parameter of {longest} bars is not shorter than a "
                         f"{size}-bar group; use shorter windows or fewer groups")
    segments = _segments(groups, purge, embargo)
    group_job = dataclasses.replace(
        job, windows=groups[:, 1:2].copy(), first_bar=np.tile(groups[:, 0], (job.n_columns, 1)),
        n_blocks=int(segments[0].size), block_starts=frozen(segments[0]))
    sink = DenseSink(group_job)
    run = execute(group_job, sink, options, started=started,
                  description=f"cpcv {job.strategy.name}", settings=prepared.settings)
    tests = cpcv_test_groups(n_groups, n_test_groups)
    result = _evaluate(prepared, sink, groups, segments, tests, objective, select, radius)
    run.stats.update(splits=len(tests), paths=int(math.comb(n_groups - 1, n_test_groups - 1)))
    settings = dict(prepared.settings, n_groups=n_groups, n_test_groups=n_test_groups,
                    purge=purge, embargo=embargo, objective=objective, select=select,
                    **({"radius": radius} if select == "plateau" else {}))
    run.finish(objective)
    return CPCVResult(*result, stats=run.stats, settings=settings)


# --------------------------------------------------------------- evaluating
def _union_sharpe(sums, lengths, mask, ppy):
    """Sharpe ratio over the segments ``mask`` of ``sums`` (..., n_segments, 2)."""
    chosen = sums[..., mask, :].sum(axis=-2)
    return block_sharpe(chosen[..., 0], chosen[..., 1], int(lengths[mask].sum()), ppy)


def _evaluate(prepared, sink, groups, segments, tests, objective, select, radius):
    job, market = prepared.job, prepared.data
    ppy = job.periods_per_year
    position = np.empty(job.n_sets, dtype=np.int64)  # grid row -> sorted position
    position[job.order] = np.arange(job.n_sets)
    metrics = sink.metrics[:, :, 0][..., position]  # (assets, groups, OUT_ROWS, grid rows)
    _, lengths, seg_group = segments[:3]
    # each segment's sums from its own group's window: (assets, grid rows, segments, 2)
    sums = np.stack([sink.block_sums[:, g, :, s] for s, g in enumerate(seg_group)], axis=2)
    sums = sums[:, position]
    ruined = metrics[:, :, RUINED_ROW] != 0.0  # (assets, groups, grid rows)
    n_groups, n_assets, n_sets = len(groups), job.n_columns, job.n_sets
    masks = _train_masks(tests, n_groups, segments)
    lower = objective in LOWER_IS_BETTER
    chosen = np.full((n_assets, len(tests)), -1, dtype=np.int64)
    is_score = np.full((n_assets, len(tests)), np.nan)
    is_sharpe = np.full((n_assets, len(tests)), np.nan)
    oos_all = np.empty((n_assets, len(tests), n_sets))
    for c, (test, mask) in enumerate(zip(tests, masks)):
        train_groups = np.setdiff1d(np.arange(n_groups), test)
        test_mask = np.isin(seg_group, test)
        sharpe_train = _union_sharpe(sums, lengths, mask, ppy)  # (assets, sets)
        oos_all[:, c] = _union_sharpe(sums, lengths, test_mask, ppy)
        if objective == "sharpe_ratio":
            scores = sharpe_train.copy()
        else:
            values = metrics[:, train_groups, METRIC_NAMES.index(objective)].mean(axis=1)
            scores = -values if lower else values
        scores[ruined[:, train_groups].any(axis=1) | np.isnan(scores)] = np.nan
        ranked = _plateau_scores(scores, prepared.grid, radius) if select == "plateau" \
            else scores
        best = np.argmax(np.where(np.isnan(ranked), -np.inf, ranked), axis=1)  # first max
        some = ~np.isnan(ranked).all(axis=1)
        chosen[some, c] = best[some]
        is_score[some, c] = scores[some, best[some]]
        is_sharpe[some, c] = sharpe_train[some, best[some]]
    symbols = [market.symbols[i] for i in prepared.asset_index]
    many = n_assets > 1 or market.n_assets > 1
    # out-of-sample rank of each chosen set among all (1 = worst, ties averaged), logit
    safe = np.where(np.isnan(oos_all), -np.inf, oos_all)
    picked = np.take_along_axis(safe, np.maximum(chosen, 0)[..., None], axis=2)
    rank = (safe < picked).sum(axis=2) + ((safe == picked).sum(axis=2) + 1) / 2.0
    omega = rank / (n_sets + 1.0)
    logits = np.where(chosen >= 0, np.log(omega / (1.0 - omega)), np.nan)
    rank = np.where(chosen >= 0, rank, np.nan)
    params = {}  # grid row -> its parameters, once per chosen row
    rows = []
    for a in range(n_assets):
        for c, test in enumerate(tests):
            p = int(chosen[a, c])
            row = {"split": c, **({"asset": symbols[a]} if many else {}),
                   "train_groups": tuple(int(g) for g in range(n_groups) if g not in test),
                   "test_groups": tuple(int(g) for g in test)}
            row.update(params.get(p) or params.setdefault(p, _params_of(prepared, p)))
            row.update(is_score=is_score[a, c], is_sharpe_ratio=is_sharpe[a, c],
                       oos_sharpe_ratio=float(oos_all[a, c, p]) if p >= 0 else np.nan,
                       oos_ruined=bool(ruined[a, test, p].any()) if p >= 0 else False,
                       oos_rank=float(rank[a, c]), logit=float(logits[a, c]))
            rows.append(row)
    splits = pd.DataFrame(rows)
    path_splits = cpcv_path_splits(n_groups, tests.shape[1])
    # each group's sums (assets, grid rows, groups, 2); a split choosing nothing: cash, r = 0
    group_sums = np.stack([sums[:, :, seg_group == g].sum(axis=2) for g in range(n_groups)],
                          axis=2)
    totals = np.zeros((len(path_splits), n_assets, 2))
    for p, by_group in enumerate(path_splits):
        for g, c in enumerate(by_group):
            picked_sums = group_sums[np.arange(n_assets), np.maximum(chosen[:, c], 0), g]
            totals[p] += np.where((chosen[:, c] >= 0)[:, None], picked_sums, 0.0)
    paths = block_sharpe(totals[..., 0], totals[..., 1], int(lengths.sum()), ppy)
    paths = pd.DataFrame(paths, columns=symbols, index=pd.RangeIndex(len(paths), name="path"))
    valid = ~np.isnan(logits)
    with np.errstate(invalid="ignore"):
        pbo = pd.Series(np.where(valid.any(axis=1), (valid & (logits <= 0)).sum(axis=1) /
                                 np.maximum(valid.sum(axis=1), 1), np.nan),
                        index=symbols, name="pbo")
    chosen_counts = _chosen_counts(prepared, chosen, symbols, many)
    summary = pd.DataFrame({
        "splits": len(tests), "paths": len(path_splits), "pbo": pbo,
        "path_sharpe_mean": paths.mean(), "path_sharpe_std": paths.std(ddof=1),
        "path_sharpe_min": paths.min(), "path_sharpe_median": paths.median(),
        "path_positive_share": (paths > 0).mean()}, index=symbols)
    index = market.index
    group_frame = pd.DataFrame({"start": index[groups[:, 0]], "end": index[groups[:, 1]],
                                "bars": groups[:, 1] - groups[:, 0] + 1},
                               index=pd.RangeIndex(len(groups), name="group"))
    return splits, paths, pbo, chosen_counts, summary, group_frame


def _params_of(prepared, row: int) -> dict:
    """Grid row ``row``'s parameters (NaN for -1: no set chosen)."""
    job = prepared.job
    if row < 0:
        return {param.name: np.nan for param in job.strategy.params}
    sorted_position = int(np.flatnonzero(job.order == row)[0])
    return {param.name: int(value) if param.kind is int else float(value)
            for param, value in zip(job.strategy.params, job.params[sorted_position])}


def _chosen_counts(prepared, chosen, symbols, many) -> pd.DataFrame:
    names = [param.name for param in prepared.job.strategy.params]
    records = []
    for a, symbol in enumerate(symbols):
        picks, counts = np.unique(chosen[a][chosen[a] >= 0], return_counts=True)
        for p, n in zip(picks, counts):
            record = {"asset": symbol} if many else {}
            record.update(_params_of(prepared, p))
            record["count"] = int(n)
            records.append(record)
    columns = (["asset"] if many else []) + list(names) + ["count"]
    frame = pd.DataFrame(records, columns=columns)
    keys = (["asset"] if many else []) + ["count"]
    return frame.sort_values(keys, ascending=[True] * many + [False], kind="stable",
                             ignore_index=True)
