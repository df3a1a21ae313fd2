"""Run lifecycle: saved -> running -> finished | failed | aborted; continue, restart, reset, duplicate, delete."""

import re

import pytest

from tests.engine.conftest import ran
from tomoforge.engine import ExecutorConfig, ParamsError, ProjectError, execute_run
from tomoforge.engine.provenance import citations_of_project, format_provenance, provenance
from tomoforge.engine.registry import broken_protocols, get_protocol, protocols

SERIAL = ExecutorConfig(kind="serial")


def make(project, control, count=3, executor=SERIAL, **params):
    return project.new_run("toy-make", {"count": count, "control_dir": str(control), **params}, executor=executor)


def test_plugin_protocols_come_from_entry_points_and_a_broken_one_is_reported():
    assert {"toy-make", "toy-double", "toy-words"} <= set(protocols())
    assert "toy-broken" in broken_protocols()
    with pytest.raises(KeyError, match="unknown protocol"):
        get_protocol("toy-broken")
    assert get_protocol("toy make") is get_protocol("toy-make")


def test_a_run_goes_from_saved_to_finished_with_outputs_log_and_files(project, control):
    run_id = make(project, control, count=4)
    assert project.run(run_id)["state"] == "saved"
    assert execute_run(project, run_id) == "finished"
    row = project.run(run_id)
    assert row["state"] == "finished" and row["started"] <= row["finished"]
    numbers = project.output_set(run_id, "numbers")
    assert [n.value for n in numbers] == [0.0, 1.0, 4.0, 9.0]
    assert numbers.is_closed
    assert (project.absolute(numbers.get("n3").file)).read_text() == "9"
    assert not numbers.get("n3").file.startswith("/")  # stored relative to the project
    log = (project.run_dir(run_id) / "run.log").read_text().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", line) for line in log)
    assert any("[4/4] n3 done" in line for line in log)
    assert project.run_dir(run_id).name == f"{run_id:04d}_toy_make"


def test_params_are_validated_naming_the_field(project, control):
    with pytest.raises(ParamsError, match=r"count: -2 must be ≥ 1"):
        project.new_run("toy-make", {"count": -2, "control_dir": str(control)})
    with pytest.raises(ParamsError, match="colour: unknown field"):
        project.new_run("toy-make", {"colour": "red", "control_dir": str(control)})
    assert project.runs() == []


def test_inputs_must_point_to_a_compatible_existing_output(project, control):
    with pytest.raises(ProjectError, match="input 'numbers' is required"):
        project.new_run("toy-double")
    words = project.new_run("toy-words")
    with pytest.raises(ProjectError, match="has no output 'numbers'"):
        project.new_run("toy-double", inputs={"numbers": f"{words}.numbers"})
    with pytest.raises(ProjectError, match="holds Word"):
        project.new_run("toy-double", inputs={"numbers": f"{words}.words"})
    source = make(project, control)
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        project.new_run("toy-double", inputs={"numbers": f"{source}.numbers[colour > 1]"})
    consumer = project.new_run("toy-double", inputs={"numbers": f"{source}.numbers"})
    with pytest.raises(ProjectError, match=f"comes from run {source}, which is saved"):
        execute_run(project, consumer)


def test_failed_item_fails_the_run_keeps_no_outputs_and_continue_skips_done_items(project, control):
    (control / "fail_2").touch()
    run_id = make(project, control, count=4)
    assert execute_run(project, run_id) == "failed"
    row = project.run(run_id)
    assert "1 of 4 items failed; first, n2: RuntimeError: item 2 was told to fail" == row["error"]
    assert "Traceback" in row["traceback"] and "make_number" in row["traceback"]
    assert project.output_sets(run_id) == []  # nothing half-written
    (control / "fail_2").unlink()
    assert execute_run(project, run_id, "continue") == "finished"
    assert [ran(control, i) for i in range(4)] == [1, 1, 2, 1]  # only the failed item ran again
    assert len(project.output_set(run_id, "numbers")) == 4


def test_restart_redoes_every_item_and_reset_clears_outputs(project, control):
    run_id = make(project, control, count=2)
    execute_run(project, run_id)
    with pytest.raises(ProjectError, match="is finished: cannot continue it; use 'restart'"):
        execute_run(project, run_id, "continue")
    assert execute_run(project, run_id, "restart") == "finished"
    assert [ran(control, i) for i in range(2)] == [2, 2]
    project.reset(run_id)
    assert project.run(run_id)["state"] == "saved"
    assert project.output_sets(run_id) == []
    assert not (project.run_dir(run_id) / "out").exists()


