"""The scheduler: runs scheduled runs once the runs they depend on have finished."""
from __future__ import annotations

import time
from typing import Callable

from tomoforge.engine.project import (
    ABORTED, FAILED, FINISHED, QUEUED, SCHEDULED, Project,
)
from tomoforge.engine.runner import execute_run

Report = Callable[[int, str], None]


def ready_state(project: Project, run_id: int) -> str:
    """'ready' when every input's run finished, 'blocked' when one failed/aborted, else 'waiting'."""
    states = [project.refresh_state(p.run_id) for p in project.run_inputs(run_id).values()]
    if any(s in (FAILED, ABORTED) for s in states):
        return "blocked"
    return "ready" if all(s == FINISHED for s in states) else "waiting"


def run_scheduled(project: Project, report: Report | None = None, poll_s: float = 2.0,
                  wait: bool = False) -> dict[int, str]:
    """Execute scheduled runs in dependency order; returns run id -> final state.

    A run whose input failed is marked failed (naming the input) rather than left waiting forever.
    Without ``wait`` it returns when no scheduled run is ready; with it, it keeps polling while
    scheduled runs wait for inputs that other processes are still producing.
    """
    outcome: dict[int, str] = {}
    while True:
        scheduled = [r["id"] for r in project.runs() if r["state"] == SCHEDULED]
        progressed = False
        for run_id in scheduled:
            readiness = ready_state(project, run_id)
            if readiness == "blocked":
                project.set_state(run_id, FAILED, finished=time.time(),
                                  error="an input run failed or was aborted; fix it, then schedule this run again")
                outcome[run_id] = FAILED
            elif readiness == "ready":
                project.set_state(run_id, QUEUED)
                outcome[run_id] = execute_run(project, run_id, "run")
            else:
                continue
            progressed = True
            if report:
                report(run_id, outcome[run_id])
        if not progressed:
            if not wait or not scheduled:
                return outcome
            time.sleep(poll_s)
