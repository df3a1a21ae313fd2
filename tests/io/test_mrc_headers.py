"""Headers of stacks from other writers: FEI1/FEI2 and FEI/Agard extended headers written byte by byte at the
offsets of Thermo Fisher's MRC-2014 specification, and headers without map ID or machine stamp."""

from pathlib import Path

import numpy as np
import pytest

from tomoforge.io.mrc import mrc_info, read_extended_header_tilts, read_mrc, write_mrc

TILTS = np.array([0.0012, 3.0005, -2.9987, -5.9991, 6.0021])


def with_extended_header(
    path: Path, data: np.ndarray, voxel: float, extended: bytes, exttyp: bytes, nint_nreal: tuple[int, int] = (0, 0)
) -> Path:
    """An MRC written by write_mrc, then rewritten with ``extended`` after its 1024-byte header."""
    write_mrc(path, data, voxel)
    raw = bytearray(path.read_bytes())
    header, body = raw[:1024], raw[1024:]
    header[92:96] = np.int32(len(extended)).tobytes()  # nsymbt (word 24)
    header[104:108] = exttyp.ljust(4)  # exttyp (word 27)
    header[128:132] = np.array(nint_nreal, "<i2").tobytes()  # IMOD's nint, nreal (SerialEM: bytes, flags)
    path.write_bytes(bytes(header) + extended + bytes(body))
    return path


def fei_records(record: int, tilts: np.ndarray, pixel_m: float, order: str) -> bytes:
    """One record per section: Metadata size (int32) at byte 0, Alpha tilt (float64, °) at 100, Pixel size X
    (float64, m) at 156, in the file's byte order."""
    out = bytearray(record * len(tilts))
    for i, tilt in enumerate(tilts):
        base = i * record
        out[base : base + 4] = np.array(record, dtype=f"{order}i4").tobytes()
        out[base + 100 : base + 108] = np.array(tilt, dtype=f"{order}f8").tobytes()
        out[base + 156 : base + 164] = np.array(pixel_m, dtype=f"{order}f8").tobytes()
    return bytes(out)


@pytest.mark.parametrize(("exttyp", "record"), [(b"FEI1", 768), (b"FEI2", 888)])
def test_fei_extended_header_alpha_tilts_and_pixel_size(tmp_path, exttyp, record):
    data = np.zeros((5, 6, 8), np.float32)
    path = with_extended_header(tmp_path / "fei.mrc", data, 1.0, fei_records(record, TILTS, 2.13e-10, "<"), exttyp)
    tilts, pixels = read_extended_header_tilts(path)
    assert np.allclose(tilts, TILTS, atol=1e-12) and np.allclose(pixels, 2.13)
    assert mrc_info(path).extended_type == exttyp.decode() and read_mrc(path).shape == (5, 6, 8)


def test_big_endian_records_are_read_by_their_size_field(tmp_path):
    path = tmp_path / "fei_be.mrc"
    with_extended_header(path, np.zeros((5, 4, 4), np.float32), 1.0, fei_records(768, TILTS, 3e-10, ">"), b"FEI1")
    tilts, pixels = read_extended_header_tilts(path)
    assert np.allclose(tilts, TILTS) and np.allclose(pixels, 3.0)


def test_agard_layout_of_older_fei_writers(tmp_path):
    floats = np.zeros((1024, 32), "<f4")  # 128 bytes per section, room for 1024 sections (Xplore3D)
    floats[:5, 0] = TILTS
    floats[:5, 11] = 4.4e-10
    path = with_extended_header(tmp_path / "old.mrc", np.zeros((5, 4, 4), np.float32), 1.0, floats.tobytes(), b"")
    tilts, pixels = read_extended_header_tilts(path)
    assert np.allclose(tilts, TILTS, atol=1e-5) and np.allclose(pixels, 4.4, atol=1e-5)


def test_serialem_tilt_angles_times_100(tmp_path):
    records = np.zeros((5, 2), "<i2")  # nint = 4 bytes: tilt × 100, magnification / 100 (nreal = 1 + 8)
    records[:, 0] = np.round(TILTS * 100)
    records[:, 1] = 420
    data = np.zeros((5, 4, 4), np.float32)
    path = with_extended_header(tmp_path / "se.mrc", data, 2.0, records.tobytes(), b"SERI", (4, 9))
    tilts, pixels = read_extended_header_tilts(path)
    assert np.allclose(tilts, [0.0, 3.0, -3.0, -6.0, 6.0]) and not pixels.any()


def test_no_extended_header_or_unknown_type_gives_none(tmp_path):
    plain = write_mrc(tmp_path / "plain.mrc", np.zeros((3, 4, 4), np.float32), 2.0)
    assert read_extended_header_tilts(plain) is None
    seri = with_extended_header(tmp_path / "seri.mrc", np.zeros((3, 4, 4), np.float32), 2.0, bytes(96), b"SERI")
    assert read_extended_header_tilts(seri) is None


def test_header_without_map_id_and_machine_stamp_is_read_with_its_problems_named(tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    path = write_mrc(tmp_path / "old.mrc", data, 2.5)
    assert mrc_info(path).problems == []
    raw = bytearray(path.read_bytes())
    raw[208:216] = bytes(8)  # words 53 (map ID) and 54 (machine stamp)
    path.write_bytes(bytes(raw))
    info = mrc_info(path)
    assert info.shape == (3, 4, 5) and info.voxel_size_A == pytest.approx(2.5)
    assert [p.split(" in ")[0] for p in info.problems] == ["no map ID 'MAP '", "unknown machine stamp 00 00 00 00"]
    assert np.array_equal(read_mrc(path), data)
