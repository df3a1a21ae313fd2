"""MRC files (images, stacks, volumes) through ``mrcfile``.

Arrays are (y, x), (n, y, x) or (z, y, x); the voxel size is in Å and always written.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.mrcfile import MrcFile

from .atomic import atomic_path
from .errors import FormatError, check_writable, format_error

#: dtypes kept as given by write_mrc; everything else is written as float32
KEPT_DTYPES = (np.int8, np.int16, np.uint8, np.uint16, np.float16, np.float32)

_MODE_DTYPES = {0: np.int8, 1: np.int16, 2: np.float32, 4: np.complex64, 6: np.uint16, 12: np.float16}


def write_mrc(path: str | os.PathLike[str], data: np.ndarray, voxel_size_A: float, overwrite: bool = False) -> Path:
    """Write a 2D image or 3D stack/volume with its voxel size (Å, > 0), atomically.

    float32 unless ``data`` is int8/int16/uint8/uint16/float16 (kept). Refuses to replace an
    existing file unless ``overwrite``. Written whole or not at all (``io.atomic``).
    """
    path = check_writable(path, overwrite)
    voxel = float(voxel_size_A)
    if not np.isfinite(voxel) or voxel <= 0:
        raise ValueError(f"{path}: voxel size must be > 0 Å, got {voxel_size_A!r}")
    array = np.asarray(data)
    if array.ndim not in (2, 3):
        raise ValueError(f"{path}: MRC data must be 2D or 3D, got shape {array.shape}")
    if array.dtype.type not in KEPT_DTYPES:
        array = array.astype(np.float32)
    with atomic_path(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(array))  # also computes the header statistics
        mrc.voxel_size = voxel
    return path


def _header(path: Path) -> np.recarray:
    """Read and check the header; FormatError for a missing, corrupt or truncated file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    header: np.recarray
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                header = mrc.header.copy()
                extended = int(header.nsymbt)
    except (ValueError, OSError) as exc:
        raise format_error(path, f"not a readable MRC file ({exc})") from exc
    if header is None or bytes(header.map).strip(b"\x00 ") not in (b"MAP", b""):
        raise format_error(path, "not an MRC file (no 'MAP ' in header word 53)")
    nx, ny, nz, mode = int(header.nx), int(header.ny), int(header.nz), int(header.mode)
    if mode not in _MODE_DTYPES:
        raise format_error(path, f"unsupported MRC mode {mode} in header")
    if min(nx, ny, nz) < 1:
        raise format_error(path, f"header gives an empty shape nx={nx} ny={ny} nz={nz}")
    dtype = np.dtype(_MODE_DTYPES[mode])
    expected = 1024 + extended + nx * ny * nz * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        held = max(size - 1024 - extended, 0) // max(nx * ny * dtype.itemsize, 1)
        raise format_error(
            path,
            f"truncated: header says {nz} sections of {nx}x{ny} {dtype.name} "
            f"but the file holds {held} ({size} of {expected} bytes)",
        )
    return header


def _open(path: Path, mmap: bool) -> MrcFile:
    _header(path)
    opener = mrcfile.mmap if mmap else mrcfile.open
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return opener(path, mode="r", permissive=True)
    except (ValueError, OSError) as exc:
        raise format_error(path, f"not a readable MRC file ({exc})") from exc


def read_mrc(path: str | os.PathLike[str]) -> np.ndarray:
    """The data as a float32 copy: (y, x), (n, y, x) or (z, y, x)."""
    with _open(Path(path), mmap=False) as mrc:
        if mrc.data is None:
            raise format_error(path, "no data block")
        return np.array(mrc.data, dtype=np.float32)


def read_voxel_size(path: str | os.PathLike[str]) -> float:
    """Voxel size along x in Å from the header (cella.x / mx); FormatError if unset (0)."""
    header = _header(Path(path))
    mx = int(header.mx)
    size = float(header.cella.x) / mx if mx > 0 else 0.0
    if not size > 0:
        raise format_error(path, "header has no voxel size (cella / mx is 0)")
    return size


