"""RELION 5 STAR: tomograms, tilt series, particles (centred Å and pixel coordinates) on real files; round trips."""

import numpy as np
import pandas as pd
import pytest

from tomoforge.io.errors import FormatError
from tomoforge.io.euler import relion_euler_to_matrix
from tomoforge.io.star import (
    ParticleTable,
    read_particles_star,
    read_tilt_series_star,
    read_tomograms_star,
    tomogram_sizes_px,
    write_particles_star,
    write_tilt_series_star,
    write_tomograms_star,
)

PYTOM = "relion5/pytom-match-pick/relion5_project_example/Tomograms/job009/"
WARP = "relion5/tomodrgn_warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12"


def test_tomograms_star(data_file, tmp_path):
    df = read_tomograms_star(data_file(PYTOM + "tomograms.star"))
    assert len(df) == 10 and df.rlnTomoName[0] == "tomo200528_100"
    assert df.rlnTomoTiltSeriesPixelSize[0] == pytest.approx(1.724)
    assert tomogram_sizes_px(df)["tomo200528_107"] == (4000, 4000, 2000)
    again = read_tomograms_star(write_tomograms_star(df, tmp_path / "t.star"))
    pd.testing.assert_frame_equal(again, df)
    with pytest.raises(FileExistsError):
        write_tomograms_star(df, tmp_path / "t.star")
    warp = read_tomograms_star(data_file(WARP + "_tomograms.star"))  # global + per-tomo blocks
    assert warp.rlnTomoName.tolist()[0] == "Unt_083.tomostar" and warp.rlnTomoSizeX[0] == 4400


def test_tilt_series_star(data_file, tmp_path):
    df = read_tilt_series_star(data_file(PYTOM + "tilt_series/tomo200528_107.star"))
    assert df.attrs["tomo_name"] == "tomo200528_107" and len(df) == 35
    assert df.rlnTomoNominalStageTiltAngle[0] == pytest.approx(-50.9936)
    assert df.rlnTomoNominalTiltAxisAngle[0] == pytest.approx(-91.0)
    assert df.rlnMicrographPreExposure[0] == pytest.approx(68.2)
    for col in [
        "rlnTomoXTilt",
        "rlnTomoYTilt",
        "rlnTomoZRot",
        "rlnTomoXShiftAngst",
        "rlnTomoYShiftAngst",
        "rlnDefocusU",
        "rlnDefocusV",
        "rlnDefocusAngle",
    ]:
        assert col in df
    out = write_tilt_series_star(df, tmp_path / "ts.star", "tomo200528_107")
    again = read_tilt_series_star(out)
    assert again.attrs["tomo_name"] == "tomo200528_107"
    pd.testing.assert_frame_equal(again, df, check_like=False)
    cb = read_tilt_series_star(data_file("relion5/cryoboost/vols/tilt_series/Position_1.star"))
    assert cb.rlnTomoNominalTiltAxisAngle[0] == pytest.approx(84.2)


def test_particles_centred(data_file):
    t = read_particles_star(data_file("relion5/cylindra_test_jobs/Picks/job_picks/particles.star"))
    assert t.tomo_names[:2] == ["TS_01", "TS_01"] and len(t) == 5
    np.testing.assert_allclose(t.positions_A[0], [-176.94, 765.48005, 11.16])
    np.testing.assert_allclose(t.rotations, np.broadcast_to(np.eye(3), (5, 3, 3)))
    pytom = read_particles_star(data_file("relion5/cryoboost/pickLists/candidatesPytomRel5.star"))
    np.testing.assert_allclose(pytom.positions_A[0], [-1758.2, 2006.0, 495.6])
    np.testing.assert_allclose(pytom.rotations[0], relion_euler_to_matrix(-45.0, 48.189685, -180.0))
    assert "rlnLCCmax" in pytom.extra


