"""Dynamo .tbl on real tables: named columns, positions, rotations, round trip."""

import numpy as np
import pytest

from tomoforge.io.dynamo import read_tbl, set_tbl_rotations, tbl_positions_A, tbl_rotations, write_tbl
from tomoforge.io.errors import FormatError
from tomoforge.io.euler import dynamo_euler_to_matrix


def test_read_double(data_file):
    df = read_tbl(data_file("dynamo/dynamotable/t_double.tbl"))
    assert df.shape == (300, 35)
    first = df.iloc[0]
    assert first.tag == 1 and first.aligned == 1 and first.tdrot == pytest.approx(175.66)
    assert first.tilt == pytest.approx(90.681) and first.narot == pytest.approx(-129.51)
    assert (first.x, first.y, first.z) == (pytest.approx(141.28), pytest.approx(114.71), pytest.approx(163.08))
    assert first["class"] == 9 and first.ymintilt == -60


def test_read_complex(data_file):
    df = read_tbl(data_file("dynamo/dynamotable/t_complex.tbl"))
    assert df.shape == (8742, 41) and df.columns[-1] == "eig1"
    assert df.iloc[0].tag == 2 and df.iloc[0].x == pytest.approx(1018.9)
    assert df.iloc[1].dshift == 0.0  # MATLAB '0+1.2074e-06i' -> real part
    assert df.tomo.dtype.kind == "i"


def test_positions_and_rotations(data_file):
    df = read_tbl(data_file("dynamo/dynamotable/t_double.tbl")).head(3)
    pos = tbl_positions_A(df, 10.0, (300, 200, 400))
    np.testing.assert_allclose(
        pos[0], [(141.28 + 2.5178 - 150) * 10, (114.71 - 3.523 - 100) * 10, (163.08 + 2.1043 - 200) * 10]
    )
    rot = tbl_rotations(df)
    np.testing.assert_allclose(rot[0], dynamo_euler_to_matrix(175.66, 90.681, -129.51))
    np.testing.assert_allclose(tbl_rotations(set_tbl_rotations(df, rot)), rot, atol=1e-10)
    per_tomo = tbl_positions_A(df, 10.0, {1: (300, 200, 400)})
    np.testing.assert_allclose(per_tomo, pos)


@pytest.mark.parametrize("name", ["t_double.tbl", "t_complex.tbl"])
def test_round_trip(data_file, tmp_path, name):
    df = read_tbl(data_file(f"dynamo/dynamotable/{name}"))
    again = read_tbl(write_tbl(df, tmp_path / name))
    assert list(again.columns) == list(df.columns)
    np.testing.assert_allclose(again.to_numpy(dtype=float), df.to_numpy(dtype=float), rtol=1e-7)


def test_bad_rows(tmp_path):
    path = tmp_path / "bad.tbl"
    row = " ".join(["1"] * 35)
    path.write_text(f"{row}\n{row} 7\n")
    with pytest.raises(FormatError, match="bad.tbl: line 2: 36 columns"):
        read_tbl(path)
    path.write_text(row.replace("1", "x", 1) + "\n")
    with pytest.raises(FormatError, match="bad.tbl: line 1"):
        read_tbl(path)
