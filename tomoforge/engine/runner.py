"""Running a run: the orchestrator loop, the only code that writes a run's results to the project.

Each finished task is recorded at once (``run_tasks``), so ``continue`` after a crash or a kill
skips the items already done. The outputs themselves are written in one final transaction: a run
that fails or is killed leaves no half-written output behind.

The exception is a streaming run (an open input, a source protocol, or an earlier attempt that
streamed; see ``engine.streaming``): it commits each item with its task record as it comes.
"""
from __future__ import annotations

import os
import json
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tomoforge.engine import db
from tomoforge.engine.executors import ExecutorConfig, TaskFailure, make_executor
from tomoforge.engine.project import (
    ABORTED, FAILED, FINISHED, QUEUED, RUNNING, SAVED, SCHEDULED, Project, ProjectError,
)
from tomoforge.engine.protocol import Protocol, Task, check_task_keys, validate_params
from tomoforge.engine.results import ResultError, decode_result, encode_result, files_intact, result_files
from tomoforge.engine.registry import get_protocol
from tomoforge.engine.sets import ItemSet, item_address
from tomoforge.engine.streaming import run_streaming
from tomoforge.errors import describe_failure
from tomoforge.io.atomic import SCRATCH_VARIABLE

Progress = Callable[[int, int, str], None]  # (done, total, key of the item just finished)
POLL_S = 0.5
TASKS_DIR = "tasks"  # numpy arrays of task results, in the run folder


class RunAborted(Exception):
    pass


