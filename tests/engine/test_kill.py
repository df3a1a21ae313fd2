"""Killing the orchestrator: its local workers die with it, nothing more reaches the run folder, and
``continue`` after any number of kills ends with the outputs of an uninterrupted run.

Every process a test starts carries ``TOMOFORGE_KILL_TEST=<tag>`` in its environment (workers inherit
it), so an orphan is found by scanning ``/proc`` even after it was re-parented.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.engine.conftest import REPO, ran
from tests.engine.toyplugin.toy_protocols import read_database
from tomoforge.engine import ExecutorConfig, Project
from tomoforge.engine.executors import LocalExecutor, TaskFailure

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="scans /proc for orphans")

MARKER = "TOMOFORGE_KILL_TEST"
TWO_WORKERS = ExecutorConfig(kind="local", workers=2, threads_per_worker=1)
# A worker still starting up when its orchestrator is killed has not armed its guard yet: it runs no task
# and exits when it reaches the guard, after the interpreter's start-up (seconds on a loaded machine).
STARTING_WORKER_S = 10.0

# What ``tomoforge continue RUN`` does (cli/main.py: execute_run), without the CLI's imports: it and each
# spawned worker (which re-imports the CLI module) load torch at start, ~3 s of CPU each, and twenty
# kills of that would not fit the time bound. Only the toy protocol is registered, for the same reason
# (loading every protocol imports torch too). The focused test below goes through the real CLI.
DRIVER = """
import sys
from tomoforge.engine import Project, execute_run, registry
from tests.engine.toyplugin.toy_protocols import MakeArrays
registry._cache = {MakeArrays.name: MakeArrays}
state = execute_run(Project.open(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
sys.exit(0 if state == "finished" else 1)
"""


def marked(tag: str) -> list[int]:
    """Live (not zombie) processes whose environment carries the test's marker."""
    needle = f"{MARKER}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if needle in environ and state != "Z":
            found.append(int(entry))
    return found


def gone_within(tag: str, seconds: float) -> list[str]:
    """Marked processes still alive after ``seconds`` (an empty list as soon as there are none)."""
    end = time.monotonic() + seconds
    while (left := marked(tag)) and time.monotonic() < end:
        time.sleep(0.02)
    described = []
    for pid in left:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120]
        except OSError:
            command = b"?"
        described.append(f"{pid}: {command.decode(errors='replace')}")
    return described


@pytest.fixture
def tag():
    """The marker's value for one test; whatever still carries it at the end is killed (a failed test's orphans)."""
    value = uuid.uuid4().hex
    yield value
    for pid in marked(value):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: relative name -> (size, mtime in ns)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def drive(project: Project, run_id: int, mode: str, env: dict[str, str]) -> subprocess.Popen:
    """``execute_run(project, run_id, mode)`` in a new process; its output goes to ``driver.log`` in the project."""
    with open(project.root / "driver.log", "ab") as log:
        log.write(f"--- {mode} {run_id}\n".encode())
        return subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(project.root), str(run_id), mode],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def outputs(project: Project, run_id: int) -> list[tuple[str, float, bytes]]:
    """A finished run's items with the bytes of their files; checks out/ holds nothing else."""
    items = [(n.name, n.value, project.absolute(n.file)) for n in project.output_set(run_id, "numbers")]
    out = project.run_dir(run_id) / "out"
    assert sorted(listing(out)) == sorted(str(path.relative_to(out)) for _, _, path in items)
    return [(name, value, path.read_bytes()) for name, value, path in items]


def stray_files(project: Project) -> list[str]:
    """Files in the project other than the database, run logs, finished runs' outputs and tmp/ folders."""
    allowed = {project.root / name for name in ("project.db", "project.db-wal", "project.db-shm", "driver.log")}
    for row in project.runs():
        run_dir = project.run_dir(row["id"])
        allowed.add(run_dir / "run.log")
        if row["state"] == "finished":
            allowed.update(project.absolute(n.file) for n in project.output_set(row["id"], "numbers"))
    return [
        str(p)
        for p in project.root.rglob("*")  # runs/RUN/tmp/...: parts 0 and 2 are runs, tmp
        if p.is_file() and p not in allowed and p.relative_to(project.root).parts[::2][:2] != ("runs", "tmp")
    ]


