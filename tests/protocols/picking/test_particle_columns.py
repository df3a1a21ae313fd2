"""The coordinate tools on a Particle set: the output holds Particles with every typed column of the rows kept
(half set, tilt series, refined shift, data file and index, weight file, score, group), and a protocol that
needs Particles accepts it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tests.methods.picking.test_duplicates import greedy_reference
from tests.protocols.picking.conftest import SERIAL, SIZE_XYZ, VOXEL_A, import_picks, run
from tomoforge.engine import Project, Protocol, ProtocolParams, Task, param, registry
from tomoforge.methods.rotations import random_rotations, rotation_about_x
from tomoforge.model import Coordinate3D, Particle

#: the columns a Particle has beyond the ones every tool computes (position, rotation, number)
CARRIED = ("tomogram", "group", "score", "has_orientation", "half_set", "shift_x_A", "shift_y_A", "shift_z_A")
CARRIED += ("tilt_series", "file", "index", "weight_file")


class ParticlesParams(ProtocolParams):
    arrays: str = param(..., help="an .npz of Particle columns")


@dataclass(frozen=True, kw_only=True)
class ParticlesJob:
    arrays: str


def particles_task(job: ParticlesJob) -> dict[str, np.ndarray]:
    with np.load(job.arrays, allow_pickle=False) as data:
        return {name[2:]: data[name] for name in data.files}


class MakeParticles(Protocol):
    """Test stand-in for a particle set (as extract-particles or import-particles make)."""

    name = "tm-test-particles"
    Params = ParticlesParams
    outputs: ClassVar = {"particles": Particle}

    def tasks(self) -> Iterator[Task[Any]]:
        yield Task(particles_task, ParticlesJob(arrays=self.params.arrays), key="particles")

    def collect(self, task: Task[Any], result: dict[str, np.ndarray]) -> None:
        self.output("particles").append_columns(result)


@pytest.fixture
def particles(project: Project, tmp_path: Path) -> Iterator[Any]:
    """make(positions_A, rotations, rng) -> (run id, the columns written): a Particle set whose every column
    differs from row to row (``index`` is the row)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(registry, "_cache", {**registry.protocols(), MakeParticles.name: MakeParticles})

    def make(positions_A: np.ndarray, rotations: np.ndarray, rng: np.random.Generator, tomogram: str = "TS_01"):
        n = len(positions_A)
        columns = {
            "number": np.arange(n),
            "tomogram": np.full(n, tomogram),
            "x_A": positions_A[:, 0],
            "y_A": positions_A[:, 1],
            "z_A": positions_A[:, 2],
            "rotation": rotations,
            "has_orientation": np.ones(n, bool),
            "group": rng.integers(0, 5, n),
            "score": rng.random(n),
            "half_set": 1 + rng.integers(0, 2, n),
            "shift_x_A": rng.normal(0, 3, n),
            "shift_y_A": rng.normal(0, 3, n),
            "shift_z_A": rng.normal(0, 3, n),
            "tilt_series": np.array([f"TS_{i % 3}" for i in range(n)]),
            "file": np.array([f"subtomograms/p{i}.mrc" for i in range(n)]),
            "index": np.arange(n),
            "weight_file": np.array([f"subtomograms/w{i % 7}.mrc" for i in range(n)]),
        }
        path = tmp_path / f"particles_{len(list(tmp_path.glob('particles_*.npz')))}.npz"
        np.savez(path, **{f"c_{name}": values for name, values in columns.items()})  # "file" is savez's
        return run(project, MakeParticles.name, {"arrays": str(path)}), columns

    yield make
    patch.undo()


def _assert_rows(project: Project, out: int, columns: dict[str, np.ndarray], rows: np.ndarray) -> dict:
    """The output is a Particle set holding exactly ``rows`` of ``columns``, every carried column equal."""
    item_set = project.output_set(out, "coordinates")
    assert item_set.item_class is Particle
    assert project.output_classes(out)["coordinates"] is Particle
    got = item_set.arrays(*CARRIED, "x_A", "rotation")
    order = np.argsort(got["index"])
    assert np.array_equal(got["index"][order], np.sort(rows))
    for name in CARRIED:
        expected = columns[name][np.sort(rows)]
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(got[name][order], expected, err_msg=name)
        else:
            assert np.array_equal(got[name][order], expected), name
    return got


def test_remove_duplicates_keeps_a_particle_sets_columns(project, tomograms, particles) -> None:
    rng = np.random.default_rng(2)
    xyz = rng.uniform(-200, 200, (300, 3))  # crowded: many duplicates
    made, columns = particles(xyz, random_rotations(300, rng), rng)
    out = run(project, "remove-duplicates", {"distance_A": 50.0}, {"coordinates": f"{made}.particles"})
    kept = np.flatnonzero(greedy_reference(xyz, columns["score"], 50.0))
    assert 20 < len(kept) < 250
    got = _assert_rows(project, out, columns, kept)
    np.testing.assert_allclose(got["rotation"][np.argsort(got["index"])], columns["rotation"][kept], atol=1e-9)
    # a protocol that needs Particles takes the output (it was refused as Coordinate3D before)
    project.new_run("average-subtomograms", {}, {"particles": f"{out}.coordinates"}, executor=SERIAL)


