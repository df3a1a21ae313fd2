"""Streaming runs: items are processed as they appear and committed one by one.

A run streams when an input set is open (its producer is still running), when its protocol is a
source (``source_open()``: e.g. an import watching an acquisition folder), or when an earlier
attempt of it streamed (its output sets exist already). It then differs from a batch run in two ways:

- ``tasks()`` is called again whenever an input set grows (and every poll for a source); only tasks
  with keys not seen before are submitted. A protocol with ``streaming = None`` streams only if each
  task's origin is one item of its single input; otherwise it waits for the input to close.
- Outputs are created open at the start, and each finished task is recorded in ``run_tasks`` *and*
  collected into the outputs in one small transaction. This is the one exception to "a run's outputs
  are written in one final transaction": what a consumer downstream has already seen stays valid.
  A killed or aborted run keeps the items collected so far (all with their task record, so
  ``continue`` skips them and never duplicates one) and leaves its outputs open.

The run stops taking new tasks when every input is closed and its source (if any) is closed, when
``tomoforge stop`` asks (``stop_requested``), or when an input's producer failed or was aborted with
its set still open (then the run ends failed once the tasks under way are done). When no task is
left, one final transaction calls ``finish()``, closes the outputs and marks the run finished.
"""

from __future__ import annotations

import time
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
from tomoforge.engine.project import FAILED, FINISHED, RUNNING, Project
from tomoforge.engine.protocol import Protocol, Task, check_task_keys
from tomoforge.engine.records import done_results, record_task


class _Inputs:
    """The run's input sets: their fingerprint (to notice growth), closure and stalled producers."""

    def __init__(self, project: Project, context: RunContext):
        self.project, self.context = project, context
        self.pointers = project.run_inputs(context.run_id)

    def fingerprint(self) -> tuple[tuple[int, str, int, str], ...]:
        sets = [self.context.input(name) for name in self.pointers]
        return tuple((s.run_id, s.name, len(s), s.stream_state) for s in sets)

    def all_closed(self) -> bool:
        return all(self.context.input(name).is_closed for name in self.pointers)

    def stalled(self) -> list[str]:
        """Open inputs whose producer is no longer running (failed, aborted, killed)."""
        out = []
        for name, pointer in self.pointers.items():
            state = self.project.refresh_state(pointer.run_id)  # before the set: it closes as the run ends
            if state != RUNNING and not self.context.input(name).is_closed:
                out.append(
                    f"input '{name}' comes from run {pointer.run_id}, which is {state} with its set still"
                    f" open: continue run {pointer.run_id}, then continue this run"
                )
        return out

    def per_item(self, task: Task[Any]) -> bool:
        """Whether a task works on exactly one item of the (single) input."""
        prefixes = tuple(f"{p.run_id}.{p.output}/" for p in self.pointers.values())
        return len(task.origin) == 1 and task.origin[0].startswith(prefixes)


