"""What the pages show, as JSON-ready dicts, read through the engine (nothing here writes)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tomoforge.engine import Project
from tomoforge.engine.project import ACTIVE
from tomoforge.engine.protocol import Protocol
from tomoforge.engine.registry import get_protocol, protocols
from tomoforge.errors import UserError
from tomoforge.io.plot_data import PLOT_SUFFIX, plot_data_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
LOG_TAIL_LINES = 200


def duration_s(row: Any) -> float | None:
    if not row["started"]:
        return None
    return float((row["finished"] or time.time()) - row["started"])


def project_summary(project: Project) -> dict[str, Any]:
    """Every run (state, duration, label, outputs with counts, inputs) and the graph's edges."""
    rows = project.runs()
    inputs: dict[int, list[dict[str, Any]]] = {}
    for r in project.conn.execute("SELECT * FROM run_inputs ORDER BY rowid"):
        inputs.setdefault(r["run_id"], []).append(
            {"name": r["name"], "run": r["source_run_id"], "output": r["source_output"], "filter": r["filter"]}
        )
    outputs: dict[int, list[dict[str, Any]]] = {}
    for item_set in _all_sets(project):
        outputs.setdefault(item_set.run_id, []).append(set_summary(item_set))
    runs = [
        {
            "id": row["id"],
            "protocol": row["protocol"],
            "label": row["label"],
            "comment": row["comment"],
            "state": row["state"],
            "duration_s": duration_s(row),
            "created": row["created"],
            "inputs": inputs.get(row["id"], []),
            "outputs": outputs.get(row["id"], []),
        }
        for row in rows
    ]
    edges = [
        {"from": i["run"], "to": run["id"], "output": i["output"], "input": i["name"]}
        for run in runs
        for i in run["inputs"]
    ]
    return {"root": str(project.root), "runs": runs, "edges": edges}


def _all_sets(project: Project) -> list[Any]:
    from tomoforge.engine.sets import ItemSet

    return [ItemSet(project.conn, r) for r in project.conn.execute("SELECT * FROM sets ORDER BY id").fetchall()]


def set_summary(item_set: Any) -> dict[str, Any]:
    return {
        "name": item_set.name,
        "kind": item_set.item_class.__name__,
        "count": len(item_set),
        "state": item_set.stream_state,
    }


def run_detail(project: Project, run_id: int) -> dict[str, Any]:
    """Params, inputs, outputs with item counts, error and traceback, images and the log's tail."""
    project.refresh_state(run_id)
    row = project.run(run_id)
    run_dir = project.run_dir(run_id)
    return {
        "id": run_id,
        "protocol": row["protocol"],
        "label": row["label"],
        "comment": row["comment"],
        "state": row["state"],
        "duration_s": duration_s(row),
        "folder": project.relative(run_dir),
        "software_version": row["software_version"],
        "params": json.loads(row["params"]),
        "inputs": [
            {"name": n, "run": p.run_id, "output": p.output, "filter": p.filter}
            for n, p in project.run_inputs(run_id).items()
        ],
        "outputs": [set_summary(s) for s in project.output_sets(run_id)],
        "consumers": project.consumers(run_id),
        "error": row["error"],
        "traceback": row["traceback"],
        "images": [project.relative(p) for p in run_images(run_dir)],
        "plots": [project.relative(p) for p in run_plots(run_dir)],
        "log": log_tail(run_dir / "run.log"),
        "active": row["state"] in ACTIVE,
    }


def run_images(run_dir: Path) -> list[Path]:
    """The images a run wrote (its ``out/`` folder), sorted by name; a plot drawn interactively from its plot
    data (``run_plots``) is not listed twice."""
    out = run_dir / "out"
    if not out.is_dir():
        return []
    return sorted(
        p
        for p in out.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not plot_data_path(p).is_file()
    )


def run_plots(run_dir: Path) -> list[Path]:
    """The plot data files of a run's line plots (``NAME.plot.json`` beside ``NAME.png``), sorted by name."""
    out = run_dir / "out"
    return sorted(p for p in out.rglob(f"*{PLOT_SUFFIX}") if p.is_file()) if out.is_dir() else []


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 200 * lines))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def protocol_list() -> list[dict[str, str]]:
    return [{"name": name, "summary": cls.summary()} for name, cls in protocols().items()]


def protocol_form(project: Project, name: str) -> dict[str, Any]:
    """What the new-run form is built from: the params' JSON schema, and per input the compatible outputs."""
    cls = get_protocol(name)
    return {
        "name": cls.name,
        "summary": cls.summary(),
        "schema": cls.Params.model_json_schema(),
        "inputs": [
            {
                "name": input_name,
                "help": spec.help,
                "optional": spec.optional,
                "accepts": spec.describe(),
                "default_filter": spec.default_filter,
                "choices": compatible_outputs(project, cls, input_name),
            }
            for input_name, spec in cls.inputs.items()
        ],
    }


def compatible_outputs(project: Project, cls: type[Protocol], input_name: str) -> list[dict[str, Any]]:
    """The outputs of the project's runs that input ``input_name`` of ``cls`` accepts (``InputSpec.accepts``)."""
    spec = cls.inputs[input_name]
    choices = []
    for row in project.conn.execute("SELECT id, protocol, label, state FROM runs ORDER BY id").fetchall():
        try:
            declared = project.output_classes(row["id"])
        except UserError:
            continue
        for output, item_class in declared.items():
            if spec.accepts(item_class):
                choices.append(
                    {
                        "value": f"{row['id']}.{output}",
                        "run": row["id"],
                        "label": row["label"],
                        "protocol": row["protocol"],
                        "state": row["state"],
                        "kind": item_class.__name__,
                    }
                )
    return choices
