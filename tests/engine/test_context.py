"""The run context's output API: what the run loop and the protocols use to create, re-open and close outputs."""

from __future__ import annotations

import ast
import dataclasses

import pytest

from tests.engine.conftest import REPO
from tests.engine.toyplugin.toy_protocols import MakeNumbers, Number
from tomoforge.engine import ProjectError
from tomoforge.engine.context import RunContext


def context_of(project, run_id: int) -> RunContext:
    return RunContext(project, run_id, None, project.run_dir(run_id), protocol_cls=MakeNumbers)


def numbers_rows(project) -> int:
    """Rows in the table of the toy's Number items, whatever set they belong to."""
    table = project.output_sets(project.runs()[0]["id"])[0].spec.table
    return project.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_reopen_keeps_the_items_of_an_earlier_attempt_and_create_starts_afresh(project, control):
    run_id = project.new_run("toy-make", {"control_dir": str(control)})
    first = context_of(project, run_id)
    assert first.reopen_outputs() is False  # nothing to re-open: the set is made, open
    first.output("numbers").append(Number(name="n0", value=0.0))
    assert numbers_rows(project) == 1
    first.close_outputs()
    assert not project.set_is_open(run_id, "numbers")

    again = context_of(project, run_id)
    assert again.reopen_outputs() is True
    assert project.set_is_open(run_id, "numbers")
    assert [n.name for n in again.output("numbers")] == ["n0"]  # the same set, with its item

    fresh = context_of(project, run_id)
    fresh.create_outputs()
    assert len(project.output_sets(run_id)) == 1 and len(fresh.output("numbers")) == 0
    assert numbers_rows(project) == 0  # the items of the replaced set went with it


def test_an_undeclared_output_is_refused(project, control):
    run_id = project.new_run("toy-make", {"control_dir": str(control)})
    with pytest.raises(ProjectError, match="toy-make declares no output 'words'"):
        context_of(project, run_id).output("words")


def test_no_module_reaches_into_the_private_attributes_of_the_run_context():
    private = {f.name for f in dataclasses.fields(RunContext) if f.name.startswith("_")}
    private |= {name for name in vars(RunContext) if name.startswith("_") and not name.startswith("__")}
    found = []
    for path in sorted([*(REPO / "tomoforge").rglob("*.py"), *(REPO / "tests").rglob("*.py")]):
        if path == REPO / "tomoforge" / "engine" / "context.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in private:
                if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}")
    assert found == []
