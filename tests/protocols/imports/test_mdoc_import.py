"""Importing tilt series from real mdocs: values, order, doses, and every bad input named."""

import re
import shutil

import numpy as np
import pytest

from tests.protocols.conftest import stack_beside, write_frames
from tomoforge.io.mdoc import read_mdoc
from tomoforge.protocols.imports.mdoc import (
    ImportFileError,
    accumulated_doses,
    acquisition_order,
    tilt_series_from_mdoc,
)


def test_hiv_mdoc_gives_41_tilts_with_header_values_and_dose_order(hiv_dir):
    ts = tilt_series_from_mdoc(hiv_dir / "TS_01.mrc.mdoc", {"dose_per_tilt_e_A2": 3.0})
    assert ts.name == "TS_01" and ts.n_images == 41
    a = ts.acquisition
    assert (a.pixel_size_A, a.tilt_axis_angle_deg, a.magnification) == (5.4, 85.3, 105000)
    angles = [t.tilt_angle_deg for t in ts.tilt_images]
    assert (
        angles == sorted(angles)
        and angles[0] == pytest.approx(-59.9986)
        and angles[-1] == pytest.approx(60.0, abs=0.01)
    )
    # section 0 (0 deg) was exposed first; DateTime orders the rest
    first = min(ts.tilt_images, key=lambda t: t.acquisition_order)
    assert first.acquisition_order == 1 and first.tilt_angle_deg == pytest.approx(0.000999877)
    assert sorted(t.acquisition_order for t in ts.tilt_images) == list(range(1, 42))
    # accumulated dose = pre-exposure + own = 3 e/A^2 x order
    assert all(t.accumulated_dose_e_A2 == pytest.approx(3.0 * t.acquisition_order) for t in ts.tilt_images)
    assert first.nominal_defocus_A == pytest.approx(-2.68083e4)  # mdoc Defocus is in um, negative = underfocus
    assert first.index == 0 and first.file.endswith("TS_01.mrc")
    assert ts.source_file.endswith("TS_01.mrc.mdoc")


def test_acquisition_order_follows_datetime_not_section_order(hiv_dir):
    mdoc = read_mdoc(hiv_dir / "TS_01.mrc.mdoc")
    order = acquisition_order(mdoc)
    times = mdoc.datetimes()
    by_order = [times[i] for i in np.argsort(order)]
    assert by_order == sorted(times)


def test_accumulated_dose_formula():
    doses = np.array([1.0, 2.0, 3.0])
    order = np.array([2, 3, 1])  # image 2 exposed first
    assert accumulated_doses(doses, order).tolist() == [4.0, 6.0, 3.0]


def test_crlf_and_lf_mdocs_import_identically(tmp_path, data_file, hiv_dir):
    crlf_dir = tmp_path / "crlf"
    crlf_dir.mkdir()
    shutil.copy(data_file("mdoc/tomo_preprocessing/TS_01.mrc.mdoc"), crlf_dir / "TS_01.mrc.mdoc")
    assert b"\r\n" in (crlf_dir / "TS_01.mrc.mdoc").read_bytes()
    stack_beside(crlf_dir / "TS_01.mrc.mdoc", 41)
    a = tilt_series_from_mdoc(crlf_dir / "TS_01.mrc.mdoc")
    b = tilt_series_from_mdoc(hiv_dir / "TS_01.mrc.mdoc")
    strip = lambda ts: [(t.tilt_angle_deg, t.acquisition_order, t.dose_e_A2) for t in ts.tilt_images]  # noqa: E731
    assert strip(a) == strip(b)


def test_tomography5_tilt_axis_is_never_taken_silently(tmp_path, data_file):
    folder = tmp_path / "tomo5"
    folder.mkdir()
    mdoc = folder / "Position_12.mdoc"
    shutil.copy(data_file("mdoc/tomo5_cryoboost/Position_12.mdoc"), mdoc)
    stack_beside(mdoc, 6)
    with pytest.raises(
        ImportFileError,
        match=r"Position_12.mdoc: .*TiltAxisAngle = -174.23.*give tilt_axis_angle_deg"
        r" \(-RotationAngle suggests 84.23\)",
    ):
        tilt_series_from_mdoc(mdoc)
    ts = tilt_series_from_mdoc(mdoc, {"tilt_axis_angle_deg": 84.23}, mdoc_format="tomo5")
    assert ts.acquisition.tilt_axis_angle_deg == 84.23 and ts.acquisition.voltage_kV == 300.0
    assert ts.acquisition.pixel_size_A == 2.95 and ts.n_images == 6
    assert sorted(t.dose_e_A2 for t in ts.tilt_images) == [2.06, 2.07, 2.07, 2.07, 2.07, 2.08]
    with pytest.raises(ImportFileError, match="written by Tomography, but mdoc_format is serialem"):
        tilt_series_from_mdoc(mdoc, {"tilt_axis_angle_deg": 84.23}, mdoc_format="serialem")


