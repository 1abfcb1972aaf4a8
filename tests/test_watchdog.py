"""The throughput watchdog: a stalled or slowed run warns once, with the facts in
stats["slowdowns"]; a healthy run stays quiet."""
import time
import warnings

import pytest

import btcore.engine.tasks as engine_tasks
import btcore.engine.watchdog as watchdog
from btcore import run_sweep
from btcore.engine.watchdog import ThroughputWarning, Watchdog, WatchdogSettings

GRID = {"lookback_period": [5, 10, 20, 30], "entry_threshold": [1.0, 2.0],
        "exit_threshold": [0.0, 0.5], "stop_loss_z": [2.5, 4.0]}
FAST = WatchdogSettings(min_stall_s=0.3, stall_factor=1.0, check_every_s=0.05,
                        slow_tasks=0.0, min_slow_s=0.0, window=3)


class Runner:
    lost_workers = 0


def test_a_stall_warns_once_while_it_lasts():
    notes = []
    dog = Watchdog(1e6, 0.01, Runner(), notes.append, FAST)
    with pytest.warns(ThroughputWarning, match="no task has finished for"):
        time.sleep(0.8)
        dog.stop()
    assert [s["kind"] for s in dog.slowdowns] == ["stalled"] and notes == ["stalled"]


def test_a_slow_rate_warns_and_names_lost_workers():
    runner = Runner()
    dog = Watchdog(1e9, 1e-6, runner, lambda kind: None,
                   WatchdogSettings(min_stall_s=60, check_every_s=60, slow_tasks=0.0,
                                    min_slow_s=0.0, window=3))
    runner.lost_workers = 2
    with pytest.warns(ThroughputWarning, match="fell to .* 2 worker\\(s\\) lost"):
        for _ in range(4):
            dog.finished(10.0)  # 10 param-bars per task: far below 1e9/s
            time.sleep(0.01)
    assert dog.stop()[0]["kind"] == "slow" and dog.slowdowns[0]["lost_workers"] == 2


def test_a_short_slow_spell_is_not_a_slowdown():
    """Tiny tasks pay fixed costs the kernel speed does not show: under min_slow_s."""
    dog = Watchdog(1e12, 1e-6, Runner(), lambda kind: None,
                   WatchdogSettings(min_stall_s=60, check_every_s=60, window=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(20):
            dog.finished(1.0)
        assert dog.stop() == []


def test_a_healthy_rate_is_quiet():
    dog = Watchdog(1.0, 1.0, Runner(), lambda kind: None, FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            dog.finished(1e9)
        assert dog.stop() == []


def test_a_sweep_whose_task_stalls_reports_it(small_data, monkeypatch):
    quick = run_sweep(GRID, data=small_data, progress=False, batch_size=4)
    monkeypatch.setattr(watchdog, "DEFAULT", FAST)
    original = engine_tasks.run_task

    def slow_task(shared, task, record=None):
        if task.task_id == 0:
            time.sleep(1.0)
        return original(shared, task, record)

    monkeypatch.setattr(engine_tasks, "run_task", slow_task)
    with pytest.warns(ThroughputWarning):
        result = run_sweep(GRID, data=small_data, progress=False, batch_size=4,
                           executor="threads")
    assert "stalled" in [s["kind"] for s in result.stats["slowdowns"]]
    assert quick.table.equals(result.table)
