"""What the pages may change: new runs and the CLI's run actions, through the same engine calls.

Nothing here edits an output: a run is created (``Project.new_run``), executed by the CLI's own command in
a process of its own (``tomoforge continue|restart RUN``), or controlled (schedule, reset, stop, abort,
duplicate, delete, label) by the ``Project`` methods the CLI calls, which hold the rules.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from tomoforge.engine import Project
from tomoforge.engine.project import ACTIVE, InputPointer
from tomoforge.engine.protocol import ParamsError, validate_params
from tomoforge.engine.registry import get_protocol
from tomoforge.errors import UserError, describe_error

START_MODES = ("continue", "restart")  # 'run now' of a new (saved) run is 'continue': nothing is done yet
CONTROLS = ("schedule", "reset", "stop", "abort", "duplicate", "delete")
START_WAIT_S = 3.0

Launcher = Callable[[Project, int, str], None]


class FormError(UserError):
    """A new-run form that the engine refuses; ``fields`` holds the message of each offending field."""

    def __init__(self, message: str, fields: dict[str, str]):
        super().__init__(message)
        self.fields = fields


def field_errors(protocol: str, values: dict[str, Any]) -> dict[str, str]:
    """The validation message of each parameter, by name (the same pydantic model ``validate_params`` uses)."""
    try:
        get_protocol(protocol).Params(**values)
    except ValidationError as exc:
        out: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            out.setdefault(name, describe_error(error))
        return out
    return {}


def create_run(project: Project, form: dict[str, Any], launch: Launcher) -> int:
    """Save a run from the new-run form (``protocol``, ``params``, ``inputs``, ``label``, ``comment``, ``start``:
    save | schedule | run), as ``tomoforge run`` does; a refused form raises ``FormError``."""
    protocol = str(form.get("protocol", ""))
    params = dict(form.get("params") or {})
    inputs = {k: str(v) for k, v in (form.get("inputs") or {}).items() if str(v).strip()}
    start = form.get("start", "save")
    if start not in ("save", "schedule", "run"):
        raise FormError(f"start {start!r}: expected save, schedule or run", {"start": "save, schedule or run"})
    cls = get_protocol(protocol)
    try:
        validate_params(cls, params)
    except ParamsError as exc:
        raise FormError(str(exc), field_errors(protocol, params)) from None
    for name, text in inputs.items():
        try:
            InputPointer.parse(text)
        except UserError as exc:
            raise FormError(str(exc), {f"input:{name}": str(exc)}) from None
    try:
        run_id = project.new_run(
            protocol, params, inputs, label=str(form.get("label", "")), comment=str(form.get("comment", ""))
        )
    except UserError as exc:
        raise FormError(str(exc), _input_field(str(exc), inputs)) from None
    if start == "schedule":
        project.schedule(run_id)
    elif start == "run":
        launch(project, run_id, "continue")
    return run_id


def _input_field(message: str, inputs: dict[str, str]) -> dict[str, str]:
    for name in inputs:
        if f"input '{name}'" in message:
            return {f"input:{name}": message}
    return {"": message}


def control(project: Project, run_id: int, action: str, body: dict[str, Any], launch: Launcher) -> dict[str, Any]:
    """One of the CLI's run actions on ``run_id``; the engine refuses what the CLI would refuse."""
    if action in START_MODES:
        launch(project, run_id, action)
        return {"run": run_id, "state": project.run(run_id)["state"]}
    if action == "label":
        label, comment = body.get("label"), body.get("comment")
        project.set_label(run_id, None if label is None else str(label), None if comment is None else str(comment))
        return {"run": run_id}
    if action == "duplicate":
        return {"run": project.duplicate(run_id, str(body.get("label", "")))}
    if action == "abort":
        return {"run": run_id, "abort": project.request_abort(run_id)}
    if action == "stop":
        project.request_stop(run_id)
        return {"run": run_id, "stop": "requested"}
    if action in ("schedule", "reset", "delete"):
        getattr(project, action)(run_id)
        return {"run": run_id}
    raise UserError(f"unknown action {action!r}; expected one of {', '.join((*START_MODES, *CONTROLS, 'label'))}")


class LaunchError(UserError):
    """The CLI refused to start the run (its one-line message)."""


def launch_in_process(project: Project, run_id: int, mode: str) -> None:
    """Start ``tomoforge -p PROJECT continue|restart RUN`` in a process of its own, and wait until the run is
    claimed, or the command ends; a refusal (exit code 2) is raised with the CLI's message."""
    command = [sys.executable, "-m", "tomoforge.cli.main", "-p", str(project.root), mode, str(run_id)]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
        before = project.run(run_id)["started"]
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                if code == 2:
                    errors.seek(0)
                    text = errors.read().decode("utf-8", "replace").strip().removeprefix("error: ")
                    raise LaunchError(text or f"run {run_id}: the CLI refused to {mode} it")
                return
            row = project.run(run_id)
            if row["state"] in ACTIVE and row["started"] != before:
                return
            time.sleep(0.05)
