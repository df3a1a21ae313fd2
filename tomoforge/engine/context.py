"""What a run's protocol sees of its run (``RunContext``), and the signals a run loop obeys.

A leaf of the engine's run machinery: the runner, the streaming loop and the protocols import it;
it imports neither of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tomoforge.engine.project import Project, ProjectError
from tomoforge.engine.protocol import Protocol
from tomoforge.engine.sets import ItemSet
from tomoforge.io.log import append_log_line

Progress = Callable[[int, int, str], None]  # (done, total, key of the item just finished)
POLL_S = 0.5


class RunAborted(Exception):
    """The user aborted the run (``tomoforge abort`` or SIGTERM)."""


@dataclass
class RunContext:
    """What a protocol sees of its run: params, inputs, output sets, folders and the log."""

    project: Project
    run_id: int
    params: Any
    run_dir: Path
    protocol_cls: type[Protocol] | None = None
    _outputs: dict[str, ItemSet] = field(default_factory=dict)
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
        try:
            append_log_line(self.run_dir / "run.log", message)
        except OSError as exc:
            if not self._log_failed:
                self._log_failed = True
                print(
                    f"tomoforge: cannot write {self.run_dir / 'run.log'} ({exc.strerror}); going on without it",
                    file=sys.stderr,
                )

    def has_input(self, name: str) -> bool:
        return name in self.project.run_inputs(self.run_id)

    def input(self, name: str) -> ItemSet:
        pointers = self.project.run_inputs(self.run_id)
        if name not in pointers:
            raise ProjectError(f"run {self.run_id}: input '{name}' is not set")
        p = pointers[name]
        return self.project.output_set(p.run_id, p.output, p.filter)

    def open_outputs(self) -> list[ItemSet]:
        """The output sets this run has opened so far."""
        return list(self._outputs.values())

    def adopt_output(self, item_set: ItemSet) -> None:
        """Use an existing output set (a streaming run going on after a stop)."""
        self._outputs[item_set.name] = item_set

    def output(self, name: str) -> ItemSet:
        if name not in self._outputs:
            assert self.protocol_cls is not None
            if name not in self.protocol_cls.outputs:
                raise ProjectError(f"{self.protocol_cls.name} declares no output '{name}'")
            self._outputs[name] = ItemSet.create(self.project.conn, self.run_id, name, self.protocol_cls.outputs[name])
        return self._outputs[name]


def abort_requested(project: Project, run_id: int) -> bool:
    return bool(project.conn.execute("SELECT abort_requested FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