@dataclass
class RunContext:
    """What a protocol sees of its run: params, inputs, output sets, folders and the log."""

    project: Project
    run_id: int
    params: Any
    run_dir: Path
    _outputs: dict[str, ItemSet] = field(default_factory=dict)
    protocol_cls: type[Protocol] | None = None
    _log_failed: bool = False

    @property
    def out_dir(self) -> Path:
        return self.run_dir / "out"

    @property
    def tmp_dir(self) -> Path:
        return self.run_dir / "tmp"

    def log(self, message: str) -> None:
        """Append a timestamped line to ``run.log``; a log that cannot be written (read-only, disk full)
        is said once on stderr and never hides the run's own outcome or error."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.run_dir / "run.log", "a", encoding="utf-8") as handle:
                handle.write(f"{stamp}  {message}\n")
        except OSError as exc:
            if not self._log_failed:
                self._log_failed = True
                print(f"tomoforge: cannot write {self.run_dir / 'run.log'} ({exc.strerror}); going on without it",
                      file=sys.stderr)

    def has_input(self, name: str) -> bool:
        return name in self.project.run_inputs(self.run_id)

    def input(self, name: str) -> ItemSet:
        pointers = self.project.run_inputs(self.run_id)
        if name not in pointers:
            raise ProjectError(f"run {self.run_id}: input '{name}' is not set")
        p = pointers[name]
        return self.project.output_set(p.run_id, p.output, p.filter)

    def output(self, name: str) -> ItemSet:
        if name not in self._outputs:
            assert self.protocol_cls is not None
            if name not in self.protocol_cls.outputs:
                raise ProjectError(f"{self.protocol_cls.name} declares no output '{name}'")
            self._outputs[name] = ItemSet.create(
                self.project.conn, self.run_id, name, self.protocol_cls.outputs[name]
            )
        return self._outputs[name]


def execute_run(
    project: Project,
    run_id: int,
    mode: str = "run",
    progress: Progress | None = None,
    executor: ExecutorConfig | None = None,
) -> str:
    """Run (``run``), resume (``continue``) or redo (``restart``) a run; returns its final state."""
    if mode not in ("run", "continue", "restart"):
        raise ValueError(f"mode must be run, continue or restart, not {mode!r}")
    row = project.run(run_id)
    state = project.refresh_state(run_id)
    startable = {"run": (SAVED, SCHEDULED, QUEUED), "continue": (SAVED, SCHEDULED, QUEUED, FAILED, ABORTED),
                 "restart": (SAVED, SCHEDULED, QUEUED, FAILED, ABORTED, FINISHED)}[mode]
    if state not in startable:
        hint = "; use 'restart' to redo it" if state == FINISHED else ""
        raise ProjectError(f"run {run_id} is {state}: cannot {mode} it{hint}")
    if mode == "restart":
        project.reset(run_id)  # refuses while other runs use its outputs
    cls = get_protocol(row["protocol"])
    readiness, why = project.input_readiness(run_id)
    if readiness not in ("ready", "stream"):
        raise ProjectError(f"run {run_id}: {why}")
    _claim(project, run_id, state if mode != "restart" else SAVED)

    context = RunContext(project, run_id, None, project.run_dir(run_id), protocol_cls=cls)
    context.out_dir.mkdir(parents=True, exist_ok=True)
    context.tmp_dir.mkdir(parents=True, exist_ok=True)
    previous_sigterm = _abort_on_sigterm()
    previous_scratch = os.environ.get(SCRATCH_VARIABLE)
    os.environ[SCRATCH_VARIABLE] = str(context.tmp_dir)  # files are written there, then renamed into out/
    try:
        context.params = validate_params(cls, project.run_params(run_id))
        context.log(f"{mode} of run {run_id}: {cls.name} (tomoforge {row['software_version']}), pid {os.getpid()}")
        protocol = cls(context)
        if mode == "continue":
            forget_broken_tasks(project, context)
        config = executor or ExecutorConfig.model_validate_json(row["executor"])
        if readiness == "stream" or protocol.source_open() or project.output_sets(run_id):
            return run_streaming(project, context, protocol, config, progress)
        tasks = list(protocol.tasks())
        check_task_keys(cls.name, tasks)
        results = done_results(project, run_id, {t.key for t in tasks})
        if results:
            context.log(f"{len(results)} of {len(tasks)} items already done: skipped")
        failures = _execute(project, context, [t for t in tasks if t.key not in results], results, len(tasks),
                            config, progress)
        if failures:
            first_key, first = next(iter(failures.items()))
            summary = f"{len(failures)} of {len(tasks)} items failed; first, {first_key}: {first.error}"
            context.log(summary)
            project.set_state(run_id, FAILED, finished=time.time(), error=summary, traceback=first.traceback)
            return FAILED
        _commit_outputs(project, context, protocol, tasks, results)
        context.log(f"finished: {len(tasks)} items")
        return FINISHED
    except RunAborted:
        context.log("aborted")
        project.set_state(run_id, ABORTED, finished=time.time(), error="aborted by the user")
        return ABORTED
    except Exception as exc:  # noqa: BLE001 - any failure ends in the failed state, with its traceback
        message = describe_failure(exc)
        context.log(f"failed: {message}")
        project.set_state(run_id, FAILED, finished=time.time(), error=message, traceback=traceback.format_exc())
        return FAILED
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous_sigterm)
        shutil.rmtree(context.tmp_dir, ignore_errors=True)
        if previous_scratch is None:
            os.environ.pop(SCRATCH_VARIABLE, None)
        else:
            os.environ[SCRATCH_VARIABLE] = previous_scratch


def _claim(project: Project, run_id: int, expected_state: str) -> None:
    with db.transaction(project.conn):
        cursor = project.conn.execute(
            "UPDATE runs SET state = ?, pid = ?, host = ?, started = ?, finished = NULL, error = NULL,"
            " traceback = NULL, abort_requested = 0, stop_requested = 0 WHERE id = ? AND state = ?",
            (RUNNING, os.getpid(), socket.gethostname(), time.time(), run_id, expected_state),
        )
        if cursor.rowcount != 1:
            raise ProjectError(f"run {run_id} was started by another process")


def _abort_on_sigterm() -> Any:
    def handler(signum: int, frame: Any) -> None:
        raise RunAborted()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        return signal.getsignal(signal.SIGTERM)


def done_results(project: Project, run_id: int, keys: set[str] | None) -> dict[str, Any]:
    """Results of the tasks already done, by key (only ``keys`` unless None).

    A record that does not read back (damaged, or a pickle from an old version: never unpickled) is
    left out, so its task is redone.
    """
    rows = project.conn.execute(
        "SELECT key, result FROM run_tasks WHERE run_id = ? AND state = 'done'", (run_id,)
    ).fetchall()
    arrays_dir = task_arrays_dir(project, run_id)
    results = {}
    for row in rows:
        if keys is not None and row["key"] not in keys:
            continue
        try:
            results[row["key"]] = decode_result(row["result"], arrays_dir)
        except ResultError:
            continue
    return results


def task_arrays_dir(project: Project, run_id: int) -> Path:
    """Where the numpy arrays of a run's task results are kept."""
    return project.run_dir(run_id) / TASKS_DIR


def record_task(project: Project, run_id: int, key: str, result: Any, started: float) -> None:
    """Store a finished task's result (JSON, arrays as files) with the run files it names and their sizes."""
    failed = isinstance(result, TaskFailure)
    text, files = None, "{}"
    if not failed:
        run_dir = project.run_dir(run_id)
        text, arrays = encode_result(result, run_dir / TASKS_DIR, key)
        named = result_files(result, run_dir)
        named.update({f"{TASKS_DIR}/{a}": (run_dir / TASKS_DIR / a).stat().st_size for a in arrays})
        files = json.dumps(named)
    with db.transaction(project.conn):
        project.conn.execute(
            "INSERT OR REPLACE INTO run_tasks (run_id, key, state, result, error, started, finished, files)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, key, "failed" if failed else "done", text, result.error if failed else None, started,
             time.time(), files),
        )


