"""Per-tilt CTF files: IMOD ctfplotter .defocus (real version-2 file; version-3 flags as IMOD's
ctfutils.cpp reads them), CTFFIND output text (no real file in ../shared/data: written as CTFFIND 4.1.14
writes it, from its documented column line, with the values a RELION CtfFind job took from CTFFIND),
and RELION star CTF columns (real RELION 4/5 files)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

from tomoforge.io.ctf import (
    normalise_table,
    read_ctffind,
    read_imod_ctf,
    read_relion_ctf,
    write_ctffind,
    write_imod_ctf,
    write_relion_ctf,
)
from tomoforge.io.errors import FormatError
from tomoforge.io.imod import read_imod_defocus

IMOD_V2 = "imod/pytom-match-pick/test_imod.defocus"
RELION_CTFFIND = "relion/tomo_preprocessing/ctffind/relion_ctf_estimation_output.star"
RELION5_TS = "relion5/pytom-match-pick/relion5_project_example/Tomograms/job009/tilt_series/tomo200528_107.star"
CRYOBOOST_TS = "relion5/cryoboost/tilts/tilt_series/PositionLabel_12.star"


def test_real_ctfplotter_file_reads_in_nm_with_views_from_one_and_writes_back_the_same(data_file, tmp_path):
    table = read_imod_ctf(data_file(IMOD_V2))
    assert len(table) == 35 and table.view.tolist() == list(range(1, 36))
    assert table.tilt_angle_deg.iloc[0] == pytest.approx(-50.99) and table.tilt_angle_deg.iloc[-1] == pytest.approx(
        51.0
    )
    assert table.defocus_u_A.iloc[0] == pytest.approx(30830.0)  # 3083 nm
    assert (table.defocus_u_A == table.defocus_v_A).all() and (table.phase_shift_deg == 0).all()
    out = write_imod_ctf(table, tmp_path / "TS.defocus")
    lines = out.read_text().splitlines()
    assert lines[0].split() == ["1", "1", "-50.99", "-50.99", "3083.00", "2"]  # version 2 as ctfplotter writes
    assert len(lines) == 35 and len(lines[1].split()) == 5
    again = read_imod_defocus(out)
    assert again.attrs["version"] == 2
    pd.testing.assert_frame_equal(read_imod_ctf(out), table)


def test_version_3_flags_astigmatism_radians_phase_inverted_angles_and_ranges(tmp_path):
    path = tmp_path / "v3.defocus"
    # flags 1 astigmatism + 2 its angle in radians + 4 phase + 8 phase in radians + 16 inverted tilt angles
    path.write_text(
        "31 0 0. 0. 0 3\n"
        "1\t1\t60.00\t60.00\t3100.0\t2900.0\t0.5235988\t1.5707963\n"
        "2\t4\t57.00\t51.00\t2800.0\t3000.0\t0.0\t0.0\n"
    )
    df = read_imod_defocus(path)
    assert df.attrs == {"version": 3, "flags": 31}
    assert df.start_angle_deg.tolist() == [-60.0, -57.0]
    assert df.astigmatism_angle_deg.iloc[0] == pytest.approx(30.0) and df.phase_shift_deg.iloc[0] == pytest.approx(90.0)
    assert (df.defocus_u_A.iloc[1], df.defocus_v_A.iloc[1]) == (30000.0, 28000.0)
    assert df.astigmatism_angle_deg.iloc[1] == pytest.approx(90.0)  # defocus2 > defocus1: axis turned by 90°
    table = read_imod_ctf(path)
    assert table.view.tolist() == [1, 2, 3, 4] and np.isnan(table.tilt_angle_deg.iloc[2])
    out = write_imod_ctf(table.assign(tilt_angle_deg=[-60.0, -57.0, -54.0, -51.0]), tmp_path / "out.defocus")
    assert out.read_text().splitlines()[0] == "5 0 0. 0. 0 3"  # astigmatism + phase, degrees
    back = read_imod_ctf(out)
    np.testing.assert_allclose(
        back[["defocus_u_A", "defocus_v_A", "astigmatism_angle_deg", "phase_shift_deg"]],
        table[["defocus_u_A", "defocus_v_A", "astigmatism_angle_deg", "phase_shift_deg"]],
        atol=0.01,
    )


def test_unversioned_file_from_zero_and_bad_lines(tmp_path):
    path = tmp_path / "old.defocus"
    path.write_text("0 0 -3.0 -3.0 3000\n1 1 0.0 0.0 3010\n")
    assert read_imod_defocus(path).start_view.tolist() == [1, 2]  # old ctfplotter numbered views from 0
    path.write_text("1 0 0 0 3\n1 1 -60 -60 2900 3100 30\n")  # a 5-value 'header' is a data line to IMOD
    with pytest.raises(FormatError, match="old.defocus: line 1: ending view 0 before starting view 1"):
        read_imod_defocus(path)
    path.write_text("1 0 0. 0. 0 3\n1 1 -60 -60 2900\n")
    with pytest.raises(FormatError, match="line 2: 5 values, expected 7"):
        read_imod_defocus(path)


CTFFIND_TEXT = """# Output from CTFFind version 4.1.14, run on 2021-06-01 10:00:00
# Input file: MotionCorr/job002/movies/TS_01_000_0_0.mrc ; Number of micrographs: 2
# Pixel size: 1.350 Angstroms ; acceleration voltage: 300.0 keV ; spherical aberration: 2.70 mm ; amplitude contrast: 0.10
# Box size: 512 pixels ; min. res.: 30.0 Angstroms ; max. res.: 5.0 Angstroms ; min. def.: 5000.0 um; max. def. 50000.0 um
# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; #3 - defocus 2; #4 - azimuth of astigmatism; #5 - additional phase shift [radians]; #6 - cross correlation; #7 - spacing (in Angstroms) up to which CTF rings were fit successfully
1.000000 39224.277344 39029.843750 -15.476660 0.000000 0.036367 7.166976
2.000000 39136.585938 39289.640625 -88.186760 0.523599 0.038592 7.790191
"""


def test_ctffind_text_as_ctffind_writes_it(tmp_path):
    path = tmp_path / "TS_01.txt"
    path.write_text(CTFFIND_TEXT)
    table = read_ctffind(path)
    assert table.attrs == {"pixel_size_A": 1.35, "voltage_kV": 300.0, "cs_mm": 2.7, "amplitude_contrast": 0.1}
    first, second = table.iloc[0], table.iloc[1]
    assert (first.view, first.defocus_u_A, first.defocus_v_A) == (1, 39224.277344, 39029.84375)
    assert first.astigmatism_angle_deg == pytest.approx(-15.47666)
    assert (first.score, first.fit_resolution_A) == (0.036367, 7.166976)
    assert second.defocus_u_A == 39289.640625 and second.astigmatism_angle_deg == pytest.approx(1.81324)  # swapped
    assert second.phase_shift_deg == pytest.approx(30.0, abs=1e-4)  # radians in the file
    out = write_ctffind(table, tmp_path / "out.txt", 1.35, 300.0, 2.7, 0.1)
    lines = out.read_text().splitlines()
    assert CTFFIND_TEXT.splitlines()[4] in lines  # CTFFIND's column line, word for word
    data = [ln for ln in lines if not ln.startswith("#")]
    assert data[0].split()[:4] == ["1.000000", "39224.277344", "39029.843750", "-15.476660"]
    pd.testing.assert_frame_equal(read_ctffind(out), table, check_exact=False, atol=1e-5)
    five = tmp_path / "ctffind5.txt"
    five.write_text("1 20000 19000 10 0 0.1 6.0 85.2 -12.5 1450.0\n")
    t5 = read_ctffind(five)
    assert (t5.tilt_axis_angle_deg[0], t5.specimen_tilt_deg[0], t5.thickness_A[0]) == (85.2, -12.5, 1450.0)
    five.write_text("1 20000 19000 10 0 0.1\n")
    with pytest.raises(FormatError, match="ctffind5.txt: line 1: 6 values, CTFFIND writes at least 7"):
        read_ctffind(five)


def test_relion_ctffind_job_star(data_file):
    table = read_relion_ctf(data_file(RELION_CTFFIND))
    assert len(table) == 41 and table.attrs["tomo_name"] == "micrographs"
    first = table.iloc[0]
    assert (first.defocus_u_A, first.defocus_v_A) == (39224.277344, 39029.84375)
    assert (first.astigmatism_angle_deg, first.score, first.fit_resolution_A) == (-15.47666, 0.036367, 7.166976)
    raw = starfile.read(data_file(RELION_CTFFIND))["micrographs"]
    np.testing.assert_allclose(table.defocus_u_A - table.defocus_v_A, raw.rlnCtfAstigmatism, atol=1e-3)
    assert table.micrograph.iloc[2].endswith("TS_01_002_-3_0.mrc")


def test_relion5_tilt_series_stars_and_round_trip(data_file, tmp_path):
    table = read_relion_ctf(data_file(RELION5_TS))
    assert len(table) == 35 and table.attrs["tomo_name"] == "tomo200528_107"
    assert table.tilt_angle_deg.iloc[0] == pytest.approx(-50.9936)
    assert (table.defocus_u_A.iloc[0], table.fit_resolution_A.iloc[0]) == (24013.296875, 25.0)
    assert table.pre_exposure_e_A2.iloc[0] == pytest.approx(68.2)
    assert (table.defocus_u_A >= table.defocus_v_A).all()
    out = write_relion_ctf(table, tmp_path / "tomo200528_107.star", "tomo200528_107")
    raw = starfile.read(out)
    assert {
        "rlnTomoNominalStageTiltAngle",
        "rlnMicrographPreExposure",
        "rlnDefocusU",
        "rlnDefocusV",
        "rlnCtfAstigmatism",
        "rlnDefocusAngle",
        "rlnPhaseShift",
        "rlnCtfFigureOfMerit",
        "rlnCtfMaxResolution",
    } <= set(raw.columns)
    back = read_relion_ctf(out)
    pd.testing.assert_frame_equal(
        back[table.columns.drop("micrograph")], table.drop(columns="micrograph"), check_exact=False, atol=1e-4
    )
    boost = read_relion_ctf(data_file(CRYOBOOST_TS))
    assert len(boost) == 6 and boost.defocus_u_A.iloc[3] == 96128.8125 and boost.tilt_angle_deg.iloc[3] == -57.99


def test_normalise_swaps_u_and_v():
    t = normalise_table(
        pd.DataFrame({"view": [1], "defocus_u_A": [2.0e4], "defocus_v_A": [2.1e4], "astigmatism_angle_deg": [30.0]})
    )
    assert (t.defocus_u_A[0], t.defocus_v_A[0], t.astigmatism_angle_deg[0]) == (2.1e4, 2.0e4, -60.0)
