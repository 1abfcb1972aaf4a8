"""The command line: ``btcore sweep`` and ``btcore strategies``, in-process through
``btcore.cli.main`` and as real processes (``python -m btcore``, the ``btcore``
script); errors print one ``btcore: error:`` line and exit 2 without a traceback."""
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
    assert err.startswith(line) and "'cli_broken_strategy'" in line
    assert "cannot compile" in line
    line_number = BROKEN_STRATEGY.splitlines().index("    return plain_helper(price), state") + 1
    # numba prints the file relative to the working directory
    assert f'cli_broken_strategy.py", line {line_number}:' in err
    assert "plain_helper" in err
    assert all(detail.startswith("  ") for detail in err.splitlines()[1:])


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
