"""Failures contained, as users meet them: Ctrl-C while Ray starts, a Dask script
without a main guard, a Dask worker dying while the cluster starts, and loky's
resource tracker after a killed worker.

Each case runs the way a user runs it (a script in a fresh process) where the
failure is about processes. Processes are told apart by an environment variable
that only the processes started by one test's script inherit, so Ray instances
or clusters of other tests (or other sessions on the machine) never count.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import psutil
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "BTCORE_TEST_FAILURES_MARK"

pytestmark = [pytest.mark.fault, pytest.mark.cluster]


def marked(mark: str, exclude=()) -> list:
    """Live processes that inherited ``MARK=mark`` (zombies have no environment)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if process.pid not in exclude and process.environ().get(MARK) == mark:
                found.append(process)
        except psutil.Error:
            continue
    return found


def describe(processes) -> list:
    out = []
    for process in processes:
        try:
            out.append(f"{process.pid} (parent {process.ppid()}): "
                       f"{' '.join(process.cmdline())[:120]}")
        except psutil.Error:
            pass
    return out


def kill_all(processes) -> None:
    """Cleanup of what a failing test left: only processes carrying its mark."""
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            pass


def script(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def launch(path, mark: str, stderr_file, **kwargs) -> subprocess.Popen:
    env = {**os.environ, MARK: mark, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(path)], cwd=str(path.parent), env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr_file, **kwargs)


# ------------------------------------------------- Ctrl-C during Ray start-up
RAY_SCRIPT = """\
    import sys
    from btcore import MarketData, run_sweep
    from btcore.executors.ray_executor import RayExecutor

    if __name__ == "__main__":
        data = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-12-31", seed=1)
        executor = RayExecutor(num_cpus=1)
        print("starting ray", file=sys.stderr, flush=True)
        executor.start()
        print("ray started", file=sys.stderr, flush=True)
        run_sweep({"lookback_period": [10, 20]}, data=data, executor=executor, progress=False)
        executor.close()
"""


