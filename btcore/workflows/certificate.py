"""``SweepResult.certificate()``: is the chosen row's edge real? One frame, one text.

For a sweep run with ``blocks=`` and the row it chooses (the best Sharpe ratio, or
the centre of the best plateau), the certificate gathers, from the kernel's
per-block sums and one replay of that row (no bars x sets matrix):

- the deflated Sharpe ratio with the number of trials **estimated** from the
  correlation of the sets' per-block returns (:func:`btcore.overfitting.
  effective_trials`, Li and Ji's eigenvalue estimator), and with the raw count;
- the probability of backtest overfitting (CSCV, :meth:`SweepResult.pbo`), when
  the blocks are even in number and few enough to enumerate (<= 20);
- White's Reality Check and Hansen's SPA p-values of "the best set beats zero"
  and "beats buy and hold", by the stationary bootstrap over blocks;
- the minimum backtest length for that many trials (MinBTL) and the minimum
  track record length for the row's Sharpe ratio (MinTRL), each with "enough
  history: yes/no".

``docs/overfitting.md`` says what each line means and where it comes from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: PBO enumerates C(S, S/2) splits: above this many blocks it is left out
PBO_MAX_BLOCKS = 20


@dataclass
class Certificate:
    """The overfitting certificate of a sweep's chosen row.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per statistic: ``statistic``, ``value``, ``detail``.
    row : pandas.Series
        The chosen row of the sweep's table.
    """

    frame: pd.DataFrame
    row: pd.Series

    def value(self, statistic: str):
        """The value of one statistic (a name of :attr:`frame`)."""
        match = self.frame.loc[self.frame["statistic"] == statistic, "value"]
        if match.empty:
            raise KeyError(f"no statistic {statistic!r}; there are "
                           f"{self.frame['statistic'].tolist()}")
        return match.iloc[0]

    def __str__(self) -> str:
        width = max(len(s) for s in self.frame["statistic"])
        lines = ["overfitting certificate"]
        for statistic, value, detail in self.frame.itertuples(index=False):
            shown = (f"{value:.4g}" if isinstance(value, float) and math.isfinite(value)
                     else str(value))
            lines.append(f"  {statistic:<{width}}  {shown:>10}  {detail}")
        return "\n".join(lines)

    __repr__ = __str__


def certificate(result, asset=None, select: str = "best", radius: int = 1,
                reps: int = 1000, seed: int = 0, data=None) -> Certificate:
    """Build the certificate of ``result`` (a :class:`~btcore.SweepResult`); see
    :meth:`SweepResult.certificate`."""
    from btcore.overfitting import (effective_trials, min_backtest_length,
                                    min_track_record_length, spa_test)
    from btcore.stats import deflated_sharpe_ratio
    if result._block_sums is None:
        raise ValueError("certificate() needs the per-block sums: run the sweep with "
                         "blocks='year' or blocks=16")
    if result.stats.get("keep") is not None:
        raise ValueError("certificate() counts every trial, but this sweep kept only its "
                         f"best {result.stats['keep']:,} rows (keep=); run it without keep=")
    if select not in ("best", "plateau"):
        raise ValueError(f"select must be 'best' or 'plateau', got {select!r}")
    from btcore.plots.common import pick_asset
    assets = result.settings["assets"]
    asset = pick_asset(asset, assets, "sweep")
    column = assets.index(asset)
    table = result.table
    mine = np.flatnonzero(result._row_assets == column)
    rows = table.iloc[mine]
    if select == "plateau":
        from btcore.selection import plateau_table
        chosen = plateau_table(rows, result._param_names(), "sharpe_ratio", radius).iloc[0]
    else:
        usable = rows[~rows["ruined"]]["sharpe_ratio"]
        if usable.isna().all():
            raise ValueError("every row is ruined or has a NaN Sharpe ratio")
        chosen = rows.loc[usable.idxmax()]
    position = table.index.get_loc(chosen.name)
    chosen_set = int(result._row_sets[position])

    ppy = float(result.settings["periods_per_year"])
    sums = result._block_sums[column]  # (sets, blocks, 2), grid order
    counts = np.asarray(result._block_counts[column])
    kept = counts >= 1
    block_mean = sums[:, kept, 0] / counts[kept]
    n_obs = int(counts.sum())
    n_trials = int(len(rows))
    n_effective = effective_trials(block_mean)
    per_period = rows["sharpe_ratio"].to_numpy(dtype=np.float64) / math.sqrt(ppy)
    sharpe_std = float(np.nanstd(per_period, ddof=1))
    observed = float(chosen["sharpe_ratio"]) / math.sqrt(ppy)
    replay = result.backtest(chosen, data=data, asset=asset)
    returns = replay.returns.to_numpy()
    centred = returns - returns.mean()
    std = returns.std()
    skew = float((centred ** 3).mean() / std ** 3) if std > 0 else 0.0
    kurtosis = float((centred ** 4).mean() / std ** 4) if std > 0 else 3.0
    dsr = {n: deflated_sharpe_ratio(observed, sharpe_std, max(1, int(round(n))), n_obs, skew,
                                    kurtosis) for n in (n_effective, n_trials)}
    pbo, pbo_detail = _pbo(result, asset, counts)
    bench = _buy_and_hold_blocks(result, asset, data, counts)[kept]
    versus_zero = spa_test(block_mean, reps=reps, seed=seed)
    versus_hold = spa_test(block_mean - bench, reps=reps, seed=seed)
    years = n_obs / ppy
    annual = float(chosen["sharpe_ratio"])
    btl = {n: min_backtest_length(max(n, 1.0), annual) for n in (n_effective, n_trials)}
    trl = min_track_record_length(observed, 0.0, skew, kurtosis) if \
        1.0 - skew * observed + (kurtosis - 1) / 4 * observed ** 2 > 0 else math.inf
    params = ", ".join(f"{n}={chosen[n]}" for n in result._param_names())
    n_blocks = int(kept.sum())
    records = [
        ("row", params, f"{'plateau centre' if select == 'plateau' else 'best Sharpe'}, "
                        f"asset {asset}"),
        ("sharpe_ratio", annual, f"annualised, {n_obs:,} bars ({years:.1f} years)"),
        ("trials", n_trials, "parameter sets swept"),
        ("effective_trials", n_effective,
         f"Li-Ji eigenvalue estimate from {n_blocks} blocks (< {2 * (n_blocks - 1)})"),
        ("dsr", dsr[n_effective], "deflated Sharpe ratio, effective trials"),
        ("dsr_all_trials", dsr[n_trials], "deflated Sharpe ratio, every trial counted"),
        ("pbo", pbo, pbo_detail),
        ("reality_check_p", versus_zero["reality_check"], "White: best set beats 0"),
        ("spa_p", versus_zero["spa_consistent"], "Hansen SPA (consistent): beats 0"),
        ("reality_check_p_vs_hold", versus_hold["reality_check"],
         "White: best set beats buy and hold"),
        ("spa_p_vs_hold", versus_hold["spa_consistent"], "Hansen SPA: beats buy and hold"),
        ("min_backtest_years", btl[n_effective], "MinBTL for the effective trials"),
        ("min_backtest_years_all_trials", btl[n_trials], "MinBTL for every trial"),
        ("enough_history_backtest", _yes(years >= btl[n_effective]),
         f"{years:.1f} years >= MinBTL (effective trials); every trial: "
         f"{_yes(years >= btl[n_trials])}"),
        ("min_track_record_bars", trl, "MinTRL: bars for Sharpe > 0 at 95 %"),
        ("enough_history_track_record", _yes(n_obs >= trl), f"{n_obs:,} bars >= MinTRL"),
    ]
    frame = pd.DataFrame(records, columns=["statistic", "value", "detail"])
    return Certificate(frame, chosen)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _pbo(result, asset, counts) -> tuple:
    n_blocks = len(counts)
    if n_blocks % 2:
        return math.nan, f"not computed: {n_blocks} blocks (CSCV needs an even number)"
    if n_blocks > PBO_MAX_BLOCKS:
        return math.nan, (f"not computed: C({n_blocks}, {n_blocks // 2}) splits; use "
                          f"blocks <= {PBO_MAX_BLOCKS}")
    if (counts < 2).any():
        return math.nan, "not computed: a block with fewer than 2 bars"
    return result.pbo(asset).pbo, f"CSCV over {n_blocks} blocks"


def _buy_and_hold_blocks(result, asset, data, counts) -> np.ndarray:
    """Buy and hold's mean bar return per block (the kernel's blocks of ``asset``)."""
    from btcore.engine.calls import block_index
    from btcore.workflows.base import resolve_data
    market = resolve_data(result._data if data is None else data)
    index = market.index
    first = int(index.get_indexer([pd.Timestamp(result.settings["start"])])[0])
    last = int(index.get_indexer([pd.Timestamp(result.settings["end"])])[0])
    symbol = market.symbols.index(asset) if isinstance(market.symbols, list) else \
        list(market.symbols).index(asset)
    first = max(first, int(market.first_valid[symbol]))
    close = market.close[:, symbol]
    labels = result._block_labels
    starts = None
    if labels != list(range(len(labels))):  # calendar years
        years = index[first:last + 1].year
        starts = first + np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    blocks = block_index(first, last, last + 1, len(counts), starts)
    returns = np.zeros(last + 1)
    returns[first + 1:last + 1] = close[first + 1:last + 1] / close[first:last] - 1.0
    sums = np.bincount(blocks[first:], weights=returns[first:], minlength=len(counts))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, 0.0)
