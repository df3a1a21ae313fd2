"""Streaming runs: a source that takes items as they appear, consumers that follow an open set, stop, kill."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engine.test_faults import wait_for
from tests.engine.toyplugin.toy_protocols import Number
from tomoforge.engine import (
    ExecutorConfig,
    InputSpec,
    Project,
    ProjectError,
    Protocol,
    ProtocolParams,
    Task,
    execute_run,
    param,
)
from tomoforge.engine.registry import protocols

SERIAL = ExecutorConfig(kind="serial")


@dataclass(frozen=True, kw_only=True)
class DropJob:
    path: str
    sleep_s: float


def read_drop(job: DropJob) -> float:
    """Task: the number written in a dropped file (marks each call in ran/)."""
    file, sleep_s = Path(job.path), job.sleep_s
    (file.parent / "ran").mkdir(exist_ok=True)
    (file.parent / "ran" / f"{file.stem}_{time.time_ns()}").touch()
    if file.read_text().strip() == "fail":
        raise ValueError(f"{file.name} says fail")
    time.sleep(sleep_s)
    return float(file.read_text())


class DropParams(ProtocolParams):
    folder: str = param(..., help="folder where numbers are dropped as NAME.num files")
    sleep_s: float = param(0.0, ge=0, unit="s", help="time each task takes")


class DropSource(Protocol):
    """Numbers dropped as files into a folder, streamed until an END file appears (toy source)."""

    name = "toy-drops"
    Params = DropParams
    outputs = {"numbers": Number}

    def source_open(self) -> bool:
        return not (Path(self.params.folder) / "END").exists()

    def tasks(self):
        for file in sorted(Path(self.params.folder).glob("*.num")):
            yield Task(read_drop, DropJob(path=str(file), sleep_s=self.params.sleep_s), key=file.stem)

    def collect(self, task, result):
        self.emit("numbers", Number(name=task.key, value=result), task)

    def stream_ended(self, reason: str) -> None:
        self.log(f"toy source: {reason}")


class SumNumbers(Protocol):
    """One task over all numbers of its input: not one per item, so it waits for the input to close."""

    name = "toy-sum"
    inputs = {"numbers": InputSpec(Number)}
    outputs = {"numbers": Number}

    def tasks(self):
        yield Task(total, Values(values=[n.value for n in self.input("numbers")]), key="sum")

    def collect(self, task, result):
        self.emit("numbers", Number(name="sum", value=result), task)


@dataclass(frozen=True, kw_only=True)
class Values:
    values: list[float]


def total(job: Values) -> float:
    return sum(job.values)


def add(job: Values) -> float:
    return job.values[0] + job.values[1]


@dataclass(frozen=True, kw_only=True)
class Message:
    text: str


def no_partner(job: Message) -> float:
    raise ValueError(job.text)


class PairNumbers(Protocol):
    """Numbers of two inputs paired by name and added, each pair as soon as both exist (as ctf-correction
    pairs a tilt series with its CTF series): a name missing from the second input waits while it is open."""

    name = "toy-pair"
    streaming = True
    inputs = {"first": InputSpec(Number), "second": InputSpec(Number)}
    outputs = {"numbers": Number}

    def tasks(self):
        first, second = self.input("first"), self.input("second")
        names = set(second.keys())
        for n in first:
            if n.name in names:
                yield Task(add, Values(values=[n.value, second.get(n.name).value]), key=n.name)
            elif not self.input_open("second"):
                yield Task(no_partner, Message(text=f"{n.name}: no partner in the second input"), key=n.name)

    def collect(self, task, result):
        self.emit("numbers", Number(name=task.key, value=result), task)


def register() -> None:
    protocols()[DropSource.name] = DropSource
    protocols()[SumNumbers.name] = SumNumbers
    protocols()[PairNumbers.name] = PairNumbers


@pytest.fixture(autouse=True)
def toy_streaming_protocols():
    register()
    yield
    protocols().pop(DropSource.name, None)
    protocols().pop(SumNumbers.name, None)
    protocols().pop(PairNumbers.name, None)


def drop(folder: Path, name: str, value: str) -> None:
    """Write NAME.num atomically (a reader never sees it half-written)."""
    (folder / f"{name}.tmp").write_text(value)
    (folder / f"{name}.tmp").rename(folder / f"{name}.num")


def in_thread(root: Path, run_id: int, mode: str = "run", executor: ExecutorConfig | None = None, progress=None):
    """Execute a run in a thread with its own connection; ``.result`` holds its final state."""

    def target():
        project = Project.open(root)
        try:
            thread.result = execute_run(project, run_id, mode, executor=executor, progress=progress)
        finally:
            project.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.result = None
    thread.start()
    return thread


def task_times(project: Project, run_id: int) -> list[float]:
    rows = project.conn.execute(
        "SELECT finished FROM run_tasks WHERE run_id = ? AND state = 'done' ORDER BY finished", (run_id,)
    ).fetchall()
    return [r[0] for r in rows]


def items(project: Project, run_id: int) -> dict[str, float]:
    """The run's output items so far ({} before its set exists)."""
    if not project.output_sets(run_id):
        return {}
    return {n.name: n.value for n in project.output_set(run_id, "numbers")}


