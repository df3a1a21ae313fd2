"""Million-item sets: bulk appends, arrays straight from SQL, pages, compact rows; checked on small sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tomoforge.engine.columns import ColumnsError
from tomoforge.engine.sets import ItemSet
from tomoforge.methods.rotations import matrices_to_quaternions, quaternions_to_matrices
from tomoforge.model.coordinates import Coordinate3D, Particle


@pytest.fixture
def coordinates(project):
    run_id = project.new_run("toy-make", {"count": 1, "control_dir": "/tmp"})
    return ItemSet.create(project.conn, run_id, "coordinates", Coordinate3D)


def columns(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "number": np.arange(n),
        "tomogram": np.array([f"TS_{i % 3:02d}" for i in range(n)]),
        "x_A": rng.normal(size=n) * 1000,
        "y_A": rng.normal(size=n) * 1000,
        "z_A": rng.normal(size=n) * 300,
        "rotation": Rotation.random(n, random_state=seed).as_matrix(),
        "has_orientation": np.ones(n, bool),
        "score": rng.random(n),
    }


def test_quaternions_round_trip_every_branch_exactly():
    matrices = np.concatenate(
        [
            Rotation.random(2000, random_state=1).as_matrix(),
            Rotation.from_rotvec(
                [[np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi], [0, 0, 0], [np.pi / 2, np.pi / 2, 0]]
            ).as_matrix(),
        ]
    )
    q = matrices_to_quaternions(matrices)
    assert np.allclose(np.linalg.norm(q, axis=1), 1) and (q[:, 0] >= 0).all()
    assert np.abs(quaternions_to_matrices(q) - matrices).max() < 1e-14
    assert np.allclose(np.abs(q), np.abs(Rotation.from_matrix(matrices).as_quat(scalar_first=True)))


def test_append_columns_reads_back_as_items_and_as_arrays(coordinates):
    given = columns(500)
    assert coordinates.append_columns(given) == 500
    assert len(coordinates) == 500
    arrays = coordinates.arrays("x_A", "rotation", "number", "tomogram", "score")
    assert np.array_equal(arrays["x_A"], given["x_A"]) and np.array_equal(arrays["number"], np.arange(500))
    assert np.abs(arrays["rotation"] - given["rotation"]).max() < 1e-14
    assert list(arrays["tomogram"][:4]) == ["TS_00", "TS_01", "TS_02", "TS_00"]
    item = coordinates.get("7")
    assert item.x_A == given["x_A"][7] and item.has_orientation and item.score == given["score"][7]
    assert np.abs(np.array(item.rotation) - given["rotation"][7]).max() < 1e-14
    page = coordinates.page(2, size=100)
    assert [c.number for c in page] == list(range(200, 300))
    near = coordinates.subset("tomogram = 'TS_01' and abs(z_A) < 100").arrays("number")["number"]
    expected = np.flatnonzero((np.arange(500) % 3 == 1) & (np.abs(given["z_A"]) < 100))
    assert np.array_equal(near, expected)


def test_items_and_columns_give_the_same_rows(project, coordinates):
    given = columns(20, seed=3)
    coordinates.append_columns(given)
    run_id = coordinates.run_id
    other = ItemSet.create(project.conn, run_id, "one_by_one", Coordinate3D)
    other.append_many(coordinates)
    for a, b in zip(other, coordinates, strict=True):  # rotations: equal to float64 rounding (quaternion storage)
        assert a.model_dump(exclude={"rotation"}) == b.model_dump(exclude={"rotation"})
        assert np.abs(np.array(a.rotation) - np.array(b.rotation)).max() < 1e-15
    row = project.conn.execute("SELECT data, rotation FROM item_coordinate3d LIMIT 1").fetchone()
    assert row["data"] == "" and len(row["rotation"]) == 32  # every field in a column: nothing left for JSON


def test_rows_of_the_old_layout_still_read(project, coordinates):
    """Before the columns layout, ``data`` held every field; the columns are read over it."""
    item = Coordinate3D(number=4, tomogram="TS_01", x_A=1.0, y_A=2.0, z_A=3.0, score=0.5)
    coordinates.append(item)
    project.conn.execute(
        "UPDATE item_coordinate3d SET data = ? WHERE set_id = ?",
        (json.dumps(item.model_dump(mode="json")), coordinates.id),
    )
    assert coordinates.get("4") == item


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x_A": np.r_[np.zeros(9), np.inf]}, "x_A: row 9 holds inf"),
        ({"number": -np.arange(10)}, "number: row 1 holds -1, which must be ≥ 0"),
        ({"number": np.zeros(10, int)}, "key '0' is given more than once"),
        ({"rotation": np.tile(np.diag([1.0, 1.0, -1.0]), (10, 1, 1))}, "rotation: row 0 is not a proper rotation"),
        ({"colour": np.zeros(10)}, "has no field"),
        ({"z_A": np.zeros(9)}, "differ in length"),
    ],
)
def test_bad_arrays_are_refused_before_anything_is_written(coordinates, change, message):
    given = {**columns(10), **change}
    with pytest.raises(ColumnsError, match=message):
        coordinates.append_columns(given)
    assert len(coordinates) == 0


def test_a_missing_required_field_and_a_subclass_with_more_columns(project, coordinates):
    with pytest.raises(ColumnsError, match="needs tomogram"):
        coordinates.append_columns({"number": [1], "x_A": [0.0], "y_A": [0.0], "z_A": [0.0]})
    particles = ItemSet.create(project.conn, coordinates.run_id, "particles", Particle)
    particles.append_columns({**columns(6), "half_set": np.array([1, 2] * 3), "file": np.array(["p.mrc"] * 6)})
    assert [p.half_set for p in particles] == [1, 2] * 3 and particles.get("3").file == "p.mrc"
    assert np.array_equal(particles.arrays("half_set")["half_set"], [1, 2] * 3)
    assert particles.arrays("file")["file"].tolist() == ["p.mrc"] * 6  # a typed column, no object per particle
    particles.append_columns(
        {
            **columns(2),
            "number": np.array([10, 11]),
            "shift_z_A": np.array([1.5, -2.0]),
            "tilt_series": np.array(["TS_1", "TS_2"]),
        }
    )
    got = particles.arrays("shift_z_A", "tilt_series", "index")
    assert np.array_equal(got["shift_z_A"][-2:], [1.5, -2.0]) and list(got["tilt_series"][-2:]) == ["TS_1", "TS_2"]
    assert np.allclose(particles.get("11").shift_A, [0.0, 0.0, -2.0])


def test_a_set_written_before_a_column_existed_is_upgraded_when_opened(project, coordinates):
    """A project of an older version: a Particle table without the columns added since (their values in the
    row's JSON, as that version kept them). Opened now, the columns are added and filled from the JSON."""
    from tomoforge.engine import Project

    particles = ItemSet.create(project.conn, coordinates.run_id, "particles", Particle)
    particles.append_columns({**columns(4), "tilt_series": np.array(["TS_1"] * 4), "shift_z_A": np.arange(4.0)})
    table = particles.spec.table
    with project.conn:
        for name in ("tilt_series", "shift_z_A", "index", "file"):
            project.conn.execute(
                f"UPDATE {table} SET data = json_set(CASE data WHEN '' THEN '{{}}' ELSE data END, ?, \"{name}\")",
                (f"$.{name}",),
            )
            project.conn.execute(f'ALTER TABLE {table} DROP COLUMN "{name}"')
        project.conn.execute(f"UPDATE {table} SET data = json_remove(data, '$.index') WHERE number = 3")
    root = project.root
    project.close()
    reopened = Project.open(root)  # a new connection: the set is checked once when opened
    old = reopened.output_set(coordinates.run_id, "particles")
    got = old.arrays("tilt_series", "shift_z_A", "index", "file")
    assert list(got["file"]) == [""] * 4  # never written: the field's default
    assert list(got["tilt_series"]) == ["TS_1"] * 4 and np.array_equal(got["shift_z_A"], np.arange(4.0))
    assert np.array_equal(got["index"][:3], [0, 0, 0]) and old.get("3").index == 0  # absent: the default
    assert [p.shift_z_A for p in old] == [0.0, 1.0, 2.0, 3.0]
    assert len(old.subset("shift_z_A > 1.5")) == 2
    with reopened.conn:  # a NULL in an integer column (written by hand, say) reads as 0, every row kept
        reopened.conn.execute(f'UPDATE {table} SET "index" = NULL, half_set = NULL WHERE number = 1')
    assert old.arrays("index", "half_set", "number")["number"].tolist() == [0, 1, 2, 3]
    reopened.close()
