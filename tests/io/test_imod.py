"""IMOD .xf/.tlt/.xtilt/.defocus on real files; xf <-> RELION 5 projection model."""

import numpy as np
import pytest

from tomoforge.io.errors import FormatError
from tomoforge.io.imod import (
    projection_model_to_xf,
    read_imod_defocus,
    read_tlt,
    read_xf,
    read_xtilt,
    write_imod_defocus,
    write_tlt,
    write_xf,
    write_xtilt,
    xf_distortion,
    xf_to_projection_model,
)
from tomoforge.methods.align.projection_model import ProjectionModel, rotation_matrices


def test_read_real_xf_tlt_xtilt(data_file):
    xf = read_xf(data_file("imod/etomofiles_TS_001/TS_001.xf"))
    assert xf.shape == (40, 2, 3)
    np.testing.assert_allclose(xf[0], [[0.1020875, 0.9947760, 2.395], [-0.9947760, 0.1020875, -3.871]])
    tlt = read_tlt(data_file("imod/etomofiles_TS_001/TS_001.tlt"))
    assert len(tlt) == 40 and tlt[0] == pytest.approx(-57.12)
    assert read_xtilt(data_file("imod/etomofiles_TS_001/TS_001.xtilt"))[0] == pytest.approx(-0.01)
    bb = read_xf(data_file("imod/IMOD_repo_uitestData/BB/BBa.xf"))
    assert bb[0, 0, 0] == pytest.approx(0.9787406) and bb[0, 1, 2] == pytest.approx(1.220)
    assert len(read_tlt(data_file("imod/IMOD_repo_uitestData/BB/BBa.tlt"))) == len(bb)
    xf1 = read_xf(data_file("imod/cryoet-alignment_imod_1/tilt_1.xf"))
    assert xf1[0, 0, 2] == pytest.approx(-58.170)
    assert read_xtilt(data_file("imod/cryoet-alignment_imod_1/tilt_1.xtilt"))[0] == 0.0
    multi = read_tlt(data_file("imod/pytom-match-pick/test_angles_multi_column.rawtlt"))
    assert multi[:2].tolist() == [-51.0, -48.0]


def test_zrot_is_the_tilt_axis_angle(data_file):
    # etomo's TS_001.edf has ImageRotationA=83.9 (the input tilt-axis angle); tiltalign refines it
    model = xf_to_projection_model(read_xf(data_file("imod/etomofiles_TS_001/TS_001.xf")), 6.192)
    assert model["z_rot_deg"][0] == pytest.approx(84.14, abs=0.01)
    assert np.all(np.abs(model["z_rot_deg"] - 83.9) < 1.0)


def test_shift_formula_by_hand():
    # A = rotation by -90 deg (ZRot 90); a specimen shift of (+10, 0) px is DX, DY = -A (10, 0)
    xf = projection_model_to_xf([90.0], [10.0 * 2], [0.0], pixel_size_A=2.0)
    np.testing.assert_allclose(xf[0], [[0, 1, 0], [-1, 0, 10]], atol=1e-12)
    back = xf_to_projection_model(xf, 2.0)
    assert back["z_rot_deg"][0] == pytest.approx(90)
    assert back["x_shift_A"][0] == pytest.approx(20) and back["y_shift_A"][0] == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize(
    "rel",
    [
        "imod/etomofiles_TS_001/TS_001.xf",
        "imod/IMOD_repo_uitestData/BB/BBa.xf",
        "imod/cryoet-alignment_imod_1/tilt_1.xf",
    ],
)
def test_projection_model_round_trip(data_file, rel):
    xf = read_xf(data_file(rel))
    model = xf_to_projection_model(xf, 3.0)
    back = projection_model_to_xf(model["z_rot_deg"], model["x_shift_A"], model["y_shift_A"], 3.0)
    # tiltalign's A includes a small magnification/skew: rotations agree to that, shifts fully
    np.testing.assert_allclose(back[:, :, :2], xf[:, :, :2], atol=0.02)
    again = xf_to_projection_model(back, 3.0)
    np.testing.assert_allclose(again["z_rot_deg"], model["z_rot_deg"], atol=1e-9)
    np.testing.assert_allclose(again["x_shift_A"], model["x_shift_A"], atol=1e-6)


