"""Running a run: claim it, run its tasks through the run loop, end it -- the one path for every run.

``execute_run`` picks the run's policy (``engine.loop.Batch``, or ``engine.streaming.Streaming``),
runs the one loop (``engine.loop.run_loop``) and ends the run on one path, whatever its kind:

- finished: one final transaction collects the results a batch run kept (a streaming run collected
  each item as it came), calls ``finish()``, closes the outputs and marks the run finished;
- failed (a task failed, an input's producer stopped, or anything raised): the state, the error and
  the first traceback; a batch run then has no output at all, a streaming run keeps what it committed;
- aborted (``tomoforge abort`` or SIGTERM): as failed, without waiting for the tasks under way;
- stopped (``tomoforge stop``, streaming only): the policy takes no new task, the tasks under way
  finish, and the run ends finished.

Each finished task is recorded at once (``run_tasks``), so ``continue`` after a crash or a kill skips
the items already done.
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
from tomoforge.engine.context import Progress, RunAborted, RunContext
from tomoforge.engine.executors import ExecutorConfig
from tomoforge.engine.loop import Batch, Outcome, Policy, run_loop
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
from tomoforge.engine.protocol import Protocol, validate_params
from tomoforge.engine.records import forget_broken_tasks
from tomoforge.engine.registry import get_protocol
from tomoforge.engine.streaming import Streaming
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
        streams = readiness == "stream" or protocol.source_open() or bool(project.output_sets(run_id))
        policy = (Streaming if streams else Batch)(project, context, protocol)
        outcome = run_loop(project, context, protocol, policy, config, progress)
        return _finish(project, context, protocol, policy, outcome)
    except RunAborted:
        return _end(project, context, ABORTED, "aborted by the user", log="aborted")
    except Exception as exc:  # noqa: BLE001 - any failure ends in the failed state, with its traceback
        message = describe_failure(exc)
        return _end(project, context, FAILED, message, log=f"failed: {message}", trace=traceback.format_exc())
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


def _finish(project: Project, context: RunContext, protocol: Protocol, policy: Policy, outcome: Outcome) -> str:
    """End a run whose loop ended: failed (failed tasks, or the policy's problems) or, in one final transaction,
    finished with its outputs written and closed."""
    first = next(iter(outcome.failures.items()), None)
    failed = (
        [f"{len(outcome.failures)} of {outcome.total} items failed; first, {first[0]}: {first[1].error}"]
        if first
        else []
    )
    problems = failed + policy.problems()
    if problems:
        summary = "; ".join(problems)
        trace = first[1].traceback if first else None
        return _end(project, context, FAILED, summary, log=f"failed: {summary}", trace=trace)
    with db.transaction(project.conn):
        if not policy.per_item:  # a batch run's outputs: written here, all at once
            context.create_outputs()
            for task in outcome.tasks:
                protocol.collect(task, outcome.kept[task.key])
        protocol.finish()
        context.close_outputs()
        project.conn.execute(
            "UPDATE runs SET state = ?, finished = ? WHERE id = ?", (FINISHED, time.time(), context.run_id)
        )
    context.log(f"finished: {outcome.total} items; outputs closed")
    return FINISHED


def _end(project: Project, context: RunContext, state: str, error: str, *, log: str, trace: str | None = None) -> str:
    """Mark a run failed or aborted (its outputs as they are), saying why in its log; returns the state."""
    context.log(log)
    project.set_state(context.run_id, state, finished=time.time(), error=error, traceback=trace)
    return state
