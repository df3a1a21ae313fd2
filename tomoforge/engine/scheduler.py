"""The scheduler: runs scheduled runs once the runs they depend on have finished, or streams them.

Each started run executes in a thread of this process with its own database connection. Batch runs
go one at a time (in dependency order), as before; a run that can stream starts as soon as its
inputs' producers are running with their sets open (``Project.input_readiness`` says 'stream'), so
an import watching an acquisition, motion correction and a dose filter can all run at once. A run
whose outputs are open (it streams) does not hold back the next batch run.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tomoforge.engine.project import FAILED, QUEUED, SCHEDULED, Project, ProjectError
from tomoforge.engine.runner import execute_run

Report = Callable[[int, str], None]


def ready_state(project: Project, run_id: int) -> str:
    """'ready' (every input finished), 'stream' (inputs streaming), 'blocked' (an input failed) or 'waiting'."""
    return project.input_readiness(run_id)[0]


def _execute(root: Path, run_id: int, results: dict[int, str]) -> None:
    project = Project.open(root)
    try:
        results[run_id] = execute_run(project, run_id, "run")
    except Exception as exc:  # noqa: BLE001 - e.g. an input went away between the check and the start
        project.set_state(run_id, FAILED, finished=time.time(), error=f"{type(exc).__name__}: {exc}")
        results[run_id] = FAILED
    finally:
        project.close()


def _streams(project: Project, run_id: int) -> bool:
    """A running run with an open output streams: it does not hold the batch slot."""
    return any(not s.is_closed for s in project.output_sets(run_id))


def run_scheduled(
    project: Project, report: Report | None = None, poll_s: float = 2.0, wait: bool = False
) -> dict[int, str]:
    """Execute scheduled runs in dependency order, streaming ones concurrently; returns run id -> final state.

    A run whose input failed is marked failed (naming the input) rather than left waiting forever.
    Without ``wait`` it returns when no scheduled run can start and none is running; with it, it keeps
    polling while scheduled runs wait for inputs that other processes are still producing. SIGTERM
    asks the runs under way to abort and starts no new one.
    """
    outcome: dict[int, str] = {}
    results: dict[int, str] = {}
    threads: dict[int, threading.Thread] = {}
    stopping: list[bool] = []
    previous = _on_sigterm(lambda *_: stopping.append(True))
    try:
        while True:
            for run_id, thread in list(threads.items()):
                if not thread.is_alive():
                    thread.join()
                    outcome[run_id] = results.pop(run_id, FAILED)
                    del threads[run_id]
                    if report:
                        report(run_id, outcome[run_id])
            if stopping:
                for run_id in threads:
                    try:
                        project.request_abort(run_id)
                    except ProjectError:
                        pass
                if not threads:
                    return outcome
                time.sleep(0.1)
                continue
            scheduled = [r["id"] for r in project.runs() if r["state"] == SCHEDULED]
            progressed = False
            for run_id in scheduled:
                readiness = ready_state(project, run_id)
                if readiness == "blocked":
                    project.set_state(
                        run_id,
                        FAILED,
                        finished=time.time(),
                        error="an input run failed or was aborted; fix it, then schedule this run again",
                    )
                    outcome[run_id] = FAILED
                    if report:
                        report(run_id, FAILED)
                elif readiness == "stream" or (readiness == "ready" and all(_streams(project, r) for r in threads)):
                    project.set_state(run_id, QUEUED)
                    threads[run_id] = threading.Thread(
                        target=_execute, args=(project.root, run_id, results), name=f"run-{run_id}"
                    )
                    threads[run_id].start()
                else:
                    continue
                progressed = True
            if not progressed:
                if not threads and (not wait or not scheduled):
                    return outcome
                time.sleep(min(poll_s, 0.2) if threads else poll_s)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_sigterm(handler: Callable[..., Any]) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)
