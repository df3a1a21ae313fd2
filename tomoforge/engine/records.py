"""Task records: each finished task of a run, stored at once (JSON result, the files it names).

``continue`` reads them to skip what is done, and redoes a task whose files were deleted or changed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tomoforge.engine import db
from tomoforge.engine.context import RunContext
from tomoforge.engine.executors import TaskFailure
from tomoforge.engine.project import Project, ProjectError
from tomoforge.engine.results import (
    ResultError,
    decode_result,
    encode_result,
    files_intact,
    result_files,
)

TASKS_DIR = "tasks"  # numpy arrays of task results, in the run folder


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
            (
                run_id,
                key,
                "failed" if failed else "done",
                text,
                result.error if failed else None,
                started,
                time.time(),
                files,
            ),
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