# Measured on a loaded 2-CPU machine: the first Ray process (gcs_server) appears 2 to 12 s
# after launch and ray.init returns 2 to 20 s after that, so a delay from launch cannot
# be aimed; the trigger is a process of the instance appearing. Without the clean-up
# in RayExecutor._start, a SIGINT just as the raylet appears left its dashboard and
# runtime-env agents alive under PID 1 in 6 runs of 6 (with either kind of SIGINT); one
# 1.5 s after the GCS appeared left none in 4 runs, it guards the ordinary case.
@pytest.mark.parametrize("trigger, delay, group", [
    ("raylet", 0.0, True),
    ("gcs_server", 1.5, False),
], ids=["Ctrl-C (process group) as the raylet starts", "SIGINT 1.5 s into ray.init"])
def test_ctrl_c_during_ray_start_leaves_no_process(tmp_path, trigger, delay, group):
    pytest.importorskip("ray")
    mark = uuid.uuid4().hex
    path = script(tmp_path, "sweep_on_ray.py", RAY_SCRIPT)
    with open(tmp_path / "stderr.txt", "wb") as stderr_file:
        # its own process group, as a job started from a terminal
        proc = launch(path, mark, stderr_file, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(trigger in " ".join(p.cmdline()) for p in marked(mark, {proc.pid})
                      if p.is_running()):
            assert proc.poll() is None, "the script ended before Ray started: " + \
                (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, f"no {trigger} process after 120 s"
            time.sleep(0.02)
        time.sleep(delay)
        if group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
        stderr = (tmp_path / "stderr.txt").read_text()
        assert "starting ray" in stderr and "ray started" not in stderr, \
            "the interrupt did not land in ray.init:\n" + stderr
        assert "KeyboardInterrupt" in stderr
        time.sleep(2.0)  # what Ray's own clean-up would still stop
        left = marked(mark)
        assert not left, ("Ray processes left behind:\n" + "\n".join(describe(left))
                          + "\nthe script's stderr:\n" + stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_all(marked(mark))


def test_kill_marked_stops_marked_processes_only():
    from btcore.executors import _worker
    mark = uuid.uuid4().hex
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    parent = [sys.executable, "-c", f"import subprocess, time; subprocess.Popen({sleeper!r}); "
              "time.sleep(60)"]
    marked_parent = subprocess.Popen(parent, env={**os.environ, MARK: mark})
    bystander = subprocess.Popen(sleeper)  # not marked: must survive
    try:
        deadline = time.monotonic() + 30
        while len(_worker.marked_processes(MARK, mark)) < 2:  # the child and its child
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert len(_worker.kill_marked(MARK, mark)) == 2
        assert marked_parent.wait(timeout=10) == -signal.SIGKILL
        assert _worker.marked_processes(MARK, mark) == []
        assert bystander.poll() is None
    finally:
        for proc in (marked_parent, bystander):
            proc.kill()
            proc.wait()
        kill_all(marked(mark))


# ------------------------------------------- Dask without a main guard
DASK_BODY = """\
    data = MarketData.synthetic(n_assets=1, start="2020-01-01", end="2020-06-30", seed=1)
    result = run_sweep({"lookback_period": [10, 20]}, data=data,
                       executor=DaskExecutor(n_workers=1), progress=False)
    print("rows", len(result.table))
"""
DASK_IMPORTS = """\
    from btcore import MarketData, run_sweep
    from btcore.executors.dask_executor import DaskExecutor
"""


def test_dask_script_without_main_guard_gets_one_clear_error(tmp_path):
    pytest.importorskip("distributed")
    mark = uuid.uuid4().hex
    path = script(tmp_path, "no_guard.py", DASK_IMPORTS + DASK_BODY)
    with open(tmp_path / "stderr.txt", "wb") as stderr_file:
        proc = launch(path, mark, stderr_file)
    try:
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(marked(mark))
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in stderr and "re-imports" in stderr, stderr
    assert f"{path}, and line 4 starts the cluster" in stderr  # the run_sweep statement
    assert len(stderr.splitlines()) < 40, stderr
    assert stderr.count("Traceback") == 1, stderr  # no worker or nanny tracebacks


def test_dask_script_with_main_guard_runs(tmp_path):
    pytest.importorskip("distributed")
    mark = uuid.uuid4().hex
    guarded = DASK_IMPORTS + '\n    if __name__ == "__main__":\n' + \
        textwrap.indent(textwrap.dedent(DASK_BODY), "        ")
    path = script(tmp_path, "guarded.py", guarded)
    with open(tmp_path / "stderr.txt", "wb") as stderr_file:
        env = {**os.environ, MARK: mark}
        proc = subprocess.run([sys.executable, str(path)], cwd=str(tmp_path), env=env,
                              stdout=subprocess.PIPE, stderr=stderr_file, timeout=180)
    kill_all(marked(mark))
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()
    assert proc.stdout.decode().strip() == "rows 2"


@pytest.mark.parametrize("source, line, expected", [
    ("import x\nx.run()\n", 2, 2),
    ("import x\nx.run(\n    1)\n", 3, 2),  # a statement over two lines: its first
    ("import x\nif __name__ == '__main__':\n    x.run()\n", 3, None),
    ("import x\nif '__main__' == __name__:\n    x.run()\n", 3, None),
    ("import x\ndef main():\n    x.run()\n\nif __name__ == \"__main__\":\n    main()\n", 6,
     None),
    ("import x\nif __name__ == '__mp_main__':\n    x.run()\n", 3, 2),
    ("import x\nif True:\n    x.run()\n", 3, 2),
    ("this is not python(\n", 1, None),  # unreadable: no false alarm
])
def test_unguarded_line_reads_the_script(tmp_path, source, line, expected):
    pytest.importorskip("distributed")
    from btcore.executors.dask_executor import unguarded_line
    path = tmp_path / "main.py"
    path.write_text(source)
    assert unguarded_line(str(path), line) == expected


def test_a_spawned_process_rerunning_the_script_exits_with_the_hint(monkeypatch):
    pytest.importorskip("distributed")
    import multiprocessing
    from btcore.executors.dask_executor import check_main_guard
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(SystemExit) as caught:
        check_main_guard()
    assert 'if __name__ == "__main__":' in str(caught.value.code)


def test_in_process_callers_are_not_checked():
    pytest.importorskip("distributed")
    from btcore.executors.dask_executor import check_main_guard
    check_main_guard()  # pytest's __main__ runs this under its own guard: no error


# ------------------------------------- a Dask worker dying while the cluster starts
def test_dask_worker_dying_at_start_is_one_clear_error(tmp_path):
    pytest.importorskip("distributed")
    from btcore.executors.base import BrokenExecutorError
    from btcore.executors.dask_executor import DaskExecutor
    preload = tmp_path / "die_at_start.py"
    preload.write_text("import os\nos._exit(3)\n")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    executor = DaskExecutor(n_workers=1, timeout=30,
                            cluster_kwargs={"preload": [str(preload)]})
    with pytest.raises(BrokenExecutorError) as caught:
        executor.start()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the local Dask cluster could not start its 1 worker process")
    assert "Nanny failed to start worker process" in message and "preload" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    executor.close()
    time.sleep(0.5)
    new = [p for p in psutil.Process().children(recursive=True) if p.pid not in before
           and p.is_running() and p.status() != psutil.STATUS_ZOMBIE
           and "resource_tracker" not in " ".join(p.cmdline())]  # once per process
    assert not new, describe(new)  # no scheduler, nanny or worker left


# --------------------------------- loky's resource tracker after a killed worker
LOKY_SCRIPT = """\
    import os, signal
    from btcore.executors.base import BrokenExecutorError
    from btcore.executors.joblib_executor import JoblibExecutor

    def crash(shared, task):
        if task == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return task

    if __name__ == "__main__":
        with JoblibExecutor(n_jobs=2, max_retries=1) as executor:
            handle = executor.share({})
            try:
                list(executor.map(crash, handle, range(6)))
            except BrokenExecutorError:
                print("broken as expected")
            executor.unshare(handle)
            # the executor still works after its pool broke
            handle = executor.share({})
            assert sorted(t for t, _ in executor.map(lambda s, t: t, handle, range(4))) \\
                == [0, 1, 2, 3]
        print("done")
"""


def test_killed_loky_worker_prints_no_resource_tracker_traceback(tmp_path):
    # the review saw `KeyError` tracebacks from loky's resource tracker after a worker
    # was killed; the tracker shares this stderr and outlives the script a moment
    mark = uuid.uuid4().hex
    path = script(tmp_path, "kill_loky_worker.py", LOKY_SCRIPT)
    with open(tmp_path / "stderr.txt", "wb") as stderr_file:
        env = {**os.environ, MARK: mark}
        proc = subprocess.run([sys.executable, str(path)], cwd=str(tmp_path), env=env,
                              stdout=subprocess.PIPE, stderr=stderr_file, timeout=180)
    deadline = time.monotonic() + 10
    while marked(mark) and time.monotonic() < deadline:  # the tracker exits after us
        time.sleep(0.1)
    left = marked(mark)
    kill_all(left)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 0, stderr
    assert proc.stdout.decode().split() == ["broken", "as", "expected", "done"]
    # no traceback; loky may still warn (a UserWarning, not an error) that it cleaned
    # up a semaphore the killed worker held: seen intermittently, left as is
    for phrase in ("Traceback", "KeyError"):
        assert phrase not in stderr, stderr
    assert not left, describe(left)
