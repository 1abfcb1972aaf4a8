"""Render the README's figures from the bundled sample into docs/figures/.

    python docs/make_figures.py            # needs the plot extra: pip install 'btcore[plot]'

Figures (PNG, 100 dpi):

- ``sweep_heatmap.png``: the seed grid (135 sets x the 20-stock sample, traded
  from 2010), max Sharpe ratio over exit_threshold, stop_loss_z and the
  assets, by lookback_period x entry_threshold;
- ``backtest.png``: the best row of that sweep replayed (``res.backtest(0)``);
- ``walk_forward.png``: a rolling walk-forward of the seed grid on that row's
  asset (6 folds from 2010).
"""
from __future__ import annotations

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from btcore import run_sweep, walk_forward  # noqa: E402

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}
START = "2010-01-01"
DPI = 100
FIGURES = pathlib.Path(__file__).resolve().parent / "figures"


def save(fig, name: str) -> None:
    path = FIGURES / name
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print(f"wrote {path.relative_to(FIGURES.parent.parent)}")


def main() -> int:
    FIGURES.mkdir(parents=True, exist_ok=True)
    res = run_sweep(SEED_GRID, data=None, start=START, executor="threads", progress=False)
    save(res.plot_heatmap("lookback_period", "entry_threshold", metric="sharpe_ratio",
                          agg="max"), "sweep_heatmap.png")
    best = res.backtest(0)
    save(best.plot(), "backtest.png")
    wf = walk_forward(SEED_GRID, data=None, start=START, n_splits=6, assets=[best.asset],
                      progress=False)
    save(wf.plot(), "walk_forward.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