def log_of(project: Project, run_id: int) -> str:
    path = project.run_dir(run_id) / "run.log"
    return path.read_text() if path.exists() else ""


def ran(folder: Path, name: str) -> int:
    return len(list((folder / "ran").glob(f"{name}_*")))


@pytest.fixture
def folder(tmp_path) -> Path:
    """The drop folder; its END file is written at teardown so that no source outlives its test."""
    path = tmp_path / "drops"
    path.mkdir()
    yield path
    (path / "END").touch()


@pytest.mark.parametrize("consumer_executor", ["serial", "local", "dask"])
def test_a_consumer_processes_items_while_its_producer_still_runs(project, folder, consumer_executor):
    producer = project.new_run("toy-drops", {"folder": str(folder)}, executor=SERIAL)
    drop(folder, "a", "1")
    drop(folder, "b", "2")
    source = in_thread(project.root, producer)
    wait_for(lambda: project.set_is_open(producer, "numbers") and len(items(project, producer)) == 2)
    assert project.run(producer)["state"] == "running"
    consumer = project.new_run(
        "toy-double",
        inputs={"numbers": f"{producer}.numbers"},
        executor=ExecutorConfig(kind=consumer_executor, workers=1, threads_per_worker=1),
    )
    follower = in_thread(project.root, consumer)
    wait_for(lambda: project.set_is_open(consumer, "numbers") and len(items(project, consumer)) == 2)
    assert project.run(producer)["state"] == "running"  # the consumer's items exist before the producer ends
    drop(folder, "c", "3")
    wait_for(lambda: len(items(project, consumer)) == 3)
    assert project.set_is_open(consumer, "numbers")  # its input is still open
    (folder / "END").touch()
    source.join(30)
    follower.join(30)
    assert (source.result, follower.result) == ("finished", "finished")
    assert items(project, producer) == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert items(project, consumer) == {"a": 2.0, "b": 4.0, "c": 6.0}
    assert project.output_set(producer, "numbers").is_closed and project.output_set(consumer, "numbers").is_closed
    assert max(task_times(project, consumer)) < project.run(producer)["finished"]
    assert "toy source: source closed" in log_of(project, producer)
    assert project.output_set(consumer, "numbers").origin("c") == [f"{producer}.numbers/c"]


def test_a_protocol_that_is_not_per_item_waits_for_its_input_to_close(project, folder):
    producer = project.new_run("toy-drops", {"folder": str(folder)}, executor=SERIAL)
    drop(folder, "a", "1")
    source = in_thread(project.root, producer)
    wait_for(lambda: len(items(project, producer)) == 1)
    total = project.new_run("toy-sum", inputs={"numbers": f"{producer}.numbers"}, executor=SERIAL)
    summing = in_thread(project.root, total)
    wait_for(lambda: "not one per input item" in log_of(project, total))
    drop(folder, "b", "5")
    wait_for(lambda: len(items(project, producer)) == 2)
    assert task_times(project, total) == []
    (folder / "END").touch()
    source.join(30)
    summing.join(30)
    assert summing.result == "finished" and items(project, total) == {"sum": 6.0}