def test_write_round_trips(tmp_path, data_file):
    xf = read_xf(data_file("imod/etomofiles_TS_001/TS_001.xf"))
    np.testing.assert_allclose(read_xf(write_xf(tmp_path / "a.xf", xf)), xf, atol=5e-4)
    angles = np.array([-60.0, -57.5, 0.01, 60.0])
    np.testing.assert_allclose(read_tlt(write_tlt(tmp_path / "a.tlt", angles)), angles, atol=0.005)
    np.testing.assert_allclose(read_xtilt(write_xtilt(tmp_path / "a.xtilt", angles)), angles, atol=0.005)
    with pytest.raises(FileExistsError):
        write_tlt(tmp_path / "a.tlt", angles)


def test_bad_xf_names_line(tmp_path):
    path = tmp_path / "bad.xf"
    path.write_text("1 0 0 1 0 0\n1 0 0 1 0\n")
    with pytest.raises(FormatError, match="bad.xf: line 2: xf line has 5 values, expected 6"):
        read_xf(path)
    path.write_text("1 0 0 1 0 x\n")
    with pytest.raises(FormatError, match="bad.xf: line 1"):
        read_xf(path)


def test_ctfplotter_version2(data_file):
    df = read_imod_defocus(data_file("imod/pytom-match-pick/test_imod.defocus"))
    assert df.attrs["version"] == 2 and len(df) == 35
    first = df.iloc[0]
    assert (first.start_view, first.end_view) == (1, 1)
    assert first.start_angle_deg == pytest.approx(-50.99)
    assert first.defocus_u_A == pytest.approx(30830.0) and first.defocus_v_A == pytest.approx(30830.0)
    assert df.iloc[1].defocus_u_A == pytest.approx(30840.0)


def test_ctfplotter_version3_and_round_trip(tmp_path, data_file):
    path = tmp_path / "v3.defocus"
    path.write_text(
        "1 0 0. 0. 0 3\n1\t1\t-60.00\t-60.00\t2900.5\t3100.5\t30.0\n2\t2\t-57.00\t-57.00\t3000.0\t2950.0\t-12.5\n"
    )
    df = read_imod_defocus(path)
    assert df.attrs["version"] == 3
    assert df.iloc[0].defocus_u_A == pytest.approx(31005.0) and df.iloc[0].defocus_v_A == pytest.approx(29005.0)
    assert df.iloc[0].astigmatism_angle_deg == pytest.approx(-60.0)  # U/V swapped: the axis turned by 90°
    assert df.iloc[1].astigmatism_angle_deg == pytest.approx(-12.5)
    again = read_imod_defocus(write_imod_defocus(df, tmp_path / "out.defocus"))
    np.testing.assert_allclose(
        again[["defocus_u_A", "defocus_v_A", "astigmatism_angle_deg"]],
        df[["defocus_u_A", "defocus_v_A", "astigmatism_angle_deg"]],
        atol=0.1,
    )
    real = read_imod_defocus(data_file("imod/pytom-match-pick/test_imod.defocus"))
    back = read_imod_defocus(write_imod_defocus(real, tmp_path / "real.defocus"))
    np.testing.assert_allclose(back.defocus_u_A, real.defocus_u_A, atol=0.1)
    assert back.start_view.tolist() == real.start_view.tolist()


