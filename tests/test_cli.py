"""The command line: every command (sweep, walk-forward, monte-carlo, portfolio,
cross-sectional, estimate, strategies, bench), in-process through ``btcore.cli.main``
and as real processes (``python -m btcore``, the ``btcore`` script), checked
against the Python API on the same inputs; errors print one ``btcore: error:``
line and exit 2 without a traceback, before any work."""
import argparse
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from btcore import SweepResult, run_sweep
from btcore.cli import main
from conftest import assert_tables_identical

HERE = pathlib.Path(__file__).resolve().parent
TINY = {"lookback_period": [20], "entry_threshold": [2.0], "exit_threshold": [0.5],
        "stop_loss_z": [3.0]}
TINY_JSON = json.dumps(TINY)
CROSSOVER_JSON = json.dumps({"fast_window": [5], "slow_window": [20], "band": [0.0]})


@pytest.fixture(scope="module")
def tiny_ko():
    """The in-process result every KO run of TINY must print and save."""
    return run_sweep(TINY, assets="KO", progress=False)


def run_cli(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("btcore: error:")]


@pytest.fixture
def forget_module():
    """Drop a module imported from a temporary folder after the test."""
    names = []
    yield names.append
    for name in names:
        sys.modules.pop(name, None)


def line_of(out: str, word: str) -> str:
    [line] = [line for line in out.splitlines() if f" {word} " in f" {line} "]
    return line


# -------------------------------------------------------------------- sweep
def test_sweep_prints_the_table_and_a_summary(capsys, tiny_ko):
    status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--assets", "KO",
                               "--no-progress")
    assert status == 0, err
    assert err == ""
    header = out.splitlines()[0].split()
    assert header == [*TINY, "asset", *tiny_ko.table.columns[len(TINY) + 1:]]
    row = tiny_ko.table.iloc[0]
    printed = line_of(out, "KO").split()
    assert printed[:len(TINY) + 2] == ["0", "20", "2.0000", "0.5000", "3.0000", "KO"]
    assert printed[header.index("sharpe_ratio") + 1] == f"{row['sharpe_ratio']:.4f}"
    assert printed[header.index("num_trades") + 1] == str(row["num_trades"])
    assert "1 backtests (1 rows) in " in out and "on serial x1" in out


def test_sweep_with_blocks_prints_the_certificate(capsys):
    grid = json.dumps({"lookback_period": [10, 20, 40], "entry_threshold": [1.5, 2.0]})
    status, out, err = run_cli(capsys, "sweep", "--grid", grid, "--assets", "KO",
                               "--start", "2015-01-01", "--blocks", "4", "--select",
                               "plateau", "--no-progress")
    assert status == 0, err
    assert "worst_block_sharpe" in out.splitlines()[0]
    assert "overfitting certificate" in out and "plateau centre, asset KO" in out
    for statistic in ("dsr", "pbo", "spa_p_vs_hold", "enough_history_backtest"):
        assert f" {statistic} " in out
    status, out, err = run_cli(capsys, "sweep", "--grid", grid, "--blocks", "3")
    assert status != 0 and "even integer" in err


def test_top_limits_the_printed_rows_and_assets_select_columns(capsys):
    grid = json.dumps({**TINY, "lookback_period": [20, 40]})
    status, out, err = run_cli(capsys, "sweep", "--grid", grid, "--assets", "KO, PEP",
                               "--top", "3", "--no-progress", "--start", "2015-01-01")
    assert status == 0, err
    expected = run_sweep({**TINY, "lookback_period": [20, 40]}, assets=["KO", "PEP"],
                         start="2015-01-01", progress=False).table
    rows = [line.split() for line in out.split("\n\n")[0].splitlines()[1:]]
    assert [r[5] for r in rows] == list(expected["asset"][:3])
    assert [int(r[1]) for r in rows] == list(expected["lookback_period"][:3])
    assert "4 backtests (4 rows)" in out


def test_grid_file_and_cost_bps(capsys, tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(TINY_JSON)
    status, out, err = run_cli(capsys, "sweep", "--grid", str(path), "--assets", "KO",
                               "--cost-bps", "12.5", "--no-progress", "--out",
                               str(tmp_path / "t.parquet"))
    assert status == 0, err
    loaded = SweepResult.read_parquet(tmp_path / "t.parquet")
    assert loaded.settings["cost_bps"] == 12.5
    expected = run_sweep(TINY, assets="KO", cost_bps=12.5, progress=False)
    assert_tables_identical(loaded.table, expected.table)


def test_out_parquet_reads_back_the_same_rows(capsys, tmp_path, tiny_ko):
    path = tmp_path / "sweep.parquet"
    status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--assets", "KO",
                               "--no-progress", "--out", str(path))
    assert status == 0, err
    assert f"saved 1 rows to {path}" in out
    loaded = SweepResult.read_parquet(path)
    assert_tables_identical(loaded.table, tiny_ko.table)
    assert loaded.strategy == "mean_reversion"
    assert loaded.settings["assets"] == ["KO"]
    assert loaded.stats["backtests"] == 1


def test_out_csv(capsys, tmp_path, tiny_ko):
    path = tmp_path / "sweep.csv"
    status, _, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--assets", "KO",
                             "--no-progress", "--out", str(path))
    assert status == 0, err
    table = pd.read_csv(path)
    assert list(table.columns) == list(tiny_ko.table.columns)
    pd.testing.assert_frame_equal(table, tiny_ko.table, check_exact=False, rtol=1e-15)


def test_a_list_of_parameter_sets_is_a_grid(capsys, tiny_ko):
    rows = json.dumps([{k: v[0] for k, v in TINY.items()}])
    status, out, err = run_cli(capsys, "sweep", "--grid", rows, "--assets", "KO",
                               "--no-progress")
    assert status == 0, err
    assert f"{tiny_ko.table['sharpe_ratio'].iloc[0]:.4f}" in line_of(out, "KO")


# ------------------------------------------------------------------- errors
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


