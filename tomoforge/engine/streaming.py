"""Streaming runs: items are processed as they appear and committed one by one.

A streaming run goes through the same run loop as a batch run (``engine.loop``); what differs is
its policy, ``Streaming``. A run streams when an input set is open (its producer is still running),
when its protocol is a source (``source_open()``: e.g. an import watching an acquisition folder), or
when an earlier attempt of it streamed (its output sets exist already). Its policy then differs from
a batch run's in three ways:

- ``tasks()`` is asked again whenever an input set grows (and every poll for a source); only tasks
  with keys not seen before are submitted. A protocol with ``streaming = None`` streams only if each
  task's origin is one item of its single input; otherwise it waits for the input to close.
- Outputs are opened at the start (re-opened with their items after a stop or a kill), and each
  finished task is recorded in ``run_tasks`` *and* collected into the outputs in one small
  transaction (``per_item``). This is the one exception to "a run's outputs are written in one final
  transaction": what a consumer downstream has already seen stays valid. A killed or aborted run
  keeps the items collected so far (all with their task record, so ``continue`` skips them and never
  duplicates one) and leaves its outputs open.
- It ends when it takes no new task and none is under way (below), not after one ``tasks()``.

The run stops taking new tasks when every input is closed and its source (if any) is closed, when
``tomoforge stop`` asks (``stop_requested``), or when an input's producer failed or was aborted with
its set still open (then the run ends failed once the tasks under way are done). When no task is
left, the run ends as a batch run does (``runner``): one final transaction calls ``finish()``, closes
the outputs and marks the run finished, or the run is marked failed, its committed items kept.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tomoforge.engine.context import POLL_S, RunContext, stop_requested
from tomoforge.engine.loop import Policy, new_tasks
from tomoforge.engine.project import RUNNING, Project
from tomoforge.engine.protocol import Protocol, Task


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


class Streaming(Policy):
    """The policy of a streaming run in the run loop (``engine.loop``): see the module docstring."""

    kind = "streaming"
    per_item = True

    def __init__(self, project: Project, context: RunContext, protocol: Protocol):
        super().__init__(project, context, protocol)
        self.inputs = _Inputs(project, context)
        self.fingerprint: tuple[tuple[int, str, int, str], ...] | None = None
        self.next_scan = 0.0
        self.stalled: list[str] = []
        self.reason = ""
        self.waited_logged = False

    def start(self, done: Mapping[str, Any]) -> set[str]:
        """Open the outputs; with sets from an earlier attempt, every done task's items are in them already
        (each was collected with its record); without, none are (an earlier batch attempt)."""
        return set(done) if self.context.reopen_outputs() else set()

    def poll(self, seen: set[str]) -> list[Task[Any]]:
        if time.time() < self.next_scan:
            return []
        self.next_scan = time.time() + POLL_S
        cls = type(self.protocol)
        closed = self.inputs.all_closed()  # read before the items: a closed set is then seen whole
        source_open = self.protocol.source_open()
        self.stalled = self.inputs.stalled()
        current = self.inputs.fingerprint()
        new: list[Task[Any]] = []
        if source_open or current != self.fingerprint or closed:
            self.fingerprint = current
            new = new_tasks(self.protocol, seen)
            if cls.streaming is None and not closed and not all(self.inputs.per_item(t) for t in new):
                if not self.waited_logged:
                    self.context.log(f"{cls.name}: tasks are not one per input item: waiting for the input to close")
                    self.waited_logged = True
                new, self.fingerprint = [], None
        self.reason = self._end_reason(closed, source_open, bool(cls.inputs))
        self.taking = not self.reason
        return new

    def ended(self, under_way: int) -> None:
        self.context.log(f"stream ended ({self.reason}); {under_way} items still under way")
        self.protocol.stream_ended(self.reason)

    def problems(self) -> list[str]:
        return list(self.stalled)

    def idle_s(self) -> float:
        return max(0.0, min(POLL_S, self.next_scan - time.time()))

    def _end_reason(self, closed: bool, source_open: bool, has_inputs: bool) -> str:
        if stop_requested(self.project, self.context.run_id):
            return "stop requested"
        if self.stalled:
            return "an input's producer stopped"
        if closed and not source_open:
            return "inputs closed" if has_inputs else "source closed"
        return ""
