"""docs/cluster.md and docs/cluster/*.yaml cannot drift from the code.

- the Ray cluster YAML parses, has an on-demand head and spot workers with the
  keys the guide describes, and passes Ray's own config validation (when Ray is
  installed: it brings pyyaml and jsonschema);
- every Python block of the guide parses, and every call it shows (in blocks
  and in inline code) of a btcore function or class uses keywords that exist;
- the stats keys, executor attributes, CLI flags, shell commands and links it
  names exist.
"""
import ast
import inspect
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "cluster.md"
YAML_FILES = sorted((ROOT / "docs" / "cluster").glob("*.yaml"))
TEXT = GUIDE.read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, re.S)


def inline_code() -> list[str]:
    prose = re.sub(r"```.*?```", "", TEXT, flags=re.S)
    return [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]


def calls_in(source: str):
    """``(name, keywords, call)`` of every call in ``source``: ``name`` is the
    callee's last dotted parts (``Grid.random``, ``RayExecutor``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func, parts = node.func, []
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                parts.append(func.id)
            yield ".".join(reversed(parts[:2])), [k.arg for k in node.keywords if k.arg], node


# ----------------------------------------------------------------- the YAML
@pytest.fixture(scope="module", params=YAML_FILES, ids=lambda path: path.name)
def config(request):
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(request.param.read_text(encoding="utf-8"))


def test_there_is_a_cluster_yaml_and_the_guide_links_it():
    assert YAML_FILES, "docs/cluster/ holds no .yaml"
    for path in YAML_FILES:
        assert f"cluster/{path.name}" in TEXT, f"docs/cluster.md never mentions {path.name}"


def test_yaml_has_an_on_demand_head_and_spot_workers(config):
    for key in ("cluster_name", "max_workers", "provider", "available_node_types",
                "head_node_type", "setup_commands", "head_start_ray_commands",
                "worker_start_ray_commands"):
        assert key in config, f"missing {key}"
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert workers, "no worker node type"
    assert "InstanceMarketOptions" not in head["node_config"], "the head must be on-demand"
    assert head["resources"].get("CPU") == 0, "the guide says no backtests run on the head"
    for name, worker in workers.items():
        assert {"min_workers", "max_workers", "resources", "node_config"} <= set(worker), name
        assert worker["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot", name
        assert "InstanceType" in worker["node_config"], name
        # btcore counts the cluster's CPUs once: the guide asks for a full cluster
        assert worker["min_workers"] == worker["max_workers"], name
    assert sum(w["min_workers"] for w in workers.values()) <= config["max_workers"]


def test_yaml_installs_btcore_with_the_ray_extra_on_a_supported_python(config):
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "btcore[ray]" in setup
    image = config["docker"]["image"]
    found = re.fullmatch(r"rayproject/ray:(\d+)\.(\d+)\.\d+-py3(\d+)-cpu", image)
    assert found, f"unexpected image tag {image!r}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    minimum_python = int(re.search(r'requires-python = ">=3\.(\d+)"', pyproject).group(1))
    minimum_ray = tuple(int(v) for v in re.search(r'"ray>=(\d+)\.(\d+)"', pyproject).groups())
    assert int(found.group(3)) >= minimum_python
    assert (int(found.group(1)), int(found.group(2))) >= minimum_ray
    # the file mount copies the checkout the setup command installs
    assert any(remote.endswith("btcore") for remote in config.get("file_mounts", {}))


def test_yaml_passes_rays_own_validation(config):
    pytest.importorskip("ray")
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config
    validate_config(prepare_config(config))


# ---------------------------------------------------------- the guide's code
def test_every_python_block_parses():
    sources = blocks("python")
    assert len(sources) >= 6
    for source in sources:
        ast.parse(source)


def _api():
    from btcore import Grid, estimate, open_results, run_sweep
    from btcore.executors.dask_executor import DaskExecutor
    from btcore.executors.joblib_executor import JoblibExecutor
    from btcore.executors.threads import ThreadsExecutor
    api = {"run_sweep": run_sweep, "estimate": estimate, "Grid.random": Grid.random,
           "Grid": Grid, "open_results": open_results, "DaskExecutor": DaskExecutor,
           "JoblibExecutor": JoblibExecutor, "ThreadsExecutor": ThreadsExecutor}
    try:
        from btcore.executors.ray_executor import RayExecutor
    except ImportError:  # pragma: no cover - ray missing: its keywords are read from source
        RayExecutor = None
    api["RayExecutor"] = RayExecutor
    return api


def _accepted(fn, call) -> set:
    import btcore.strategies as strategies
    parameters = inspect.signature(fn).parameters
    names = {n for n, p in parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        # run_sweep and estimate take the strategy's options as keywords
        strategy = "mean_reversion"
        for keyword in call.keywords:
            if keyword.arg == "strategy" and isinstance(keyword.value, ast.Constant):
                strategy = keyword.value.value
        names |= set(strategies.get(strategy).options)
    return names


def test_every_call_of_btcore_uses_real_keywords():
    api = _api()
    sources = blocks("python")
    for span in inline_code():  # inline code that is a call, e.g. RayExecutor(address="auto")
        try:
            ast.parse(span)
        except SyntaxError:
            continue
        sources.append(span)
    checked = set()
    for source in sources:
        for name, keywords, call in calls_in(source):
            if name not in api:
                continue
            fn = api[name]
            if fn is None:
                pytest.skip("ray is not installed")
            unknown = set(keywords) - _accepted(fn, call)
            assert not unknown, f"{name}(...) in docs/cluster.md uses unknown keywords {unknown}"
            checked.add(name)
    assert {"RayExecutor", "DaskExecutor", "run_sweep", "estimate", "Grid.random"} <= checked


def test_the_dask_signature_the_guide_spells_out_is_the_real_one():
    from btcore.executors.dask_executor import DaskExecutor
    shown = re.search(r"`DaskExecutor\((.*?)\)`:", TEXT, re.S).group(1)
    shown = " ".join(shown.split())
    real = str(inspect.signature(DaskExecutor)).strip("()")
    real = re.sub(r": [^=,]+?(?= =|,|$)", "", real)  # drop annotations
    real = re.sub(r"\s*=\s*", "=", real)
    assert shown.replace(" ", "") == real.replace(" ", "").replace("'", "")


def test_ray_executor_arguments_table_matches_the_constructor():
    pytest.importorskip("ray")
    from btcore.executors.ray_executor import RayExecutor
    table = TEXT.split("### `RayExecutor` arguments", 1)[1].split("\n\n", 2)[1]
    named = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)?", table, re.M))
    named = {n for pair in named for n in pair if n}
    assert named == set(inspect.signature(RayExecutor).parameters)


def test_stats_keys_and_executor_attributes_exist():
    from btcore.engine.run import run_stats
    from btcore.executors.serial import SerialExecutor
    stats = run_stats(SerialExecutor(), (0, 0), n_backtests=1, param_bars=1, tasks=[],
                      batch_size=1, calibrate_s=0.0, share_s=0.0, compute_s=1.0)
    mentioned = set(re.findall(r'stats\["(\w+)"\]', TEXT)) | set(re.findall(r'\["(\w+)"\]`', TEXT))
    mentioned -= {"CPU"}  # ray.cluster_resources()["CPU"]
    extra = {"executor_choice"}  # added by run_sweep(executor="auto")
    assert mentioned, "the guide names no stats keys"
    assert mentioned - extra <= set(stats), mentioned - set(stats)
    if "executor_choice" in mentioned:
        import btcore.workflows.base
        assert "executor_choice" in inspect.getsource(btcore.workflows.base)
    for attribute in ("n_workers", "retries", "lost_workers"):
        assert hasattr(SerialExecutor(), attribute)
    if "tasks_per_node" in TEXT:
        pytest.importorskip("ray")
        from btcore.executors.ray_executor import RayExecutor
        assert hasattr(RayExecutor(), "tasks_per_node")  # not started: no Ray process


def test_links_and_anchors_exist():
    targets = re.findall(r"\]\(([^)#\s]+)?(#[^)\s]+)?\)", TEXT)
    for path, anchor in targets:
        if path.startswith(("http://", "https://")):
            continue
        document = (GUIDE.parent / path) if path else GUIDE
        assert document.exists(), f"broken link {path}"
        if anchor and document.suffix == ".md":
            slugs = {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
                     for heading in re.findall(r"^#+ (.*)$", document.read_text(), re.M)}
            assert anchor[1:] in slugs, f"no heading for {path}{anchor}"


# ------------------------------------------------------------ shell commands
def _shell_lines() -> list[str]:
    lines = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def test_ray_cli_commands_and_flags_exist():
    pytest.importorskip("ray")
    from ray.scripts.scripts import cli
    used = [shlex.split(line) for line in _shell_lines() if line.startswith("ray ")]
    used += [shlex.split(span) for span in inline_code()
             if re.match(r"ray [a-z-]+ ", span + " ")]
    assert used
    for words in used:
        command, rest = cli, words[1:]
        while hasattr(command, "commands") and rest:  # ray job submit: a group's command
            name, rest = rest[0], rest[1:]
            assert name in command.commands, f"`ray ... {name}` is not a Ray command"
            command = command.commands[name]
        options = {o for p in command.params for o in p.opts}
        for word in rest:
            if word.startswith("-"):
                assert word.split("=")[0] in options, f"`{' '.join(words)}`: no {word}"


@pytest.mark.slow  # fresh interpreters
def test_dask_and_btcore_cli_flags_exist():
    lines = _shell_lines()
    dask_lines = [line.split() for line in lines if line.startswith("dask ")]
    assert dask_lines
    if dask_lines and pytest.importorskip("distributed"):
        from distributed.cli import dask_scheduler, dask_worker
        commands = {"scheduler": dask_scheduler.main, "worker": dask_worker.main}
        for words in dask_lines:
            options = {o for p in commands[words[1]].params for o in p.opts}
            for word in words[2:]:
                if word.startswith("-"):
                    assert word in options, f"`dask {words[1]}` has no {word}"
    # `btcore sweep --executor ray --address auto` and the benchmark's --guide
    flags = {f for span in inline_code() if span.startswith("btcore sweep")
             for f in re.findall(r"--[\w-]+", span)}
    assert flags
    helptext = subprocess.run([sys.executable, "-m", "btcore", "sweep", "--help"],
                              capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
    for flag in flags:
        assert flag in helptext, f"btcore sweep has no {flag}"
    bench = (ROOT / "benchmarks" / "bench_estimate.py").read_text()
    for line in lines:
        if line.startswith("python benchmarks/"):
            script = ROOT / line.split()[1]
            assert script.exists(), line
            for flag in re.findall(r"--[\w-]+", line):
                assert f'"{flag}"' in script.read_text(), f"{line}: no {flag}"
    assert '"--guide"' in bench
