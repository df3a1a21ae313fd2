"""Frame movies: MRC, TIFF and EER read into one array (n_frames, y, x) (float32, or the file's counts).

EER (Falcon 4 electron events) files are BigTIFF containers, one page per fraction (a few ms of
exposure), with a compression that tifffile decodes through ``imagecodecs``. ``read_eer`` sums the
fractions into frames (``fractions_per_frame``, the remainder dropped as RELION does) on the 4K
physical grid or upsampled (2: 8K, 4: 16K, from the sub-pixel bits of each event). Without
``imagecodecs`` the reader says so instead of returning garbage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tomoforge.errors import quote

from .errors import FormatError, format_error
from .mrc import mrc_shape, open_mrc_mmap, read_mrc

if TYPE_CHECKING:  # at run time tifffile is imported inside the functions that read TIFFs
    from tifffile import TiffFile

MRC_SUFFIXES = (".mrc", ".mrcs", ".st")
TIFF_SUFFIXES = (".tif", ".tiff")
EER_SUFFIXES = (".eer", ".ecc")
EER_COMPRESSIONS = (65000, 65001, 65002)


#: what tifffile raises on a corrupt or truncated file: its own TiffFileError, but also struct.error,
#: IndexError, KeyError, OverflowError... from the header bytes it trusts (found by fuzzing). Anything
#: but a missing decoder (FormatError from _require_imagecodecs) means "not a readable TIFF".
TIFF_ERRORS = (Exception,)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {quote(str(exc))}"


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: movie file not found")


def movie_frame_count(path: str | os.PathLike[str]) -> int:
    """Frames in a movie (MRC header or TIFF pages; EER: fractions) without reading the pixels."""
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES + EER_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                if _is_eer(tif):
                    return len(tif.series[0].pages)
                shape = tif.series[0].shape if tif.series else ()
                return int(shape[0]) if len(shape) == 3 else len(tif.pages)
        except TIFF_ERRORS as exc:
            raise format_error(path, f"not a readable TIFF/EER file ({_reason(exc)})") from exc
    shape = mrc_shape(path)
    return shape[0] if len(shape) == 3 else 1


def frame_shape(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(y, x) of one frame of a movie, or of a gain reference (MRC, TIFF, EER, .gain), from its header.

    EER: the physical grid (4K); FormatError naming the file where the header cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    if path.suffix.lower() in TIFF_SUFFIXES + EER_SUFFIXES + (".gain",):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                shape = tuple(int(n) for n in tif.pages[0].shape)
        except TIFF_ERRORS as exc:
            raise format_error(path, f"not a readable TIFF/EER file ({_reason(exc)})") from exc
        if len(shape) == 3 and shape[-1] in (3, 4):  # RGB(A) samples last
            shape = shape[:2]
    else:
        shape = mrc_shape(path)
    if len(shape) < 2:
        raise format_error(path, f"not an image (shape {shape})")
    return int(shape[-2]), int(shape[-1])


def is_eer(path: str | os.PathLike[str]) -> bool:
    """Whether a movie is EER (TIFF pages with EER compression), whatever its suffix."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES + EER_SUFFIXES:
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return _is_eer(tif)
    except TIFF_ERRORS:
        return False


def _is_eer(tif: TiffFile) -> bool:
    return any(int(p.compression) in EER_COMPRESSIONS for p in tif.pages[:2])