def edit(path, pattern, replacement, count=0):
    text = path.read_text()
    new = re.sub(pattern, replacement, text, count=count, flags=re.S)
    assert new != text
    path.write_text(new)


def test_missing_section_is_named(hiv_dir):
    mdoc = hiv_dir / "TS_01.mrc.mdoc"
    edit(mdoc, r"\[ZValue = 7\].*?(?=\[ZValue = 8\])", "")
    with pytest.raises(ImportFileError, match=r"TS_01.mrc.mdoc.*ZValue = 7"):
        tilt_series_from_mdoc(mdoc)


def test_duplicated_section_is_named(hiv_dir):
    mdoc = hiv_dir / "TS_01.mrc.mdoc"
    edit(mdoc, r"\[ZValue = 8\]", "[ZValue = 7]")
    with pytest.raises(ImportFileError, match=r"TS_01.mrc.mdoc.*ZValue = 7"):
        tilt_series_from_mdoc(mdoc)


def test_pixel_size_of_zero_is_refused_unless_overridden(hiv_dir):
    mdoc = hiv_dir / "TS_01.mrc.mdoc"
    edit(mdoc, r"PixelSpacing = 5.4", "PixelSpacing = 0")
    with pytest.raises(ImportFileError, match=r"TS_01.mrc.mdoc: PixelSpacing is 0.*pixel_size_A"):
        tilt_series_from_mdoc(mdoc)
    assert tilt_series_from_mdoc(mdoc, {"pixel_size_A": 1.35}).acquisition.pixel_size_A == 1.35


def test_stack_with_fewer_images_than_the_mdoc_is_named(hiv_dir):
    (hiv_dir / "TS_01.mrc").unlink()
    stack_beside(hiv_dir / "TS_01.mrc.mdoc", 40)
    with pytest.raises(ImportFileError, match=r"TS_01.mrc: holds 40 images but .*TS_01.mrc.mdoc describes 41"):
        tilt_series_from_mdoc(hiv_dir / "TS_01.mrc.mdoc")


def test_movies_are_found_by_subframepath_and_checked(hiv_dir):
    mdoc = hiv_dir / "TS_01.mrc.mdoc"
    frames = write_frames(mdoc, hiv_dir / "frames")
    ts = tilt_series_from_mdoc(mdoc, {"dose_per_tilt_e_A2": 2.0}, movies=True)
    assert {t.n_frames for t in ts.tilt_images} == {8}
    assert all(t.frame_dose_e_A2 == pytest.approx(0.25) for t in ts.tilt_images)
    assert {t.file for t in ts.tilt_images} == {str(p.resolve()) for p in frames}
    frames[5].unlink()
    with pytest.raises(ImportFileError, match=rf"\[ZValue = 5\] SubFramePath: frames file {frames[5].name} not found"):
        tilt_series_from_mdoc(mdoc, movies=True)


def test_a_movie_with_fewer_frames_than_the_mdoc_says_is_named(hiv_dir):
    mdoc = hiv_dir / "TS_01.mrc.mdoc"
    frames = write_frames(mdoc, hiv_dir / "frames", n_frames=5)
    with pytest.raises(ImportFileError, match=rf"{frames[0].name}: holds 5 frames but .*NumSubFrames = 8"):
        tilt_series_from_mdoc(mdoc, movies=True)


def _edit(hiv_dir, old, new):
    mdoc = hiv_dir / "TS_01.mrc.mdoc"
    text = mdoc.read_text()
    assert old in text
    mdoc.write_text(text.replace(old, new, 1))
    line = next(n for n, ln in enumerate(mdoc.read_text().splitlines(), 1) if new.splitlines()[-1] in ln)
    return mdoc, line


