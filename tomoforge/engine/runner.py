"""Running a run: the orchestrator loop, the only code that writes a run's results to the project.

Each finished task is recorded at once (``run_tasks``), so ``continue`` after a crash or a kill
skips the items already done. The outputs themselves are written in one final transaction: a run
that fails or is killed leaves no half-written output behind.

The exception is a streaming run (an open input, a source protocol, or an earlier attempt that
streamed; see ``engine.streaming``): it commits each item with its task record as it comes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
import traceback
from typing import Any

from tomoforge.engine import db
from tomoforge.engine.context import (
    POLL_S,
    Progress,
    RunAborted,
    RunContext,
    abort_requested,
)
from tomoforge.engine.executors import ExecutorConfig, TaskFailure, make_executor
from tomoforge.engine.project import (
    ABORTED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    SAVED,
    SCHEDULED,
    Project,
    ProjectError,
)
from tomoforge.engine.protocol import Protocol, Task, check_task_keys, validate_params
from tomoforge.engine.records import done_results, forget_broken_tasks, record_task
from tomoforge.engine.registry import get_protocol
from tomoforge.engine.streaming import run_streaming
from tomoforge.errors import describe_failure
from tomoforge.io.atomic import SCRATCH_VARIABLE


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
    startable = {
        "run": (SAVED, SCHEDULED, QUEUED),
        "continue": (SAVED, SCHEDULED, QUEUED, FAILED, ABORTED),
        "restart": (SAVED, SCHEDULED, QUEUED, FAILED, ABORTED, FINISHED),
    }[mode]
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
        failures = _execute(
            project, context, [t for t in tasks if t.key not in results], results, len(tasks), config, progress
        )
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


def _execute(
    project: Project,
    context: RunContext,
    pending: list[Task[Any]],
    results: dict[str, Any],
    total: int,
    config: ExecutorConfig,
    progress: Progress | None,
) -> dict[str, TaskFailure]:
    failures: dict[str, TaskFailure] = {}
    if not pending:
        return failures
    context.log(f"{len(pending)} items to do on {config.kind} executor ({config.workers} workers)")
    start = time.time()
    done_now = 0
    executor = make_executor(config)
    cancel = True
    try:
        handles = {executor.submit(t.fn, (t.job,), {}): t for t in pending}
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


def _commit_outputs(
    project: Project, context: RunContext, protocol: Protocol, tasks: list[Task[Any]], results: dict[str, Any]
) -> None:
    """Write every output in one transaction, then mark the run finished."""
    with db.transaction(project.conn):
        project.conn.execute("DELETE FROM sets WHERE run_id = ?", (context.run_id,))  # no stale partial sets
        for name in type(protocol).outputs:
            context.output(name)
        for task in tasks:
            protocol.collect(task, results[task.key])
        protocol.finish()
        for output in context.open_outputs():
            output.close()
        project.conn.execute(
            "UPDATE runs SET state = ?, finished = ? WHERE id = ?", (FINISHED, time.time(), context.run_id)
        )
