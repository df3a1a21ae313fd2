"""A project: a folder with ``project.db`` and one ``runs/NNNN_name/`` folder per run."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tomoforge import __version__
from tomoforge.engine import db
from tomoforge.engine.executors import ExecutorConfig
from tomoforge.engine.filters import FilterError, split_filter
from tomoforge.engine.items import ItemSpec, item_spec
from tomoforge.engine.protocol import InputSpec, Protocol, validate_params
from tomoforge.engine.registry import get_protocol, protocols
from tomoforge.engine.sets import ItemSet
from tomoforge.errors import UserError, quote

DB_NAME = "project.db"

SAVED, SCHEDULED, QUEUED, RUNNING = "saved", "scheduled", "queued", "running"
FINISHED, FAILED, ABORTED = "finished", "failed", "aborted"
ACTIVE = (QUEUED, RUNNING)
STATES = (SAVED, SCHEDULED, QUEUED, RUNNING, FINISHED, FAILED, ABORTED)


class ProjectError(UserError, RuntimeError):
    """An operation the project refuses (the message says why)."""


@dataclass(frozen=True)
class InputPointer:
    """``RUN.OUTPUT`` with an optional filter, e.g. ``3.tilt_series`` and ``not excluded``."""

    run_id: int
    output: str
    filter: str = ""

    @classmethod
    def parse(cls, text: str) -> InputPointer:
        """Read ``RUN.OUTPUT`` or ``RUN.OUTPUT[filter]``; a ``]`` inside a quoted string belongs to the filter.

        The filter's grammar is checked later, against the output's item class (``Project.new_run``).
        """
        match = re.match(r"\s*(\d+)\.([A-Za-z_][A-Za-z0-9_]*)\s*", text)
        rest = text[match.end() :] if match else ""
        if not match or (rest and not rest.startswith("[")):
            raise ProjectError(f"input {quote(text)}: expected RUN.OUTPUT or RUN.OUTPUT[filter], e.g. 3.tilt_series")
        if not rest:
            return cls(int(match.group(1)), match.group(2))
        end = _closing_bracket(rest)
        if end < 0:
            still_open = " (a quoted string in it is still open)" if rest.count("'") % 2 else ""
            raise ProjectError(f"input {quote(text)}: the filter's '[' is never closed by ']'{still_open}")
        if rest[end + 1 :].strip():
            raise ProjectError(
                f"input {quote(text)}: unexpected {quote(rest[end + 1 :].strip())} after the filter's closing ']'"
            )
        return cls(int(match.group(1)), match.group(2), rest[1:end].strip())

    def __str__(self) -> str:
        return f"{self.run_id}.{self.output}" + (f"[{self.filter}]" if self.filter else "")


class Project:
    """Open with ``Project.open(path)`` or make one with ``Project.create(path)``."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.conn: sqlite3.Connection = db.connect(self.root / DB_NAME)

    # --- opening ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path | str) -> Project:
        root = Path(path)
        if (root / DB_NAME).exists():
            raise ProjectError(f"{root}: a project already exists here")
        if root.exists() and any(root.iterdir()):
            raise ProjectError(f"{root}: folder is not empty; choose a new or empty folder")
        (root / "runs").mkdir(parents=True, exist_ok=True)
        project = cls(root)
        with db.transaction(project.conn):
            project.conn.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (str(time.time()),))
            project.conn.execute("INSERT OR REPLACE INTO meta VALUES ('created_with', ?)", (__version__,))
        return project

    @classmethod
    def open(cls, path: Path | str) -> Project:
        root = Path(path)
        if not (root / DB_NAME).is_file():
            raise ProjectError(
                f"{root}: not a tomoforge project (no {DB_NAME}); create one with 'tomoforge project new'"
            )
        return cls(root)

    def close(self) -> None:
        self.conn.close()

    # --- paths ------------------------------------------------------------------------------
    def relative(self, path: Path | str) -> str:
        path = Path(path).absolute()
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def absolute(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def run_dir(self, run_id: int) -> Path:
        row = self.run(run_id)
        return self.root / "runs" / (row["folder"] or run_folder_name(run_id, get_protocol_label(row["protocol"])))

    # --- runs -------------------------------------------------------------------------------
    def new_run(
        self,
        protocol: str,
        params: dict[str, Any] | None = None,
        inputs: Mapping[str, str | InputPointer] | None = None,
        label: str = "",
        comment: str = "",
        executor: ExecutorConfig | None = None,
    ) -> int:
        """Save a new run (state ``saved``) after checking its params and inputs."""
        cls = get_protocol(protocol)
        checked = validate_params(cls, params or {})
        pointers = self._check_inputs(cls, inputs or {})
        executor = executor or ExecutorConfig()
        with db.transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO runs (protocol, label, comment, state, params, executor, software_version, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cls.name,
                    label,
                    comment,
                    SAVED,
                    checked.model_dump_json(),
                    executor.model_dump_json(),
                    __version__,
                    time.time(),
                ),
            )
            run_id = cast(int, cursor.lastrowid)  # set by the INSERT just made
            self.conn.execute("UPDATE runs SET folder = ? WHERE id = ?", (run_folder_name(run_id, cls.label), run_id))
            for name, pointer in pointers.items():
                self.conn.execute(
                    "INSERT INTO run_inputs (run_id, name, source_run_id, source_output, filter) VALUES (?, ?, ?, ?, ?)",
                    (run_id, name, pointer.run_id, pointer.output, pointer.filter),
                )
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def _check_inputs(self, cls: type[Protocol], inputs: Mapping[str, str | InputPointer]) -> dict[str, InputPointer]:
        unknown = set(inputs) - set(cls.inputs)
        if unknown:
            raise ProjectError(
                f"{cls.name}: unknown input(s) {', '.join(sorted(unknown))}; it takes: {', '.join(cls.inputs) or 'none'}"
            )
        pointers = {}
        for name, spec in cls.inputs.items():
            if name not in inputs:
                if not spec.optional:
                    raise ProjectError(f"{cls.name}: input '{name}' is required ({spec.help})")
                continue
            value = inputs[name]
            pointer = value if isinstance(value, InputPointer) else InputPointer.parse(value)
            if not pointer.filter and spec.default_filter:
                pointer = InputPointer(pointer.run_id, pointer.output, spec.default_filter)
            self.run(pointer.run_id)  # exists?
            produced = dict(self._declared_outputs(pointer.run_id))
            if pointer.output not in produced:
                raise ProjectError(
                    f"input '{name}': run {pointer.run_id} has no output '{pointer.output}' "
                    f"(it has: {', '.join(produced) or 'none'})"
                )
            if not spec.accepts(produced[pointer.output]):
                raise ProjectError(
                    f"input '{name}': {pointer} holds {produced[pointer.output].__name__}; {cls.name} needs "
                    f"{spec.describe()} here{_makers_hint(produced[pointer.output], spec)}"
                )
            if pointer.filter:  # validate against the item class now, not at run time
                try:
                    split_filter(item_spec(produced[pointer.output]), pointer.filter)
                except FilterError as exc:
                    raise exc.within(f"input '{name}'") from None
            pointers[name] = pointer
        return pointers

    def _declared_outputs(self, run_id: int) -> dict[str, type]:
        return self.output_classes(run_id)

    def output_classes(self, run_id: int) -> dict[str, type]:
        """The item class of each output of a run: as its protocol declares, or for an output declared
        ``outputs_like`` an input, that input's (when a subclass of the declared class)."""
        cls = get_protocol(self.run(run_id)["protocol"])
        classes: dict[str, type] = dict(cls.outputs)
        pointers = self.run_inputs(run_id) if cls.outputs_like else {}
        for output, source in cls.outputs_like.items():
            if source in pointers and output in classes:
                pointer = pointers[source]
                held = self.output_classes(pointer.run_id).get(pointer.output)
                if held is not None and issubclass(held, classes[output]):
                    classes[output] = held
        return classes

    def run(self, run_id: int) -> sqlite3.Row:
        if not 0 <= int(run_id) < 2**63:
            raise ProjectError(f"no run {run_id} in {self.root}")
        row: sqlite3.Row | None = self.conn.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise ProjectError(f"no run {run_id} in {self.root}")
        return row

    def runs(self) -> list[sqlite3.Row]:
        for row in self.conn.execute("SELECT id FROM runs WHERE state IN (?, ?)", ACTIVE).fetchall():
            self.refresh_state(row[0])
        rows: list[sqlite3.Row] = self.conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
        return rows

    def run_inputs(self, run_id: int) -> dict[str, InputPointer]:
        rows = self.conn.execute("SELECT * FROM run_inputs WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
        return {r["name"]: InputPointer(r["source_run_id"], r["source_output"], r["filter"]) for r in rows}

    def run_params(self, run_id: int) -> dict[str, Any]:
        params: dict[str, Any] = json.loads(self.run(run_id)["params"])
        return params

    def consumers(self, run_id: int) -> list[int]:
        rows = self.conn.execute(
            "SELECT DISTINCT run_id FROM run_inputs WHERE source_run_id = ? ORDER BY run_id", (run_id,)
        ).fetchall()
        return [r[0] for r in rows]

    def set_state(self, run_id: int, state: str, **fields: Any) -> None:
        assert state in STATES, state
        names = ", ".join(["state = ?", *[f"{k} = ?" for k in fields]])
        with db.transaction(self.conn):
            self.conn.execute(f"UPDATE runs SET {names} WHERE id = ?", (state, *fields.values(), run_id))

    def refresh_state(self, run_id: int) -> str:
        """Mark a queued/running run whose process is gone as failed (it was killed)."""
        row = self.run(run_id)
        if row["state"] in ACTIVE and row["pid"] and row["host"] == socket.gethostname() and not _alive(row["pid"]):
            self.set_state(
                run_id,
                FAILED,
                finished=time.time(),
                error=f"the run's process (pid {row['pid']}) is gone: it was killed or crashed",
            )
            return FAILED
        state: str = row["state"]
        return state

    def schedule(self, run_id: int) -> None:
        state = self.refresh_state(run_id)
        if state not in (SAVED, FAILED, ABORTED):
            raise ProjectError(f"run {run_id} is {state}; only saved, failed or aborted runs can be scheduled")
        self.set_state(run_id, SCHEDULED)

    def input_readiness(self, run_id: int) -> tuple[str, str]:
        """('ready' | 'stream' | 'waiting' | 'blocked', why) for starting ``run_id`` now.

        'ready': every input's run finished. 'stream': the others finished and at least one is running
        with its output set open, and this protocol can stream (it starts and follows that set).
        'blocked': an input's run failed or was aborted. 'waiting': otherwise.
        """
        can_stream = get_protocol(self.run(run_id)["protocol"]).can_stream()
        streaming = False
        for name, pointer in self.run_inputs(run_id).items():
            state = self.refresh_state(pointer.run_id)
            why = f"input '{name}' comes from run {pointer.run_id}, which is {state}"
            if state in (FAILED, ABORTED):
                return "blocked", why
            if state == FINISHED:
                continue
            if state == RUNNING and can_stream and self.set_is_open(pointer.run_id, pointer.output):
                streaming = True
                continue
            return "waiting", why
        return ("stream" if streaming else "ready"), ""

    def set_is_open(self, run_id: int, name: str) -> bool:
        row = self.conn.execute(
            "SELECT stream_state FROM sets WHERE run_id = ? AND name = ?", (run_id, name)
        ).fetchone()
        return row is not None and row[0] == "open"

    def set_label(self, run_id: int, label: str | None = None, comment: str | None = None) -> None:
        self.run(run_id)
        with db.transaction(self.conn):
            if label is not None:
                self.conn.execute("UPDATE runs SET label = ? WHERE id = ?", (label, run_id))
            if comment is not None:
                self.conn.execute("UPDATE runs SET comment = ? WHERE id = ?", (comment, run_id))

    def duplicate(self, run_id: int, label: str = "") -> int:
        """A new saved run with the same protocol, params, inputs and executor."""
        row = self.run(run_id)
        return self.new_run(
            row["protocol"],
            json.loads(row["params"]),
            dict(self.run_inputs(run_id)),
            label=label or (f"{row['label']} (copy)" if row["label"] else ""),
            executor=ExecutorConfig.model_validate_json(row["executor"]),
        )

    def request_abort(self, run_id: int) -> str:
        """Ask a running run to stop; a run that is not running is marked aborted at once."""
        state = self.refresh_state(run_id)
        if state == RUNNING:
            with db.transaction(self.conn):
                self.conn.execute("UPDATE runs SET abort_requested = 1 WHERE id = ?", (run_id,))
            return "requested"
        if state in (SCHEDULED, QUEUED):
            self.set_state(run_id, ABORTED, finished=time.time(), error="aborted before it ran")
            return ABORTED
        raise ProjectError(f"run {run_id} is {state}: nothing to abort")

    def request_stop(self, run_id: int) -> None:
        """Ask a streaming run to take no new item, finish those under way and close its outputs."""
        state = self.refresh_state(run_id)
        if state != RUNNING:
            raise ProjectError(f"run {run_id} is {state}: only a running streaming run can be stopped")
        if not any(not s.is_closed for s in self.output_sets(run_id)):
            raise ProjectError(f"run {run_id} is not streaming (no open output): use 'abort' to stop it")
        with db.transaction(self.conn):
            self.conn.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))

    def _refuse_if_used(self, run_id: int, action: str) -> None:
        users = self.consumers(run_id)
        if users:
            raise ProjectError(
                f"cannot {action} run {run_id}: its outputs are used by run(s) {', '.join(map(str, users))}"
            )

    def reset(self, run_id: int) -> None:
        """Clear a run's outputs, task records and files; keep its params (state ``saved``)."""
        state = self.refresh_state(run_id)
        if state in ACTIVE:
            raise ProjectError(f"run {run_id} is {state}; abort it first")
        self._refuse_if_used(run_id, "reset")
        with db.transaction(self.conn):
            self.drop_outputs(run_id)
            self.conn.execute("DELETE FROM run_tasks WHERE run_id = ?", (run_id,))
            self.conn.execute(
                "UPDATE runs SET state = ?, started = NULL, finished = NULL, pid = NULL, error = NULL,"
                " traceback = NULL, abort_requested = 0, stop_requested = 0 WHERE id = ?",
                (SAVED, run_id),
            )
        run_dir = self.run_dir(run_id)
        for sub in ("out", "tmp", "tasks"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)

    def delete(self, run_id: int) -> None:
        """Remove a run, its outputs and its folder; refused while other runs use its outputs."""
        state = self.refresh_state(run_id)
        if state in ACTIVE:
            raise ProjectError(f"run {run_id} is {state}; abort it first")
        self._refuse_if_used(run_id, "delete")
        run_dir = self.run_dir(run_id)
        with db.transaction(self.conn):
            self.drop_outputs(run_id)
            self.conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(run_dir, ignore_errors=True)

    def drop_outputs(self, run_id: int) -> None:
        """Remove a run's output sets and their items (inside the caller's transaction)."""
        for row in self.conn.execute("SELECT * FROM sets WHERE run_id = ?", (run_id,)).fetchall():
            spec: ItemSpec | None = ItemSet(self.conn, row).spec
            while spec is not None:
                self.conn.execute(f"DELETE FROM {spec.table} WHERE set_id = ?", (row["id"],))
                spec = spec.child
        self.conn.execute("DELETE FROM sets WHERE run_id = ?", (run_id,))

    # --- sets -------------------------------------------------------------------------------
    def output_set(self, run_id: int, name: str, filter: str = "") -> ItemSet:
        """A run's output set, optionally seen through a filter."""
        row = self.conn.execute("SELECT * FROM sets WHERE run_id = ? AND name = ?", (run_id, name)).fetchone()
        if row is None:
            state = self.run(run_id)["state"]
            raise ProjectError(f"run {run_id} has no output '{name}' yet (it is {state})")
        return ItemSet(self.conn, row, filter)

    def output_sets(self, run_id: int) -> list[ItemSet]:
        rows = self.conn.execute("SELECT * FROM sets WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        return [ItemSet(self.conn, r) for r in rows]

    def resolve(self, address: str) -> tuple[ItemSet, Any, Any]:
        """``RUN.OUTPUT/KEY[/CHILD]`` -> (set, item, child or None)."""
        match = re.fullmatch(r"(\d+)\.([A-Za-z_][A-Za-z0-9_]*)/([^/]+)(?:/([^/]+))?", address.strip())
        if not match:
            raise ProjectError(
                f"item {address!r}: expected RUN.OUTPUT/KEY or RUN.OUTPUT/KEY/CHILD, e.g. 1.tilt_series/TS_01/3"
            )
        run_id, name, key, child_key = int(match.group(1)), match.group(2), match.group(3), match.group(4)
        item_set = self.output_set(run_id, name)
        try:
            item = item_set.get(key)
        except KeyError as exc:
            raise ProjectError(str(exc.args[0])) from None
        child = None
        if child_key is not None:
            spec = item_set.spec
            if spec.children_field is None:
                raise ProjectError(f"{run_id}.{name} items have no children")
            children = {str(getattr(c, spec.child.key_field)): c for c in getattr(item, spec.children_field)}  # type: ignore[union-attr]
            if child_key not in children:
                raise ProjectError(f"{run_id}.{name}/{key} has no child {child_key!r} (keys: {', '.join(children)})")
            child = children[child_key]
        return item_set, item, child


def _makers_hint(have: type, spec: InputSpec) -> str:
    """'; motion-correction makes TiltSeries from TiltSeriesMovie': the steps that turn what an input holds
    into what is needed (or, failing that, any step that makes it)."""
    makers = [p for p in protocols().values() if any(spec.accepts(c) for c in p.outputs.values())]
    converters = [p.name for p in makers if any(i.accepts(have) for i in p.inputs.values())]
    if converters:
        return f"; {' or '.join(converters)} makes {spec.describe()} from {have.__name__}"
    if makers:
        return f"; it is made by {', '.join(p.name for p in makers[:5])}"
    return ""


def run_folder_name(run_id: int, label: str) -> str:
    """``0007_motion_correction``: the run number and the protocol's label."""
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return f"{run_id:04d}_{slug}"


def _closing_bracket(text: str) -> int:
    """Index of the ``]`` closing the ``[`` at ``text[0]``, skipping quoted strings ('' included); -1 if none."""
    quoted = False
    for i, ch in enumerate(text[1:], start=1):
        if ch == "'":
            quoted = not quoted  # '' inside a string closes and reopens it: the same as staying inside
        elif ch == "]" and not quoted:
            return i
    return -1


def get_protocol_label(name: str) -> str:
    try:
        return get_protocol(name).label
    except KeyError:
        return name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is gone for our purposes
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True