def test_a_pairing_consumer_waits_for_each_partner_and_fails_the_unpaired_once_closed(project, tmp_path):
    folders = [tmp_path / "first", tmp_path / "second"]
    producers = []
    for f in folders:
        f.mkdir()
        producers.append(project.new_run("toy-drops", {"folder": str(f)}, executor=SERIAL))
    drop(folders[0], "x", "1")
    drop(folders[0], "y", "2")
    sources = [in_thread(project.root, r) for r in producers]
    wait_for(lambda: len(items(project, producers[0])) == 2 and project.set_is_open(producers[1], "numbers"))
    pair = project.new_run(
        "toy-pair", inputs={"first": f"{producers[0]}.numbers", "second": f"{producers[1]}.numbers"}, executor=SERIAL
    )
    assert project.input_readiness(pair) == ("stream", "")
    pairing = in_thread(project.root, pair)
    wait_for(lambda: project.set_is_open(pair, "numbers"))
    time.sleep(1.0)
    assert items(project, pair) == {}  # x and y wait for their partners
    drop(folders[1], "x", "10")
    wait_for(lambda: items(project, pair) == {"x": 11.0})
    assert all(project.run(r)["state"] == "running" for r in producers)  # paired while both still stream
    for f in folders:
        (f / "END").touch()
    for thread in (*sources, pairing):
        thread.join(30)
    assert pairing.result == "failed"  # y never found its partner
    assert items(project, pair) == {"x": 11.0}
    assert "y: no partner in the second input" in project.run(pair)["error"]


def scheduled_while(project: Project, acquisition) -> dict[int, str]:
    """The scheduler's outcome, run while ``acquisition()`` writes data in another thread."""
    from tomoforge.engine.scheduler import run_scheduled

    writer = threading.Thread(target=acquisition)
    writer.start()
    try:
        return run_scheduled(project, poll_s=0.1)
    finally:
        writer.join()


def test_the_scheduler_streams_a_chain_of_consumers_behind_a_running_source(project, folder):
    producer = project.new_run("toy-drops", {"folder": str(folder), "sleep_s": 0.1}, executor=SERIAL)
    first = project.new_run("toy-double", inputs={"numbers": f"{producer}.numbers"}, executor=SERIAL)
    second = project.new_run("toy-double", inputs={"numbers": f"{first}.numbers"}, executor=SERIAL)
    for run_id in (second, first, producer):
        project.schedule(run_id)

    def acquisition():
        watcher = Project.open(project.root)
        for i in range(3):
            drop(folder, f"n{i}", str(i))
            time.sleep(0.2)
        try:  # end the acquisition only once the last consumer has made something
            wait_for(lambda: watcher.set_is_open(second, "numbers") and len(items(watcher, second)) >= 1)
        finally:
            (folder / "END").touch()
            watcher.close()

    outcome = scheduled_while(project, acquisition)
    assert outcome == {producer: "finished", first: "finished", second: "finished"}
    assert items(project, second) == {"n0": 0.0, "n1": 4.0, "n2": 8.0}
    assert min(task_times(project, second)) < project.run(producer)["finished"]


def test_stop_ends_a_streaming_run_and_closes_its_output(project, folder):
    producer = project.new_run("toy-drops", {"folder": str(folder)}, executor=SERIAL)
    drop(folder, "a", "1")
    source = in_thread(project.root, producer)
    wait_for(lambda: len(items(project, producer)) == 1)
    project.request_stop(producer)
    source.join(30)
    assert source.result == "finished" and project.output_set(producer, "numbers").is_closed
    assert "toy source: stop requested" in log_of(project, producer)
    with pytest.raises(ProjectError, match="only a running streaming run can be stopped"):
        project.request_stop(producer)