# 40-55 s at load 7-9 on 2 cores (up to ~75 s at load 12). Every kill moment scales with the uninterrupted
# run's duration, so a load spike during that run stretches all twenty: the timeout only guards a hang.
@pytest.mark.timeout(240)
def test_twenty_kills_and_continues_end_with_the_outputs_of_an_uninterrupted_run(project, tag):
    env = {**os.environ, MARKER: tag}
    params = {"count": 8, "size": 32, "sleep_s": 0.1}
    reference = project.new_run("toy-arrays", params, executor=TWO_WORKERS)
    start = time.monotonic()
    assert drive(project, reference, "run", env).wait(timeout=60) == 0
    duration = time.monotonic() - start
    print(f"uninterrupted run: {duration:.1f} s")
    expected = outputs(project, reference)
    assert len(expected) == params["count"] and gone_within(tag, 2.0) == []

    rng = random.Random(14)
    moments = [rng.uniform(0.0, duration) for _ in range(20)]
    run_id, mode, finished = project.new_run("toy-arrays", params, executor=TWO_WORKERS), "run", []
    while moments:
        process = drive(project, run_id, mode, env)
        try:
            code = process.wait(timeout=moments[0])
            assert code == 0, (project.root / "driver.log").read_text()[-3000:]
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed = moments.pop(0)
            assert gone_within(tag, STARTING_WORKER_S) == [], "workers outlived the killed orchestrator"
            print(f"{time.monotonic() - start:6.1f} s: run {run_id} killed at {killed:.1f} s", flush=True)
        out = project.run_dir(run_id) / "out"
        after_kill = listing(out)
        state = project.refresh_state(run_id)
        if state == "finished":  # it ended before its kill (or was killed after its final commit)
            assert outputs(project, run_id) == expected
            finished.append(run_id)
            run_id, mode = project.duplicate(run_id), "run"
            continue
        assert state in ("saved", "failed"), state
        assert listing(out) == after_kill, "something was written into out/ after the kill"
        mode = "continue"
    assert drive(project, run_id, mode, env).wait(timeout=60) == 0
    finished.append(run_id)
    for run in finished:
        assert outputs(project, run) == expected
        done = project.conn.execute("SELECT COUNT(*) FROM run_tasks WHERE run_id = ? AND state = 'done'", (run,))
        assert done.fetchone()[0] == params["count"]
    assert gone_within(tag, 2.0) == []
    assert stray_files(project) == []
    assert project.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.timeout(120)
def test_workers_sleeping_in_a_task_die_with_the_cli_and_write_nothing(project, control, tag):
    sleep_s = 3.0
    run_id = project.new_run(
        "toy-make", {"count": 2, "sleep_s": sleep_s, "control_dir": str(control)}, executor=TWO_WORKERS
    )
    cli = subprocess.Popen(
        [sys.executable, "-m", "tomoforge.cli.main", "-p", str(project.root), "continue", str(run_id)],
        cwd=REPO,
        env={**os.environ, MARKER: tag},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end = time.monotonic() + 90
    while not (ran(control, 0) and ran(control, 1)) and time.monotonic() < end:  # both workers are in a task
        time.sleep(0.02)
    assert ran(control, 0) and ran(control, 1), "the tasks never started"
    asleep_until = time.monotonic() + sleep_s
    workers = [pid for pid in marked(tag) if pid != cli.pid]
    assert len(workers) >= 2
    out = project.run_dir(run_id) / "out"
    before = listing(out)
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    assert gone_within(tag, 2.0) == [], "workers outlived the killed orchestrator"
    time.sleep(max(0.0, asleep_until - time.monotonic()) + 1.0)  # past the moment the tasks would have written
    assert listing(out) == before
    assert project.refresh_state(run_id) == "failed"


WATCHED = """
import sys, time
from tomoforge.engine.executors import _guard_worker
_guard_worker(int(sys.argv[1]), pdeathsig=False, interval_s=0.05)
print("guarded", flush=True)
time.sleep(30)
"""

MIDDLE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())])
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(60)
def test_without_the_parent_death_signal_the_watch_thread_still_ends_an_orphan(tag):
    middle = subprocess.Popen(
        [sys.executable, "-c", MIDDLE, WATCHED],
        cwd=REPO,
        env={**os.environ, MARKER: tag},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert middle.stdout is not None
    worker = int(middle.stdout.readline())
    assert middle.stdout.readline().strip() == "guarded"
    assert worker in marked(tag)
    middle.send_signal(signal.SIGKILL)
    middle.wait()
    assert gone_within(tag, 2.0) == []


def test_a_worker_outlives_the_thread_that_started_it():
    executor = LocalExecutor(workers=1, threads_per_worker=1)
    handles: list = []

    def submit_then_end() -> None:  # the worker starts (and arms its guard) while this thread lives
        handles.append(executor.result(executor.submit(os.getpid, (), {})))
        handles.append(executor.submit(time.sleep, (1.0,), {}))

    try:
        thread = threading.Thread(target=submit_then_end)
        thread.start()
        thread.join()
        assert executor.result(handles[1]) is None
    finally:
        executor.shutdown()


def test_a_worker_may_open_a_database_but_not_the_project_database(project, tmp_path):
    executor = LocalExecutor(workers=1, threads_per_worker=1)
    try:
        other = executor.result(executor.submit(read_database, (str(tmp_path / "other.db"),), {}))
        refused = executor.result(executor.submit(read_database, (str(project.root / "project.db"),), {}))
    finally:
        executor.shutdown()
    assert other == 1
    assert isinstance(refused, TaskFailure) and "project database" in refused.error
