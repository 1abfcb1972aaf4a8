"""The strategy registry (``register``, ``available``, entry points, ``get`` with
``package.module:SPEC``), the checks a StrategySpec makes when it is built, the
plain-Python rule check before any work, numba compile errors, and the in-kernel
guard on targets. Every message names the strategy."""
import importlib
import importlib.metadata
import re
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

import btcore.registry
import btcore.strategies as strategies
from btcore import MarketData, backtest, run_sweep
from btcore.kernels.binding import StrategyCompileError
from btcore.registry import Registry
from btcore.strategies import Indicator, Param, StrategySpec
from user_strategy import broken

BROKEN_GRID = {"window": [5], "up": [0.0], "down": [0.0]}
MEAN_REVERSION = "btcore.strategies.mean_reversion:SPEC"


@pytest.fixture
def isolated_registry(monkeypatch):
    """The module registry, restored after the test (register() edits it in place)."""
    registry = strategies._REGISTRY
    registry.names()  # entry points read now, so the copy holds them
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    return registry


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry that has not read its entry points yet (built-ins only)."""
    registry = Registry("strategy", "strategies", {"mean_reversion": MEAN_REVERSION},
                        "btcore.strategies")
    monkeypatch.setattr(strategies, "_REGISTRY", registry)
    return registry


@pytest.fixture
def data():
    return MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-12-31", seed=11)


@pytest.fixture
def forget_modules():
    """Modules a test imports from a temporary folder are dropped afterwards."""
    names = []
    yield names.append
    for name in names:
        sys.modules.pop(name, None)


# ------------------------------------------------------------------- helpers
@njit
def _close_nb(close, window, out):
    for t in range(close.shape[0]):
        out[t] = close[t]


@njit
def _rule_nb(values, price, params, options, position, state):
    return 0, state


@njit
def _two_args_nb(close, out):
    out[:] = close


@njit
def _five_args_rule_nb(values, price, params, options, position):
    return 0, 0


def _plain_rule(values, price, params, options, position, state):
    return 0, state


def spec(name="checked", **changes):
    arguments = {"name": name, "params": (Param("window", int, 5, low=1, is_window=True),),
                 "indicators": (Indicator(_close_nb, "window"),), "signal_nb": _rule_nb,
                 "options": {"allow_short": True}}
    arguments.update(changes)
    return StrategySpec(**arguments)


# ------------------------------------------------------------------ register
def test_register_adds_a_name_that_get_and_available_know(isolated_registry):
    new = spec("registry_test_one")
    assert strategies.register(new) is new
    assert "registry_test_one" in strategies.available()
    assert strategies.get("registry_test_one") is new
    assert strategies.registry()["registry_test_one"] is new
    assert strategies.available() == sorted(strategies.available())


def test_register_refuses_a_taken_name_unless_clobber(isolated_registry):
    first, second = spec("registry_test_two"), spec("registry_test_two")
    strategies.register(first)
    with pytest.raises(ValueError, match="strategy 'registry_test_two' is already registered; "
                                         "pass clobber=True"):
        strategies.register(second)
    assert strategies.get("registry_test_two") is first
    assert strategies.register(second, clobber=True) is second
    assert strategies.get("registry_test_two") is second
    with pytest.raises(ValueError, match="'mean_reversion' is already registered"):
        strategies.register(spec("mean_reversion"))


@pytest.mark.parametrize("thing", ["mean_reversion", _rule_nb, {"name": "x"}, None])
def test_register_refuses_anything_but_a_spec(isolated_registry, thing):
    before = dict(strategies.registry())
    with pytest.raises(TypeError, match="register\\(\\) takes a StrategySpec, got "):
        strategies.register(thing)
    assert dict(strategies.registry()) == before


def test_registry_view_is_read_only():
    view = strategies.registry()
    with pytest.raises(TypeError):
        view["mine"] = spec("mine")
    assert "mine" not in strategies.available()


def test_available_lists_the_built_ins_lazily(fresh_registry):
    assert strategies.available() == ["mean_reversion"]
    assert strategies.registry()["mean_reversion"] == MEAN_REVERSION  # not imported yet
    loaded = strategies.get("mean_reversion")
    assert isinstance(loaded, StrategySpec) and loaded.name == "mean_reversion"
    assert strategies.registry()["mean_reversion"] is loaded


# -------------------------------------------------------------- entry points
def _fake_entry_points(calls, *entries):
    def entry_points(group):
        calls.append(group)
        return [importlib.metadata.EntryPoint(name, value, group) for name, value in entries
                if group == "btcore.strategies"]
    return entry_points


def test_entry_points_are_read_once_and_loaded_on_first_use(fresh_registry, monkeypatch):
    calls = []
    monkeypatch.setattr(btcore.registry, "entry_points", _fake_entry_points(
        calls, ("ep_crossover", "user_strategy.crossover:SPEC"),
        ("mean_reversion", "user_strategy.crossover:SPEC")))  # cannot shadow a built-in
    assert strategies.available() == ["ep_crossover", "mean_reversion"]
    assert calls == ["btcore.strategies"]
    assert strategies.registry()["ep_crossover"] == "user_strategy.crossover:SPEC"
    from user_strategy import crossover
    assert strategies.get("ep_crossover") is crossover.SPEC
    assert strategies.get("mean_reversion").name == "mean_reversion"
    strategies.available()
    strategies.get("ep_crossover")
    assert calls == ["btcore.strategies"]


def test_register_reads_entry_points_first(fresh_registry, monkeypatch):
    """A name taken by an entry point is taken for register() too."""
    monkeypatch.setattr(btcore.registry, "entry_points", _fake_entry_points(
        [], ("ep_taken", "user_strategy.crossover:SPEC")))
    with pytest.raises(ValueError, match="'ep_taken' is already registered"):
        strategies.register(spec("ep_taken"))


PLUGIN_MODULE = textwrap.dedent('''
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


    SPEC = StrategySpec(name="plugin_momentum",
                        params=(Param("lag", int, 5, low=1, is_window=True),),
                        indicators=(Indicator(previous_close_nb, "lag"),),
                        signal_nb=momentum_signal_nb)
''')


def test_an_installed_distribution_adds_its_strategy(fresh_registry, tmp_path, monkeypatch,
                                                     forget_modules, data):
    """A dist-info folder on sys.path with an entry_points.txt, as pip leaves it."""
    (tmp_path / "btcore_test_plugin.py").write_text(PLUGIN_MODULE)
    info = tmp_path / "btcore_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: btcore-test-plugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text("[btcore.strategies]\n"
                                           "plugin_momentum = btcore_test_plugin:SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    forget_modules("btcore_test_plugin")
    assert "plugin_momentum" in strategies.available()
    loaded = strategies.get("plugin_momentum")
    assert loaded is sys.modules["btcore_test_plugin"].SPEC
    result = run_sweep({"lag": [3, 8]}, "plugin_momentum", data, progress=False)
    assert result.strategy == "plugin_momentum" and len(result.table) == 2
    assert (result.table["num_trades"] > 0).all()


# ------------------------------------------------------- get("module:SPEC")
def test_get_imports_module_specs():
    from user_strategy import crossover
    assert strategies.get("user_strategy.crossover:SPEC") is crossover.SPEC
    assert strategies.get(crossover.SPEC) is crossover.SPEC


@pytest.mark.parametrize("path, message", [
    ("no_such_module_for_btcore:SPEC",
     "cannot import 'no_such_module_for_btcore' for strategy 'no_such_module_for_btcore:SPEC'"),
    ("user_strategy.no_such_file:SPEC", "cannot import 'user_strategy.no_such_file'"),
    ("user_strategy.crossover:NO_SUCH_SPEC",
     "'user_strategy.crossover:NO_SUCH_SPEC': module 'user_strategy.crossover' has no "
     "StrategySpec named 'NO_SUCH_SPEC'$"),
    ("user_strategy.crossover:FAST",
     "has no StrategySpec named 'FAST' \\(FAST is a int\\)"),
    ("user_strategy.crossover:trailing_mean_nb", "trailing_mean_nb is a CPUDispatcher"),
    ("user_strategy.crossover:", "has no StrategySpec named ''"),
])
def test_get_with_a_bad_module_path_names_it(path, message):
    with pytest.raises(ValueError, match=message):
        strategies.get(path)


def test_get_with_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=re.escape(
            f"unknown strategy 'nope'; valid strategies are {strategies.available()} "
            "(or 'package.module:SPEC'")):
        strategies.get("nope")
    with pytest.raises(TypeError, match="strategy must be a name, 'package.module:SPEC' or a "
                                        "StrategySpec, got int"):
        strategies.get(3)


def test_a_module_spec_runs_by_path_without_registering(isolated_registry, data):
    before = strategies.available()
    result = run_sweep(BROKEN_GRID, "user_strategy.broken:TWO_ABOVE_1E5", data, progress=False)
    assert result.strategy == "broken_two_above_1e5"
    assert strategies.available() == before


# ---------------------------------------------------------- StrategySpec checks
@pytest.mark.parametrize("changes, error, message", [
    ({"params": (Param("window", int, 5), Param("window", float, 1.0))}, ValueError,
     r"strategy 'checked' declares \['window'\] twice"),
    ({"options": {"window": True}}, ValueError,
     r"strategy 'checked' declares \['window'\] twice \(parameter and option names"),
    ({"options": {"mode": "fast"}}, TypeError,
     "strategy 'checked': option 'mode' must default to a bool, int or float .*'fast'"),
    ({"options": {"levels": [1, 2]}}, TypeError, "option 'levels' must default to a bool"),
    ({"options": {"not an identifier": 1}}, ValueError,
     "strategy 'checked': option name 'not an identifier' is not an identifier"),
    ({"indicators": (Indicator(_close_nb, "windw"),)}, ValueError,
     r"strategy 'checked': Indicator\(_close_nb, 'windw'\) takes \['windw'\], which are "
     r"neither parameters nor options; declared: \['window', 'allow_short'\]"),
    ({"indicators": (Indicator(_two_args_nb, "window"),)}, TypeError,
     r"strategy 'checked': _two_args_nb\(close, out\) cannot be called as "
     r"_two_args_nb\(close, window, out\)"),
    ({"indicators": (Indicator(_close_nb),)}, TypeError,
     r"_close_nb\(close, window, out\) cannot be called as _close_nb\(close, out\)"),
    ({"signal_nb": _five_args_rule_nb}, TypeError,
     r"strategy 'checked': _five_args_rule_nb\(values, price, params, options, position\) "
     r"cannot be called as _five_args_rule_nb\(values, price, params, options, position, "
     r"state\)"),
    ({"signal_nb": _plain_rule}, TypeError,
     "strategy 'checked': signal_nb must be a numba.njit function, got <function _plain_rule"),
    ({"indicators": ()}, ValueError,
     "strategy 'checked' has no indicators; declare at least one Indicator"),
    ({"indicators": (_close_nb,)}, TypeError,
     "strategy 'checked': indicators must be Indicator objects"),
    ({"params": ("window",)}, TypeError, "strategy 'checked': params must be Param objects"),
    ({"cost_factor": 0}, ValueError, "strategy 'checked': cost_factor must be a positive"),
    ({"name": ""}, TypeError, "a strategy name must be a non-empty str"),
])
def test_spec_checks_name_the_strategy(changes, error, message):
    with pytest.raises(error, match=message):
        spec(**changes)


def test_indicator_and_param_checks():
    with pytest.raises(TypeError, match="Indicator takes a numba.njit function first, got "
                                        "<function _plain_rule"):
        Indicator(_plain_rule, "window")
    with pytest.raises(TypeError, match=r"Indicator\(_close_nb\): argument names must be str"):
        Indicator(_close_nb, 5)
    with pytest.raises(ValueError, match="a parameter name must be an identifier"):
        Param("two words", int, 1)
    with pytest.raises(TypeError, match="Param 'window': kind must be int or float"):
        Param("window", str, 1)
    with pytest.raises(TypeError, match="Param 'window': default must be a number, got '5'"):
        Param("window", int, "5")
    with pytest.raises(ValueError, match=r"window must be int in \[2, inf\), got 1 "
                                         r"\(its default\)"):
        Param("window", int, 1, low=2)


def test_a_valid_spec_describes_itself():
    built = spec(options={"allow_short": True, "scale": 2})
    assert built.param_names == ("window",)
    assert built.describe() == ("window: int in [1, inf), default 5\n"
                                "option allow_short=True\noption scale=2")
    assert built.option_values({"scale": 3}).tolist() == [1.0, 3.0]
    with pytest.raises(TypeError, match="unknown option\\(s\\) \\['scal'\\] for strategy "
                                        "'checked'"):
        built.option_values({"scal": 3})


# ------------------------------------------- the rule, as plain Python, first
@pytest.mark.parametrize("spec_name, message", [
    ("TARGET_TWO", "strategy 'broken_target_two': signal_nb returned target 2 at bar 0 of a "
                   "synthetic series; a target is -1 (short), 0 (flat) or 1 (long)"),
    ("THREE_VALUES", "strategy 'broken_three_values': signal_nb must return (target, state), "
                     "got (1, 0, 0)"),
    ("READS_PARAMS_3", "strategy 'broken_reads_params_3': signal_nb reads params[3], but only "
                       "3 parameters are declared (window, up, down)"),
    ("READS_OPTIONS_1", "strategy 'broken_reads_options_1': signal_nb reads options[1], but "
                        "only 1 options are declared (allow_short)"),
    ("READS_VALUES_2", "strategy 'broken_reads_values_2': signal_nb reads values[2], but only "
                       "2 indicator values are declared (Indicator(close_nb, 'window'), "
                       "Indicator(previous_close_nb, 'window'))"),
])
def test_rule_check_runs_before_any_work(no_kernel_runs, data, spec_name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        run_sweep(BROKEN_GRID, getattr(broken, spec_name), data, progress=False)
    with pytest.raises(ValueError, match=re.escape(message)):  # by path, and again
        run_sweep(BROKEN_GRID, f"user_strategy.broken:{spec_name}", data, progress=False)


def test_rule_check_covers_backtest(no_kernel_runs, data):
    with pytest.raises(ValueError, match="strategy 'broken_target_two': signal_nb returned "
                                         "target 2"):
        backtest({"window": 5, "up": 0.0, "down": 0.0}, broken.TARGET_TWO, data)


# --------------------------------------------------------------- compile errors
def _line_of(function_name: str, text: str) -> int:
    source = open(broken.__file__).read().splitlines()
    start = source.index(next(line for line in source if line.startswith(f"def {function_name}(")))
    return source.index(text, start) + 1


COMPILE_CASES = [
    pytest.param("CALLS_PYTHON_HELPER_NOT_INLINED", "calls_python_helper_not_inlined_nb",
                 "    return python_side(price), state", "python_side", id="python helper"),
    pytest.param("USES_PYTHON_DICT_NOT_INLINED", "uses_python_dict_not_inlined_nb",
                 '    return SIDES["long"], state', "SIDES", id="python dict"),
    pytest.param("DICT_INDICATOR", "dict_indicator_nb",
                 '        out[t] = close[t] * SIDES["long"]', "SIDES", id="indicator"),
    # the documented form of a rule (inline="always"): compiled inside the kernel,
    # numba's inliner reports a bare NameError with no location
    pytest.param("CALLS_PYTHON_HELPER", "calls_python_helper_nb",
                 "    return python_side(price), state", "python_side",
                 id="python helper, inline=always"),
    pytest.param("USES_PYTHON_DICT", "uses_python_dict_nb", '    return SIDES["long"], state',
                 "SIDES", id="python dict, inline=always"),
]


@pytest.mark.slow  # a failed compile is never cached: seconds each
@pytest.mark.parametrize("spec_name, function, line_text, culprit", COMPILE_CASES)
def test_a_rule_numba_cannot_compile_names_the_file_and_line(data, spec_name, function,
                                                             line_text, culprit):
    strategy = getattr(broken, spec_name)
    with pytest.raises(StrategyCompileError) as info:
        run_sweep(BROKEN_GRID, strategy, data, progress=False)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith(f"strategy {strategy.name!r}: numba cannot compile")
    assert culprit in message.splitlines()[0]
    # numba prints the file relative to the working directory
    located = re.search(r'File "([^"]*user_strategy/broken\.py)", line (\d+):', message)
    assert located, message
    assert int(located.group(2)) == _line_of(function, line_text)
    assert line_text.strip() in message


@pytest.mark.slow  # a failed compile is never cached: seconds each
def test_compile_errors_show_only_the_strategy_files(data):
    """numba prints file names relative to the working directory: btcore's own
    kernel frames must still be left out."""
    with pytest.raises(StrategyCompileError) as info:
        run_sweep(BROKEN_GRID, broken.USES_PYTHON_DICT_NOT_INLINED, data, progress=False)
    files = re.findall(r'File "([^"]+)"', str(info.value))
    assert files and all(file.endswith("user_strategy/broken.py") for file in files), files


# ------------------------------------------------------------ in-kernel guard
def _with_a_jump(data, bar: int) -> MarketData:
    close = data.close[:, 0].copy()
    close[bar:] *= 5000.0  # ~100 -> ~500,000: above the rule's 1e5
    assert close[:bar].max() < 1e5 < close[bar:].min()
    return MarketData(close, data.index, data.symbols)


def test_the_rule_is_valid_on_ordinary_prices(data):
    result = run_sweep(BROKEN_GRID, broken.TWO_ABOVE_1E5, data, progress=False)
    assert result.table["num_trades"].iloc[0] > 0


@pytest.mark.parametrize("mode", [{}, {"debug": True}, {"executor": "threads"}],
                         ids=["compiled", "debug", "threads"])
def test_an_invalid_target_on_real_data_names_the_bar(data, mode):
    bar = 150
    jumped = _with_a_jump(data, bar)
    with pytest.raises(ValueError) as info:
        run_sweep({"window": [5, 7], "up": [0.0], "down": [0.0]}, broken.TWO_ABOVE_1E5,
                  jumped, progress=False, **mode)
    message = str(info.value)
    assert message.startswith("strategy 'broken_two_above_1e5': signal_nb returned a target "
                              "outside {-1, 0, 1}")
    assert f" at {jumped.index[bar]} " in message


def test_an_invalid_target_after_start_names_that_bar(data):
    jumped = _with_a_jump(data, 200)
    with pytest.raises(ValueError, match=re.escape(f"at {jumped.index[200]} ")):
        run_sweep(BROKEN_GRID, broken.TWO_ABOVE_1E5, jumped, start=jumped.index[100],
                  progress=False)


def test_backtest_refuses_an_invalid_target_too(data):
    jumped = _with_a_jump(data, 150)
    with pytest.raises(ValueError, match=re.escape(f"at {jumped.index[150]} ")):
        backtest({"window": 5, "up": 0.0, "down": 0.0}, broken.TWO_ABOVE_1E5, jumped)