def test_filter_by_normals_keeps_a_particle_sets_columns(project, tomograms, particles) -> None:
    rng = np.random.default_rng(3)
    angles = np.arange(0.0, 180.0, 7.5)
    xyz = np.arange(len(angles))[:, None] * np.array([[40.0, 0, 0]])
    made, columns = particles(xyz, np.stack([rotation_about_x(a) for a in angles]), rng, tomogram="TS_02")
    out = run(project, "filter-by-normals", {"max_angle_deg": 40.0}, {"coordinates": f"{made}.particles"})
    _assert_rows(project, out, columns, np.flatnonzero(angles <= 40.0))


def test_picking_consensus_keeps_the_first_sets_particles_columns(project, tomograms, particles, tmp_path) -> None:
    rng = np.random.default_rng(4)
    xyz = np.arange(40)[:, None] * np.array([[60.0, 30.0, 0.0]]) - [1200.0, 600.0, 0.0]
    rotations = random_rotations(40, rng)
    first, columns = particles(xyz, rotations, rng)
    shared = np.arange(0, 40, 2)  # the second picker (plain coordinates) finds every other one, 5 Å off
    alone = np.array([[0.0, 900.0, 100.0], [300.0, 900.0, -100.0]])  # and two that the first did not
    other = import_picks(
        project,
        tomograms,
        tmp_path / "other",
        np.full(22, "TS_01"),
        np.concatenate([xyz[shared] + [5.0, 0, 0], alone]),
        np.concatenate([rotations[shared], random_rotations(2, rng)]),
        np.ones(22),
    )
    inputs = {"coordinates": f"{first}.particles", "other": f"{other}.coordinates"}
    both = run(project, "picking-consensus", {"radius_A": 20.0, "keep": "all"}, inputs)
    got = _assert_rows(project, both, {**columns, "score": (columns["score"] + 1) / 2}, shared)
    np.testing.assert_allclose(np.sort(got["x_A"]), xyz[shared, 0] + 2.5)  # positions averaged
    anyone = run(project, "picking-consensus", {"radius_A": 20.0, "keep": "any"}, inputs)
    every = project.output_set(anyone, "coordinates").arrays("y_A", "index", "half_set", "file", "weight_file")
    theirs = every["y_A"] == 900.0  # the second set's own two: the class's defaults; the rest the first set's
    assert theirs.sum() == 2 and len(theirs) == 42
    assert np.array_equal(np.sort(every["index"][~theirs]), np.arange(40))
    assert (every["half_set"][theirs] == 0).all() and (every["file"][theirs] == "").all()
    assert set(every["half_set"][~theirs]) == {1, 2} and (every["weight_file"][~theirs] != "").all()
    # the first set plain coordinates: plain coordinates out
    swapped = run(
        project,
        "picking-consensus",
        {"radius_A": 20.0},
        {"coordinates": f"{other}.coordinates", "other": f"{first}.particles"},
    )
    assert project.output_set(swapped, "coordinates").item_class is Coordinate3D


@pytest.mark.parametrize("fmt, pattern", [("relion", "particles.star"), ("dynamo", "*.tbl"), ("text", "*.txt")])
def test_a_particle_sets_export_round_trips_with_its_shifts_and_half_sets(
    project, tomograms, particles, fmt, pattern
) -> None:
    """Each format carries what it can: the centre (position + refined shift; as rlnOrigin = −shift in RELION 5,
    dx dy dz in Dynamo, added in text), rotations and scores, and in RELION 5 the half set as rlnRandomSubset;
    import-coordinates reads the centre back to 1e-3 Å."""
    from tomoforge.io.star import read_particles_star, read_star_blocks
    from tomoforge.methods.symmetry import symmetric_angle_deg

    rng = np.random.default_rng(6)
    half = np.array(SIZE_XYZ) * VOXEL_A / 2 - 20.0
    xyz = rng.uniform(-half, half, (30, 3))
    made, columns = particles(xyz, random_rotations(30, rng), rng)
    shift = np.stack([columns[f"shift_{a}_A"] for a in "xyz"], axis=1)
    exported = run(
        project,
        "export-coordinates",
        {"format": fmt},
        {"coordinates": f"{made}.particles", "tomograms": f"{tomograms}.tomograms"},
    )
    folder = project.run_dir(exported) / "out"
    again = run(
        project,
        "import-coordinates",
        {"files_path": str(folder), "pattern": pattern},
        {"tomograms": f"{tomograms}.tomograms"},
    )
    back = project.output_set(again, "coordinates").arrays("x_A", "y_A", "z_A", "rotation", "score")
    centre = np.stack([back["x_A"], back["y_A"], back["z_A"]], axis=1)
    assert np.abs(centre - (xyz + shift)).max() < 1e-3  # one tomogram: the files keep the set's order
    if fmt != "text":
        assert symmetric_angle_deg(back["rotation"], columns["rotation"]).max() < 1e-3
        np.testing.assert_allclose(back["score"], columns["score"], atol=1e-6)
    if fmt == "relion":
        table = read_particles_star(folder / "particles.star")
        assert np.array_equal(table.extra["rlnRandomSubset"].to_numpy(int), columns["half_set"])
        np.testing.assert_allclose(table.positions_A, xyz + shift, atol=1e-3)
        raw = read_star_blocks(folder / "particles.star")["particles"]
        np.testing.assert_allclose(raw[["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]], -shift, atol=1e-4)
