"""Render the README's figures from the bundled sample into docs/figures/.

    python docs/make_figures.py            # needs the plot extra: pip install 'btcore[plot]'
    python docs/make_figures.py portfolio  # only some figures (names below, no .png)
    python docs/make_figures.py --out /tmp/figures   # somewhere else

Figures (PNG, 100 dpi):

- ``sweep_heatmap.png``: the seed grid (135 sets x the 20-stock sample, traded
  from 2010), max Sharpe ratio over exit_threshold, stop_loss_z and the
  assets, by lookback_period x entry_threshold;
- ``backtest.png``: the best row of that sweep replayed (``res.backtest(0)``);
- ``walk_forward.png``: a rolling walk-forward of the seed grid on that row's
  asset (6 folds from 2010);
- ``portfolio.png``: ``portfolio_backtest`` of one mean_reversion set (lookback 60,
  entry 2.0, the other parameters at their defaults) as one account over 8 of
  the sample's stocks, rebalanced every 21 bars, 2015-2022 (``docs/portfolios.md``).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from btcore import portfolio_backtest, run_sweep, walk_forward  # noqa: E402

SEED_GRID = {"lookback_period": [20, 40, 60, 80, 100], "entry_threshold": [1.5, 2.0, 2.5],
             "exit_threshold": [0.25, 0.5, 0.75], "stop_loss_z": [2.5, 3.0, 3.5]}
START = "2010-01-01"
PORTFOLIO_ASSETS = ["AAPL", "MSFT", "JPM", "XOM", "KO", "PFE", "WMT", "HD"]
PORTFOLIO_PARAMS = {"lookback_period": 60, "entry_threshold": 2.0}
DPI = 100
FIGURES = pathlib.Path(__file__).resolve().parent / "figures"
NAMES = ("sweep_heatmap", "backtest", "walk_forward", "portfolio")


def save(fig, folder: pathlib.Path, name: str) -> None:
    path = folder / name
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="name",
                        help=f"figures to render (default: all): {', '.join(NAMES)}")
    parser.add_argument("--out", type=pathlib.Path, default=FIGURES,
                        help="folder to write to (default: docs/figures)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in NAMES]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {', '.join(NAMES)}")
    names = set(args.names or NAMES)
    folder = args.out
    folder.mkdir(parents=True, exist_ok=True)
    if names & {"sweep_heatmap", "backtest", "walk_forward"}:
        res = run_sweep(SEED_GRID, data=None, start=START, executor="threads", progress=False)
        if "sweep_heatmap" in names:
            save(res.plot_heatmap("lookback_period", "entry_threshold", metric="sharpe_ratio",
                                  agg="max"), folder, "sweep_heatmap.png")
        best = res.backtest(0)
        if "backtest" in names:
            save(best.plot(), folder, "backtest.png")
        if "walk_forward" in names:
            wf = walk_forward(SEED_GRID, data=None, start=START, n_splits=6,
                              assets=[best.asset], progress=False)
            save(wf.plot(), folder, "walk_forward.png")
    if "portfolio" in names:
        book = portfolio_backtest(PORTFOLIO_PARAMS, "mean_reversion", data=None,
                                  start="2015-01-01", end="2022-12-31",
                                  assets=PORTFOLIO_ASSETS, rebalance_every=21)
        save(book.plot(), folder, "portfolio.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
