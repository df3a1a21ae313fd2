"""Faults: a killed worker, a killed orchestrator, readers during a write, abort, a Dask cluster."""

import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.engine.conftest import ran
from tomoforge.engine import ExecutorConfig, Project, execute_run


def done_tasks(project_root, run_id):
    with sqlite3.connect(project_root / "project.db", timeout=30) as conn:
        return conn.execute("SELECT COUNT(*) FROM run_tasks WHERE run_id = ? AND state = 'done'", (run_id,)).fetchone()[
            0
        ]


def assert_consistent(project):
    assert project.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert project.conn.execute("PRAGMA foreign_key_check").fetchall() == []


def tomoforge(project, *args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "tomoforge.cli.main", "-p", str(project.root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def wait_for(condition, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_sigkill_of_a_worker_fails_the_run_cleanly_and_continue_finishes_it(project, control):
    (control / "kill_2").touch()
    run_id = project.new_run(
        "toy-make",
        {"count": 4, "control_dir": str(control)},
        executor=ExecutorConfig(kind="local", workers=1, threads_per_worker=1),
    )
    assert execute_run(project, run_id) == "failed"
    assert "a worker process died" in project.run(run_id)["error"]
    assert_consistent(project)
    assert project.output_sets(run_id) == []
    assert done_tasks(project.root, run_id) == 2  # items 0 and 1 finished before the kill
    (control / "kill_2").unlink()
    assert execute_run(project, run_id, "continue") == "finished"
    assert [ran(control, i) for i in (0, 1, 3)] == [1, 1, 1] and ran(control, 2) == 2
    assert [n.value for n in project.output_set(run_id, "numbers")] == [0.0, 1.0, 4.0, 9.0]


def test_sigkill_of_the_run_process_leaves_the_project_consistent(project, control):
    run_id = project.new_run(
        "toy-make", {"count": 8, "sleep_s": 0.3, "control_dir": str(control)}, executor=ExecutorConfig(kind="serial")
    )
    proc = tomoforge(project, "continue", str(run_id))
    wait_for(lambda: done_tasks(project.root, run_id) >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert project.refresh_state(run_id) == "failed"
    assert "is gone: it was killed" in project.run(run_id)["error"]
    assert_consistent(project)
    assert project.output_sets(run_id) == []
    done_before = done_tasks(project.root, run_id)
    assert execute_run(project, run_id, "continue") == "finished"
    assert sum(ran(control, i) for i in range(8)) <= 8 + 1  # done items were skipped; at most one redone
    assert all(ran(control, i) == 1 for i in range(done_before))
    assert len(project.output_set(run_id, "numbers")) == 8


READER = """
import sys, time
from tomoforge.engine import Project
end = time.time() + float(sys.argv[2])
reads = 0
while time.time() < end:
    p = Project.open(sys.argv[1])
    for row in p.runs():
        for s in p.output_sets(row["id"]):
            len(s); list(s)
    p.conn.execute("SELECT COUNT(*) FROM run_tasks").fetchone()
    p.close()
    reads += 1
print("reads", reads)
"""


def test_readers_in_other_processes_never_see_a_locked_database(project, control):
    run_id = project.new_run(
        "toy-make", {"count": 150, "control_dir": str(control)}, executor=ExecutorConfig(kind="serial")
    )
    writer = tomoforge(project, "continue", str(run_id))
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(project.root), "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=120)[0] for r in readers]
    writer_out = writer.communicate(timeout=120)[0]
    for reader, out in zip(readers, outputs):
        assert reader.returncode == 0, out
        assert "locked" not in out and int(out.split()[-1]) > 5
    assert writer.returncode == 0, writer_out
    assert project.run(run_id)["state"] == "finished"
    assert len(project.output_set(run_id, "numbers")) == 150


def test_abort_stops_a_running_run_and_keeps_its_done_items(project, control):
    run_id = project.new_run(
        "toy-make", {"count": 40, "sleep_s": 0.2, "control_dir": str(control)}, executor=ExecutorConfig(kind="serial")
    )
    proc = tomoforge(project, "continue", str(run_id))
    wait_for(lambda: done_tasks(project.root, run_id) >= 2)
    assert Project.open(project.root).request_abort(run_id) == "requested"
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1, out
    assert project.run(run_id)["state"] == "aborted"
    done = done_tasks(project.root, run_id)
    assert 2 <= done < 40
    assert execute_run(project, run_id, "continue") == "finished"
    assert all(ran(control, i) == 1 for i in range(done))


@pytest.mark.slow
def test_a_dask_local_cluster_runs_the_same_protocol(project, control):
    run_id = project.new_run(
        "toy-make",
        {"count": 5, "control_dir": str(control)},
        executor=ExecutorConfig(kind="dask", workers=2, threads_per_worker=1),
    )
    assert execute_run(project, run_id) == "finished", project.run(run_id)["error"]
    assert [n.value for n in project.output_set(run_id, "numbers")] == [0.0, 1.0, 4.0, 9.0, 16.0]
    assert "dask executor (2 workers)" in (project.run_dir(run_id) / "run.log").read_text()
