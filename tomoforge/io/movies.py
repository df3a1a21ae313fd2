"""Frame movies: MRC and TIFF stacks read into one float32 array (n_frames, y, x).

EER (Falcon 4) files are TIFF containers with a compression that tifffile decodes only through
``imagecodecs``; where that is not installed the reader says so instead of returning garbage.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import FormatError, format_error
from .mrc import mrc_shape, open_mrc_mmap, read_mrc

MRC_SUFFIXES = (".mrc", ".mrcs", ".st")
TIFF_SUFFIXES = (".tif", ".tiff")
EER_SUFFIXES = (".eer", ".ecc")


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: movie file not found")


def movie_frame_count(path: str | os.PathLike) -> int:
    """Frames in a movie (MRC header or TIFF pages) without reading the pixels."""
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES + EER_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                shape = tif.series[0].shape if tif.series else ()
                return int(shape[0]) if len(shape) == 3 else len(tif.pages)
        except (tifffile.TiffFileError, ValueError, OSError) as exc:
            raise format_error(path, f"not a readable TIFF/EER file ({exc})") from exc
    shape = mrc_shape(path)
    return shape[0] if len(shape) == 3 else 1


def _native(data: np.ndarray, dtype: np.dtype | type | None, copy: bool = False) -> np.ndarray:
    """``data`` as ``dtype`` (None: its own type in native byte order; uint16/uint32 widened for torch)."""
    if dtype is not None:
        return np.array(data, dtype=dtype, copy=copy or None)
    native = data.dtype.newbyteorder("=")
    if native.kind == "u" and native.itemsize > 1:
        native = np.dtype(np.int32) if native.itemsize == 2 else np.dtype(np.float32)
    return np.array(data, dtype=native, copy=copy or None)


def _read_tiff(path: Path, dtype: np.dtype | type | None = np.float32) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            compression = int(tif.pages[0].compression) if tif.pages else 0
            if compression in (65000, 65001, 65002):
                try:
                    import imagecodecs  # noqa: F401
                except ImportError:
                    raise format_error(path, "EER movies are not supported yet (tifffile needs the "
                                             "'imagecodecs' package to decode EER; convert to TIFF/MRC)") from None
            data = tif.asarray()
    except FormatError:
        raise
    except (tifffile.TiffFileError, ValueError, OSError, RuntimeError) as exc:
        raise format_error(path, f"not a readable TIFF/EER movie, or truncated ({exc})") from exc
    return _native(data, dtype)


def read_movie(path: str | os.PathLike, n_frames: int | None = None,
               dtype: np.dtype | type | None = np.float32) -> np.ndarray:
    """All frames of a movie (n, y, x) as ``dtype`` (None: the file's own type, e.g. int16 counts).

    ``n_frames``: the number of frames the metadata (mdoc ``NumSubFrames``) promises; a movie holding
    fewer is a FormatError naming the file (a truncated transfer), more are read and returned.
    """
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES + EER_SUFFIXES:
        data = _read_tiff(path, dtype)
    else:
        with open_mrc_mmap(path) as mapped:  # FormatError for a truncated file (header vs size)
            data = _native(mapped, dtype, copy=True)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise format_error(path, f"a movie must be 2D or 3D, got shape {data.shape}")
    if n_frames is not None and data.shape[0] < n_frames:
        raise format_error(path, f"holds {data.shape[0]} frames but the metadata says {n_frames}")
    return data


def read_gain(path: str | os.PathLike) -> np.ndarray:
    """A gain reference (MRC or TIFF, one image) as float32 (y, x)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: gain reference not found")
    data = _read_tiff(path) if path.suffix.lower() in TIFF_SUFFIXES else read_mrc(path)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise format_error(path, f"a gain reference must be one image, got shape {data.shape}")
    return data


__all__ = ["read_movie", "read_gain", "movie_frame_count", "FormatError"]
