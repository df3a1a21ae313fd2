"""remove-duplicates, picking-consensus, filter-by-normals and subsets by score, as runs on coordinate sets."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist
from typer.testing import CliRunner

from tests.methods.picking.test_duplicates import greedy_reference
from tests.protocols.picking.conftest import SERIAL, import_picks, run
from tomoforge.cli.main import app
from tomoforge.engine import execute_run
from tomoforge.methods.picking.duplicates import remove_duplicates
from tomoforge.methods.rotations import random_rotations, rotation_about_x, rotation_about_y
from tomoforge.simulate.accuracy import match_picks

BOX = np.array([1800.0, 1400.0, 500.0])  # half-extents within the 2000 × 1600 × 600 Å tomograms


def columns(project, run_id, filter=""):
    return project.output_set(run_id, "coordinates", filter).arrays(
        "number", "tomogram", "x_A", "y_A", "z_A", "score", "rotation", "has_orientation"
    )


def positions(c):
    return np.stack([c["x_A"], c["y_A"], c["z_A"]], axis=1)


def test_remove_duplicates_on_a_score_subset_keeps_the_greedy_set_per_tomogram(project, tomograms, tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    names = np.where(np.arange(n) < 250, "TS_01", "TS_02")
    xyz = rng.uniform(-BOX / 2, BOX / 2, (n, 3)) / 4  # crowded: many duplicates
    scores = rng.random(n)
    imp = import_picks(project, tomograms, tmp_path / "picks", names, xyz, random_rotations(n, rng), scores)
    assert len(project.output_set(imp, "coordinates", "score > 0.3")) == int((scores > 0.3).sum())
    out = run(project, "remove-duplicates", {"distance_A": 60.0}, {"coordinates": f"{imp}.coordinates[score > 0.3]"})
    got = columns(project, out)
    assert (got["score"] > 0.3).all()
    for name in ("TS_01", "TS_02"):
        subset = (names == name) & (scores > 0.3)
        expected = np.flatnonzero(subset)[greedy_reference(xyz[subset], scores[subset], 60.0)]
        mine = got["tomogram"] == name
        assert pdist(positions(got)[mine]).min() > 60.0
        assert np.allclose(np.sort(got["score"][mine]), np.sort(scores[expected]))
    assert sorted(got["number"].tolist()) == list(range(len(got["number"])))
    origin = project.output_set(out, "coordinates").origin(str(got["number"][0]))
    assert len(origin) == 1 and origin[0].startswith(f"{imp}.coordinates/")


def test_picking_consensus_of_two_pickers_drops_their_own_false_positives(project, tomograms, tmp_path):
    rng = np.random.default_rng(5)
    candidates = rng.uniform(-BOX / 2, BOX / 2, (1200, 3))
    truth = candidates[remove_duplicates(candidates, 80.0)][:200]
    true_rotations = random_rotations(len(truth), rng)
    runs = []
    for k in range(2):
        false = rng.uniform(-BOX / 2, BOX / 2, (60, 3))
        xyz = np.concatenate([truth + rng.normal(0, 4.0, truth.shape), false])
        rot = np.concatenate([true_rotations @ rotation_about_x(3.0 * (-1) ** k), random_rotations(60, rng)])
        names = np.full(len(xyz), "TS_01")
        runs.append(import_picks(project, tomograms, tmp_path / f"picker{k}", names, xyz, rot, rng.random(len(xyz))))
    inputs = {"coordinates": f"{runs[0]}.coordinates", "other": f"{runs[1]}.coordinates"}
    out = run(project, "picking-consensus", {"radius_A": 30.0, "keep": "all"}, inputs)
    got = columns(project, out)
    match = match_picks(positions(got), truth, 30.0, pick_rotations=got["rotation"], true_rotations=true_rotations)
    assert len(match.pick_index) == len(truth)  # every common true particle kept
    assert len(got["x_A"]) - len(match.pick_index) <= 12  # ≥ 90 % of the 120 non-shared false picks dropped
    assert match.median_orientation_error_deg < 1e-3  # +3° and −3° about x average to the truth
    assert got["has_orientation"].all()
    origins = project.output_set(out, "coordinates").origin(str(got["number"][0]))
    assert sorted(o.split(".")[0] for o in origins) == sorted(str(r) for r in runs)
    anyone = run(project, "picking-consensus", {"radius_A": 30.0, "keep": "any"}, inputs)
    assert len(project.output_set(anyone, "coordinates")) >= len(truth) + 110
    refused = project.new_run(
        "picking-consensus", {"radius_A": 30.0, "keep": "at-least", "min_sets": 3}, inputs, executor=SERIAL
    )
    assert execute_run(project, refused) == "failed"
    assert "min_sets = 3 but only 2 coordinate sets" in project.run(refused)["error"]


def test_filter_by_normals_keeps_the_picks_within_the_angle(project, tomograms, tmp_path):
    angles = np.array([0.0, 12.0, 29.0, 31.0, 60.0, 150.0, 178.0])
    rotations = np.stack([rotation_about_x(a) for a in angles])
    xyz = np.arange(len(angles))[:, None] * np.array([[100.0, 0, 0]])
    imp = import_picks(
        project, tomograms, tmp_path / "picks", np.full(len(angles), "TS_02"), xyz, rotations, np.ones(len(angles))
    )
    out = run(project, "filter-by-normals", {"max_angle_deg": 30.0}, {"coordinates": f"{imp}.coordinates"})
    assert np.allclose(np.sort(columns(project, out)["x_A"]), [0, 100, 200])
    both = run(
        project,
        "filter-by-normals",
        {"max_angle_deg": 30.0, "either_sign": True, "direction": [0, 0, -2]},
        {"coordinates": f"{imp}.coordinates"},
    )
    assert np.allclose(np.sort(columns(project, both)["x_A"]), [0, 100, 200, 500, 600])


def test_filter_by_normals_against_fitted_vesicles(project, tomograms, tmp_path):
    from tests.methods.picking.test_normals import ellipsoid_picks
    from tomoforge.methods.rotations import rotation_about_axis, rotation_aligning_z_to

    rng = np.random.default_rng(8)
    points, normals = ellipsoid_picks(rng, np.array([300.0, 250, 200]), np.eye(3), np.zeros(3), 80)
    tilts = rng.uniform(0, 50, len(points))
    rotations = np.stack(
        [
            rotation_about_axis(np.cross(nrm, rng.normal(size=3)), t) @ rotation_aligning_z_to(nrm)
            for nrm, t in zip(normals, tilts)
        ]
    )
    imp = import_picks(project, tomograms, tmp_path / "picks", np.full(80, "TS_01"), points, rotations, tilts)
    out = run(
        project,
        "filter-by-normals",
        {"reference": "ellipsoid", "max_angle_deg": 20.0},
        {"coordinates": f"{imp}.coordinates"},
    )
    kept = columns(project, out)["score"]  # the score holds each pick's tilt from its normal
    assert np.allclose(np.sort(kept), np.sort(tilts[tilts <= 20.0]))


def test_the_tools_run_from_the_command_line(project, tomograms, tmp_path):
    rng = np.random.default_rng(1)
    xyz = rng.uniform(-100, 100, (30, 3))
    imp = import_picks(
        project, tomograms, tmp_path / "picks", np.full(30, "TS_01"), xyz, random_rotations(30, rng), rng.random(30)
    )
    result = CliRunner().invoke(
        app,
        [
            "-p",
            str(project.root),
            "run",
            "remove-duplicates",
            "--input",
            f"coordinates={imp}.coordinates[score > 0.5]",
            "--set",
            "distance_A=50",
            "--executor",
            "serial",
        ],
    )
    assert result.exit_code == 0, result.output
    out = max(r["id"] for r in project.runs())
    assert 0 < len(project.output_set(out, "coordinates")) <= 30


def test_filter_by_normals_against_the_nearest_point_of_a_surface_set(project, tomograms, tmp_path):
    """Surface points along x with normals +z (x < 0) and +x (x ≥ 0); picks pointing along +z sit above them."""
    surface_xyz = np.c_[np.arange(-500.0, 501.0, 50.0), np.zeros((21, 2))]
    surface_rot = np.stack([np.eye(3) if x < 0 else rotation_about_y(90.0) for x in surface_xyz[:, 0]])
    surface = import_picks(
        project, tomograms, tmp_path / "surface", np.full(21, "TS_01"), surface_xyz, surface_rot, np.ones(21)
    )
    picks_xyz = np.c_[np.array([-420.0, -180.0, 120.0, 380.0]), np.zeros(4), np.full(4, 30.0)]
    picks = import_picks(
        project, tomograms, tmp_path / "picks", np.full(4, "TS_01"), picks_xyz, np.stack([np.eye(3)] * 4), np.ones(4)
    )
    out = run(
        project,
        "filter-by-normals",
        {"reference": "surface", "max_angle_deg": 10.0},
        {"coordinates": f"{picks}.coordinates", "surface": f"{surface}.coordinates"},
    )
    assert np.sort(columns(project, out)["x_A"]).tolist() == [-420.0, -180.0]
    far = run(
        project,
        "filter-by-normals",
        {"reference": "surface", "max_angle_deg": 10.0, "max_distance_A": 20.0},
        {"coordinates": f"{picks}.coordinates", "surface": f"{surface}.coordinates"},
    )
    assert len(project.output_set(far, "coordinates")) == 0  # every pick is 30 Å from the surface