def mrc_shape(path: str | os.PathLike[str]) -> tuple[int, ...]:
    """Shape from the header only: (nz, ny, nx), or (ny, nx) for a single image (nz == 1)."""
    header = _header(Path(path))
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    return (ny, nx) if nz == 1 else (nz, ny, nx)


@contextlib.contextmanager
def open_mrc_mmap(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """Yield a read-only memory-mapped array of the data (the file is closed on exit)."""
    mrc = _open(Path(path), mmap=True)
    try:
        yield mrc.data
    finally:
        mrc.close()


def read_mrc_section(path: str | os.PathLike[str], index: int) -> np.ndarray:
    """One 2D image (float32 copy) of a stack, read through a memory map; negative index allowed."""
    with open_mrc_mmap(path) as data:
        if data.ndim == 2:
            stack_len = 1
            data = data[np.newaxis]
        else:
            stack_len = data.shape[0]
        if not -stack_len <= index < stack_len:
            raise IndexError(f"{path}: section {index} out of range (the stack has {stack_len})")
        return np.array(data[index], dtype=np.float32)


# --- what a stack's header says (for importing stacks written by other programs) -----------------

#: exttyp of the Thermo Fisher (FEI) MRC-2014 extended headers: one metadata record per section
FEI_EXTENDED_TYPES = (b"FEI1", b"FEI2")
#: byte offsets in a FEI1/FEI2 record (Thermo Fisher "MRC-2014 file format" specification, as mrcfile's
#: dtypes declare it): Metadata size (int32) at 0, Alpha tilt (float64, degrees) at 100, Pixel size X
#: (float64, metres) at 156
_FEI_SIZE, _FEI_ALPHA, _FEI_PIXEL = 0, 100, 156
_FEI1_RECORD = 768
#: the older FEI/Agard layout (MRC 2000 writers, no exttyp): 32 float32 per section, 128 bytes, the first
#: the alpha tilt (degrees), the twelfth the pixel size (metres)
_AGARD_RECORD, _AGARD_PIXEL = 128, 11
#: SerialEM: header bytes 128-131 hold nint (bytes per section) and nreal (flags; 1: tilt angle × 100, int16)
_SERIALEM_TILT = 1


@dataclass(frozen=True)
class MrcInfo:
    """What the header of an MRC file says, read permissively (see ``mrc_info``).

    Attributes
    ----------
    shape : tuple of int
        (nz, ny, nx), or (ny, nx) for a single image.
    voxel_size_A : float
        cella.x / mx in Å; 0 where unset.
    extended_type : str
        The extended header's type (``exttyp``: 'FEI1', 'FEI2', 'SERI', ...; '' if none).
    problems : list of str
        What a strict reader refuses (no map ID 'MAP ', an unknown machine stamp), in words.
    """

    shape: tuple[int, ...]
    voxel_size_A: float
    extended_type: str
    problems: list[str] = field(default_factory=list)


def mrc_info(path: str | os.PathLike[str]) -> MrcInfo:
    """The header of an MRC file read permissively (as ``mrcfile``'s permissive mode does).

    Stacks from older FEI/Thermo writers lack the map ID and machine stamp (header words 53-54) that
    MRC-2014 requires: they are read all the same, little-endian, and ``problems`` says what was missing.
    FormatError for a file that cannot be read at all (see ``mrc_shape``).
    """
    path = Path(path)
    header = _header(path)
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    mx = int(header.mx)
    voxel = float(header.cella.x) / mx if mx > 0 else 0.0
    problems = []
    if bytes(header.map).strip(b"\x00 ") != b"MAP":
        problems.append("no map ID 'MAP ' in header word 53")
    stamp = bytes(np.asarray(header.machst).tobytes())
    if stamp[:2] not in (b"\x44\x44", b"\x44\x41", b"\x11\x11"):
        problems.append(f"unknown machine stamp {stamp.hex(' ')} in header word 54 (read as little-endian)")
    extended = bytes(header.exttyp).strip(b"\x00 ").decode("ascii", "replace") if int(header.nsymbt) else ""
    shape = (ny, nx) if nz == 1 else (nz, ny, nx)
    return MrcInfo(shape, voxel if np.isfinite(voxel) else 0.0, extended, problems)


def _extended_bytes(path: Path, header: np.recarray) -> bytes:
    with path.open("rb") as handle:
        handle.seek(1024)
        return handle.read(int(header.nsymbt))


def read_extended_header_tilts(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """The tilt angle (degrees) and pixel size (Å; 0 where unset) of each section from an extended header.

    Reads the Thermo Fisher MRC-2014 extended header (``exttyp`` FEI1 or FEI2: one record per section of
    the size its first field states, values in the file's byte order; the alpha tilt), the older FEI/Agard
    layout (128 bytes of float32 per section, no exttyp, as Xplore3D and Tomography 4 wrote it) and
    SerialEM's (``exttyp`` SERI: ``nint`` bytes per section, the first a 16-bit tilt angle × 100 where bit 1
    of ``nreal`` is set; IMOD's mrc_format.txt; no pixel size). None where the file has no such header,
    or its tilts are not all finite angles within ±90°.

    Returns
    -------
    (tilts_deg, pixel_sizes_A) : tuple of ndarray
        Both of shape (nz,), in section order.
    """
    path = Path(path)
    header = _header(path)
    nz, size = int(header.nz), int(header.nsymbt)
    if size <= 0:
        return None
    raw = _extended_bytes(path, header)
    kind = bytes(header.exttyp).strip(b"\x00 ")
    order = "<" if header.mode.dtype.byteorder in ("<", "=", "|") else ">"
    if kind in FEI_EXTENDED_TYPES:
        if len(raw) < 4:
            return None
        sizes = {o: int(np.frombuffer(raw[:4], dtype=f"{o}i4")[0]) for o in (order, "<" if order == ">" else ">")}
        usable = [(o, n) for o, n in sizes.items() if _FEI1_RECORD <= n and n * nz <= len(raw)]
        if not usable:
            return None
        order, record = usable[0]
        rows = np.frombuffer(raw[: record * nz], dtype=np.uint8).reshape(nz, record)
        tilts = rows[:, _FEI_ALPHA : _FEI_ALPHA + 8].copy().view(f"{order}f8")[:, 0].astype(float)
        pixels = rows[:, _FEI_PIXEL : _FEI_PIXEL + 8].copy().view(f"{order}f8")[:, 0].astype(float) * 1e10
    elif kind == b"SERI":
        nint, nreal = (int(v) for v in np.frombuffer(header.tobytes()[128:132], dtype=f"{order}i2"))
        if not nreal & _SERIALEM_TILT or nint < 2 or nint * nz > len(raw):
            return None
        rows = np.frombuffer(raw[: nint * nz], dtype=np.uint8).reshape(nz, nint)
        tilts = rows[:, :2].copy().view(f"{order}i2")[:, 0] / 100.0
        pixels = np.zeros(nz)
    elif kind in (b"", b"AGAR") and size % _AGARD_RECORD == 0 and size >= _AGARD_RECORD * nz:
        floats = np.frombuffer(raw[: _AGARD_RECORD * nz], dtype=f"{order}f4").reshape(nz, 32).astype(float)
        tilts, pixels = floats[:, 0], floats[:, _AGARD_PIXEL] * 1e10
    else:
        return None
    if not (np.all(np.isfinite(tilts)) and np.all(np.abs(tilts) <= 90.0)) or not np.any(tilts):
        return None
    pixels = np.where(np.isfinite(pixels) & (pixels > 0) & (pixels < 1e4), pixels, 0.0)
    return tilts, pixels


__all__ = [
    "FEI_EXTENDED_TYPES",
    "FormatError",
    "MrcInfo",
    "mrc_info",
    "read_extended_header_tilts",
    "mrc_shape",
    "open_mrc_mmap",
    "read_mrc",
    "read_mrc_section",
    "read_voxel_size",
    "write_mrc",
]
