"""A project file is data: task results are JSON, nothing read back runs code; continue checks files."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.engine.conftest import ran
from tomoforge.engine import ExecutorConfig, execute_run
from tomoforge.engine.items import class_from_path
from tomoforge.engine.results import ResultError, decode_result, encode_result, result_files
from tomoforge.errors import ProjectFileError
from tomoforge.model.tilt_series import TiltImage

PACKAGE = Path(__file__).resolve().parents[2] / "tomoforge"
SERIAL = ExecutorConfig(kind="serial")


class Boom:
    """Unpickling this writes a marker file: the proof that a pickle from the database was loaded."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_crafted_pickled_result_in_project_db_is_never_unpickled(project, control, tmp_path):
    run_id = project.new_run("toy-make", {"count": 3, "control_dir": str(control)}, executor=SERIAL)
    assert execute_run(project, run_id) == "finished"
    project.set_state(run_id, "failed")
    Boom.marker = str(tmp_path / "pwned")
    project.conn.execute(
        "UPDATE run_tasks SET result = ? WHERE run_id = ? AND key = 'n1'", (pickle.dumps(Boom()), run_id)
    )
    assert execute_run(project, run_id, "continue") == "finished"
    assert not (tmp_path / "pwned").exists()
    assert ran(control, 1) == 2 and ran(control, 0) == 1  # the unreadable record was redone, the others kept
    stored = project.conn.execute("SELECT result FROM run_tasks WHERE run_id = ?", (run_id,)).fetchall()
    assert all(isinstance(json.loads(r[0]), dict) for r in stored)


def test_results_round_trip_as_json_with_arrays_as_files(tmp_path):
    image = TiltImage(tilt_angle_deg=-3.0, acquisition_order=2, dose_e_A2=6.0, index=1)
    value = {
        "n": np.int64(3),
        "x": np.float32(0.5),
        "nan": float("nan"),
        "t": (1, "a"),
        "path": tmp_path / "f",
        "item": image,
        "array": np.arange(6, dtype=np.float32).reshape(2, 3),
        4: "int key",
    }
    text, arrays = encode_result(value, tmp_path / "tasks", "TS_01")
    assert len(arrays) == 1 and (tmp_path / "tasks" / arrays[0]).is_file()
    back = decode_result(text, tmp_path / "tasks")
    assert back["n"] == 3 and back["x"] == 0.5 and np.isnan(back["nan"]) and back["t"] == (1, "a")
    assert back["path"] == tmp_path / "f" and back["item"] == image and back[4] == "int key"
    np.testing.assert_array_equal(back["array"], value["array"])


@pytest.mark.parametrize(
    "stored",
    [
        b"\x80\x04K\x01.",  # a pickle
        '{"__tf__": "item", "class": "os:system", "fields": {}}',
        '{"__tf__": "item", "class": "subprocess:Popen", "fields": {}}',
        '{"__tf__": "array", "file": "../../etc/passwd"}',
        '{"__tf__": "float", "value": "__import__(\'os\')"}',
        '{"__tf__": "who knows"}',
    ],
)
def test_crafted_results_are_refused(tmp_path, stored):
    with pytest.raises(ResultError):
        decode_result(stored, tmp_path)


def test_a_set_naming_an_untrusted_class_is_refused():
    for path in ("os:system", "builtins:eval", "tomoforge.engine.runner:execute_run", "x y:z"):
        with pytest.raises(ProjectFileError):
            class_from_path(path)
    assert class_from_path("tomoforge.model.tilt_series:TiltImage") is TiltImage


def test_continue_redoes_done_items_whose_files_were_deleted_or_truncated(project, control):
    run_id = project.new_run("toy-make", {"count": 4, "control_dir": str(control)}, executor=SERIAL)
    assert execute_run(project, run_id) == "finished"
    project.set_state(run_id, "failed")  # as if it had failed later on
    out = project.run_dir(run_id) / "out"
    (out / "n1.txt").unlink()
    (out / "n2.txt").write_text("")
    assert result_files({"file": str(out / "n3.txt")}, project.run_dir(run_id)) == {"out/n3.txt": 1}
    assert execute_run(project, run_id, "continue") == "finished"
    assert [ran(control, i) for i in range(4)] == [1, 2, 2, 1]
    assert (out / "n1.txt").read_text() == "1" and (out / "n2.txt").read_text() == "4"
    assert [n.value for n in project.output_set(run_id, "numbers")] == [0.0, 1.0, 4.0, 9.0]


def test_the_package_never_unpickles_or_evaluates():
    """No pickle, marshal, shelve, eval or exec anywhere in the package (a worker pool pickles in memory only)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in {"pickle", "marshal", "shelve", "dill", "cloudpickle"} for n in names):
                    found.append(f"{path}:{node.lineno} imports {names}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"eval", "exec"}:
                found.append(f"{path}:{node.lineno} calls {node.func.id}")
            elif (
                isinstance(node, ast.keyword)
                and node.arg == "allow_pickle"
                and not (isinstance(node.value, ast.Constant) and node.value.value is False)
            ):
                found.append(f"{path}:{node.lineno} allow_pickle")
    assert found == []
