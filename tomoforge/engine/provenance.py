"""Provenance: for any item, the chain of runs and files back to what was imported."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tomoforge.engine.citations import bibtex
from tomoforge.engine.items import item_files
from tomoforge.engine.project import Project
from tomoforge.engine.registry import get_protocol


@dataclass
class Step:
    """One item on the chain, the run that made it, and the files it points to."""

    address: str
    item_class: str
    run_id: int
    protocol: str
    run_state: str
    finished: float | None
    software_version: str
    params: dict[str, Any]
    inputs: dict[str, str]
    files: list[str]
    parents: list[Step] = field(default_factory=list)


def provenance(project: Project, address: str, _built: dict[str, Step] | None = None) -> Step:
    """The provenance tree of ``RUN.OUTPUT/KEY[/CHILD]`` (an item reached twice, e.g. the input of two
    branches that meet again, is one shared ``Step``)."""
    built = {} if _built is None else _built
    if address in built:
        return built[address]
    item_set, item, child = project.resolve(address)
    row = project.run(item_set.run_id)
    own = [str(project.absolute(f)) for f in (item_files(child) if child is not None else [])]
    files = [f"{f} [section {child.index}]" if i == 0 and hasattr(child, "index") else f for i, f in enumerate(own)]
    files += [str(project.absolute(f)) for f in item_files(item) if str(project.absolute(f)) not in own]
    step = Step(
        address=address,
        item_class=type(child if child is not None else item).__name__,
        run_id=item_set.run_id,
        protocol=row["protocol"],
        run_state=row["state"],
        finished=row["finished"],
        software_version=row["software_version"],
        params=json.loads(row["params"]),
        inputs={name: str(p) for name, p in project.run_inputs(item_set.run_id).items()},
        files=list(dict.fromkeys(files)),
    )
    child_suffix = address.split("/", 2)[2:] if child is not None else []
    for origin in item_set.origin(str(getattr(item, item_set.spec.key_field))):
        parent_address = origin
        if child_suffix:  # a tilt image's parent is the matching child of the parent item, if it has one
            candidate = f"{origin}/{child_suffix[0]}"
            try:
                project.resolve(candidate)
                parent_address = candidate
            except Exception:  # noqa: BLE001
                pass
        step.parents.append(provenance(project, parent_address, built))
    built[address] = step
    return step


FILES_SHOWN = 4  # files listed per step; the rest are counted


def format_provenance(step: Step, indent: int = 0, _shown: set[str] | None = None) -> str:
    """The tree as indented text: each step once, each file once (the first few of a step; an item already written
    higher up is named again, not repeated)."""
    shown = set() if _shown is None else _shown
    pad = "  " * indent
    if step.address in shown:
        return f"{pad}{step.address}  ({step.item_class}, as above)"
    shown.add(step.address)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(step.finished)) if step.finished else "-"
    label = get_protocol(step.protocol).label
    lines = [
        f"{pad}{step.address}  ({step.item_class})",
        f"{pad}  made by run {step.run_id} '{label}' ({step.run_state} {when}, tomoforge {step.software_version})",
    ]
    changed = {k: v for k, v in step.params.items() if v not in (None, "", [], {})}
    if changed:
        lines.append(f"{pad}  params: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    for name, pointer in step.inputs.items():
        lines.append(f"{pad}  input {name}: {pointer}")
    new_files = [path for path in step.files if f"file:{path}" not in shown]
    shown.update(f"file:{path}" for path in new_files)
    for path in new_files[:FILES_SHOWN]:
        lines.append(f"{pad}  file: {path}")
    if len(new_files) > FILES_SHOWN:
        lines.append(f"{pad}  … and {len(new_files) - FILES_SHOWN} more files (tomoforge show {step.address})")
    for parent in step.parents:
        lines.append(format_provenance(parent, indent + 1, shown))
    return "\n".join(lines)


def citations_of_project(project: Project, run_ids: list[int] | None = None) -> dict[str, str]:
    """Key -> BibTeX of every method used by the given runs (default: every finished run)."""
    rows = project.runs()
    keys: dict[str, str] = {}
    for row in rows:
        if run_ids is not None and row["id"] not in run_ids:
            continue
        if run_ids is None and row["state"] != "finished":
            continue
        for key in ("tomoforge", *get_protocol(row["protocol"]).citations):
            keys.setdefault(key, bibtex(key))
    return keys


def runs_upstream(project: Project, run_id: int) -> list[int]:
    """This run and every run it depends on, nearest first."""
    seen, queue = [], [run_id]
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.append(current)
        queue.extend(p.run_id for p in project.run_inputs(current).values())
    return seen
