"""The run loop: take tasks, submit them, wait, commit each result -- one loop for every kind of run.

What a batch run and a streaming run do differently is their ``Policy``, never a copy of the loop:

- when ``tasks()`` is asked: a batch run asks once; a streaming run (``engine.streaming``) asks again
  whenever an input grows (every poll for a source). Only tasks with keys not seen before are taken,
  each call's tasks checked by ``check_task_keys`` first;
- how a finished task is committed: it is always recorded at once in ``run_tasks`` (``continue`` skips
  it). With ``per_item`` (streaming) its items are collected in the same small transaction; without
  (batch) its result waits for the run's final transaction (``runner``), so a failed or killed batch
  run leaves no half-written output;
- when the loop ends: once the policy takes no new task (a batch run after its one ``tasks()``; a
  streaming run when its inputs or source close, a stop is asked or an input's producer stopped) and
  no task is under way. An abort (``tomoforge abort``, SIGTERM) ends it at once (``RunAborted``).

A task done by an earlier attempt of the run is not submitted again: its recorded result is used
(collected now with ``per_item``, kept for the final transaction otherwise), unless its items are in
the outputs already (a streaming attempt committed them).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tomoforge.engine import db
from tomoforge.engine.context import POLL_S, Progress, RunAborted, RunContext, abort_requested
from tomoforge.engine.executors import Executor, ExecutorConfig, TaskFailure, make_executor
from tomoforge.engine.project import Project
from tomoforge.engine.protocol import Protocol, Task, check_task_keys
from tomoforge.engine.records import done_results, record_task


class Policy:
    """What one kind of run decides in the run loop (see the module docstring): ``Batch``, ``streaming.Streaming``."""

    kind: ClassVar[str]
    per_item: ClassVar[bool]  # collect each task's items with its record, in one small transaction

    def __init__(self, project: Project, context: RunContext, protocol: Protocol):
        self.project, self.context, self.protocol = project, context, protocol
        self.taking = True  # poll may still give new tasks

    def start(self, done: Mapping[str, Any]) -> set[str]:
        """Prepare the outputs; returns the keys, among those ``done`` already, whose items are in them."""
        return set()

    def poll(self, seen: set[str]) -> list[Task[Any]]:
        """The tasks to take now (keys not in ``seen``; see ``new_tasks``); [] when there is nothing new or no
        scan is due. Sets ``taking`` to False once no task will come."""
        raise NotImplementedError

    def ended(self, under_way: int) -> None:
        """Told once, when the policy stops taking tasks (``under_way`` of them are still running)."""

    def problems(self) -> list[str]:
        """Why the run fails even if every task succeeded (e.g. an input whose producer stopped)."""
        return []

    def idle_s(self) -> float:
        """How long to wait, with no task under way, before polling again."""
        return 0.0


class Batch(Policy):
    """A batch run: ``tasks()`` asked once; the results kept for the run's final transaction."""

    kind = "batch"
    per_item = False

    def poll(self, seen: set[str]) -> list[Task[Any]]:
        self.taking = False
        return new_tasks(self.protocol, seen)


def new_tasks(protocol: Protocol, seen: set[str]) -> list[Task[Any]]:
    """The protocol's tasks (refused if two share a key) whose keys are not in ``seen``."""
    tasks = list(protocol.tasks())
    check_task_keys(protocol.name, tasks)
    return [task for task in tasks if task.key not in seen]


@dataclass
class Outcome:
    """What the loop leaves for the run's end."""

    total: int  # tasks taken, with those whose items were in the outputs already
    tasks: list[Task[Any]] = field(default_factory=list)  # the tasks taken, in the order tasks() gave them
    kept: dict[str, Any] = field(default_factory=dict)  # results waiting for the final transaction, by key
    failures: dict[str, TaskFailure] = field(default_factory=dict)  # by key, in the order they failed


def run_loop(
    project: Project,
    context: RunContext,
    protocol: Protocol,
    policy: Policy,
    config: ExecutorConfig,
    progress: Progress | None = None,
) -> Outcome:
    """Run the tasks of a run as its ``policy`` says, committing each as it finishes; raises RunAborted on abort.

    Parameters
    ----------
    project, context, protocol
        The run's project, context and protocol instance.
    policy
        When to take tasks, how to commit them and when to end (``Batch`` or ``streaming.Streaming``).
    config
        The executor; it is started with the first task to submit (not at all when every task is done).
    progress
        Called with (items finished, items known, key) after each task.

    Returns
    -------
    Outcome
        The tasks taken, the results kept for the final transaction (none with ``per_item``) and the failures.
    """
    return _Loop(project, context, protocol, policy, config, progress).run()


