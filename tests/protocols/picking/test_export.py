"""export-coordinates: each format read back by import-coordinates to 1e-3 Å and 1e-3°, and the real RELION 5
and Dynamo files read, exported and read again unchanged."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.protocols.picking.conftest import SIZE_XYZ, VOXEL_A, import_picks, run
from tomoforge.io.mrc import write_mrc
from tomoforge.io.star import read_tomograms_star
from tomoforge.methods.rotations import random_rotations
from tomoforge.methods.symmetry import symmetric_angle_deg

FIELDS = ("tomogram", "x_A", "y_A", "z_A", "score", "rotation", "has_orientation")


def arrays(project, run_id):
    return project.output_set(run_id, "coordinates").arrays(*FIELDS)


def export_and_import(project, tomograms, coordinates_run, fmt, pattern, **import_params):
    out = run(
        project,
        "export-coordinates",
        {"format": fmt, **({"units": import_params["units"]} if "units" in import_params else {})},
        {"coordinates": f"{coordinates_run}.coordinates", "tomograms": f"{tomograms}.tomograms"},
    )
    folder = project.run_dir(out) / "out"
    again = run(
        project,
        "import-coordinates",
        {"files_path": str(folder), "pattern": pattern, **import_params},
        {"tomograms": f"{tomograms}.tomograms"},
    )
    return folder, again


def assert_same(before, after, *, rotations=True, scores=True):
    # files are per tomogram (or grouped by it), each in set order
    order_b = np.argsort(before["tomogram"], kind="stable")
    order_a = np.argsort(after["tomogram"], kind="stable")
    b = {k: v[order_b] for k, v in before.items()}
    a = {k: v[order_a] for k, v in after.items()}
    assert a["tomogram"].tolist() == b["tomogram"].tolist()
    for axis in ("x_A", "y_A", "z_A"):
        assert np.abs(a[axis] - b[axis]).max() < 1e-3
    if rotations:
        assert symmetric_angle_deg(a["rotation"], b["rotation"]).max() < 1e-3
    if scores:
        assert np.allclose(a["score"], b["score"], atol=1e-6, equal_nan=True)


@pytest.fixture
def picks(project, tomograms, tmp_path):
    rng = np.random.default_rng(2)
    n = 60
    half = np.array(SIZE_XYZ) * VOXEL_A / 2
    xyz = rng.uniform(-half, half, (n, 3))
    names = np.where(np.arange(n) % 3 == 0, "TS_02", "TS_01")
    return import_picks(project, tomograms, tmp_path / "picks", names, xyz, random_rotations(n, rng), rng.random(n))


@pytest.mark.parametrize(
    "fmt, pattern, params, oriented, scored",
    [
        ("relion", "particles.star", {}, True, True),
        ("dynamo", "*.tbl", {}, True, True),
        ("imod", "*.mod", {}, False, False),
        ("text", "*.txt", {}, False, False),
        ("text", "*.txt", {"units": "pixel"}, False, False),
    ],
)
def test_each_format_round_trips_through_import(project, tomograms, picks, fmt, pattern, params, oriented, scored):
    folder, again = export_and_import(project, tomograms, picks, fmt, pattern, **params)
    assert_same(arrays(project, picks), arrays(project, again), rotations=oriented, scores=scored)
    assert not list(folder.glob(".*.tmp"))  # written whole: no temporary left


def test_the_relion_tomograms_star_describes_the_tomograms(project, tomograms, picks):
    folder, _ = export_and_import(project, tomograms, picks, "relion", "particles.star")
    table = read_tomograms_star(folder / "tomograms.star")
    assert table["rlnTomoName"].tolist() == ["TS_01", "TS_02"]
    assert table[["rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"]].to_numpy().tolist() == [list(SIZE_XYZ)] * 2
    assert np.allclose(table["rlnTomoTiltSeriesPixelSize"], VOXEL_A)


def test_the_imod_model_holds_pixels_from_the_corner(project, tomograms, picks):
    from tomoforge.io.imod import read_imod_points

    folder, _ = export_and_import(project, tomograms, picks, "imod", "*.mod")
    before = project.output_set(picks, "coordinates", "tomogram = 'TS_02'").arrays("x_A", "y_A", "z_A")
    points = read_imod_points(folder / "TS_02.mod")
    expected = np.stack([before["x_A"], before["y_A"], before["z_A"]], 1) / VOXEL_A + np.array(SIZE_XYZ) / 2
    assert np.abs(points[["x", "y", "z"]].to_numpy() - expected).max() < 1e-4


def real_tomogram(project, tmp_path, name, size_xyz, voxel_A):
    folder = tmp_path / f"tomo_{name}"
    folder.mkdir()
    nx, ny, nz = size_xyz
    write_mrc(folder / f"{name}.mrc", np.zeros((nz, ny, nx), np.int8), voxel_A)
    return run(project, "import-tomograms", {"files_path": str(folder)})


@pytest.mark.parametrize("fmt, pattern", [("relion", "particles.star"), ("dynamo", "*.tbl")])
def test_real_pytom_match_pick_candidates_are_exported_and_read_again_unchanged(
    project, tmp_path, data_file, fmt, pattern
):
    source = data_file("relion5/cryoboost/pickLists/candidatesPytomRel5.star")
    tomograms = real_tomogram(project, tmp_path, "Position_1_11.80Apx", (1024, 1024, 300), 11.8)
    folder = tmp_path / "real"
    folder.mkdir()
    shutil.copy(source, folder)
    first = run(project, "import-coordinates", {"files_path": str(folder)}, {"tomograms": f"{tomograms}.tomograms"})
    before = arrays(project, first)
    assert np.allclose(before["score"], [0.459828, 0.441953, 0.439039])  # rlnLCCmax
    assert np.allclose(before["x_A"], [-1758.2, -2725.8, -4177.2])
    _, again = export_and_import(project, tomograms, first, fmt, pattern)
    assert_same(before, arrays(project, again))


@pytest.mark.parametrize("table", ["t_double.tbl", "t_complex.tbl"])
def test_a_real_dynamo_table_is_exported_and_read_again_unchanged(project, tomograms, tmp_path, data_file, table):
    folder = tmp_path / "real"
    folder.mkdir()
    shutil.copy(data_file(f"dynamo/dynamotable/{table}"), folder / "TS_01.tbl")
    first = run(
        project,
        "import-coordinates",
        {"files_path": str(folder), "pattern": "*.tbl"},
        {"tomograms": f"{tomograms}.tomograms"},
    )
    before = arrays(project, first)
    for fmt, pattern in (("dynamo", "*.tbl"), ("relion", "particles.star")):
        _, again = export_and_import(project, tomograms, first, fmt, pattern)
        assert_same(before, arrays(project, again))