def test_hand_matches_tiltalign_fiducials(data_file):
    """Our projection model of an IMOD alignment puts tiltalign's solved 3D beads where it fitted them.

    BB (IMOD's test set, 512x512 px at 20.2 Å): tiltalign ran on BBa.preali, so BBa.resid (X, Y of the
    measured bead in that stack, view from 0, residual dx dy = fitted − measured) and BBafid.xyz (X, Y from
    the aligned image's corner, Z from the mid-plane, px) go with BBa.tltxf (the transforms of that stack).
    """
    bb = "imod/IMOD_repo_uitestData/BB/"
    xf = read_xf(data_file(bb + "BBa.tltxf"))
    tilts, x_tilts = read_tlt(data_file(bb + "BBa.tlt")), read_xtilt(data_file(bb + "BBa.xtilt"))
    xyz = np.loadtxt(data_file(bb + "BBafid.xyz"), usecols=(1, 2, 3))
    resid = np.loadtxt(data_file(bb + "BBa.resid"), skiprows=1)
    view = resid[:, 2].astype(int)
    point = np.cumsum(np.r_[True, np.diff(view) <= 0]) - 1  # one block of views per bead, in xyz order
    assert point[-1] + 1 == len(xyz) == 23 and len(resid) == 1403
    fitted = resid[:, :2] + resid[:, 3:] - 256.0  # px from the image centre
    centred = xyz - [256.0, 256.0, 0.0]

    # IMOD's own model (the .xf's full affine): the file pieces fit together to their 2-decimal rounding
    cos_t, sin_t = np.cos(np.deg2rad(tilts))[view], np.sin(np.deg2rad(tilts))[view]
    aligned = np.c_[cos_t * centred[point, 0] + sin_t * centred[point, 2], centred[point, 1]]
    raw = np.einsum("nij,nj->ni", np.linalg.inv(xf[:, :, :2])[view], aligned - xf[view, :, 2])
    assert np.sqrt(np.mean(np.sum((raw - fitted) ** 2, 1))) < 0.15

    model = xf_to_projection_model(xf, 20.2)
    shifts = np.c_[model["x_shift_A"], model["y_shift_A"]]
    rms = {}
    for hand, sign in (("ours", 1.0), ("z mirrored", -1.0)):
        projection = ProjectionModel(tilts, model["z_rot_deg"], shifts, x_tilts)
        image = projection.project_px(centred * [1.0, 1.0, sign] * 20.2, 20.2)[view, point]
        rms[hand] = np.sqrt(np.mean(np.sum((image - fitted) ** 2, 1)))
    # ours: 1.05 px (the residuals' RMS is 0.36 px; the rest is the .xf's magnification and stretch,
    # which the RELION 5 model drops); mirrored: 43.5 px (61 px beyond 40 degrees of tilt)
    assert rms["ours"] < 1.2
    assert rms["z mirrored"] > 40.0


