"""MRC: write/read round trip, voxel size, overwrite guard, mmap, truncated files, real maps."""

import numpy as np
import pytest

from tomoforge.io.errors import FormatError
from tomoforge.io.mrc import mrc_shape, open_mrc_mmap, read_mrc, read_mrc_section, read_voxel_size, write_mrc


def test_round_trip_stack(tmp_path):
    data = np.random.default_rng(0).normal(size=(4, 6, 5)).astype(np.float64)
    path = write_mrc(tmp_path / "s.mrc", data, 2.5)
    out = read_mrc(path)
    assert out.dtype == np.float32 and out.shape == (4, 6, 5)
    np.testing.assert_allclose(out, data.astype(np.float32))
    assert read_voxel_size(path) == pytest.approx(2.5)
    assert mrc_shape(path) == (4, 6, 5)
    np.testing.assert_allclose(read_mrc_section(path, 2), out[2])
    np.testing.assert_allclose(read_mrc_section(path, -1), out[3])
    with open_mrc_mmap(path) as mm:
        assert mm.shape == (4, 6, 5) and not mm.flags.writeable
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed


def test_image_shape_and_kept_dtype(tmp_path):
    path = write_mrc(tmp_path / "i.mrc", np.arange(12, dtype=np.int16).reshape(3, 4), 1.0)
    assert mrc_shape(path) == (3, 4)
    import mrcfile

    with mrcfile.open(path) as m:
        assert m.data.dtype == np.int16


def test_refuses_overwrite_and_bad_voxel(tmp_path):
    path = write_mrc(tmp_path / "a.mrc", np.zeros((2, 2), np.float32), 1.0)
    with pytest.raises(FileExistsError, match="a.mrc"):
        write_mrc(path, np.ones((2, 2)), 1.0)
    write_mrc(path, np.ones((2, 2)), 3.0, overwrite=True)
    assert read_voxel_size(path) == pytest.approx(3.0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="voxel size"):
            write_mrc(tmp_path / "b.mrc", np.ones((2, 2)), bad)


def test_truncated_file(tmp_path):
    path = write_mrc(tmp_path / "t.mrc", np.zeros((41, 8, 8), np.float32), 1.0)
    blob = path.read_bytes()
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(blob[: 1024 + 30 * 8 * 8 * 4])
    for reader in (read_mrc, mrc_shape, lambda p: read_mrc_section(p, 0)):
        with pytest.raises(
            FormatError, match=r"cut.mrc: truncated: header says 41 sections of 8x8 float32 but the file holds 30"
        ):
            reader(cut)


def test_not_an_mrc(tmp_path):
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"hello")
    with pytest.raises(FormatError, match="junk.mrc"):
        read_mrc(junk)


def test_real_emdb_map(data_file):
    path = data_file("maps/mrcfile_EMDB/EMD-3197.map")
    assert mrc_shape(path) == (20, 20, 20)
    assert read_voxel_size(path) == pytest.approx(11.4, abs=1e-3)
    assert read_mrc(path).dtype == np.float32


def test_real_relion_float16_stack(data_file):
    path = data_file(
        "relion5/tomodrgn_warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12/Unt_088/Unt_088_12.00A_000005.mrcs"
    )
    assert mrc_shape(path) == (37, 32, 32)
    assert read_voxel_size(path) == pytest.approx(12.0)
    assert read_mrc_section(path, 36).shape == (32, 32)


def test_write_computes_the_header_statistics_once_and_right(tmp_path, monkeypatch):
    """The statistics of a 41 × 1024² stack take ~0.3 s: ``set_data`` computes them, once is enough."""
    from mrcfile.mrcobject import MrcObject

    calls = []
    original = MrcObject.update_header_stats

    def counted(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(MrcObject, "update_header_stats", counted)
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    path = write_mrc(tmp_path / "s.mrc", data, 2.0)
    assert len(calls) == 1
    import mrcfile

    with mrcfile.open(path) as mrc:
        header = mrc.header
        assert (float(header.dmin), float(header.dmax)) == (0.0, 23.0)
        assert float(header.dmean) == pytest.approx(11.5) and float(header.rms) == pytest.approx(data.std())