def test_particles_with_subtomogram_frame_and_origin(data_file):
    path = data_file("relion5/cylindra_test_jobs/Class3D/job_class3d/run_it025_data.star")
    t = read_particles_star(path)
    import starfile

    df = starfile.read(path)["particles"]
    expected = (
        df[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]].to_numpy()
        - df[["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]].to_numpy()
    )
    np.testing.assert_allclose(t.positions_A, expected)
    sub = relion_euler_to_matrix(
        *df[["rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi"]].to_numpy().T
    )
    ang = relion_euler_to_matrix(*df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy().T)
    np.testing.assert_allclose(t.rotations, sub @ ang, atol=1e-12)
    assert t.general == {"rlnTomoSubTomosAre2DStacks": 1} and t.optics is not None


def test_particles_pixel_coordinates(data_file):
    path = data_file(WARP + ".star")
    with pytest.raises(FormatError, match="tomogram sizes"):
        read_particles_star(path)
    tomos = read_tomograms_star(data_file(WARP + "_tomograms.star"))
    t = read_particles_star(path, tomogram_sizes_px=tomogram_sizes_px(tomos))
    import starfile

    df = starfile.read(path)["particles"]
    first = df.iloc[0]
    expected = (
        np.array([first.rlnCoordinateX, first.rlnCoordinateY, first.rlnCoordinateZ]) - np.array([4400, 6000, 1400]) / 2
    ) * 1.667 - np.array([first.rlnOriginXAngst, first.rlnOriginYAngst, first.rlnOriginZAngst])
    np.testing.assert_allclose(t.positions_A[0], expected)


def test_missing_coordinates_named(tmp_path):
    path = tmp_path / "p.star"
    path.write_text("data_particles\n\nloop_\n_rlnTomoName #1\n_rlnAngleRot #2\nTS_01 10\n")
    with pytest.raises(FormatError, match=r"p.star: data_particles: column _rlnCenteredCoordinateXAngst"):
        read_particles_star(path)


@pytest.mark.parametrize(
    "rel",
    [
        "relion5/cylindra_test_jobs/Class3D/job_class3d/run_it025_data.star",
        "relion5/cryoboost/pickLists/candidatesPytomRel5.star",
        "relion5/cylindra_test_jobs/Refine3D/job_refine/run_it050_data.star",
    ],
)
def test_particles_round_trip(data_file, tmp_path, rel):
    t = read_particles_star(data_file(rel))
    again = read_particles_star(write_particles_star(t, tmp_path / "out.star"))
    assert again.tomo_names == t.tomo_names
    np.testing.assert_allclose(again.positions_A, t.positions_A, atol=1e-4)
    np.testing.assert_allclose(again.rotations, t.rotations, atol=1e-5)
    assert set(t.extra.columns) <= set(again.extra.columns)


def test_synthetic_round_trip(tmp_path):
    from scipy.spatial.transform import Rotation

    rot = Rotation.random(7, random_state=3).as_matrix()
    t = ParticleTable(
        tomo_names=["a"] * 4 + ["b"] * 3,
        positions_A=np.arange(21.0).reshape(7, 3) * 1.5,
        rotations=rot,
        extra=pd.DataFrame({"rlnClassNumber": range(7)}),
    )
    again = read_particles_star(write_particles_star(t, tmp_path / "s.star"))
    np.testing.assert_allclose(again.rotations, rot, atol=1e-5)
    np.testing.assert_allclose(again.positions_A, t.positions_A, atol=1e-5)
    assert again.extra.rlnClassNumber.tolist() == list(range(7))


@pytest.mark.parametrize("name", ["TS_01", "tomo 1"])  # a name with a space needs quotes: starfile writes that one
def test_particles_star_text_reads_back_through_starfile(tmp_path, name):
    import starfile

    rng = np.random.default_rng(0)
    positions = rng.normal(size=(50, 3)) * 1000
    extra = pd.DataFrame({"rlnAutopickFigureOfMerit": rng.random(50), "rlnClassNumber": np.arange(50)})
    t = ParticleTable([name] * 50, positions, np.broadcast_to(np.eye(3), (50, 3, 3)), extra=extra)
    path = write_particles_star(t, tmp_path / "p.star")
    loop = starfile.read(path)
    assert loop["rlnTomoName"].astype(str).tolist() == [name] * 50
    np.testing.assert_allclose(
        loop[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]].to_numpy(),
        positions,
        atol=5e-7,
    )
    assert loop["rlnClassNumber"].tolist() == list(range(50))