class _Loop:
    """The state of one run loop: the tasks seen, those under way, the counts of the progress lines."""

    def __init__(
        self,
        project: Project,
        context: RunContext,
        protocol: Protocol,
        policy: Policy,
        config: ExecutorConfig,
        progress: Progress | None,
    ):
        self.project, self.context, self.protocol, self.policy = project, context, protocol, policy
        self.config, self.progress = config, progress
        self.executor: Executor | None = None  # started with the first task to submit
        self.handles: dict[Any, tuple[int, Task[Any]]] = {}  # the tasks under way, by handle: (order, task)
        self.done = done_results(project, context.run_id, None)  # by earlier attempts
        self.seen = policy.start(self.done)
        self.outcome = Outcome(total=len(self.seen))
        self.finished, self.finished_now, self.submitted = len(self.seen), 0, 0
        self.start = time.time()

    def run(self) -> Outcome:
        policy, config = self.policy, self.config
        self.context.log(
            f"{policy.kind} run on {config.kind} executor ({config.workers} workers)"
            + (f"; {len(self.seen)} items already in its outputs" if self.seen else "")
        )
        cancel = True
        try:
            while True:
                if policy.taking:
                    self._take(policy.poll(self.seen))
                    if not policy.taking:
                        policy.ended(len(self.handles))
                if self.executor is not None and self.handles:
                    ready, _ = self.executor.wait(set(self.handles), POLL_S)
                    for handle in sorted(ready, key=lambda h: self.handles[h][0]):
                        task = self.handles.pop(handle)[1]
                        self._finished(task, self.executor.result(handle))
                elif not policy.taking:
                    break
                else:
                    time.sleep(policy.idle_s())
                if abort_requested(self.project, self.context.run_id):
                    raise RunAborted()
            cancel = False
        finally:
            if self.executor is not None:
                self.executor.shutdown(cancel=cancel)
        return self.outcome

    def _take(self, new: list[Task[Any]]) -> None:
        """Submit new tasks; use the recorded result of those an earlier attempt did."""
        earlier = 0
        for task in new:
            self.seen.add(task.key)
            self.outcome.tasks.append(task)
            if task.key in self.done:
                self._commit(task, self.done[task.key], recorded=True)
                earlier += 1
                continue
            if self.executor is None:
                self.executor = make_executor(self.config)
            self.handles[self.executor.submit(task.fn, (task.job,), {})] = (self.submitted, task)
            self.submitted += 1
        self.outcome.total = len(self.seen)
        self.finished += earlier
        if earlier:
            self.context.log(f"{earlier} of {len(new)} items already done: skipped")

    def _finished(self, task: Task[Any], result: Any) -> None:
        """Commit a task that finished now; log and report it."""
        self._commit(task, result, recorded=False)
        self.finished, self.finished_now = self.finished + 1, self.finished_now + 1
        line = f"[{self.finished}/{self.outcome.total}] {task.key}"
        if isinstance(result, TaskFailure):
            self.context.log(f"{line} FAILED: {result.error}")
        else:
            elapsed = time.time() - self.start
            left = "" if self.policy.taking else f", ~{elapsed / self.finished_now * len(self.handles):.0f} s left"
            self.context.log(f"{line} done ({elapsed:.1f} s{left})")
        if self.progress:
            self.progress(self.finished, self.outcome.total, task.key)

    def _commit(self, task: Task[Any], result: Any, recorded: bool) -> None:
        """Record a task (unless an earlier attempt did) and, with ``per_item``, collect its items in the same
        transaction; otherwise keep its result for the final transaction."""
        failed = isinstance(result, TaskFailure)
        with db.transaction(self.project.conn):
            if not recorded:
                record_task(self.project, self.context.run_id, task.key, result, self.start)
            if self.policy.per_item and not failed:
                self.protocol.collect(task, result)
        if failed:
            self.outcome.failures[task.key] = result
        elif not self.policy.per_item:
            self.outcome.kept[task.key] = result
