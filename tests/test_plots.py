"""btcore.plots: every figure renders to PNG with the Agg backend, with the expected
axes, labels and titles; the heatmap's cells are a pandas pivot table; bad
arguments are clear ValueErrors; a missing matplotlib names the extra."""
import matplotlib

matplotlib.use("Agg")

import dataclasses  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import btcore  # noqa: E402
from btcore import plots  # noqa: E402

GRID = {"lookback_period": [5, 10, 20], "entry_threshold": [1.0, 2.0],
        "exit_threshold": [0.0, 0.5], "stop_loss_z": [2.5, 4.0]}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data():
    return btcore.MarketData.synthetic(n_assets=2, start="2019-01-01", end="2020-12-31", seed=1)


@pytest.fixture(scope="module")
def sweep(data):
    return btcore.run_sweep(GRID, data=data, progress=False)


@pytest.fixture(scope="module")
def replay(sweep):
    return sweep.backtest(0)


@pytest.fixture(scope="module")
def wf(data):
    return btcore.walk_forward(GRID, data=data, n_splits=3, progress=False)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def assert_png(fig, tmp_path, name="figure.png"):
    path = tmp_path / name
    fig.savefig(path, dpi=60)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 5_000


def image_cells(ax) -> np.ndarray:
    (image,) = ax.images
    return np.ma.filled(image.get_array().astype(np.float64), np.nan)


def pivot(table, x, y, metric, agg):
    kept = table[~table["ruined"]]
    cells = pd.pivot_table(kept, values=metric, index=y, columns=x, aggfunc=agg)
    return cells.reindex(index=sorted(table[y].unique()), columns=sorted(table[x].unique()))


# ------------------------------------------------------------------ heatmap
def test_heatmap_renders_with_labels_title_and_colorbar(sweep, tmp_path):
    fig = sweep.plot_heatmap("lookback_period", "entry_threshold")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 2  # the map and its colorbar
    ax, bar = fig.axes
    assert ax.get_xlabel() == "lookback_period"
    assert ax.get_ylabel() == "entry_threshold"
    title = ax.get_title()
    assert "sharpe_ratio" in title and "max" in title
    assert "exit_threshold" in title and "stop_loss_z" in title and "2 assets" in title
    assert bar.get_ylabel() == "sharpe_ratio (max)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "10", "20"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1.0", "2.0"]
    assert len(ax.texts) == 6  # every cell annotated
    assert_png(fig, tmp_path)


@pytest.mark.parametrize("agg", plots.AGGREGATIONS)
@pytest.mark.parametrize("metric", ["sharpe_ratio", "max_drawdown", "num_trades"])
def test_heatmap_cells_equal_pandas_pivot_table(sweep, metric, agg):
    fig = sweep.plot_heatmap("exit_threshold", "lookback_period", metric=metric, agg=agg)
    ax = fig.axes[0]
    expected = pivot(sweep.table, "exit_threshold", "lookback_period", metric, agg)
    np.testing.assert_allclose(image_cells(ax), expected.to_numpy(dtype=np.float64),
                               rtol=1e-12, equal_nan=True)
    assert f"{agg} {metric}" in ax.get_title()


def test_heatmap_leaves_out_ruined_rows_and_blanks_empty_cells(sweep):
    table = sweep.table.copy()
    table["ruined"] = False
    blank = (table["lookback_period"] == 10) & (table["entry_threshold"] == 2.0)
    table.loc[blank, "ruined"] = True  # a whole cell
    best = table["sharpe_ratio"].idxmax()
    table.loc[best, "ruined"] = True  # and the best row of another cell
    result = dataclasses.replace(sweep, table=table)
    fig = result.plot_heatmap("lookback_period", "entry_threshold")
    ax = fig.axes[0]
    cells = image_cells(ax)
    expected = pivot(table, "lookback_period", "entry_threshold", "sharpe_ratio", "max")
    np.testing.assert_allclose(cells, expected.to_numpy(dtype=np.float64), equal_nan=True)
    assert np.isnan(cells[1, 1])  # entry 2.0 (row 1) x lookback 10 (column 1)
    assert np.isfinite(np.delete(cells.ravel(), 1 * 3 + 1)).all()
    assert np.nanmax(cells) < table["sharpe_ratio"].max()
    assert len(ax.texts) == 5  # no number in the blank cell
    assert f"{int(table['ruined'].sum())} ruined rows" in ax.get_title()