def test_duplicate_copies_params_and_inputs_into_a_new_saved_run(project, control):
    source = make(project, control, count=2)
    execute_run(project, source)
    consumer = project.new_run("toy-double", inputs={"numbers": f"{source}.numbers[flagged]"}, label="x2")
    copy = project.duplicate(consumer)
    assert project.run(copy)["state"] == "saved"
    assert project.run_params(copy) == project.run_params(consumer)
    assert str(project.run_inputs(copy)["numbers"]) == f"{source}.numbers[flagged]"
    assert project.run(copy)["label"] == "x2 (copy)"


def test_delete_and_reset_are_refused_while_outputs_are_used(project, control):
    source = make(project, control, count=3)
    execute_run(project, source)
    consumer = project.new_run("toy-double", inputs={"numbers": f"{source}.numbers[not flagged]"}, executor=SERIAL)
    assert execute_run(project, consumer) == "finished"
    # the filter reached the consumer: only 0 and 1 are not flagged (> 3)
    assert [n.value for n in project.output_set(consumer, "numbers")] == [0.0, 2.0]
    for action in (project.delete, project.reset):
        with pytest.raises(ProjectError, match=f"used by run\\(s\\) {consumer}"):
            action(source)
    project.delete(consumer)
    project.delete(source)
    assert project.runs() == []
    assert not list((project.root / "runs").iterdir())


def test_labels_comments_and_abort_of_a_saved_run(project, control):
    run_id = make(project, control)
    project.set_label(run_id, "first try", "with 3 items")
    row = project.run(run_id)
    assert (row["label"], row["comment"]) == ("first try", "with 3 items")
    with pytest.raises(ProjectError, match="nothing to abort"):
        project.request_abort(run_id)
    project.schedule(run_id)
    assert project.request_abort(run_id) == "aborted"


def test_provenance_walks_back_to_the_first_run_and_its_files(project, control):
    source = make(project, control, count=2)
    execute_run(project, source)
    consumer = project.new_run("toy-double", inputs={"numbers": f"{source}.numbers"}, executor=SERIAL)
    execute_run(project, consumer)
    step = provenance(project, f"{consumer}.numbers/n1")
    assert step.run_id == consumer and step.inputs == {"numbers": f"{source}.numbers"}
    assert [p.run_id for p in step.parents] == [source]
    assert step.parents[0].files == [str(project.run_dir(source) / "out" / "n1.txt")]
    text = format_provenance(step)
    assert f"made by run {source} 'toy make'" in text and "n1.txt" in text
    with pytest.raises(ProjectError, match="has no item 'n7'"):
        provenance(project, f"{consumer}.numbers/n7")


def test_citations_list_the_methods_of_finished_runs(project, control):
    run_id = make(project, control, count=1)
    assert citations_of_project(project) == {}
    execute_run(project, run_id)
    keys = citations_of_project(project)
    assert set(keys) == {"tomoforge", "toy2026"}
    assert keys["toy2026"].startswith("@misc{toy2026")


def test_nested_items_round_trip_through_a_run(project):
    run_id = project.new_run("toy-words", executor=SERIAL)
    execute_run(project, run_id)
    words = project.output_set(run_id, "words")
    assert [len(w.digits) for w in words] == [2, 3]
    _, word, digit = project.resolve(f"{run_id}.words/cde/2")
    assert word.name == "cde" and digit.digit == 6


def test_scheduled_runs_execute_in_dependency_order_and_a_failed_input_blocks(project, control):
    from tomoforge.engine.scheduler import run_scheduled

    source = make(project, control, count=2)
    consumer = project.new_run("toy-double", inputs={"numbers": f"{source}.numbers"}, executor=SERIAL)
    project.schedule(consumer)  # scheduled before its input: it must wait for it
    project.schedule(source)
    assert run_scheduled(project) == {source: "finished", consumer: "finished"}
    assert [n.value for n in project.output_set(consumer, "numbers")] == [0.0, 2.0]

    (control / "fail_0").touch()
    broken = make(project, control, count=1)
    waiting = project.new_run("toy-double", inputs={"numbers": f"{broken}.numbers"}, executor=SERIAL)
    project.schedule(broken)
    project.schedule(waiting)
    assert run_scheduled(project) == {broken: "failed", waiting: "failed"}
    assert "an input run failed" in project.run(waiting)["error"]
