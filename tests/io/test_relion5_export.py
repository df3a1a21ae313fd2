"""RELION 5 project export: the round trip through tomoforge's RELION 5 import, the blocks and labels of real
RELION 5 files, and RELION 5's own projection formula (relion_tomo_reconstruct) applied to the written STAR."""

from __future__ import annotations

import numpy as np
import pytest

from tomoforge.io.relion5_export import (
    ExportParticles,
    ExportTiltSeries,
    relion_image_name,
    write_relion5_project,
)
from tomoforge.io.relion5_particles import particle_depth_defocus, read_relion5_particles
from tomoforge.io.star import read_star_blocks
from tomoforge.methods.rotations import random_rotations, tilt_projection_matrix

PIXEL = 2.5
IMAGE = (960, 1024)  # x, y pixels of the tilt images
SIZE = (960, 1024, 400)  # the tomogram in tilt-series pixels


def _series(rng: np.random.Generator, name: str, n: int = 9) -> ExportTiltSeries:
    nominal = np.linspace(-48, 48, n)
    return ExportTiltSeries(
        name=name,
        images=tuple(f"{i + 1:06d}@/data/{name}.mrc:mrcs" for i in range(n)),
        nominal_tilt_deg=tuple(nominal),
        tilt_axis_deg=84.7,
        x_tilt_deg=tuple(rng.normal(0, 1.5, n)),
        y_tilt_deg=tuple(nominal + rng.normal(0, 0.8, n)),
        z_rot_deg=tuple(84.7 + rng.normal(0, 0.5, n)),
        x_shift_A=tuple(rng.normal(0, 40, n)),
        y_shift_A=tuple(rng.normal(0, 40, n)),
        pre_exposure_e_A2=tuple(3.0 * np.arange(n)),
        defocus=tuple((u + 300.0, u, a) for u, a in zip(rng.uniform(25000, 40000, n), rng.uniform(-90, 90, n))),
        pixel_size_A=PIXEL,
        voltage_kV=300.0,
        cs_mm=2.7,
        amplitude_contrast=0.07,
        size_xyz_px=SIZE,
        tomogram_binning=4.0,
        tomogram_file=f"tomograms/rec_{name}.mrc",
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    rng = np.random.default_rng(19)
    series = [_series(rng, "TS_01"), _series(rng, "TS_02")]
    n = 12
    particles = ExportParticles(
        tomograms=np.array(["TS_01"] * 7 + ["TS_02"] * 5),
        positions_A=rng.uniform(-1, 1, (n, 3)) * np.array([1000.0, 1000.0, 300.0]),
        rotations=random_rotations(n, rng),
        half_sets=np.tile([1, 2], n // 2),
        numbers=np.arange(n),
    )
    out = tmp_path_factory.mktemp("relion5")
    write_relion5_project(out, series, particles)
    return out, series, particles


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_round_trip_through_the_import(exported):
    out, series, particles = exported
    back = read_relion5_particles(out / "particles.star", out / "tomograms.star")
    for ts in series:
        ours = np.stack(
            [tilt_projection_matrix(y, z, x) for x, y, z in zip(ts.x_tilt_deg, ts.y_tilt_deg, ts.z_rot_deg)]
        )
        tilts = back.tilts[ts.name]
        assert np.abs(tilts.projection - ours).max() < 1e-6
        assert tilts.shift_A is not None
        assert np.abs(tilts.shift_A - np.stack([ts.x_shift_A, ts.y_shift_A], 1)).max() < 1e-5
        assert np.allclose(tilts.dose_e_A2, ts.pre_exposure_e_A2)
        assert np.allclose(tilts.size_A, np.asarray(SIZE) * PIXEL)
    assert back.tomograms.tolist() == particles.tomograms.tolist()
    assert np.abs(back.positions_A - particles.positions_A).max() < 1e-3
    assert _angle_deg(back.rotations, particles.rotations).max() < 1e-3
    assert back.half_sets.tolist() == particles.half_sets.tolist()
    assert back.stacks_2d and back.pixel_size_A == PIXEL and back.voltage_kV == 300.0
    # defocus at each particle's height, read back as the import computes it (rlnTomoHand), is tomoforge's
    # ΔF + [P X]_z (methods/sta/extraction.py)
    for i in range(len(particles.tomograms)):
        ts = series[0] if particles.tomograms[i] == "TS_01" else series[1]
        p = np.stack([tilt_projection_matrix(y, z, x) for x, y, z in zip(ts.x_tilt_deg, ts.y_tilt_deg, ts.z_rot_deg)])
        height = (p @ particles.positions_A[i])[:, 2]
        u, v = particle_depth_defocus(back, i)
        assert np.abs(u - (np.asarray(ts.defocus)[:, 0] + height)).max() < 1e-3
        assert np.abs(v - (np.asarray(ts.defocus)[:, 1] + height)).max() < 1e-3


def _rodrigues(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """gravis t3Matrix::rotation(axis, angle) (RELION's): n nᵀ + cos a (I − n nᵀ) + sin a [n]×."""
    n = axis / np.linalg.norm(axis)
    a = np.radians(angle_deg)
    cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    return np.outer(n, n) + np.cos(a) * (np.eye(3) - np.outer(n, n)) + np.sin(a) * cross


def _relion_projection(row, size, image, pixel) -> np.ndarray:
    """relion_tomo_reconstruct's projection matrix of one tilt: s2 · s1 · Rz · Ry · Rx · s0 (4 × 4, pixels)."""
    m = np.eye(4)

    def affine(r=np.eye(3), t=(0.0, 0.0, 0.0)):
        a = np.eye(4)
        a[:3, :3], a[:3, 3] = r, t
        return a

    s0 = affine(t=-np.array([size[0] // 2, size[1] // 2, size[2] // 2], float))
    r0 = affine(_rodrigues(np.array([1.0, 0, 0]), row.rlnTomoXTilt))
    r1 = affine(_rodrigues(np.array([0, 1.0, 0]), row.rlnTomoYTilt))
    r2 = affine(_rodrigues(np.array([0, 0, 1.0]), row.rlnTomoZRot))
    s1 = affine(t=(row.rlnTomoXShiftAngst / pixel, row.rlnTomoYShiftAngst / pixel, 0.0))
    s2 = affine(t=(image[0] // 2, image[1] // 2, 0.0))
    return m @ s2 @ s1 @ r2 @ r1 @ r0 @ s0


def test_relion_formula_projects_particles_where_tomoforge_does(exported):
    out, series, particles = exported
    blocks = read_star_blocks(out / "particles.star")
    table = blocks["particles"]
    glob = read_star_blocks(out / "tomograms.star")["global"].set_index("rlnTomoName")
    worst, worst_defocus = 0.0, 0.0
    for ts in series:
        tilts = read_star_blocks(out / glob.loc[ts.name, "rlnTomoTiltSeriesStarFile"])[ts.name]
        size = [int(glob.loc[ts.name, f"rlnTomoSize{a}"]) for a in "XYZ"]
        pixel = float(glob.loc[ts.name, "rlnTomoTiltSeriesPixelSize"])
        hand = float(glob.loc[ts.name, "rlnTomoHand"])
        rows = table[table.rlnTomoName == ts.name]
        centred = rows[[f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]].to_numpy(float)
        voxel = np.c_[centred / pixel + np.asarray(size) / 2.0, np.ones(len(rows))]  # RELION: Å → pixels
        ours_x = particles.positions_A[particles.tomograms == ts.name]
        for i, row in enumerate(tilts.itertuples()):
            relion = (_relion_projection(row, size, IMAGE, pixel) @ voxel.T).T
            p = tilt_projection_matrix(ts.y_tilt_deg[i], ts.z_rot_deg[i], ts.x_tilt_deg[i])
            ours = ((p @ ours_x.T).T[:, :2] + [ts.x_shift_A[i], ts.y_shift_A[i]]) / PIXEL + np.array(IMAGE) // 2
            worst = max(worst, float(np.abs(relion[:, :2] - ours).max()))
            # RELION's defocus offset (Tomogram::getCtf): hand · pixel · ([P x] − [P centre])_z
            centre = _relion_projection(row, size, IMAGE, pixel) @ np.r_[np.asarray(size) / 2.0, 1.0]
            offset = hand * pixel * (relion[:, 2] - centre[2])
            worst_defocus = max(worst_defocus, float(np.abs(offset - (p @ ours_x.T)[2]).max()))
    assert worst < 0.01  # px; measured 4.6e-6
    assert worst_defocus < 0.01  # Å; measured 1.1e-5
    # our frame is RELION's: the angles are written as they are, with rlnTomoHand +1
    assert set(glob["rlnTomoHand"].astype(float)) == {1.0}
    for ts in series:
        tilts = read_star_blocks(out / glob.loc[ts.name, "rlnTomoTiltSeriesStarFile"])[ts.name]
        assert np.allclose(tilts["rlnTomoYTilt"].to_numpy(float), ts.y_tilt_deg, atol=1e-5)


def test_blocks_and_labels_are_those_of_real_relion5_files(exported, test_data):
    out, series, _ = exported
    job = test_data / "relion5/pytom-match-pick/relion5_project_example/Tomograms/job009"
    cryoboost = test_data / "relion5/cryoboost/vols"
    warp = test_data / "relion5/tomodrgn_warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12"
    class3d = test_data / "relion5/cylindra_test_jobs/Class3D/job_class3d"
    for path in (job, cryoboost, class3d):
        if not path.exists():
            pytest.skip(f"real RELION 5 files absent at {path}")
    real_global = read_star_blocks(job / "tomograms.star")["global"]
    ours_global = read_star_blocks(out / "tomograms.star")
    assert list(ours_global) == ["global"]
    assert list(ours_global["global"].columns) == list(real_global.columns)  # the ReconstructTomograms job's 13
    assert set(read_star_blocks(cryoboost / "tomograms.star")["global"].columns) <= set(real_global.columns)
    real_tilts = read_star_blocks(job / "tilt_series/tomo200528_107.star")["tomo200528_107"]
    ours_tilts = read_star_blocks(out / "tilt_series/TS_01.star")
    assert list(ours_tilts) == ["TS_01"] and len(ours_tilts["TS_01"]) == len(series[0].images)
    geometry = {c for c in real_tilts.columns if c.startswith(("rlnTomoX", "rlnTomoY", "rlnTomoZ", "rlnDefocus"))}
    assert geometry <= set(ours_tilts["TS_01"].columns) <= set(real_tilts.columns)
    real_particles = read_star_blocks(class3d / "run_it025_data.star")
    ours_particles = read_star_blocks(out / "particles.star")
    assert list(ours_particles) == list(real_particles) == ["general", "optics", "particles"]
    assert set(ours_particles["general"]) == set(real_particles["general"])
    for block in ("optics", "particles"):
        real = set(real_particles[block].columns) | set(read_star_blocks(f"{warp}.star")[block].columns)
        assert set(ours_particles[block].columns) <= real, block
    real_set = read_star_blocks(f"{warp}_optimisation_set.star")
    ours_set = read_star_blocks(out / "optimisation_set.star")
    (real_values,), (ours_values,) = real_set.values(), ours_set.values()
    assert set(ours_values) == set(real_values)
    assert ours_values["rlnTomoParticlesFile"] == "particles.star"


def test_image_names_as_relion_reads_them():
    assert relion_image_name("/d/TS_01.mrc", 0) == "000001@/d/TS_01.mrc:mrcs"
    assert relion_image_name("/d/TS_01.mrcs", 40) == "000041@/d/TS_01.mrcs"
    assert relion_image_name("/d/TS_01_005.mrc", 0, stack=False) == "/d/TS_01_005.mrc"