def run_streaming(
    project: Project, context: RunContext, protocol: Protocol, config: ExecutorConfig, progress: Progress | None
) -> str:
    """Execute a streaming run to its end; returns FINISHED or FAILED (raises RunAborted on abort)."""
    run_id, cls = context.run_id, type(protocol)
    uncollected = _open_outputs(project, context, protocol)
    done = done_results(project, run_id, None)
    inputs = _Inputs(project, context)
    seen: set[str] = set(done) - set(uncollected)
    failures: dict[str, TaskFailure] = {}
    handles: dict[Any, Task[Any]] = {}
    known, finished_now, start = len(seen), 0, time.time()
    accepting, stalled, waited_logged = True, [], False
    fingerprint: tuple[tuple[int, str, int, str], ...] | None = None
    next_scan = 0.0
    context.log(f"streaming on {config.kind} executor ({config.workers} workers); {len(seen)} items already done")
    executor = make_executor(config)
    cancel = True
    try:
        while True:
            if accepting and time.time() >= next_scan:
                next_scan = time.time() + POLL_S
                closed = inputs.all_closed()  # read before the items: a closed set is then seen whole
                source_open = protocol.source_open()
                stalled = inputs.stalled()
                current = inputs.fingerprint()
                if source_open or current != fingerprint or closed:
                    fingerprint = current
                    new = list(_new_tasks(protocol, seen))
                    if cls.streaming is None and not closed and not all(inputs.per_item(t) for t in new):
                        if not waited_logged:
                            context.log(f"{cls.name}: tasks are not one per input item: waiting for the input to close")
                            waited_logged = True
                        new, fingerprint = [], None
                    for task in new:
                        seen.add(task.key)
                        if task.key in uncollected:  # done by an earlier batch attempt: collect it now
                            _commit(project, context, protocol, task, uncollected.pop(task.key), start)
                            continue
                        handles[executor.submit(task.fn, (task.job,), {})] = task
                        known += 1
                reason = _end_reason(project, run_id, closed, source_open, stalled, bool(cls.inputs))
                if reason:
                    accepting = False
                    context.log(f"stream ended ({reason}); {len(handles)} items still under way")
                    protocol.stream_ended(reason)
            if handles:
                finished, _ = executor.wait(set(handles), POLL_S)
                for handle in sorted(finished, key=list(handles).index):
                    task = handles.pop(handle)
                    result = executor.result(handle)
                    _commit(project, context, protocol, task, result, start)
                    finished_now += 1
                    done_total = len(done) - len(uncollected) + finished_now
                    if isinstance(result, TaskFailure):
                        failures[task.key] = result
                        context.log(f"[{done_total}/{known}] {task.key} FAILED: {result.error}")
                    else:
                        context.log(f"[{done_total}/{known}] {task.key} done ({time.time() - start:.1f} s)")
                    if progress:
                        progress(done_total, known, task.key)
            elif not accepting:
                break
            else:
                time.sleep(max(0.0, min(POLL_S, next_scan - time.time())))
            if abort_requested(project, run_id):
                raise RunAborted()
        cancel = False
    finally:
        executor.shutdown(cancel=cancel)
    problems = [
        f"{len(failures)} of {len(seen)} items failed; first, {k}: {f.error}" for k, f in list(failures.items())[:1]
    ]
    if problems or stalled:
        summary = "; ".join(problems + stalled)
        context.log(f"failed: {summary}")
        first = next(iter(failures.values()), None)
        project.set_state(
            run_id, FAILED, finished=time.time(), error=summary, traceback=first.traceback if first else None
        )
        return FAILED
    with db.transaction(project.conn):
        protocol.finish()
        for output in context.open_outputs():
            output.close()
        project.conn.execute("UPDATE runs SET state = ?, finished = ? WHERE id = ?", (FINISHED, time.time(), run_id))
    context.log(f"finished: {len(seen)} items; outputs closed")
    return FINISHED


def _new_tasks(protocol: Protocol, seen: set[str]) -> list[Task[Any]]:
    tasks = list(protocol.tasks())
    check_task_keys(protocol.name, tasks)
    return [task for task in tasks if task.key not in seen]


def _end_reason(
    project: Project, run_id: int, closed: bool, source_open: bool, stalled: list[str], has_inputs: bool
) -> str:
    if project.conn.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()[0]:
        return "stop requested"
    if stalled:
        return "an input's producer stopped"
    if closed and not source_open:
        return "inputs closed" if has_inputs else "source closed"
    return ""


def _open_outputs(project: Project, context: RunContext, protocol: Protocol) -> dict[str, Any]:
    """Create (or re-open) the output sets; returns done results not yet collected (batch leftovers)."""
    existing = {s.name: s for s in project.output_sets(context.run_id)}
    with db.transaction(project.conn):
        for name in type(protocol).outputs:
            if name in existing:
                context.adopt_output(existing[name])
                project.conn.execute("UPDATE sets SET stream_state = 'open' WHERE id = ?", (existing[name].id,))
            else:
                context.output(name)
    # With existing sets every done task was collected with its record; without, none was.
    return {} if existing else done_results(project, context.run_id, None)


def _commit(
    project: Project, context: RunContext, protocol: Protocol, task: Task[Any], result: Any, start: float
) -> None:
    """Record a finished task and collect its items in one transaction (the streaming exception)."""
    with db.transaction(project.conn):
        record_task(project, context.run_id, task.key, result, start)
        if not isinstance(result, TaskFailure):
            protocol.collect(task, result)
