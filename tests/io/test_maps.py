"""Map headers: the axis order and cell of real EMDB maps (EMD-3001 stores z along the columns) and a map
written in a permuted order read back as (z, y, x)."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from tomoforge.io.errors import FormatError
from tomoforge.io.maps import map_header, read_map
from tomoforge.io.mrc import write_mrc


def test_real_maps_axis_order_voxel_and_cell(data_file):
    standard = map_header(data_file("maps/chlamy_EMPIAR-11830_STA/atpase.mrc"))
    assert standard.standard and standard.voxel_xyz_A == pytest.approx((7.84,) * 3, abs=1e-5)
    assert standard.angles_deg == (90.0, 90.0, 90.0)
    path = data_file("maps/mrcfile_EMDB/EMD-3001.map")
    microed = map_header(path)  # README.txt: MicroED, space group P21; header: mapc 3, mapr 1, maps 2
    assert microed.axes == (3, 1, 2) and not microed.standard
    assert microed.voxel_xyz_A == pytest.approx((17.93 / 40, 4.71 / 12, 33.03 / 72), rel=1e-4)
    assert microed.angles_deg[1] == pytest.approx(94.326, abs=1e-3)
    assert read_map(path).shape == (73, 25, 43)  # stored (25 sections of y, 43 rows of x, 73 columns of z)


def test_a_permuted_map_reads_back_as_z_y_x(tmp_path):
    zyx = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    path = tmp_path / "permuted.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(zyx.transpose(1, 2, 0)))  # sections y, rows x, columns z
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 1, 2
        mrc.voxel_size = 2.0
    assert map_header(path).axes == (3, 1, 2)
    assert np.array_equal(read_map(path), zyx)
    write_mrc(tmp_path / "plain.mrc", zyx, 2.0)
    assert map_header(tmp_path / "plain.mrc").standard and np.array_equal(read_map(tmp_path / "plain.mrc"), zyx)
    with mrcfile.open(path, mode="r+") as mrc:
        mrc.header.maps = 1
    with pytest.raises(FormatError, match=r"\(3, 1, 1\)"):
        map_header(path)