def read_eer(
    path: str | os.PathLike[str], fractions_per_frame: int, upsampling: int = 1, n_fractions: int | None = None
) -> np.ndarray:
    """An EER movie as int16 counts (n_frames, y, x): ``fractions_per_frame`` fractions summed per frame.

    ``upsampling`` 1 (physical pixels), 2 or 4 (super-resolution from the events' sub-pixel bits);
    ``n_fractions``: what the metadata promises (fewer in the file is a FormatError naming it).
    """
    path = Path(path)
    _check_exists(path)
    if upsampling not in (1, 2, 4):
        raise ValueError(f"{path}: EER upsampling must be 1, 2 or 4, got {upsampling}")
    if fractions_per_frame < 1:
        raise ValueError(f"{path}: EER fractions per frame must be ≥ 1, got {fractions_per_frame}")
    _require_imagecodecs(path)
    import tifffile

    try:
        with tifffile.TiffFile(path, superres={1: 0, 2: 1, 4: 2}[upsampling]) as tif:
            if not _is_eer(tif):
                raise format_error(path, "not an EER movie (no EER-compressed pages)")
            series = tif.series[0]
            total = len(series.pages)
            if n_fractions is not None and total < n_fractions:
                raise format_error(path, f"holds {total} EER fractions but the metadata says {n_fractions}")
            n = total // fractions_per_frame
            if n < 1:
                raise format_error(path, f"holds {total} EER fractions, fewer than one frame of {fractions_per_frame}")
            first = series.pages[0]
            if first is None:
                raise format_error(path, "the first EER fraction is missing")
            ny, nx = first.shape[-2:]
            out = np.zeros((n, ny, nx), np.int16)
            chunk = max(1, min(fractions_per_frame, (1 << 28) // (ny * nx)))  # ≤ 256 MB of decoded fractions
            for i in range(n):
                for start in range(i * fractions_per_frame, (i + 1) * fractions_per_frame, chunk):
                    stop = min(start + chunk, (i + 1) * fractions_per_frame)
                    fractions = tif.asarray(key=range(start, stop), series=0).reshape(-1, ny, nx)
                    out[i] += fractions.sum(axis=0, dtype=np.int16)
    except FormatError:
        raise
    except TIFF_ERRORS as exc:
        raise format_error(path, f"not a readable EER movie, or truncated ({_reason(exc)})") from exc
    return out


def _require_imagecodecs(path: Path) -> None:
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        raise format_error(
            path,
            "EER movies need the 'imagecodecs' package (pip install imagecodecs) for "
            "tifffile to decode them; or convert to TIFF/MRC",
        ) from None


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
            if _is_eer(tif):
                _require_imagecodecs(path)
                raise format_error(path, "an EER movie: read it with read_eer (fractions summed into frames)")
            data = tif.asarray()
    except FormatError:
        raise
    except TIFF_ERRORS as exc:
        raise format_error(path, f"not a readable TIFF/EER movie, or truncated ({_reason(exc)})") from exc
    return _native(data, dtype)


def read_movie(
    path: str | os.PathLike[str],
    n_frames: int | None = None,
    dtype: np.dtype | type | None = np.float32,
    eer_fractions_per_frame: int | None = None,
    eer_upsampling: int = 1,
) -> np.ndarray:
    """All frames of a movie (n, y, x) as ``dtype`` (None: the file's own type, e.g. int16 counts).

    ``n_frames``: the number of frames the metadata (mdoc ``NumSubFrames``) promises; a movie holding
    fewer is a FormatError naming the file (a truncated transfer), more are read and returned.
    EER: ``n_frames`` counts fractions, which are summed ``eer_fractions_per_frame`` at a time
    (required) on the grid upsampled by ``eer_upsampling`` (see ``read_eer``).
    """
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES + EER_SUFFIXES and is_eer(path):
        if eer_fractions_per_frame is None:
            raise format_error(path, "an EER movie: give the number of EER fractions summed per frame")
        return _native(read_eer(path, eer_fractions_per_frame, eer_upsampling, n_frames), dtype)
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


def read_gain(path: str | os.PathLike[str]) -> np.ndarray:
    """A gain reference (MRC, or TIFF: .tif/.tiff and the .gain of EER cameras; one image) as float32 (y, x)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: gain reference not found")
    data = _read_tiff(path) if path.suffix.lower() in TIFF_SUFFIXES + (".gain",) else read_mrc(path)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise format_error(path, f"a gain reference must be one image, got shape {data.shape}")
    return data


__all__ = ["FormatError", "frame_shape", "is_eer", "movie_frame_count", "read_eer", "read_gain", "read_movie"]
