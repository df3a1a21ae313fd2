"""mdoc: real SerialEM / Tomography 5 / frame mdocs, cross-checked with the mdocfile package;
round trips; broken copies raise FormatError naming file and section/line."""

import math
from datetime import datetime

import mdocfile
import pytest

from tomoforge.io.errors import FormatError
from tomoforge.io.mdoc import parse_mdoc_datetime, read_mdoc, write_mdoc

REAL = [
    "mdoc/serialem_mdocfile/tilt_series.mdoc",
    "mdoc/serialem_mdocfile/frame_set_single.mdoc",
    "mdoc/serialem_mdocfile/frame_set_multiple.mdoc",
    "mdoc/tomo_preprocessing/TS_01.mrc.mdoc",
    "mdoc/tomo5_cryoboost/Position_12.mdoc",
]


def same(a, b):
    """Equality where nan equals nan (CameraLength = NaN in the Tomography 5 file)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_serialem_tilt_series(data_file):
    m = read_mdoc(data_file("mdoc/serialem_mdocfile/tilt_series.mdoc"))
    assert m.software == "SerialEM" and m.section_key == "ZValue" and len(m.sections) == 41
    assert m.tilt_axis_angle == pytest.approx(85.3)
    assert m.pixel_size_A == pytest.approx(5.4) and m.voltage_kV is None
    s0 = m.sections[0]
    assert s0["TiltAngle"] == pytest.approx(0.000999877)
    assert s0["RotationAngle"] == pytest.approx(175.3)
    assert s0["StagePosition"] == (20.7936, 155.287)
    assert s0["NumSubFrames"] == 8 and isinstance(s0["NumSubFrames"], int)
    assert s0["SubFramePath"] == r"D:\DATA\Flo\HGK149_20151130\frames\TS_01_000_0.0.mrc"
    assert m.datetimes()[0] == datetime(2015, 11, 30, 15, 21, 38)
    assert m.header["ImageSize"] == (924.0, 958.0)


def test_crlf_file_reads_like_lf_file(data_file):
    lf = read_mdoc(data_file("mdoc/serialem_mdocfile/tilt_series.mdoc"))
    crlf = read_mdoc(data_file("mdoc/tomo_preprocessing/TS_01.mrc.mdoc"))
    assert b"\r\n" in data_file("mdoc/tomo_preprocessing/TS_01.mrc.mdoc").read_bytes()
    assert crlf.tilt_angles == lf.tilt_angles and crlf.titles == lf.titles


def test_tomography5(data_file):
    m = read_mdoc(data_file("mdoc/tomo5_cryoboost/Position_12.mdoc"))
    assert m.software == "Tomography"
    assert m.raw_tilt_axis_angle == pytest.approx(-174.23)
    assert m.tilt_axis_angle is None  # conversion not established: import must ask
    assert m.sections[0]["RotationAngle"] == pytest.approx(-84.23)
    assert m.suggested_tilt_axis_angle == pytest.approx(84.23)  # what CryoBoost uses
    assert m.voltage_kV == 300.0 and m.pixel_size_A == pytest.approx(2.95)
    assert m.sections[0]["TiltAngle"] == pytest.approx(9.98)
    times = m.datetimes()
    assert times[0] == datetime(2022, 2, 4, 23, 2, 5)  # Tomography 5 writes yy-Mon-dd
    assert times == sorted(times)


def test_frame_mdocs(data_file):
    single = read_mdoc(data_file("mdoc/serialem_mdocfile/frame_set_single.mdoc"))
    assert single.section_key == "FrameSet" and len(single.sections) == 1
    assert single.software == "SerialEM" and single.voltage_kV == 300
    assert single.sections[0]["TiltAngle"] == pytest.approx(32.984)
    multi = read_mdoc(data_file("mdoc/serialem_mdocfile/frame_set_multiple.mdoc"))
    assert len(multi.other_sections["ZValue"]) == 20
    assert multi.other_sections["ZValue"][0]["FrameTSStartEndFrames"] == (0.0, 12.0)


@pytest.mark.parametrize("rel", REAL)
def test_agrees_with_mdocfile(data_file, rel):
    path = data_file(rel)
    ours = read_mdoc(path)
    theirs = mdocfile.read(path)
    sections = ours.sections + [s for v in ours.other_sections.values() for s in v]
    assert len(theirs) == len(sections)
    for row, section in zip(theirs.itertuples(), sections):
        assert section["TiltAngle"] == pytest.approx(row.TiltAngle)
        assert section.get("ExposureDose") == pytest.approx(row.ExposureDose)
        assert section.get("DateTime") == (row.DateTime if isinstance(row.DateTime, str) else None)


@pytest.mark.parametrize("rel", REAL)
def test_round_trip(data_file, tmp_path, rel):
    original = read_mdoc(data_file(rel))
    out = write_mdoc(original, tmp_path / "out.mdoc")
    assert b"\r" not in out.read_bytes()
    again = read_mdoc(out)
    assert same(again.header, original.header) and again.titles == original.titles
    assert same(again.sections, original.sections)
    assert same(again.other_sections, original.other_sections)
    assert again.software == original.software
    theirs = mdocfile.read(out)
    for row, section in zip(theirs.itertuples(), original.sections):
        assert row.TiltAngle == pytest.approx(section["TiltAngle"])
        assert row.ExposureDose == pytest.approx(section["ExposureDose"])
        assert row.DateTime == section["DateTime"]
    with pytest.raises(FileExistsError):
        write_mdoc(original, out)


def _broken(tmp_path, data_file, old, new, count=1):
    text = data_file("mdoc/serialem_mdocfile/tilt_series.mdoc").read_text()
    assert old in text
    path = tmp_path / "TS_01.mdoc"
    path.write_text(text.replace(old, new, count))
    return path


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("[ZValue = 8]", "[ZValue = 7]", r"TS_01.mdoc: line \d+: \[ZValue = 7\] appears twice"),
        ("[ZValue = 7]", "[ZValue = 77]", r"TS_01.mdoc: \[ZValue = 7\] is missing"),
        ("TiltAngle = 3.00113\n", "", r"TS_01.mdoc: \[ZValue = 1\]: TiltAngle is missing"),
        ("ExposureDose = 0\n", "ExposureDose = zero\n", r"TS_01.mdoc: line 16: ExposureDose = 'zero' is not a number"),
        ("[ZValue = 3]", "[ZValue = three]", r"TS_01.mdoc: line \d+: section index in \[ZValue = three\]"),
    ],
)
def test_broken_copies(tmp_path, data_file, old, new, message):
    with pytest.raises(FormatError, match=message):
        read_mdoc(_broken(tmp_path, data_file, old, new))


def test_parse_datetime():
    assert parse_mdoc_datetime("30-Nov-15  15:21:38") == datetime(2015, 11, 30, 15, 21, 38)
    assert parse_mdoc_datetime("08-Oct-2021  07:39:08") == datetime(2021, 10, 8, 7, 39, 8)
    assert parse_mdoc_datetime("21-Nov-30  17:42:06", "ymd") == datetime(2021, 11, 30, 17, 42, 6)
    with pytest.raises(ValueError):
        parse_mdoc_datetime("yesterday")


MONTAGE_SECTION = "[ZValue = {i}]\nPieceCoordinates = {x} {y} {z}\nTiltAngle = {tilt}\n\n"


@pytest.mark.parametrize(
    ("header", "pieces", "expected"),
    [
        ("", [(0, 0, 0, 0.0), (0, 0, 1, 3.0)], None),  # one piece per tilt: a tilt series
        ("", [(0, 0, 0, 0.0), (0, 0, 1, 0.0)], None),  # a tilt taken twice
        ("Montage = 1\n", [(0, 0, 0, 0.0), (0, 0, 1, 3.0)], "line 1: Montage = 1"),
        ("", [(0, 0, 0, 0.0), (3686, 0, 0, 0.0)], "PieceCoordinates at several x, y per tilt angle"),
    ],
)
def test_a_montage_is_recognised(tmp_path, header, pieces, expected):
    text = header + "".join(
        MONTAGE_SECTION.format(i=i, x=x, y=y, z=z, tilt=tilt) for i, (x, y, z, tilt) in enumerate(pieces)
    )
    (tmp_path / "m.mdoc").write_text(text)
    assert read_mdoc(tmp_path / "m.mdoc").montage == expected
    (tmp_path / "m.mdoc").write_text(text + "[MontSection = 0]\nTiltAngle = 0\n")
    assert read_mdoc(tmp_path / "m.mdoc").montage == (expected if header else "[MontSection = i] sections")
