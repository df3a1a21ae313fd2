"""NaN, inf and absurd numbers in metadata files are refused naming the file, the line (or row), the field,
the value and the allowed range; undecodable or binary text names the line and the byte."""

import math

import numpy as np
import pandas as pd
import pytest

from tomoforge.io.ctf import read_ctffind, read_relion_ctf
from tomoforge.io.errors import FormatError
from tomoforge.io.imod import read_imod_defocus, read_tlt, read_xf
from tomoforge.io.mdoc import read_mdoc
from tomoforge.io.star import (
    read_particles_star,
    read_tilt_series_star,
    write_tilt_series_star,
)

HIV = "mdoc/serialem_mdocfile/tilt_series.mdoc"


def _copy(tmp_path, data_file, old, new):
    text = data_file(HIV).read_text()
    assert old in text
    path = tmp_path / "TS_01.mdoc"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path, text):
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize("value", ["NaN", "inf", "-inf", "95"])
def test_a_bad_tilt_angle_in_an_mdoc_names_file_line_and_field(tmp_path, data_file, value):
    path = _copy(tmp_path, data_file, "TiltAngle = 3.00113", f"TiltAngle = {value}")
    line = _line_of(path, f"TiltAngle = {value}")
    with pytest.raises(FormatError) as caught:
        read_mdoc(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line {line}: [ZValue = 1] TiltAngle = ")
    assert "must be a finite number from -90 to 90 °" in message


def test_nul_bytes_in_an_mdoc_are_named_not_echoed(tmp_path, data_file):
    path = _copy(tmp_path, data_file, "TiltAngle = 3.00113", "\0" * 5000)
    with pytest.raises(FormatError) as caught:
        read_mdoc(path)
    message = str(caught.value)
    assert len(message) - len(str(path)) <= 300 and message.startswith(str(path))
    assert f"line {_line_of(path, chr(0))}, byte" in message and "NUL" in message


def test_a_long_garbage_line_is_quoted_short(tmp_path, data_file):
    path = _copy(tmp_path, data_file, "TiltAngle = 3.00113", "x" * 5000)
    with pytest.raises(FormatError, match=r"line \d+: expected 'Key = value'") as caught:
        read_mdoc(path)
    assert len(str(caught.value)) - len(str(path)) <= 300 and "(5002 characters)" in str(caught.value)


def test_a_latin1_byte_names_the_line_and_the_byte(tmp_path, data_file):
    raw = data_file(HIV).read_bytes().replace(b"SpotSize = 8", b"SpotSize = 8\nNote = caf\xe9", 1)
    path = tmp_path / "TS_01.mdoc"
    path.write_bytes(raw)
    line = raw[: raw.index(b"caf\xe9")].count(b"\n") + 1
    byte = raw.index(b"\xe9")
    with pytest.raises(FormatError, match=rf"TS_01.mdoc: line {line}, byte {byte} \(0xe9\): not UTF-8 text"):
        read_mdoc(path)


def _tilt_star(tmp_path, column, value):
    df = pd.DataFrame(
        {
            "rlnTomoNominalStageTiltAngle": [-3.0, 0.0, 3.0],
            "rlnMicrographPreExposure": [3.0, 0.0, 6.0],
            "rlnDefocusU": [30000.0, 30100.0, 30200.0],
            "rlnDefocusV": [29000.0, 29100.0, 29200.0],
            "rlnDefocusAngle": [10.0, 10.0, 10.0],
        }
    )
    df.loc[1, column] = value
    return write_tilt_series_star(df, tmp_path / "TS_01.star", "TS_01")


@pytest.mark.parametrize(
    "column, value, rule",
    [
        ("rlnDefocusU", np.nan, "must be a finite number from -1e+06 to 1e+06 Å"),
        ("rlnDefocusV", np.inf, "must be a finite number from -1e+06 to 1e+06 Å"),
        ("rlnTomoNominalStageTiltAngle", 400.0, "must be a finite number from -90 to 90 °"),
        ("rlnMicrographPreExposure", -1.0, "must be a finite number from 0 to 100000 e/Å²"),
    ],
)
def test_a_star_file_with_a_nan_or_absurd_value_names_row_and_column(tmp_path, column, value, rule):
    path = _tilt_star(tmp_path, column, value)
    for reader in (read_tilt_series_star, read_relion_ctf):
        with pytest.raises(FormatError) as caught:
            reader(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: data_TS_01: row 2: _{column} = ") and rule in message


def test_a_star_column_of_text_where_numbers_belong_is_named(tmp_path):
    path = tmp_path / "particles.star"
    path.write_text(
        "data_particles\n\nloop_\n_rlnTomoName\n_rlnCenteredCoordinateXAngst\n"
        "_rlnCenteredCoordinateYAngst\n_rlnCenteredCoordinateZAngst\nTS_01 1 2 3\nTS_01 four 5 6\n"
    )
    with pytest.raises(FormatError, match=r"data_particles: row 2: _rlnCenteredCoordinateXAngst = 'four' must be"):
        read_particles_star(path)


@pytest.mark.parametrize(
    "reader, text, message",
    [
        (read_tlt, " -3.00\n nan\n 3.00\n", r"line 2: tilt angle 'nan' holds a non-finite number"),
        (read_tlt, " -3.00\n 120\n", r"line 2: tilt angle 120 must be a finite number from -90 to 90 °"),
        (read_xf, "1 0 0 1 0 0\n1 0 0 1 inf 0\n", r"line 2: xf line '1 0 0 1 inf 0' holds a non-finite number"),
        (read_imod_defocus, "1 1 -3.0 -3.0 3000 2\n2 2 0.0 0.0 nan\n", r"line 2: '2 2 0.0 0.0 nan' holds a non-finite"),
        (read_imod_defocus, "1 1 -3.0 -3.0 3000 2\n2 1e12 0.0 0.0 3000\n", r"line 2: ending view 1e\+12 must be"),
        (
            read_ctffind,
            "# header\n1 30000 29000 10 0 0.1 inf\n2 nan 29000 10 0 0.1 8\n",
            r"line 3: column 2 \(defocus 1\) nan must be a finite number",
        ),
    ],
)
def test_imod_and_ctffind_text_with_nan_inf_or_absurd_values_names_the_line(tmp_path, reader, text, message):
    path = tmp_path / "file.txt"
    path.write_text(text)
    with pytest.raises(FormatError, match=message) as caught:
        reader(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_ctffind_no_fit_resolution_inf_is_read_as_unknown(tmp_path):
    path = tmp_path / "ctffind.txt"
    path.write_text("# header\n1 30000 29000 10 0 0.1 inf\n")
    assert math.isnan(read_ctffind(path).fit_resolution_A[0])
