"""What a run's protocol sees of its run (``RunContext``), and the signals a run loop obeys.

A leaf of the engine's run machinery: the run loop, its policies and the protocols import it; it
imports none of them. A protocol adds items with ``output(name)``; the run loop creates, re-opens
and closes the outputs with ``create_outputs``, ``reopen_outputs`` and ``close_outputs``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tomoforge.engine import db
from tomoforge.engine.project import Project, ProjectError
from tomoforge.engine.protocol import Protocol
from tomoforge.engine.sets import OPEN, ItemSet
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

    # --- outputs: the protocol adds items through ``output(name)``; the run loop opens, creates and closes them
    def output(self, name: str) -> ItemSet:
        """The output set ``name`` of this run, created (open) on first use."""
        if name not in self._outputs:
            cls = self._protocol()
            if name not in cls.outputs:
                raise ProjectError(f"{cls.name} declares no output '{name}'")
            item_class = self.project.output_classes(self.run_id)[name]
            self._outputs[name] = ItemSet.create(self.project.conn, self.run_id, name, item_class)
        return self._outputs[name]

    def create_outputs(self) -> None:
        """Create every declared output, empty, in place of any set an earlier attempt left (in one transaction,
        the caller's if one is open)."""
        with db.transaction(self.project.conn):
            self.project.drop_outputs(self.run_id)
            self._outputs.clear()
            for name in self._protocol().outputs:
                self.output(name)

    def reopen_outputs(self) -> bool:
        """Open every declared output for a streaming run: a set an earlier attempt made is re-opened with its
        items, a missing one created; returns whether any set existed (in one transaction)."""
        existing = {s.name: s for s in self.project.output_sets(self.run_id)}
        with db.transaction(self.project.conn):
            for name in self._protocol().outputs:
                if name in existing:
                    self._outputs[name] = existing[name]
                    self.project.conn.execute(
                        "UPDATE sets SET stream_state = ? WHERE id = ?", (OPEN, existing[name].id)
                    )
                else:
                    self.output(name)
        return bool(existing)

    def close_outputs(self) -> None:
        """Close every output this run has (final: no item will be added)."""
        for item_set in self._outputs.values():
            item_set.close()

    def _protocol(self) -> type[Protocol]:
        if self.protocol_cls is None:
            raise ProjectError(f"run {self.run_id}: this context has no protocol, so no outputs")
        return self.protocol_cls


def abort_requested(project: Project, run_id: int) -> bool:
    """Whether ``tomoforge abort`` asked the run to end now."""
    return bool(project.conn.execute("SELECT abort_requested FROM runs WHERE id = ?", (run_id,)).fetchone()[0])


def stop_requested(project: Project, run_id: int) -> bool:
    """Whether ``tomoforge stop`` asked a streaming run to take no new item."""
    return bool(project.conn.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