@pytest.mark.parametrize(
    "old, new, rule",
    [
        (
            "ExposureDose = 0\n",
            "ExposureDose = 1e30\n",
            "ExposureDose = 1e+30 must be a finite number from 0 to 1000 e/Å²",
        ),
        (
            "ExposureDose = 0\n",
            "ExposureDose = NaN\n",
            "ExposureDose = nan must be a finite number from 0 to 1000 e/Å²",
        ),
        (
            "PixelSpacing = 5.4\n",
            "PixelSpacing = 5.4\nVoltage = 1e308\n",
            "Voltage = 1e+308 must be a finite number from 30 to 1000 kV",
        ),
        (
            "PixelSpacing = 5.4\n",
            "PixelSpacing = inf\n",
            "PixelSpacing = inf must be a finite number from 0.1 to 100 Å/px",
        ),
        ("Defocus = 2.68083\n", "Defocus = NaN\n", "Defocus = nan µm must be a finite number from -1e+06 to 1e+06 Å"),
    ],
)
def test_absurd_mdoc_values_are_refused_naming_file_line_field_and_range(hiv_dir, old, new, rule):
    mdoc, line = _edit(hiv_dir, old, new)
    with pytest.raises(ImportFileError) as caught:
        tilt_series_from_mdoc(mdoc)
    message = str(caught.value)
    assert message.startswith(f"{mdoc.resolve()}: line {line}: ") and rule in message


def test_an_image_file_with_a_folder_is_looked_up_beside_the_mdoc_or_named(hiv_dir):
    mdoc, line = _edit(hiv_dir, "ImageFile = TS_01.mrc", "ImageFile = ../TS_01.mrc")
    assert tilt_series_from_mdoc(mdoc).stack_file == str(hiv_dir.resolve() / "TS_01.mrc")
    (hiv_dir / "TS_01.mrc").unlink()
    with pytest.raises(ImportFileError) as caught:
        tilt_series_from_mdoc(mdoc)
    assert str(caught.value).startswith(f"{mdoc.resolve()}: line {line}: ImageFile = '../TS_01.mrc': no image stack")


def test_a_subframepath_naming_no_file_is_named_with_its_line(hiv_dir):
    mdoc, line = _edit(
        hiv_dir, r"SubFramePath = D:\DATA\Flo\HGK149_20151130\frames\TS_01_000_0.0.mrc", "SubFramePath = ../"
    )
    with pytest.raises(
        ImportFileError,
        match=rf"TS_01.mrc.mdoc: line {line}: \[ZValue = 0\] SubFramePath = '../' "
        "names no file",
    ):
        tilt_series_from_mdoc(mdoc, movies=True)


def test_a_gain_of_the_wrong_shape_is_refused_at_import(hiv_dir):
    from tomoforge.io.mrc import write_mrc

    mdoc = hiv_dir / "TS_01.mrc.mdoc"
    frames = write_frames(mdoc, hiv_dir / "frames")  # 4 × 4 frames
    wrong = write_mrc(hiv_dir / "gain_wrong.mrc", np.ones((4, 6), np.float32), 5.4)
    with pytest.raises(ImportFileError) as caught:
        tilt_series_from_mdoc(mdoc, {"gain_file": str(wrong)}, movies=True)
    message = str(caught.value)
    assert str(wrong) in message and str(frames[0].resolve()) in message and "6 × 4 px" in message
    for shape in [(4, 4)]:  # the frames' shape (a rotation by 90° is the same for a square detector)
        ok = write_mrc(hiv_dir / "gain_ok.mrc", np.ones(shape, np.float32), 5.4, overwrite=True)
        assert tilt_series_from_mdoc(mdoc, {"gain_file": str(ok)}, movies=True).n_images == 41


def test_a_gain_turned_by_90_degrees_passes_the_import_check(tmp_path):
    from tomoforge.io.mrc import write_mrc
    from tomoforge.protocols.imports.mdoc import check_gain_fits

    movie = write_mrc(tmp_path / "movie.mrc", np.zeros((3, 4, 6), np.int8), 1.0)
    check_gain_fits(write_mrc(tmp_path / "g1.mrc", np.ones((4, 6), np.float32), 1.0), movie)
    check_gain_fits(write_mrc(tmp_path / "g2.mrc", np.ones((6, 4), np.float32), 1.0), movie)
    with pytest.raises(ImportFileError, match="half the size"):
        check_gain_fits(write_mrc(tmp_path / "g3.mrc", np.ones((2, 3), np.float32), 1.0), movie)