def test_a_failed_item_does_not_hold_back_the_others_and_continue_retries_it(project, folder):
    producer = project.new_run("toy-drops", {"folder": str(folder)}, executor=SERIAL)
    drop(folder, "a", "1")
    drop(folder, "b", "fail")
    source = in_thread(project.root, producer)
    wait_for(lambda: project.conn.execute("SELECT COUNT(*) FROM run_tasks").fetchone()[0] == 2)
    (folder / "END").touch()
    source.join(30)
    assert source.result == "failed"
    assert "1 of 2 items failed; first, b: ValueError: b.num says fail" in project.run(producer)["error"]
    assert items(project, producer) == {"a": 1.0} and project.set_is_open(producer, "numbers")
    drop(folder, "b", "2")
    assert execute_run(project, producer, "continue") == "finished"
    assert items(project, producer) == {"a": 1.0, "b": 2.0} and ran(folder, "a") == 1


KILLABLE = """
import sys
from tomoforge.engine import Project, execute_run
from tests.engine.test_streaming import register
register()
project = Project.open(sys.argv[1])
execute_run(project, int(sys.argv[2]), sys.argv[3])
"""


def test_a_killed_stream_keeps_its_committed_items_and_continue_adds_no_duplicate(project, folder):
    for i in range(6):
        drop(folder, f"n{i}", str(i))
    producer = project.new_run("toy-drops", {"folder": str(folder), "sleep_s": 0.3}, executor=SERIAL)
    consumer = project.new_run("toy-double", inputs={"numbers": f"{producer}.numbers"}, executor=SERIAL)
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(project.root), str(producer), "run"])
    try:
        wait_for(lambda: project.set_is_open(producer, "numbers") and len(items(project, producer)) >= 2)
        follower = in_thread(project.root, consumer)
        wait_for(lambda: len(task_times(project, consumer)) >= 1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    follower.join(30)
    assert follower.result == "failed"  # its input stopped with its set open
    assert "which is failed with its set still open" in project.run(consumer)["error"]
    assert project.refresh_state(producer) == "failed"
    assert project.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kept = items(project, producer)
    done = project.conn.execute("SELECT key FROM run_tasks WHERE run_id = ? AND state = 'done'", (producer,)).fetchall()
    assert sorted(kept) == sorted(r[0] for r in done)  # every committed item has its task record, and only those
    (folder / "END").touch()
    assert execute_run(project, producer, "continue") == "finished"
    assert execute_run(project, consumer, "continue") == "finished"
    assert items(project, producer) == {f"n{i}": float(i) for i in range(6)}
    assert items(project, consumer) == {f"n{i}": 2.0 * i for i in range(6)}
    assert all(ran(folder, name) == 1 for name in kept)  # committed items were not redone
    assert project.output_set(consumer, "numbers").is_closed


def test_a_stream_after_a_batch_attempt_collects_its_done_items_and_counts_them(project, folder):
    drop(folder, "a", "1")
    drop(folder, "b", "fail")
    (folder / "END").touch()  # the source is closed: the first attempt is a batch run
    producer = project.new_run("toy-drops", {"folder": str(folder)}, executor=SERIAL)
    assert execute_run(project, producer) == "failed"
    assert project.output_sets(producer) == []  # a failed batch run writes no output
    (folder / "END").unlink()  # the source opens: the next attempt streams, with a done over from the batch run
    drop(folder, "b", "2")
    calls: list[tuple[int, int, str]] = []
    follower = in_thread(project.root, producer, "continue", progress=lambda *call: calls.append(call))
    wait_for(lambda: items(project, producer) == {"a": 1.0, "b": 2.0})
    (folder / "END").touch()
    follower.join(30)
    assert follower.result == "finished"
    assert calls == [(2, 2, "b")]  # 'a' is counted as done (and not run again), 'b' as the second of two items
    assert ran(folder, "a") == 1 and "[2/2] b done" in log_of(project, producer)