@pytest.mark.parametrize("hand", [1, -1])
def test_relion5_reading_of_an_imod_alignment_keeps_its_hand(data_file, tmp_path, hand):
    """BB's IMOD alignment written as RELION 5 imports IMOD (rlnTomoYTilt = .tlt, rlnTomoZRot = the .xf rotation,
    shifts; RELION 5 projects with tomoforge's Rz · Ry · Rx) and read back: with rlnTomoHand +1 (defocus growing
    with z, as tomoforge's) in our IMOD import's frame; with −1 in its mirror in z, where tomoforge's defocus
    ΔF + [P X]_z is RELION's ΔF − [P X]_z."""
    from tomoforge.io.relion5_particles import MIRROR_Z, particle_depth_defocus, read_relion5_particles

    bb = "imod/IMOD_repo_uitestData/BB/"
    xf, tilts = read_xf(data_file(bb + "BBa.tltxf")), read_tlt(data_file(bb + "BBa.tlt"))
    model = xf_to_projection_model(xf, 20.2)
    bead = (np.loadtxt(data_file(bb + "BBafid.xyz"), usecols=(1, 2, 3))[0] - [256.0, 256.0, 0.0]) * 20.2
    rows = "\n".join(
        f"0.0 {t:.4f} {z:.6f} {x:.6f} {y:.6f} 30000 30000 0 1 0"
        for t, z, x, y in zip(tilts, model["z_rot_deg"], model["x_shift_A"], model["y_shift_A"])
    )
    columns = "XTilt YTilt ZRot XShiftAngst YShiftAngst".split()
    header = "".join(f"_rlnTomo{c}\n" for c in columns) + "_rlnDefocusU\n_rlnDefocusV\n_rlnDefocusAngle\n"
    (tmp_path / "BBa.star").write_text(
        f"data_BBa\n\nloop_\n{header}_rlnCtfScalefactor\n_rlnMicrographPreExposure\n{rows}\n"
    )
    (tmp_path / "tomograms.star").write_text(
        "data_global\n\nloop_\n_rlnTomoName\n_rlnTomoSizeX\n_rlnTomoSizeY\n_rlnTomoSizeZ\n_rlnTomoHand\n"
        f"_rlnTomoTiltSeriesPixelSize\n_rlnTomoTiltSeriesStarFile\nBBa 512 512 200 {hand} 20.2 BBa.star\n"
    )
    (tmp_path / "particles.star").write_text(
        "data_optics\n\nloop_\n_rlnOpticsGroup\n_rlnTomoTiltSeriesPixelSize\n_rlnImagePixelSize\n_rlnVoltage\n"
        "_rlnSphericalAberration\n_rlnAmplitudeContrast\n1 20.2 20.2 300 2.7 0.1\n\n"
        "data_particles\n\nloop_\n_rlnTomoName\n_rlnCenteredCoordinateXAngst\n_rlnCenteredCoordinateYAngst\n"
        f"_rlnCenteredCoordinateZAngst\nBBa {bead[0]:.3f} {bead[1]:.3f} {bead[2]:.3f}\n"
    )
    relion = read_relion5_particles(tmp_path / "particles.star", tmp_path / "tomograms.star")
    read = relion.tilts["BBa"]
    ours = ProjectionModel(tilts, model["z_rot_deg"], np.c_[model["x_shift_A"], model["y_shift_A"]])
    rotations = rotation_matrices(tilts, model["z_rot_deg"])
    # the bead lands where IMOD put it in either frame (a frame mirrored in z projects points alike) ...
    seen = read.projection @ relion.positions_A[0]
    np.testing.assert_allclose(seen[:, :2] + read.shift_A, ours.project(bead)[:, 0], atol=1e-2)
    # ... the frame is ours for hand +1, its mirror in z for hand -1
    frame = np.eye(3) if hand == 1 else MIRROR_Z
    np.testing.assert_allclose(relion.positions_A[0], frame @ bead, atol=1e-2)
    np.testing.assert_allclose(read.projection, frame @ rotations @ frame, atol=1e-5)
    # tomoforge's defocus at the bead, ΔF + [P X]_z in the frame read, is RELION's, ΔF + hand · [P X]_z in the file's
    height_in_file = (rotations @ bead)[:, 2]
    np.testing.assert_allclose(particle_depth_defocus(relion, 0)[0], 30000 + hand * height_in_file, atol=1e-2)
    np.testing.assert_allclose(particle_depth_defocus(relion, 0)[0], 30000 + seen[:, 2], atol=1e-2)


def test_xf_distortion_by_formula_and_on_a_tiltalign_file(data_file):
    # A = rotation by 30° · scale 1.02 · shear: columns 90° + skew apart
    theta, skew = np.deg2rad(30.0), np.deg2rad(0.5)
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    shear = np.array([[1.0, np.sin(skew)], [0.0, np.cos(skew)]])
    xf = np.zeros((2, 2, 3))
    xf[0, :, :2] = 1.02 * rotation
    xf[1, :, :2] = rotation @ shear
    got = xf_distortion(xf)
    np.testing.assert_allclose(got["magnification"], [1.02, np.sqrt(np.cos(skew))], rtol=1e-12)
    np.testing.assert_allclose(got["skew_deg"], [0.0, -0.5], atol=1e-9)
    # a pure scale about the kept rotation moves a point 1000 px out by 20 px
    assert got["edge_px_per_1000"][0] == pytest.approx(20.0)
    unit = xf_distortion(projection_model_to_xf([84.0, -3.0], [5.0, 1.0], [2.0, 0.0], 2.0))
    np.testing.assert_allclose(unit["magnification"], 1.0)
    np.testing.assert_allclose(unit["edge_px_per_1000"], 0.0, atol=1e-9)
    # IMOD's BB test data was aligned with magnification and skew solved; etomo's TS_001 without
    bb = xf_distortion(read_xf(data_file("imod/IMOD_repo_uitestData/BB/BBa.xf")))
    assert 0.998 < bb["magnification"].min() < 0.999 and 1.007 < bb["magnification"].max() < 1.008
    assert 0.6 < np.abs(bb["skew_deg"]).max() < 0.7 and bb["edge_px_per_1000"].max() > 10
    ts = xf_distortion(read_xf(data_file("imod/etomofiles_TS_001/TS_001.xf")))
    assert ts["edge_px_per_1000"].max() < 0.01