def forget_broken_tasks(project: Project, context: RunContext) -> list[str]:
    """Drop the records of done tasks whose files were deleted or changed size, or whose result does not
    read back, so that ``continue`` redoes them; returns their keys.

    A run that already committed items (streaming) has its output sets rebuilt from the task records,
    unless another run uses them (then it is refused: restart it instead).
    """
    run_id, run_dir = context.run_id, context.run_dir
    broken: list[str] = []
    for row in project.conn.execute(
        "SELECT key, result, files FROM run_tasks WHERE run_id = ? AND state = 'done'", (run_id,)
    ).fetchall():
        try:
            decode_result(row["result"], run_dir / TASKS_DIR)
            missing = files_intact(json.loads(row["files"] or "{}"), run_dir)
        except (ResultError, ValueError):
            missing = ["(its stored result)"]
        if missing:
            broken.append(row["key"])
            context.log(f"{row['key']}: {', '.join(missing[:3])} missing or changed: redone")
    if not broken:
        return broken
    committed = project.output_sets(run_id)
    if committed and project.consumers(run_id):
        raise ProjectError(
            f"run {run_id}: files of {len(broken)} done item(s) are missing ({', '.join(broken[:5])}) and its outputs "
            f"are used by run(s) {', '.join(map(str, project.consumers(run_id)))}; restart those after this one"
        )
    with db.transaction(project.conn):
        project.conn.executemany("DELETE FROM run_tasks WHERE run_id = ? AND key = ?", [(run_id, k) for k in broken])
        if committed:
            project.drop_outputs(run_id)
    return broken


def abort_requested(project: Project, run_id: int) -> bool:
    return bool(project.conn.execute("SELECT abort_requested FROM runs WHERE id = ?", (run_id,)).fetchone()[0])


def _execute(project: Project, context: RunContext, pending: list[Task], results: dict[str, Any], total: int,
             config: ExecutorConfig, progress: Progress | None) -> dict[str, TaskFailure]:
    failures: dict[str, TaskFailure] = {}
    if not pending:
        return failures
    context.log(f"{len(pending)} items to do on {config.kind} executor ({config.workers} workers)")
    start = time.time()
    done_now = 0
    executor = make_executor(config)
    cancel = True
    try:
        handles = {executor.submit(t.fn, t.args, t.kwargs): t for t in pending}
        order = {handle: i for i, handle in enumerate(handles)}
        waiting = set(handles)
        while waiting:
            finished, waiting = executor.wait(waiting, POLL_S)
            for handle in sorted(finished, key=order.__getitem__):
                task = handles[handle]
                result = executor.result(handle)
                record_task(project, context.run_id, task.key, result, start)
                done_now += 1
                elapsed = time.time() - start
                eta = elapsed / done_now * (len(pending) - done_now)
                done_total = total - len(pending) + done_now
                if isinstance(result, TaskFailure):
                    failures[task.key] = result
                    context.log(f"[{done_total}/{total}] {task.key} FAILED: {result.error}")
                else:
                    results[task.key] = result
                    context.log(f"[{done_total}/{total}] {task.key} done ({elapsed:.1f} s, ~{eta:.0f} s left)")
                if progress:
                    progress(done_total, total, task.key)
            if abort_requested(project, context.run_id):
                raise RunAborted()
        cancel = False
    finally:
        executor.shutdown(cancel=cancel)
    return failures


def _commit_outputs(project: Project, context: RunContext, protocol: Protocol, tasks: list[Task],
                    results: dict[str, Any]) -> None:
    """Write every output in one transaction, then mark the run finished."""
    with db.transaction(project.conn):
        project.conn.execute("DELETE FROM sets WHERE run_id = ?", (context.run_id,))  # no stale partial sets
        for name in type(protocol).outputs:
            context.output(name)
        for task in tasks:
            protocol.collect(task, results[task.key])
        protocol.finish()
        for output in context._outputs.values():
            output.close()
        project.conn.execute("UPDATE runs SET state = ?, finished = ? WHERE id = ?",
                             (FINISHED, time.time(), context.run_id))


def origin_of(item_set: ItemSet, key: str) -> str:
    """Address of an input item, for ``Task(origin=...)``."""
    return item_address(item_set.run_id, item_set.name, key)
