"""docs/monitoring.md's Prometheus example runs as written and exports what a sweep
reports; the Grafana panel queries the metrics the example defines."""
import json
import pathlib
import re

from btcore import run_sweep

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def python_blocks(text: str) -> list:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_prometheus_example_exports_a_sweeps_progress(small_data, grid):
    from prometheus_client import generate_latest
    namespace = {}
    exec(compile(python_blocks((DOCS / "monitoring.md").read_text())[0],  # noqa: S102
                 "docs/monitoring.md", "exec"), namespace)
    calls = []
    result = run_sweep(grid, data=small_data, progress=False, batch_size=8,
                       on_progress=lambda *a: (calls.append(a), namespace["export_progress"](*a)))
    exported = generate_latest(namespace["registry"]).decode()
    total = result.stats["backtests"]
    assert f"btcore_backtests_done {float(total)}" in exported
    assert f"btcore_backtests_total {float(total)}" in exported
    assert f"btcore_tasks_finished_total {float(len(calls))}" in exported
    assert len(calls) == result.stats["batches"] > 1


def test_the_grafana_panel_queries_the_exported_metrics():
    panel = json.loads((DOCS / "monitoring" / "grafana-panel.json").read_text())
    example = python_blocks((DOCS / "monitoring.md").read_text())[0]
    defined = set(re.findall(r'"(btcore_[a-z_]+)"', example))
    for target in panel["targets"]:
        used = set(re.findall(r"btcore_[a-z_]+", target["expr"]))
        assert used and used <= defined, target["expr"]