def test_heatmap_draws_into_given_axes(sweep, tmp_path):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    returned = sweep.plot_heatmap("stop_loss_z", "entry_threshold", metric="cagr", agg="mean",
                                  ax=right)
    assert returned is fig
    assert not left.images and len(right.images) == 1
    assert right.get_xlabel() == "stop_loss_z" and right.get_ylabel() == "entry_threshold"
    assert len(fig.axes) == 3  # two axes and the colorbar
    assert_png(fig, tmp_path)


def test_heatmap_of_a_table(sweep):
    fig = plots.sweep_heatmap(sweep.table, "lookback_period", "stop_loss_z", agg="min")
    expected = pivot(sweep.table, "lookback_period", "stop_loss_z", "sharpe_ratio", "min")
    np.testing.assert_allclose(image_cells(fig.axes[0]), expected.to_numpy(), equal_nan=True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(x="lookback", y="entry_threshold"), r"unknown parameter x='lookback'; choose from "
                                              r"\['lookback_period', 'entry_threshold'"),
    (dict(x="lookback_period", y="sharpe_ratio"), r"unknown parameter y='sharpe_ratio'"),
    (dict(x="lookback_period", y="asset"), r"unknown parameter y='asset'"),
    (dict(x="lookback_period", y="lookback_period"),
     r"x and y are both 'lookback_period'; pick two different parameters"),
    (dict(x="lookback_period", y="entry_threshold", metric="sharpe"),
     r"unknown metric 'sharpe'; choose from \['total_return'"),
    (dict(x="lookback_period", y="entry_threshold", agg="sum"),
     r"unknown agg 'sum'; choose from \['max', 'min', 'mean', 'median'\]"),
])
def test_heatmap_errors(sweep, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sweep.plot_heatmap(**kwargs)
    assert not plt.get_fignums()  # refused before drawing anything


def test_heatmap_of_nothing_is_an_error(sweep):
    table = sweep.table.assign(ruined=True)
    with pytest.raises(ValueError, match="NaN or ruined for every row"):
        plots.sweep_heatmap(table, "lookback_period", "entry_threshold")


# ------------------------------------------------------------------ backtest
def scatter_points(ax) -> dict:
    return {c.get_label(): len(c.get_offsets()) for c in ax.collections
            if c.get_label() in ("long entry", "short entry", "exit")}


def test_backtest_figure(replay, tmp_path):
    fig = replay.plot()
    assert len(fig.axes) == 3
    equity, drawdown, position = fig.axes
    assert equity.get_shared_x_axes().joined(equity, drawdown)
    assert equity.get_shared_x_axes().joined(equity, position)
    assert [ax.get_ylabel() for ax in fig.axes] == ["equity", "drawdown (%)",
                                                  "position (shares)"]
    assert replay.asset in fig._suptitle.get_text()
    assert "lookback_period=" in fig._suptitle.get_text()
    assert "Sharpe" in equity.get_title()
    assert equity.get_yscale() == "linear"  # this curve spans < 10x
    np.testing.assert_array_equal(equity.lines[0].get_ydata(), replay.equity.to_numpy())
    trades = replay.trades
    expected = {"long entry": int((trades["side"] == 1).sum()),
                "short entry": int((trades["side"] == -1).sum()),
                "exit": int(trades["exit_time"].notna().sum())}
    assert scatter_points(equity) == {k: v for k, v in expected.items() if v}
    assert sum(expected.values()) > 10
    assert drawdown.get_ylim()[0] <= replay.drawdown.min() * 100
    assert_png(fig, tmp_path)


def test_backtest_figure_log_scale_when_equity_spans_over_10x(replay):
    growth = pd.Series(np.geomspace(1.0, 30.0, len(replay.equity)), index=replay.equity.index)
    grown = dataclasses.replace(replay, equity=replay.equity * growth)
    assert grown.plot().axes[0].get_yscale() == "log"


def test_backtest_figure_without_trades(replay, tmp_path):
    flat = dataclasses.replace(replay, trades=replay.trades.iloc[:0],
                               positions=replay.positions * 0.0)
    fig = flat.plot()
    assert scatter_points(fig.axes[0]) == {}
    assert_png(fig, tmp_path)


# ------------------------------------------------------------------ portfolio
@pytest.fixture(scope="module")
def port(data):
    three = btcore.MarketData.synthetic(n_assets=3, start="2019-01-01", end="2020-12-31",
                                        seed=1)
    return btcore.portfolio_backtest({"lookback_period": 10, "entry_threshold": 1.5},
                                     data=three, rebalance_every=20)


@pytest.fixture(scope="module")
def wide():
    twelve = btcore.MarketData.synthetic(n_assets=12, start="2019-01-01", end="2020-12-31",
                                         seed=2)
    return btcore.portfolio_backtest({"lookback_period": 10, "entry_threshold": 1.5},
                                     data=twelve)


def band_heights(ax, bar: int) -> dict:
    """{gid: height} of every weights band at ``bar``, read back from the polygons
    (each one's top and bottom edge at that bar's x)."""
    from matplotlib.collections import PolyCollection
    import matplotlib.dates as mdates
    heights = {}
    for collection in ax.collections:
        if not isinstance(collection, PolyCollection) or collection.get_gid() is None:
            continue
        (path,) = collection.get_paths()  # no NaN weights: one polygon per band
        x, y = path.vertices.T
        x_bar = mdates.date2num(ax.lines[0].get_xdata()[bar])
        at = y[np.isclose(x, x_bar, rtol=0, atol=1e-9)]
        assert at.size >= 2
        heights[collection.get_gid()] = float(at.max() - at.min())
    return heights


def plotted_weights(ax, bar: int, labels) -> dict:
    heights = band_heights(ax, bar)
    return {label: heights[f"long {label}"] - heights[f"short {label}"] for label in labels}


def test_portfolio_figure(port, tmp_path):
    fig = port.plot()
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 3
    equity, drawdown, weights = fig.axes
    assert equity.get_shared_x_axes().joined(equity, drawdown)
    assert equity.get_shared_x_axes().joined(equity, weights)
    assert [ax.get_ylabel() for ax in fig.axes] == ["equity", "drawdown (%)",
                                                  "weight (% of equity)"]
    assert weights.get_title() == "weights: long above 0, short below"
    title = equity.get_title()
    assert "Sharpe" in title and "turnover" in title and "avg correlation" in title
    head = fig._suptitle.get_text()
    assert head.startswith("Portfolio of 3 assets: lookback_period=10, entry_threshold=1.5")
    assert head.endswith("\nrebalance_every=20")  # construction set, the rest (inf) left out
    assert "max_gross_exposure" not in head
    np.testing.assert_array_equal(equity.lines[0].get_ydata(), port.equity.to_numpy())
    assert equity.get_yaxis().get_major_formatter()(1_250_000, 0) == "1.25M"  # money ticks
    np.testing.assert_array_equal(drawdown.lines[0].get_ydata(),
                                  port.drawdown.to_numpy() * 100.0)
    assert drawdown.get_ylim()[0] <= port.metrics["max_drawdown"] * 100
    (gross,) = [line for line in weights.lines if line.get_label() == "gross exposure"]
    np.testing.assert_allclose(gross.get_ydata(), port.weights.abs().sum(axis=1).to_numpy(),
                               rtol=1e-12)
    order = port.weights.abs().mean().sort_values(ascending=False, kind="stable").index
    legend = [t.get_text() for t in weights.get_legend().get_texts()]
    assert legend == list(order) + ["gross exposure"]
    assert weights.get_yaxis().get_major_formatter()(0.25, 0) == "25%"
    assert_png(fig, tmp_path)


def test_portfolio_figure_draws_the_results_weights(port):
    fig = port.plot()
    ax = fig.axes[2]
    w = port.weights
    assert {c.get_gid() for c in ax.collections if c.get_gid()} == {
        f"{side} {a}" for side in ("long", "short") for a in w.columns}
    assert (w > 0).any(axis=None) and (w < 0).any(axis=None)
    both = np.flatnonzero(((w > 0).any(axis=1) & (w < 0).any(axis=1)).to_numpy())
    flat = np.flatnonzero((w == 0).all(axis=1).to_numpy())
    bars = [int(both[0]), int(both[len(both) // 2]), int(w.abs().sum(axis=1).argmax()),
            int(flat[0]), len(w) - 1]
    for bar in bars:
        drawn = plotted_weights(ax, bar, w.columns)
        np.testing.assert_allclose([drawn[a] for a in w.columns], w.iloc[bar].to_numpy(),
                                   rtol=0, atol=1e-12, err_msg=f"bar {bar}")
    # long bands stack upwards from 0, short ones downwards: the outermost edges at a bar
    # are the sums of the long and of the short weights
    bar = bars[2]
    tops = [c.get_paths()[0].vertices for c in ax.collections
            if (c.get_gid() or "").startswith("long ")]
    x_bar = matplotlib.dates.date2num(w.index[bar])
    top = max(v[np.isclose(v[:, 0], x_bar), 1].max() for v in tops)
    assert top == pytest.approx(w.iloc[bar].clip(lower=0).sum(), abs=1e-12)


def test_portfolio_figure_groups_the_rest_as_other(wide, tmp_path):
    w = wide.weights
    order = list(w.abs().mean().sort_values(ascending=False, kind="stable").index)
    fig = wide.plot()
    ax = fig.axes[2]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == order[:9] + ["other (3 assets)", "gross exposure"]
    rest = order[9:]
    (other,) = [c for c in ax.collections if c.get_gid() == "long other (3 assets)"]
    assert matplotlib.colors.to_hex(other.get_facecolor()[0]) == matplotlib.colors.to_hex("0.62")
    named = [c.get_facecolor()[0][:3] for c in ax.collections
             if (c.get_gid() or "").startswith("long ") and c is not other]
    assert len(named) == 9 and all(np.ptp(rgb) > 0.05 for rgb in named)  # only "other" is grey
    bar = int(w[rest].abs().sum(axis=1).argmax())
    heights = band_heights(ax, bar)
    assert heights["long other (3 assets)"] == pytest.approx(
        w[rest].iloc[bar].clip(lower=0).sum(), abs=1e-12)
    assert heights["short other (3 assets)"] == pytest.approx(
        -w[rest].iloc[bar].clip(upper=0).sum(), abs=1e-12)
    drawn = plotted_weights(ax, bar, order[:9])
    np.testing.assert_allclose([drawn[a] for a in order[:9]], w[order[:9]].iloc[bar],
                               atol=1e-12)
    assert_png(fig, tmp_path)
    # every asset named when max_named allows
    fig = wide.plot(max_named=12)
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == order + [
        "gross exposure"]


def test_weight_bands(wide):
    w = wide.weights
    long, short = plots.weight_bands(w, max_named=4)
    assert list(long.columns) == list(short.columns)
    assert long.columns[-1] == "other (9 assets)" and len(long.columns) == 4
    assert (long.to_numpy() >= 0).all() and (short.to_numpy() <= 0).all()
    np.testing.assert_allclose((long + short).sum(axis=1), w.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose((long - short).sum(axis=1), w.abs().sum(axis=1), atol=1e-12)
    assert list(plots.weight_bands(w, max_named=1)[0].columns) == ["other (12 assets)"]


@pytest.mark.parametrize("max_named", [0, -1, 2.5, True, "3"])
def test_portfolio_figure_bad_max_named(port, max_named):
    with pytest.raises(ValueError, match=r"max_named must be a whole number >= 1"):
        port.plot(max_named=max_named)
    assert not plt.get_fignums()  # refused before drawing anything


def test_portfolio_drawdown_is_the_metric(port, wide):
    for result in (port, wide):
        assert (result.drawdown <= 0).all()
        assert result.drawdown.min() == result.metrics["max_drawdown"]
        assert result.drawdown.index.equals(result.equity.index)


def test_portfolio_figure_without_a_drawdown_derives_it(port):
    bare = dataclasses.replace(port, drawdown=None)
    np.testing.assert_allclose(bare.plot().axes[1].lines[0].get_ydata(),
                               port.drawdown.to_numpy() * 100.0, rtol=1e-12)


def test_portfolio_figure_log_scale_and_no_positions(port, tmp_path):
    growth = pd.Series(np.geomspace(1.0, 30.0, len(port.equity)), index=port.equity.index)
    grown = dataclasses.replace(port, equity=port.equity * growth)
    assert grown.plot().axes[0].get_yscale() == "log"
    flat = dataclasses.replace(port, weights=port.weights * 0.0,
                               params={**port.params, "rebalance_every": math.inf})
    fig = flat.plot()
    assert "rebalance_every" not in fig._suptitle.get_text()
    assert all(h == 0.0 for h in band_heights(fig.axes[2], 10).values())
    assert_png(fig, tmp_path)


# ------------------------------------------------------------------ walk-forward
def test_walk_forward_figure(wf, tmp_path):
    fig = wf.plot(asset="SYN001")
    assert len(fig.axes) == 2
    bars, equity = fig.axes
    folds = wf.folds[wf.folds["asset"] == "SYN001"]
    assert len(bars.patches) == 2 * len(folds) == 6
    heights = [p.get_height() for p in bars.patches]
    np.testing.assert_allclose(heights, np.concatenate([folds["is_sharpe_ratio"],
                                                         folds["oos_sharpe_ratio"]]))
    assert bars.get_ylabel() == "sharpe_ratio"
    assert "in-sample vs out-of-sample" in bars.get_title()
    assert [t.get_text() for t in bars.get_legend().get_texts()] == [
        "in-sample (chosen set)", "out-of-sample"]
    assert equity.get_ylabel() == "out-of-sample equity"
    np.testing.assert_array_equal(equity.lines[0].get_ydata(),
                                  wf.oos_equity["SYN001"].dropna().to_numpy())
    boundaries = [line for line in equity.lines[1:] if line.get_linestyle() == "--"]
    assert len(boundaries) == len(folds) - 1
    assert [t.get_text() for t in equity.texts] == ["fold 0", "fold 1", "fold 2"]
    assert "Sharpe" in equity.get_title()
    assert "SYN001" in fig._suptitle.get_text() and "3 rolling folds" in fig._suptitle.get_text()
    assert_png(fig, tmp_path)


def test_walk_forward_figure_other_metric(wf):
    fig = plots.walk_forward_figure(wf, asset="SYN000", metric="cagr")
    assert fig.axes[0].get_ylabel() == "cagr"


def test_walk_forward_figure_one_asset_needs_no_asset(data):
    one = btcore.walk_forward({"lookback_period": [5, 10], "entry_threshold": [1.0, 2.0]},
                              data=data, n_splits=2, assets=["SYN000"], progress=False)
    fig = one.plot()
    assert len(fig.axes[0].patches) == 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(), r"the walk-forward ran 2 assets; pick one with asset=, one of \['SYN000', "
             r"'SYN001'\]"),
    (dict(asset="AAPL"), r"asset 'AAPL' is not in this walk-forward; choose from"),
    (dict(asset="SYN000", metric="profit"), r"unknown metric 'profit'; choose from"),
])
def test_walk_forward_figure_errors(wf, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.walk_forward_figure(wf, **kwargs)


def test_walk_forward_plot_method_needs_asset(wf):
    with pytest.raises(ValueError, match="pick one with asset="):
        wf.plot()


# ------------------------------------------------------------------ Monte Carlo
@pytest.fixture(scope="module")
def mc(sweep, data):
    pytest.importorskip("btcore.workflows.monte_carlo")
    return btcore.monte_carlo(sweep.table.iloc[0], data=data, n_paths=40, progress=False)


def test_monte_carlo_figure(mc, tmp_path):
    fig = plots.monte_carlo_figure(mc)
    assert len(fig.axes) == 2
    hist, fan = fig.axes
    assert hist.get_xlabel() == "sharpe_ratio" and hist.get_ylabel() == "paths"
    counts = sum(p.get_height() for p in hist.patches)
    assert counts == mc.table["sharpe_ratio"].notna().sum()
    assert "40 paths" in hist.get_title() and "P(loss)" in hist.get_title()
    assert fan.get_ylabel() == "equity"
    assert [t.get_text() for t in fan.get_legend().get_texts()] == ["5-95%", "25-75%", "median"]
    np.testing.assert_allclose(fan.lines[0].get_ydata(), mc.equity_quantiles(0.5)[0.5])
    assert "Monte Carlo" in fig._suptitle.get_text() and "40 bootstrap paths" in \
        fig._suptitle.get_text()
    assert_png(fig, tmp_path)


def test_monte_carlo_figure_of_a_grid(data, tmp_path):
    pytest.importorskip("btcore.workflows.monte_carlo")
    grid_mc = btcore.monte_carlo({"lookback_period": [5, 10], "entry_threshold": [1.0, 2.0]},
                                 data=data, asset="SYN000", n_paths=12, progress=False)
    with pytest.raises(ValueError, match=r"the run has 4 parameter sets; pick one with set="):
        plots.monte_carlo_figure(grid_mc)
    with pytest.raises(ValueError, match=r"set 7 is not in this run"):
        plots.monte_carlo_figure(grid_mc, set=7)
    fig = plots.monte_carlo_figure(grid_mc, set=2, metric="total_return")
    assert fig.axes[0].get_xlabel() == "total_return"
    assert sum(p.get_height() for p in fig.axes[0].patches) == 12
    assert "set 2" in fig._suptitle.get_text()
    assert_png(fig, tmp_path)


def test_monte_carlo_figure_unknown_metric(mc):
    with pytest.raises(ValueError, match=r"unknown metric 'sharp'; choose from"):
        plots.monte_carlo_figure(mc, metric="sharp")


# ------------------------------------------------------------------ the extra
def test_missing_matplotlib_names_the_extra(sweep, replay, wf, port, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    message = r"pip install 'btcore\[plot\]'"
    with pytest.raises(ImportError, match=message):
        sweep.plot_heatmap("lookback_period", "entry_threshold")
    with pytest.raises(ImportError, match=message):
        replay.plot()
    with pytest.raises(ImportError, match=message):
        wf.plot(asset="SYN000")
    with pytest.raises(ImportError, match=message):
        port.plot()


@pytest.mark.slow  # a fresh interpreter
def test_importing_btcore_does_not_import_matplotlib():
    import subprocess
    code = ("import sys, btcore, btcore.plots; "
            "print(any(m.startswith('matplotlib') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------- buy and hold, labels
def buy_and_hold_line(ax):
    (line,) = [line for line in ax.lines if line.get_linestyle() == ":"]
    return line


def test_every_equity_panel_draws_buy_and_hold(replay, wf, port):
    ax = replay.plot().axes[0]
    np.testing.assert_array_equal(buy_and_hold_line(ax).get_ydata(),
                                  replay.benchmark.to_numpy())
    assert "buy and hold" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert "round trips" in ax.get_title() and "bars with fills" in ax.get_title()
    ax = wf.plot(asset="SYN001").axes[1]
    np.testing.assert_array_equal(buy_and_hold_line(ax).get_ydata(),
                                  wf.oos_benchmark["SYN001"].to_numpy())
    ax = port.plot().axes[0]
    np.testing.assert_array_equal(buy_and_hold_line(ax).get_ydata(), port.benchmark.to_numpy())
    assert "equal-weight buy and hold" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_portfolio_heatmap_title_lists_parameters_not_metrics(data):
    result = btcore.run_portfolio_sweep(
        {"lookback_period": [5, 10], "entry_threshold": [1.0, 2.0],
         "rebalance_every": [20, 60]}, data=data, progress=False)
    assert "turnover" not in plots.common.parameter_columns(result.table)
    title = result.plot_heatmap("lookback_period", "entry_threshold").axes[0].get_title()
    assert title == "max sharpe_ratio over rebalance_every"
    for metric in ("turnover", "excess_return"):  # result columns a heatmap can show
        result.plot_heatmap("lookback_period", "entry_threshold", metric=metric)


@pytest.mark.parametrize("ticks", [[1_000_000, 1_002_000, 1_004_000], [1e6, 1.05e6],
                                   [950_000, 1_000_000, 1_050_000], [0.0, 2.5e5, 5e5]])
def test_money_ticks_never_read_the_same(ticks):
    labels = plots.common.short_labels(ticks)
    assert len(set(labels)) == len(ticks)
    assert plots.common.short_labels([1e6, 2e6]) == ["1M", "2M"]  # no needless digits


def test_walk_forward_equity_ticks_are_distinct(data):
    flat = btcore.walk_forward({"lookback_period": [5, 10], "entry_threshold": [3.0, 4.0]},
                               data=data, n_splits=3, progress=False, assets="SYN000")
    fig = flat.plot()
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels() if t.get_text()]
    assert len(labels) == len(set(labels)) >= 2