ERRORS = [
    (["--grid", "{lookback_period: [20]}"], "--grid is not valid JSON"),
    (["--grid", "no_such_grid.json"], "no such file 'no_such_grid.json'"),
    (["--grid", "{tmp}/bad.json"], "bad.json' is not valid JSON"),
    (["--grid", "{tmp}/scalar.json"], "scalar.json' must be a JSON object"),
    (["--grid", TINY_JSON, "--strategy", "no_such_strategy"],
     "unknown strategy 'no_such_strategy'"),
    (["--grid", TINY_JSON, "--strategy", "no_such_module_xyz:SPEC"],
     "cannot import 'no_such_module_xyz'"),
    (["--grid", TINY_JSON, "--strategy", "user_strategy.crossover:NOPE"],
     "has no StrategySpec named 'NOPE'"),
    (["--grid", TINY_JSON, "--executor", "spark"], "unknown executor 'spark'"),
    (["--grid", json.dumps({**TINY, "lookbak_period": [20]})],
     "unknown parameter(s) ['lookbak_period']"),
    (["--grid", json.dumps({"lookback_period": [1], **{k: v for k, v in TINY.items()
                                                        if k != "lookback_period"}})],
     "lookback_period must be int in [2, inf), got 1"),
    (["--grid", TINY_JSON, "--start", "2020-01-01", "--end", "2019-01-01"],
     "start (2020-01-01) is after end (2019-01-01)"),
    (["--grid", TINY_JSON, "--cost-bps", "five"], "--cost-bps: expected a number, got 'five'"),
    (["--grid", TINY_JSON, "--cost-bps", "-5"], "cost_bps must be >= 0"),
    (["--grid", TINY_JSON, "--top", "0"], "--top: expected a positive integer"),
    (["--grid", TINY_JSON, "--assets", "NOPE"], "unknown assets ['NOPE']"),
    (["--grid", TINY_JSON, "--data", "no_such_prices.csv"], "no_such_prices.csv"),
    (["--grid", TINY_JSON, "--out", "{tmp}/missing/t.parquet"], "/missing' does not exist"),
    (["--grid", TINY_JSON, "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
]


@pytest.mark.parametrize("argv, message", ERRORS, ids=[m for _, m in ERRORS])
def test_errors_print_one_line_and_exit_2(capsys, tmp_path, no_kernel_runs, argv, message):
    _write(tmp_path, "bad.json", "{'lookback_period': [20]}")
    _write(tmp_path, "scalar.json", "20")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status, out, err = run_cli(capsys, "sweep", "--assets", "KO", "--no-progress", *argv)
    assert status == 2
    assert out == ""
    [line] = error_lines(err)
    assert err.startswith(line)
    assert message in line
    assert "Traceback" not in err


def test_no_command_is_a_usage_error(capsys):
    status, out, err = run_cli(capsys)
    assert status == 2 and out == ""
    [line] = error_lines(err)
    assert "command" in line and "btcore --help" in line


@pytest.mark.slow  # a failed compile is never cached: seconds
def test_errors_from_the_engine_are_one_line_too(capsys, tmp_path, monkeypatch, forget_module):
    """A rule numba cannot compile: the message names the file, indented below."""
    module = tmp_path / "cli_broken_strategy.py"
    module.write_text(BROKEN_STRATEGY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    forget_module("cli_broken_strategy")
    status, out, err = run_cli(capsys, "sweep", "--strategy", "cli_broken_strategy:SPEC",
                               "--grid", json.dumps({"window": [5]}), "--assets", "KO",
                               "--no-progress")
    assert status == 2, out
    [line] = error_lines(err)
    # the only line before it may be the compile notice (a compile over 1 s prints it)
    shown = "".join(text for text in err.splitlines(True)
                    if not text.startswith("compiling cli_broken_strategy kernel"))
    assert shown.startswith(line) and "'cli_broken_strategy'" in line
    assert "cannot compile" in line
    line_number = BROKEN_STRATEGY.splitlines().index("    return plain_helper(price), state") + 1
    # numba prints the file relative to the working directory
    assert f'cli_broken_strategy.py", line {line_number}:' in err
    assert "plain_helper" in err
    assert all(detail.startswith("  ") for detail in shown.splitlines()[1:])


# --------------------------------------------------------------- strategies
def test_strategies_lists_parameters_and_options(capsys):
    import btcore.strategies as strategies
    status, out, err = run_cli(capsys, "strategies")
    assert status == 0, err
    for name in strategies.available():
        assert any(line.startswith(name) for line in out.splitlines())
    spec = strategies.get("mean_reversion")
    section = out[out.index("mean_reversion"):]
    for param in spec.params:
        assert f"    {param.name}: {param.describe_range()}, default {param.default:g}" in section
    assert "  options:\n    allow_short=True\n    reenter_after_stop=True" in section


def test_strategies_describes_a_module_spec(capsys):
    status, out, err = run_cli(capsys, "strategies", "user_strategy.crossover:SPEC")
    assert status == 0, err
    assert out.splitlines()[0] == "user_strategy.crossover:SPEC (test_sma_crossover)"
    assert "    fast_window: int in [2, inf), default 10, a window (bars)" in out
    assert "    band: float in [0, inf), default 0" in out
    assert "  options:\n    allow_short=True" in out


def test_strategies_reports_an_unknown_name(capsys):
    status, out, err = run_cli(capsys, "strategies", "mean_reversion", "nope")
    assert status == 2
    assert out.startswith("mean_reversion")
    [line] = error_lines(err)
    assert "unknown strategy 'nope'" in line


def test_broken_plug_ins_are_input_errors(capsys, monkeypatch, no_kernel_runs):
    """Entry points whose module, attribute or type is wrong: one line each."""
    import importlib.metadata

    import btcore.registry
    import btcore.strategies as strategies
    entries = {"gone_module": "no_such_plugin_module:SPEC",
               "gone_attribute": "user_strategy.crossover:NO_SUCH_SPEC",
               "not_a_spec": "user_strategy.crossover:FAST"}
    monkeypatch.setattr(strategies, "_REGISTRY", btcore.registry.Registry(
        "strategy", "strategies", {"mean_reversion": "btcore.strategies.mean_reversion:SPEC"},
        "btcore.strategies"))
    monkeypatch.setattr(btcore.registry, "entry_points", lambda group: [
        importlib.metadata.EntryPoint(name, value, group) for name, value in entries.items()])
    expected = {"gone_module": "which cannot be loaded (ModuleNotFoundError",
                "gone_attribute": "which cannot be loaded (AttributeError",
                "not_a_spec": "strategy 'not_a_spec' is registered as a int, not a "
                              "StrategySpec"}
    for name, message in expected.items():
        status, out, err = run_cli(capsys, "sweep", "--strategy", name, "--grid", TINY_JSON,
                                   "--no-progress")
        assert (status, out) == (2, "")
        [line] = error_lines(err)
        assert err.startswith(line) and message in line
    status, out, err = run_cli(capsys, "strategies")
    assert status == 2
    assert out.startswith("mean_reversion") and "lookback_period" in out
    lines = error_lines(err)
    assert len(lines) == 3
    assert all(any(message in line for line in lines) for message in expected.values())


# ------------------------------------------------- package.module:SPEC, cwd
CWD_STRATEGY = textwrap.dedent('''
    """A strategy found only through the current directory."""
    from numba import njit

    from btcore.strategies import Indicator, Param, StrategySpec


    @njit(cache=True, nogil=True, error_model="numpy")
    def previous_close_nb(close, lag, out):
        for t in range(lag, close.shape[0]):
            out[t] = close[t - lag]


    @njit(cache=True, nogil=True, inline="always", error_model="numpy")
    def momentum_signal_nb(values, price, params, options, position, state):
        if values[0] != values[0]:
            return 0, state
        return (1 if price > values[0] else 0), state


    SPEC = StrategySpec(name="cli_cwd_momentum", params=(Param("lag", int, 5, low=1,
                                                               is_window=True),),
                        indicators=(Indicator(previous_close_nb, "lag"),),
                        signal_nb=momentum_signal_nb)
''')

BROKEN_STRATEGY = textwrap.dedent('''
    from numba import njit

    from btcore.strategies import Indicator, Param, StrategySpec


    @njit(cache=True, nogil=True, error_model="numpy")
    def copy_nb(close, window, out):
        for t in range(close.shape[0]):
            out[t] = close[t]


    def plain_helper(x):
        return 1


    @njit(cache=True, nogil=True, error_model="numpy")
    def broken_signal_nb(values, price, params, options, position, state):
        return plain_helper(price), state


    SPEC = StrategySpec(name="cli_broken_strategy", params=(Param("window", int, 5, low=1),),
                        indicators=(Indicator(copy_nb, "window"),), signal_nb=broken_signal_nb)
''')


@pytest.mark.slow  # compiles strategies from a new folder: seconds
def test_module_spec_is_imported_from_the_current_directory(capsys, tmp_path, monkeypatch,
                                                           forget_module):
    (tmp_path / "cli_cwd_strategy.py").write_text(CWD_STRATEGY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    forget_module("cli_cwd_strategy")
    status, out, err = run_cli(capsys, "sweep", "--strategy", "cli_cwd_strategy:SPEC",
                               "--grid", '{"lag": [3, 10]}', "--assets", "KO",
                               "--no-progress")
    assert status == 0, err
    assert sys.path[0] == str(tmp_path)
    assert sys.modules["cli_cwd_strategy"].__file__ == str(tmp_path / "cli_cwd_strategy.py")
    header = out.splitlines()[0].split()
    assert header[:2] == ["lag", "asset"]
    assert "2 backtests (2 rows)" in out


@pytest.mark.slow  # compiles strategies from a new folder: seconds
def test_the_current_directory_is_not_added_when_not_needed(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    for strategy, grid in (("mean_reversion", TINY_JSON),
                           ("user_strategy.crossover:SPEC", CROSSOVER_JSON)):
        status, _, err = run_cli(capsys, "sweep", "--strategy", strategy, "--grid", grid,
                                 "--assets", "KO", "--no-progress")
        assert status == 0, err
        assert sys.path == before


# ------------------------------------------------------------ real processes
def _env():
    return dict(os.environ, PYTHONPATH="")


@pytest.mark.slow  # fresh interpreters
def test_python_m_btcore_sweep(tmp_path, tiny_ko):
    path = tmp_path / "out.parquet"
    done = subprocess.run([sys.executable, "-m", "btcore", "sweep", "--grid", TINY_JSON,
                           "--assets", "KO", "--no-progress", "--out", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    row = tiny_ko.table.iloc[0]
    printed = line_of(done.stdout, "KO")
    assert f"{row['sharpe_ratio']:.4f}" in printed and f"{row['total_return']:.4f}" in printed
    assert "1 backtests (1 rows)" in done.stdout
    assert_tables_identical(SweepResult.read_parquet(path).table, tiny_ko.table)

    bad = subprocess.run([sys.executable, "-m", "btcore", "sweep", "--grid", "{bad",
                          "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env=_env())
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("btcore: error: --grid is not valid JSON")


def _console_script():
    script = pathlib.Path(sys.executable).parent / "btcore"
    return str(script) if script.exists() else shutil.which("btcore")


@pytest.mark.slow  # fresh interpreters
@pytest.mark.skipif(_console_script() is None, reason="the btcore script is not installed")
def test_btcore_script_finds_a_module_spec_in_the_current_directory():
    """The installed script (whose sys.path does not hold the working directory)
    imports ``user_strategy.crossover`` from the tests folder, as ``python -m`` would."""
    done = subprocess.run([_console_script(), "sweep", "--strategy",
                           "user_strategy.crossover:SPEC", "--grid", CROSSOVER_JSON,
                           "--assets", "KO", "--no-progress"], cwd=HERE, capture_output=True,
                          text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    expected = run_sweep(json.loads(CROSSOVER_JSON), "user_strategy.crossover:SPEC",
                         assets="KO", progress=False).table.iloc[0]
    header = done.stdout.splitlines()[0].split()
    assert header[:4] == ["fast_window", "slow_window", "band", "asset"]
    printed = line_of(done.stdout, "KO").split()
    assert printed[header.index("sharpe_ratio") + 1] == f"{expected['sharpe_ratio']:.4f}"
    assert printed[header.index("num_trades") + 1] == str(expected["num_trades"])


def test_options_are_typed_by_the_strategy(capsys, sample):
    from btcore import run_sweep
    status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--assets", "KO",
                               "--option", "allow_short=false", "--option",
                               "reenter_after_stop=no", "--no-progress")
    assert status == 0, err
    expected = run_sweep(json.loads(TINY_JSON), data=sample, assets="KO", allow_short=False,
                         reenter_after_stop=False, progress=False).table
    assert f"{expected['num_trades'].iloc[0]}" in out.splitlines()[1]
    grid = '{"fast_window": [5], "slow_window": [20]}'
    status, out, err = run_cli(capsys, "sweep", "--strategy", "ma_crossover", "--grid", grid,
                               "--assets", "KO", "--option", "average=ema", "--no-progress")
    assert status == 0, err


@pytest.mark.parametrize("option, message", [
    ("nothing", "--option takes NAME=VALUE, got 'nothing'"),
    ("allow_shor=1", "--option allow_shor: strategy 'mean_reversion' has no such option"),
    ("allow_short=maybe", "--option allow_short: give true or false, got 'maybe'"),
])
def test_bad_options_are_one_line(capsys, option, message, no_kernel_runs):
    status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--option", option,
                               "--no-progress")
    assert (status, out) == (2, "")
    [line] = error_lines(err)
    assert message in line


# ==================================================================== the full CLI

import btcore  # noqa: E402
import btcore.cli.inputs as cli_inputs  # noqa: E402
from btcore.cli.parser import build_parser  # noqa: E402

WINDOW = ["--start", "2020-01-01", "--end", "2021-12-31"]
WINDOW_KW = {"start": "2020-01-01", "end": "2021-12-31"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_module(*argv, cwd=None, timeout=300):
    """``python -m btcore ARGV`` as a real process."""
    return subprocess.run([sys.executable, "-m", "btcore", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=_env())


def block_rows(text: str) -> tuple[list, list]:
    """(header tokens, rows of tokens) of a printed frame (its index first in each row)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].split(), [line.split() for line in lines[1:]]


def f4(value) -> str:
    """A table cell as the CLI prints it (pandas shows a missing value as NaN)."""
    return "NaN" if pd.isna(value) else f"{value:.4f}"


# ------------------------------------------------------------------- --grid
@pytest.mark.parametrize("tokens, expected", [
    (["lookback_period=20:100:20"], {"lookback_period": [20, 40, 60, 80, 100]}),
    (["lookback_period=20:90:20"], {"lookback_period": [20, 40, 60, 80]}),
    (["x=0.1:0.3:0.1"], {"x": [0.1, 0.2, 0.3]}),            # 0.2 / 0.1 = 2.0000000000000004
    (["x=0:1:0.3"], {"x": [0.0, 0.3, 0.6, 0.9]}),
    (["x=2:3:0.5"], {"x": [2.0, 2.5, 3.0]}),
    (["x=1.5:2.5:0.5", "y=5"], {"x": [1.5, 2.0, 2.5], "y": [5]}),
    (["a=1,2,3", "b=1.5, 2.0", "c=inf"], {"a": [1, 2, 3], "b": [1.5, 2.0],
                                          "c": [float("inf")]}),
    (["x=-1:1:1"], {"x": [-1, 0, 1]}),
    (['{"a": [1, 2]}'], {"a": [1, 2]}),
    (['[{"a": 1}, {"a": 2}]'], [{"a": 1}, {"a": 2}]),
])
def test_grid_tokens(tokens, expected):
    grid = cli_inputs.load_grid(tokens)
    assert grid == expected
    assert [type(v) for vs in (grid.values() if isinstance(grid, dict) else []) for v in vs] \
        == [type(v) for vs in (expected.values() if isinstance(expected, dict) else [])
            for v in vs]


def test_range_tokens_sweep_like_the_api(capsys):
    status, out, err = run_cli(capsys, "sweep", "--grid", "lookback_period=20:60:20",
                               "entry_threshold=1.5,2.0", "--assets", "KO", *WINDOW,
                               "--no-progress", "--top", "6")
    assert status == 0, err
    expected = run_sweep({"lookback_period": [20, 40, 60], "entry_threshold": [1.5, 2.0]},
                         assets="KO", progress=False, **WINDOW_KW).table
    header, rows = block_rows(out.split("\n\n")[0])
    assert len(rows) == 6
    sharpe = header.index("sharpe_ratio") + 1
    assert [int(r[1]) for r in rows] == list(expected["lookback_period"])
    assert [r[2] for r in rows] == [f4(v) for v in expected["entry_threshold"]]
    assert [r[sharpe] for r in rows] == [f4(v) for v in expected["sharpe_ratio"]]
    assert "6 backtests (6 rows)" in out


def test_data_file_and_capital(capsys, tmp_path, sample):
    path = tmp_path / "prices.csv"
    frame = pd.DataFrame(sample.close, index=sample.index, columns=list(sample.symbols))
    frame.index.name = "date"
    frame[["KO", "PEP"]].loc["2019-01-01":"2021-12-31"].to_csv(path)
    status, out, err = run_cli(capsys, "sweep", "--data", str(path), "--grid", TINY_JSON,
                               "--capital", "50000", "--no-progress", "--start", "2020-01-01")
    assert status == 0, err
    expected = run_sweep(TINY, data=str(path), initial_capital=50_000.0, start="2020-01-01",
                         progress=False).table
    header, rows = block_rows(out.split("\n\n")[0])
    final = header.index("final_value") + 1
    assert [r[5] for r in rows] == list(expected["asset"])
    assert [r[final] for r in rows] == [f4(v) for v in expected["final_value"]]


def test_data_sample_is_the_bundled_sample(capsys, tiny_ko):
    status, out, err = run_cli(capsys, "sweep", "--data", "sample", "--grid", TINY_JSON,
                               "--assets", "KO", "--no-progress")
    assert status == 0, err
    assert f4(tiny_ko.table["sharpe_ratio"].iloc[0]) in line_of(out, "KO")


# ------------------------------------------------------------------- errors
WORKFLOW_ERRORS = [
    (["sweep", "--grid", "lookback_period=20:100"], "bad token 'lookback_period=20:100': a "
                                                    "range is start:stop:step"),
    (["sweep", "--grid", "lookback_period=20:100:0"], "needs step > 0 and start <= stop"),
    (["sweep", "--grid", "lookback_period=100:20:20"], "needs step > 0 and start <= stop"),
    (["sweep", "--grid", "lookback_period=abc"], "'abc' is not a number"),
    (["sweep", "--grid", "lookback_period="], "bad token 'lookback_period='"),
    (["sweep", "--grid", "lookback_period"], "bad token 'lookback_period': not name=values"),
    (["sweep", "--grid", "a=1", "a=2"], "'a' is given twice"),
    (["sweep", "--grid", "a=1", TINY_JSON], "among name=values tokens"),
    (["sweep", "--grid", TINY_JSON, TINY_JSON], "one JSON string or file"),
    (["sweep", "--grid", "x=0:1e9:1"], "more than 1,000,000"),
    (["sweep", "--out", "{tmp}/t.xlsx"], "has extension .xlsx; give a directory"),
    (["sweep", "--out", "{tmp}/missing/results/"], "/missing' does not exist"),
    (["sweep", "--out", "{tmp}/missing/results"], "/missing' does not exist"),
    (["sweep", "--out", "{tmp}/afile"], "is an existing file without an extension"),
    (["sweep", "--sort-by", "sharpe"], "--sort-by: unknown metric 'sharpe'"),
    (["sweep", "--keep", "0"], "--keep: expected a positive integer"),
    (["sweep", "--executor", "threads", "--address", "auto"],
     "--address joins a Ray or Dask cluster: use it with --executor ray or --executor dask, "
     "not 'threads'"),
    (["sweep", "--address", "auto"], "not 'serial'"),
    (["sweep", "--executor", "joblib", "--address", "tcp://h:1"], "not 'joblib'"),
    (["sweep", "--plot", "{tmp}/h.gif"], "--plot: '{tmp}/h.gif' has extension .gif"),
    (["sweep", "--plot", "{tmp}/missing/h.png"], "/missing' does not exist"),
    (["sweep", "--plot", "{tmp}/h.png"], "--plot draws a heatmap over two parameters, but "
                                         "the grid varies 0"),
    (["sweep", "--capital", "lots"], "--capital: expected a number"),
    (["walk-forward", "--objective", "sharp"], "--objective: unknown metric 'sharp'"),
    (["walk-forward", "--executor", "spark"], "unknown executor 'spark'"),
    (["estimate", "--out", "{tmp}/estimates/"], "resumable results are for `sweep`"),
    (["walk-forward", "--folds", "1"], "--folds must be >= 2"),
    (["walk-forward", "--anchored", "--train-bars", "50"], "--train-bars sets the rolling in-sample length; anchored folds use every bar "
     "before each fold (leave --train-bars out)"),
    (["walk-forward", "--grid", "lookbak=20"], "unknown parameter(s) ['lookbak']"),
    (["monte-carlo", "--params", "lookback_period=20,40"], "one value each"),
    (["monte-carlo", "--params", "lookback_period=20", "--grid", "lookback_period=20"],
     "not both"),
    (["monte-carlo", "--assets", "KO,PEP"], "monte-carlo resamples one asset"),
    (["monte-carlo", "--assets", ""], "the data has 20: give --asset NAME"),
    (["monte-carlo", "--asset", "KO", "--method", "normal"], "--method: invalid choice"),
    (["monte-carlo", "--asset", "KO", "--seed", "-1"], "seed must be"),
    (["monte-carlo", "--asset", "KO", "--paths", "0"], "--paths: expected a positive integer"),
    (["monte-carlo", "--asset", "KO", "--block-size", "10"],
     "--block-size is the mean block length of --method block, not --method bootstrap: add "
     "--method block or drop --block-size"),
    (["monte-carlo", "--asset", "KO", "--method", "gbm", "--block-size", "10"],
     "not --method gbm"),
    (["estimate", "--workflow", "monte-carlo", "--asset", "KO", "--block-size", "10"],
     "--block-size is the mean block length of --method block, not --method bootstrap"),
    (["portfolio", "--portfolio-stop-drawdown", "2"], "--portfolio-stop-drawdown is a fraction"),
    (["portfolio", "--out", "{tmp}/p.json"], "has extension .json; give a directory"),
    (["estimate", "--cpus", "1,two"], "--cpus: expected comma-separated whole numbers"),
    (["estimate", "--cpus", "0"], "--cpus: expected CPU counts >= 1"),
    (["estimate", "--executor", "spark"], "estimate models dask, joblib, ray, serial, "
                                          "threads, not 'spark'"),
    (["estimate", "--price-per-cpu-hour", "-1"], "price_per_cpu_hour must be a number >= 0"),
    (["estimate", "--paths", "100"], "--paths belongs to --workflow monte-carlo, not sweep"),
    (["estimate", "--workflow", "portfolio", "--folds", "3"],
     "--folds belongs to --workflow walk-forward, not portfolio"),
    (["estimate", "--workflow", "walk-forward", "--folds", "1"], "--folds must be >= 2"),
    (["estimate", "--workflow", "monte-carlo"], "pick one with --asset NAME"),
    (["estimate", "--workflow", "monte-carlo", "--assets", "KO,PEP"], "resamples one asset"),
    (["estimate", "--workflow", "optimise"], "--workflow: invalid choice: 'optimise'"),
    (["bench", "--executors", "serial,spark"], "--executors: unknown executor 'spark'"),
    (["bench", "--repeats", "0"], "--repeats: expected a positive integer"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv, message", WORKFLOW_ERRORS,
                         ids=[" ".join(a[:2]) + ": " + m[:40] for a, m in WORKFLOW_ERRORS])
def test_workflow_errors_are_one_line_before_any_work(capsys, tmp_path, no_kernel_runs,
                                                      monkeypatch, argv, message):
    (tmp_path / "afile").write_text("")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] in ("sweep", "walk-forward", "portfolio", "estimate") and "--grid" not in argv:
        argv += ["--grid", TINY_JSON]
    status, out, err = run_cli(capsys, *argv)
    assert (status, out) == (2, ""), err
    [line] = error_lines(err)
    assert err.startswith(line) and "Traceback" not in err
    assert message.replace("{tmp}", str(tmp_path)) in line


def test_an_unwritable_output_folder_is_refused_before_any_work(capsys, tmp_path,
                                                                no_kernel_runs, monkeypatch):
    """os.access says no (as for a read-only folder, whoever runs the tests)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(cli_inputs.os, "access",
                        lambda path, mode: False if str(path).startswith(str(locked))
                        else real_access(path, mode))
    for flag, target in (("--out", "t.parquet"), ("--out", "t.csv"), ("--out", "results/"),
                         ("--out", ""), ("--plot", "h.png")):
        status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--no-progress",
                                   flag, str(locked / target))
        assert (status, out) == (2, "")
        [line] = error_lines(err)
        assert f"{flag}: the folder '{locked}' is not writable" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes to read-only folders")
def test_a_read_only_folder_is_refused(capsys, tmp_path, no_kernel_runs):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for target in ("t.parquet", "results/"):
            status, _, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--out",
                                     str(locked / target))
            assert status == 2
            [line] = error_lines(err)
            assert "is not writable" in line
    finally:
        locked.chmod(0o700)


def test_a_directory_out_needs_run_sweep_out(capsys, tmp_path, monkeypatch, no_kernel_runs):
    """While run_sweep takes no out=/keep=/sort_by=, those flags are one clear line."""
    def old_run_sweep(grid, strategy="mean_reversion", data=None, *, executor="serial",
                      **kwargs):
        raise AssertionError("must not be called")
    monkeypatch.setattr(btcore, "run_sweep", old_run_sweep)
    for argv, flag in ((["--out", str(tmp_path / "results")], "--out DIR"),
                       (["--keep", "5"], "--keep"), (["--sort-by", "cagr"], "--sort-by")):
        status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, *argv)
        assert (status, out) == (2, "")
        [line] = error_lines(err)
        assert line.startswith(f"btcore: error: {flag}: this version of btcore's run_sweep "
                               "does not take")


def test_streaming_flags_are_passed_to_run_sweep(capsys, tmp_path, monkeypatch):
    """--out DIR, --keep, --sort-by and --overwrite reach run_sweep as keywords (a
    stand-in run_sweep that takes them records them)."""
    real = btcore.run_sweep
    calls = []

    def streaming_run_sweep(grid, strategy="mean_reversion", data=None, *, out=None,
                            keep=None, sort_by=None, overwrite=False, on_progress=None,
                            **kwargs):
        calls.append({"out": out, "keep": keep, "sort_by": sort_by, "overwrite": overwrite,
                      "executor": kwargs["executor"]})
        if kwargs["executor"] == "auto":  # may not be a name the real run_sweep takes yet
            kwargs["executor"] = "serial"
        return real(grid, strategy, data, **kwargs)
    monkeypatch.setattr(btcore, "run_sweep", streaming_run_sweep)
    folder = tmp_path / "results"
    status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--assets", "KO",
                               "--out", str(folder), "--keep", "3", "--sort-by", "cagr",
                               "--overwrite", "--no-progress", "--executor", "auto")
    assert status == 0, err
    assert calls.pop() == {"out": str(folder), "keep": 3, "sort_by": "cagr",
                           "overwrite": True, "executor": "auto"}
    assert f"results in {folder}" in out
    status, _, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--assets", "KO",
                             "--out", str(tmp_path / "t.parquet"), "--no-progress")
    assert status == 0, err
    assert calls.pop() == {"out": None, "keep": None, "sort_by": None, "overwrite": False,
                           "executor": "serial"}  # a file is written by the CLI


# ---------------------------------------------- streamed results (pending run_sweep(out=))
STREAM_GRID = ["lookback_period=20,40,60", "entry_threshold=1.5,2.0"]
STREAM_DICT = {"lookback_period": [20, 40, 60], "entry_threshold": [1.5, 2.0]}


def test_out_directory_streams_and_resumes(capsys, tmp_path):
    folder = tmp_path / "results"
    argv = ["sweep", "--grid", *STREAM_GRID, "--assets", "KO,PEP", *WINDOW, "--no-progress",
            "--out", str(folder) + "/"]
    status, first, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert folder.is_dir() and any(folder.iterdir())
    expected = run_sweep(STREAM_DICT, assets=["KO", "PEP"], progress=False, **WINDOW_KW,
                         out=str(tmp_path / "api"))
    header, rows = block_rows(first.split("\n\n")[0])
    sharpe = header.index("sharpe_ratio") + 1
    assert [r[sharpe] for r in rows] == [f4(v) for v in expected.table["sharpe_ratio"][:10]]
    status, again, err = run_cli(capsys, *argv)  # resumed: the same rows
    assert status == 0, err
    assert again.split("\n\n")[0] == first.split("\n\n")[0]
    status, restarted, err = run_cli(capsys, *argv, "--overwrite")
    assert status == 0, err
    assert restarted.split("\n\n")[0] == first.split("\n\n")[0]


def test_a_different_sweep_in_the_out_directory_names_the_flag(capsys, tmp_path):
    folder = str(tmp_path / "results")
    base = ["sweep", "--assets", "KO", "--no-progress", "--out", folder]
    status, _, err = run_cli(capsys, *base, "--grid", TINY_JSON)
    assert status == 0, err
    status, out, err = run_cli(capsys, *base, "--grid", "lookback_period=30")
    assert (status, out) == (2, "")
    [line] = error_lines(err)
    assert "--overwrite" in line and "overwrite=True" not in line
    status, out, err = run_cli(capsys, *base, "--grid", "lookback_period=30", "--overwrite")
    assert status == 0, err


def test_out_directory_without_extension_is_a_directory(capsys, tmp_path):
    folder = tmp_path / "run1"
    status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--assets", "KO",
                               "--no-progress", "--out", str(folder))
    assert status == 0, err
    assert folder.is_dir()
    assert f"results in {folder}" in out


def test_keep_and_sort_by_match_the_api(capsys):
    status, out, err = run_cli(capsys, "sweep", "--grid", *STREAM_GRID, "--assets", "KO,PEP",
                               *WINDOW, "--keep", "3", "--sort-by", "calmar_ratio",
                               "--no-progress")
    assert status == 0, err
    expected = run_sweep(STREAM_DICT, assets=["KO", "PEP"], progress=False, keep=3,
                         sort_by="calmar_ratio", **WINDOW_KW).table
    header, rows = block_rows(out.split("\n\n")[0])
    calmar = header.index("calmar_ratio") + 1
    assert len(rows) == len(expected) <= 3
    assert [r[calmar] for r in rows] == [f4(v) for v in expected["calmar_ratio"]]


@pytest.mark.slow  # fresh interpreters
def test_python_m_btcore_sweep_out_directory(tmp_path):
    done = run_module("sweep", "--grid", TINY_JSON, "--assets", "KO", "--no-progress",
                      "--out", str(tmp_path / "streamed") + "/", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "streamed").is_dir()


# ----------------------------------------------------------- --address
def test_address_builds_a_cluster_executor_and_closes_it(capsys, monkeypatch, tiny_ko):
    import btcore.executors as executors
    from btcore.executors.serial import SerialExecutor
    made = []

    class Joined(SerialExecutor):
        def __init__(self, address=None):
            super().__init__()
            self.address, self.closed = address, False
            made.append(self)

        def close(self):
            self.closed = True
            super().close()
    real = executors.executor_class
    monkeypatch.setattr(executors, "executor_class",
                        lambda name: Joined if name in ("ray", "dask") else real(name))
    for name, address in (("ray", "auto"), ("dask", "tcp://10.0.0.1:8786")):
        status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--assets", "KO",
                                   "--executor", name, "--address", address, "--no-progress")
        assert status == 0, err
        joined = made.pop()
        assert (joined.address, joined.closed) == (address, True)
        assert f4(tiny_ko.table["sharpe_ratio"].iloc[0]) in line_of(out, "KO")


def test_an_unreachable_dask_address_is_one_line(capsys):
    # without Dask the one line is the install hint instead (test_executors.py checks it)
    pytest.importorskip("distributed", reason="the dask executor needs dask.distributed "
                                              "(pip install 'btcore[dask]')")
    status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--assets", "KO",
                               "--executor", "dask", "--address", "tcp://127.0.0.1:1",
                               "--no-progress")
    assert (status, out) == (2, "")
    [line] = error_lines(err)
    assert err.startswith(line) and "cannot reach a cluster at 'tcp://127.0.0.1:1'" in line


# ------------------------------------------------------- help, version, pipes
def test_every_flag_has_help():
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {"sweep", "walk-forward", "cpcv", "monte-carlo",
                                     "portfolio", "cross-sectional", "estimate",
                                     "strategies", "bench", "warmup"}
    for name, sub in [("btcore", parser), *commands.choices.items()]:
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    sweep = commands.choices["sweep"]
    flags = {flag for action in sweep._actions for flag in action.option_strings}
    assert {"--strategy", "--grid", "--data", "--assets", "--start", "--end", "--executor",
            "--address", "--capital", "--cost-bps", "--option", "--top", "--plot",
            "--no-progress", "--out", "--keep", "--sort-by", "--overwrite"} <= flags


def test_version_and_help_in_process(capsys):
    status, out, err = run_cli(capsys, "--version")
    assert (status, out, err) == (0, f"btcore {btcore.__version__}\n", "")
    status, out, _ = run_cli(capsys, "walk-forward", "--help")
    assert status == 0 and "--folds" in out and "example:" in out


@pytest.mark.slow  # fresh interpreters
def test_python_m_btcore_version():
    done = run_module("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"btcore {btcore.__version__}\n",
                                                           "")


def _pipe(command: str):
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                          text=True, timeout=300, env=_env(), cwd=HERE)


@pytest.mark.slow  # fresh interpreters
def test_output_piped_to_head_exits_quietly():
    python = f"'{sys.executable}' -m btcore"
    listing = _pipe(f"{python} strategies | head -1")
    assert (listing.returncode, listing.stderr) == (0, "")
    assert listing.stdout.count("\n") == 1
    # 2,700 rows (>> a pipe's buffer): the write after head has gone fails
    sweep = _pipe(f"{python} sweep --top 3000 --no-progress | head -2")
    assert (sweep.returncode, sweep.stderr) == (0, "")
    assert sweep.stdout.splitlines()[0].split()[:2] == ["lookback_period", "entry_threshold"]


# -------------------------------------------------------------- workflows
WF_GRID = ["lookback_period=20,40", "entry_threshold=1.5,2.0"]
WF_DICT = {"lookback_period": [20, 40], "entry_threshold": [1.5, 2.0]}


@pytest.mark.slow  # fresh interpreters
def test_walk_forward_prints_folds_and_oos_metrics(tmp_path):
    plot, out = tmp_path / "wf.png", tmp_path / "folds.csv"
    done = run_module("walk-forward", "--grid", *WF_GRID, "--assets", "KO,PEP", *WINDOW,
                      "--folds", "3", "--objective", "calmar_ratio", "--no-progress",
                      "--plot", str(plot), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    expected = btcore.walk_forward(WF_DICT, assets=["KO", "PEP"], n_splits=3,
                                   objective="calmar_ratio", progress=False, **WINDOW_KW)
    text = done.stdout
    assert text.startswith("3 rolling folds of 126 out-of-sample bars, chosen by calmar_ratio")
    folds_text, oos_text = text.split("\n\n")[0], text.split("\n\n")[1]
    header, rows = block_rows("\n".join(folds_text.splitlines()[1:]))
    rows = [r for r in rows if r[0] != "fold"]  # the index name's line
    assert len(rows) == len(expected.folds) == 6
    for row, (_, fold) in zip(rows, expected.folds.iterrows()):
        got = dict(zip(["fold", *header], row))
        assert (int(got["fold"]), got["asset"]) == (fold["fold"], fold["asset"])
        assert got["oos_start"] == str(fold["oos_start"].date())
        assert int(got["lookback_period"]) == fold["lookback_period"]
        assert got["entry_threshold"] == f4(fold["entry_threshold"])
        for column in ("is_calmar_ratio", "oos_calmar_ratio", "efficiency"):
            assert got[column] == f4(fold[column])
    header, rows = block_rows(oos_text.split(":\n", 1)[1])
    for row in rows:
        asset = row[0]
        assert row[header.index("sharpe_ratio") + 1] == f4(
            expected.oos_metrics.loc[asset, "sharpe_ratio"])
        assert row[header.index("efficiency") + 1] == f4(expected.efficiency[asset])
    assert "3 folds, 24 in-sample backtests" in text
    assert plot.read_bytes().startswith(PNG_MAGIC)
    saved = pd.read_csv(out)
    assert list(saved.columns) == list(expected.folds.columns)
    assert list(saved["oos_total_return"]) == pytest.approx(
        list(expected.folds["oos_total_return"]), rel=1e-12)


def test_walk_forward_anchored_in_process(capsys):
    status, out, err = run_cli(capsys, "walk-forward", "--grid", *WF_GRID, "--assets", "KO",
                               *WINDOW, "--folds", "2", "--anchored", "--gap", "5",
                               "--no-progress")
    assert status == 0, err
    expected = btcore.walk_forward(WF_DICT, assets="KO", n_splits=2, anchored=True, gap=5,
                                   progress=False, **WINDOW_KW)
    assert out.startswith("2 anchored folds")
    assert f4(expected.oos_metrics["sharpe_ratio"].iloc[0]) in out.split("\n\n")[1]


@pytest.mark.slow  # fresh interpreters
def test_monte_carlo_prints_the_summary(tmp_path):
    plot = tmp_path / "mc.png"
    done = run_module("monte-carlo", "--params", "lookback_period=40", "entry_threshold=2.5",
                      "--asset", "KO", *WINDOW, "--paths", "40", "--method", "block",
                      "--seed", "3", "--no-progress", "--plot", str(plot), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    expected = btcore.monte_carlo({"lookback_period": 40, "entry_threshold": 2.5}, asset="KO",
                                  n_paths=40, method="block", seed=3, progress=False,
                                  **WINDOW_KW)
    first, summary = done.stdout.split("\n", 1)
    assert first == ("mean_reversion on KO: 40 block paths (seed 3), lookback_period=40, "
                     "entry_threshold=2.5, exit_threshold=0.5, stop_loss_z=3")
    header, rows = block_rows(summary.split("\n\n")[0])
    assert header == ["statistic", "mean", "std", "5%", "25%", "50%", "75%", "95%",
                      "observed", "percentile_of_observed"]
    table = expected.summary
    assert [r[0] for r in rows] == list(table.columns)
    for row in rows:
        assert row[1:] == [f4(table.loc[stat, row[0]]) for stat in header[1:]]
    assert f"prob_loss {expected.prob_loss:.4f}" in done.stdout
    assert "40 backtests in" in done.stdout
    assert plot.read_bytes().startswith(PNG_MAGIC)


def test_monte_carlo_takes_the_first_set_of_a_grid(capsys, tmp_path):
    out = tmp_path / "paths.parquet"
    status, text, err = run_cli(capsys, "monte-carlo", "--grid", "lookback_period=30,60",
                                "stop_loss_z=2.5", "--assets", "PEP", *WINDOW, "--paths", "20",
                                "--no-progress", "--out", str(out))
    assert status == 0, err
    expected = btcore.monte_carlo({"lookback_period": 30, "stop_loss_z": 2.5}, asset="PEP",
                                  n_paths=20, progress=False, **WINDOW_KW)
    assert "lookback_period=30," in text.splitlines()[0]
    assert_tables_identical(pd.read_parquet(out), expected.table)


@pytest.mark.parametrize("flags, keywords", [
    (["--method", "block", "--block-size", "7"], {"method": "block", "block_size": 7.0}),
    (["--method", "block"], {"method": "block"}),  # the library's default block size
])
def test_monte_carlo_block_size_with_method_block(capsys, tmp_path, flags, keywords):
    out = tmp_path / "paths.parquet"
    status, text, err = run_cli(capsys, "monte-carlo", "--params", "lookback_period=30",
                                "--assets", "PEP", *WINDOW, "--paths", "12", *flags,
                                "--no-progress", "--out", str(out))
    assert status == 0, err
    expected = btcore.monte_carlo({"lookback_period": 30}, asset="PEP", n_paths=12,
                                  progress=False, **keywords, **WINDOW_KW)
    assert expected.settings["block_size"] == keywords.get("block_size", 20)
    assert_tables_identical(pd.read_parquet(out), expected.table)


@pytest.mark.slow  # fresh interpreters
def test_portfolio_prints_the_top_rows(tmp_path):
    plot = tmp_path / "pf.png"
    done = run_module("portfolio", "--grid", *WF_GRID, "--assets", "KO,PEP", *WINDOW,
                      "--rebalance-every", "21", "--top", "3", "--no-progress",
                      "--plot", str(plot), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    expected = btcore.run_portfolio_sweep(WF_DICT, assets=["KO", "PEP"], rebalance_every=21,
                                          progress=False, **WINDOW_KW).table
    lines = done.stdout.split("\n\n")[0].splitlines()
    assert lines[0] == "portfolio of 2 assets: KO, PEP"
    header, rows = block_rows("\n".join(lines[1:]))
    assert len(rows) == 3
    for column in ("sharpe_ratio", "final_value", "rebalance_every"):
        assert [r[header.index(column) + 1] for r in rows] == [f4(v) for v in
                                                               expected[column][:3]]
    assert "4 portfolio backtests (4 rows)" in done.stdout
    assert plot.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.slow  # fresh interpreters
def test_estimate_prints_the_table(tmp_path):
    done = run_module("estimate", "--grid", *WF_GRID, "--assets", "KO", *WINDOW,
                      "--cpus", "1,2,16,320", "--price-per-cpu-hour", "0.015", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = btcore.estimate(WF_DICT, assets="KO", cpus=[1, 2, 16, 320],
                               price_per_cpu_hour=0.015, **WINDOW_KW)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("4 parameter sets, 4 backtests at $0.015 per CPU-hour")
    header, rows = block_rows("\n".join(lines[1:]))
    assert header == list(expected.columns)
    assert [(int(r[0]), r[1]) for r in rows] == list(zip(expected["cpus"],
                                                         expected["executor"]))
    for row in rows:  # measured times differ run to run; the arithmetic does not
        cpus, seconds, hours, cost = int(row[0]), float(row[2]), float(row[3]), float(row[4])
        assert hours == pytest.approx(seconds * cpus / 3600, rel=2e-3)
        assert cost == pytest.approx(hours * 0.015, rel=2e-3)


@pytest.mark.parametrize("workflow, flags, backtests", [
    ("walk-forward", ["--grid", *WF_GRID, "--assets", "KO", "--folds", "3"], 4 * 3),
    ("monte-carlo", ["--params", "lookback_period=20", "--asset", "KO", "--paths", "40"], 40),
    ("portfolio", ["--grid", *WF_GRID, "--assets", "KO,PEP", "--rebalance-every", "21"], 4),
])
def test_estimate_predicts_every_workflow(capsys, workflow, flags, backtests):
    status, out, err = run_cli(capsys, "estimate", "--workflow", workflow, *flags, *WINDOW,
                               "--cpus", "1,2")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{workflow}: ")
    assert f" {backtests:,} backtests at $0.05 per CPU-hour" in lines[0]
    header, rows = block_rows("\n".join(lines[1:]))
    assert [int(r[0]) for r in rows] == [1, 2] and all(float(r[2]) > 0 for r in rows)


@pytest.mark.slow  # fresh interpreters
def test_bench_measures_serial_and_threads():
    done = run_module("bench", "--repeats", "1", "--start", "2020-01-01")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "135-set grid" in lines[0] and "best of 1" in lines[0]
    header, rows = block_rows("\n".join(lines[1:]))
    assert header == ["executor", "workers", "backtests", "best_s", "backtests_per_s",
                      "M_param_bars_per_s"]
    assert [r[0] for r in rows] == ["serial", "threads"]
    for row in rows:
        assert int(row[2]) == 2700
        assert float(row[3]) > 0 and float(row[4].replace(",", "")) > 0 \
            and float(row[5].replace(",", "")) > 0


@pytest.mark.parametrize("command, extra, table", [
    ("walk-forward", ["--folds", "3"], "folds.parquet"),
    ("monte-carlo", ["--params", "lookback_period=40", "--asset", "KO", "--paths", "6"],
     "table.parquet"),
    ("portfolio", ["--assets", "KO,PEP"], "table.parquet"),
])
def test_workflow_out_directories_resume(capsys, tmp_path, command, extra, table):
    folder = tmp_path / "store"
    grid = [] if command == "monte-carlo" else ["--grid", "lookback_period=20,40"]
    argv = [command, *grid, *extra, "--start", "2016-01-01", "--end", "2020-12-31",
            "--no-progress", "--out", str(folder) + "/"]
    if command == "walk-forward":
        argv += ["--assets", "KO"]
    status, first, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert (folder / table).exists() and f"results in {folder}" in first
    status, again, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert "resumed:" in again
    assert again.split("results in")[0].splitlines()[:3] == \
        first.split("results in")[0].splitlines()[:3]
    changed = [a if a != "2020-12-31" else "2019-12-31" for a in argv]
    status, out, err = run_cli(capsys, *changed)
    [line] = error_lines(err)
    assert status == 2 and "--overwrite" in line and "different run" in line
    status, _, err = run_cli(capsys, *changed, "--overwrite")
    assert status == 0, err


def test_cross_sectional_prints_the_top_rows_and_resumes(capsys, tmp_path):
    argv = ["cross-sectional", "--grid", "lookback_period=20,60", "top_k=1,2",
            "--assets", "KO,PEP,JNJ,PG", *WINDOW, "--direction", "momentum", "--top", "3",
            "--no-progress"]
    status, out, err = run_cli(capsys, *argv, "--out", str(tmp_path / "cs"))
    assert status == 0, err
    expected = btcore.run_cross_sectional_sweep(
        {"lookback_period": [20, 60], "top_k": [1, 2]}, assets=["KO", "PEP", "JNJ", "PG"],
        direction="momentum", progress=False, **WINDOW_KW).table
    lines = out.split("\n\n")[0].splitlines()
    assert lines[0] == "momentum book of 4 assets: KO, PEP, JNJ, PG"
    header, rows = block_rows("\n".join(lines[1:]))
    assert [r[header.index("sharpe_ratio") + 1] for r in rows] == \
        [f4(v) for v in expected["sharpe_ratio"][:3]]
    assert "4 backtests (4 rows)" in out and f"results in {tmp_path / 'cs'}" in out
    status, out, err = run_cli(capsys, *argv, "--out", str(tmp_path / "cs"))
    assert status == 0 and "resumed" in out
    stored = pd.read_parquet(tmp_path / "cs" / "table.parquet")
    assert_tables_identical(stored, expected)


@pytest.mark.parametrize("argv, message", [
    (["cross-sectional", "--option", "allow_short=false"], "unrecognized arguments: --option"),
    (["cross-sectional", "--strategy", "ma_crossover"], "unrecognized arguments: --strategy"),
    (["cross-sectional", "--direction", "sideways"], "invalid choice: 'sideways'"),
    (["cross-sectional", "--grid", "top_k=11"], "exceeds half"),
    (["estimate", "--direction", "momentum"], "--direction belongs to --workflow "
                                              "cross-sectional"),
])
def test_cross_sectional_errors_are_one_line(capsys, no_kernel_runs, argv, message):
    status, out, err = run_cli(capsys, *argv)
    assert status == 2 and len(error_lines(err)) == 1 and message in err, err


# ------------------------------------------------------ daily use (issue 23)
def test_a_flag_prefix_is_not_the_flag(capsys):
    status, out, err = run_cli(capsys, "sweep", "--strat", "ma_crossover", "--no-progress")
    assert status == 2
    assert "unrecognized arguments: --strat ma_crossover" in err


def test_tables_fit_the_terminal_around_the_key_columns(capsys, monkeypatch):
    import btcore.cli.commands as commands
    monkeypatch.setattr(commands, "terminal_width", lambda: 130)
    grid = json.dumps({**TINY, "lookback_period": [20, 40]})
    status, out, err = run_cli(capsys, "sweep", "--grid", grid, "--assets", "KO,PEP",
                               "--no-progress")
    assert status == 0, err
    table, note = out.split("\n\n")[0].rsplit("\n", 1)
    header = table.splitlines()[0].split()
    assert header[:5] == [*TINY, "asset"]
    for key in ("sharpe_ratio", "total_return", "max_drawdown", "num_trades"):
        assert key in header
    assert max(len(line) for line in table.splitlines()) <= 130
    assert "sortino_ratio" not in header
    assert note.endswith("columns left out to fit 130 characters: --columns all prints "
                         "them, --out FILE saves them)")
    status, out, err = run_cli(capsys, "sweep", "--grid", grid, "--assets", "KO,PEP",
                               "--no-progress", "--columns", "all")
    assert "sortino_ratio" in out.splitlines()[0] and "left out" not in out


def test_ctrl_c_says_what_out_kept_and_that_a_rerun_resumes(capsys, tmp_path, monkeypatch):
    import btcore
    real = btcore.run_sweep
    calls = []

    @functools.wraps(real)  # the CLI checks run_sweep's keywords
    def interrupted(*args, **kwargs):
        def stop(done, total, rate):
            if done >= 2:
                raise KeyboardInterrupt
        calls.append(1)
        return real(*args, batch_size=1, on_progress=stop if len(calls) == 1 else None,
                    **kwargs)
    monkeypatch.setattr(btcore, "run_sweep", interrupted)
    grid = json.dumps({**TINY, "lookback_period": [10, 20, 40]})
    argv = ["sweep", "--grid", grid, "--assets", "KO", "--no-progress",
            "--out", str(tmp_path / "run")]
    status, out, err = run_cli(capsys, *argv)
    assert status == 130
    assert err.strip() == (f"btcore: interrupted; 2 finished task(s) kept in {tmp_path / 'run'}"
                           ": run the same command again to resume (only the missing tasks "
                           "are computed)")
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert "(resumed: 2 of 3 tasks were already there)" in out


def test_ctrl_c_without_out_says_how_to_keep_tasks(capsys, monkeypatch):
    import btcore

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(btcore, "run_sweep", interrupted)
    status, out, err = run_cli(capsys, "sweep", "--grid", TINY_JSON, "--no-progress")
    assert status == 130
    assert "nothing was kept: with --out DIR finished tasks are kept there" in err


def test_bench_takes_data_and_strategy(capsys, tmp_path, small_data):
    path = tmp_path / "prices.csv"
    pd.DataFrame(small_data.close, index=small_data.index,
                 columns=small_data.symbols).rename_axis("date").to_csv(path)
    status, out, err = run_cli(capsys, "bench", "--repeats", "1", "--executors", "serial",
                               "--data", str(path), "--strategy", "ma_crossover",
                               "--grid", "fast_window=5,10", "slow_window=50")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].endswith(f"2 parameter sets of ma_crossover on {path} (3 assets), "
                             "best of 1")
    header, rows = block_rows("\n".join(lines[1:]))
    assert [r[0] for r in rows] == ["serial"] and int(rows[0][2]) == 6
