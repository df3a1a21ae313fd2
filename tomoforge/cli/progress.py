"""A rich progress bar over a run's items."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tomoforge.engine import Project, execute_run


def run_with_progress(project: Project, run_id: int, mode: str, console: Console) -> str:
    """Execute a run showing done/total, elapsed and estimated time left; returns the final state."""
    label = project.run(run_id)["protocol"]
    columns = (
        TextColumn(f"run {run_id} {label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task("", total=None)

        def update(done: int, total: int, key: str) -> None:
            bar.update(task, completed=done, total=total, description=key)
            if not console.is_terminal:
                console.print(f"[{done}/{total}] {key}", highlight=False)

        return execute_run(project, run_id, mode, progress=update)
