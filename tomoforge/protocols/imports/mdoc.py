"""Turning an mdoc (+ its image stack or frame movies) into a TiltSeries: the import's science.

Rules, in the order they apply:

- Pixel size, voltage, tilt axis angle and dose per tilt come from the mdoc unless overridden; a
  pixel size of 0 (or none) with no override is an error naming the file and ``PixelSpacing``.
- Tomography 5 writes a ``TiltAxisAngle`` in its own convention, which is not converted silently:
  without an override the import stops and suggests ``-RotationAngle`` (what CryoBoost uses).
- Acquisition order: by ``DateTime`` where every section has one (ties keep section order), else the
  section order. Accumulated dose of an image = the doses of every image exposed before it + its
  own (CONVENTIONS.md); ``PriorRecordDose`` is not added.
- Tilt images are kept sorted by tilt angle; each points to its section of the stack (``index``).
- Every mdoc value used (PixelSpacing, Voltage, ExposureDose, Defocus, Magnification, NumSubFrames;
  TiltAngle in the reader) must lie in its physical range (tomoforge.model.quantities): nan, inf or an
  absurd number is an ImportFileError naming the mdoc, the line, the key, the value and the range.
- ImageFile and SubFramePath are the acquisition PC's paths: only their file names are looked up.
- A gain reference must fit the movies' frames (same shape, or turned by 90°) when imported.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from tomoforge.errors import describe_validation_error, quote
from tomoforge.io.errors import FormatError
from tomoforge.io.movies import frame_shape, is_eer, movie_frame_count
from tomoforge.io.mrc import mrc_shape
from tomoforge.model import (
    Acquisition,
    TiltImage,
    TiltImageMovie,
    TiltSeries,
    TiltSeriesMovie,
)
from tomoforge.model.quantities import (
    ANGLE,
    DEFOCUS,
    DOSE_PER_TILT,
    FRAME_COUNT,
    MAGNIFICATION,
    PIXEL_SIZE,
    VOLTAGE,
    PhysicalRange,
)
from tomoforge.protocols.imports.files import ImportFileError

if TYPE_CHECKING:  # the mdoc reader pulls pandas: read_mdoc is imported where an mdoc is read
    from tomoforge.io.mdoc import Mdoc

M = TypeVar("M", bound=BaseModel)


def tilt_series_name(mdoc_path: Path) -> str:
    """``TS_01.mrc.mdoc`` and ``TS_01.mdoc`` both give ``TS_01``."""
    name = mdoc_path.name
    for suffix in (".mdoc", ".mrc", ".st", ".tif", ".tiff"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def checked(mdoc: Mdoc, where: str, value: Any, allowed: PhysicalRange, shown: str = "") -> float:
    """``value`` as a float if ``allowed`` contains it, else an ImportFileError naming the mdoc, the line
    and key (``where``, see ``Mdoc.where``), the value and the allowed range."""
    problem = allowed.problem(value)
    if problem:
        raise ImportFileError(f"{mdoc.path}: {where} = {shown or quote(value)} {problem}")
    return float(value)


def acquisition_from_mdoc(mdoc: Mdoc, overrides: dict[str, Any]) -> Acquisition:
    """The Acquisition of an mdoc, with every non-None override taking precedence.

    Every mdoc value used is checked against its physical range (ImportFileError naming the line).
    """
    path = mdoc.path
    pixel = overrides.get("pixel_size_A")
    if not pixel:
        pixel = mdoc.pixel_size_A
        if pixel == 0 or pixel is None:
            raise ImportFileError(f"{path}: PixelSpacing is {mdoc.pixel_size_A!r}; give the pixel size (pixel_size_A)")
        checked(mdoc, mdoc.locate("PixelSpacing"), pixel, PIXEL_SIZE)
    axis = overrides.get("tilt_axis_angle_deg")
    if axis is None:
        axis = mdoc.tilt_axis_angle
        if axis is None:
            hint = mdoc.suggested_tilt_axis_angle
            raise ImportFileError(
                f"{path}: the tilt axis angle ({mdoc.software} TiltAxisAngle = {mdoc.raw_tilt_axis_angle}) is not in "
                f"SerialEM's convention; give tilt_axis_angle_deg"
                + (f" (-RotationAngle suggests {hint:g})" if hint is not None else "")
            )
        checked(mdoc, "the title's tilt axis angle", axis, ANGLE)
    voltage = overrides.get("voltage_kV")
    if not voltage:
        voltage = mdoc.voltage_kV or 300.0  # 0 or none: not recorded
        if mdoc.voltage_kV:
            checked(mdoc, mdoc.locate("Voltage"), voltage, VOLTAGE)
    magnification = mdoc.sections[0].get("Magnification", 0.0) if mdoc.sections else 0.0
    if isinstance(magnification, (int, float)):
        checked(mdoc, mdoc.where("Magnification", 0), magnification, MAGNIFICATION)
    return _built(
        mdoc,
        Acquisition,
        voltage_kV=voltage,
        spherical_aberration_mm=overrides.get("spherical_aberration_mm", 2.7),
        amplitude_contrast=overrides.get("amplitude_contrast", 0.1),
        pixel_size_A=pixel,
        tilt_axis_angle_deg=axis,
        dose_per_tilt_e_A2=float(overrides.get("dose_per_tilt_e_A2") or _doses(mdoc, None).mean()),
        magnification=float(magnification) if isinstance(magnification, (int, float)) else 0.0,
        gain_file=str(overrides.get("gain_file") or ""),
    )


def _built(mdoc: Mdoc, cls: type[M], **fields: Any) -> M:
    """``cls(**fields)``; a value the model refuses is an ImportFileError naming the mdoc."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise ImportFileError(f"{mdoc.path}: {describe_validation_error(exc)}") from None


def _doses(mdoc: Mdoc, override: float | None) -> np.ndarray:
    if override is not None:
        return np.full(len(mdoc.sections), float(override))
    doses = [
        checked(mdoc, mdoc.where("ExposureDose", i), section.get("ExposureDose", 0.0), DOSE_PER_TILT)
        for i, section in enumerate(mdoc.sections)
    ]
    return np.asarray(doses, dtype=float)


def acquisition_order(mdoc: Mdoc) -> np.ndarray:
    """1-based order of exposure of each section: by DateTime when all have one, else section order."""
    try:
        times = mdoc.datetimes()
    except ValueError as exc:
        raise ImportFileError(f"{mdoc.path}: DateTime: {exc}") from None
    n = len(mdoc.sections)
    if n and all(t is not None for t in times):
        stamps = np.array([t.timestamp() for t in times])  # type: ignore[union-attr]
        sequence = np.lexsort((np.arange(n), stamps))
    else:
        sequence = np.arange(n)
    order = np.empty(n, dtype=int)
    order[sequence] = np.arange(1, n + 1)
    return order


def accumulated_doses(doses: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Pre-exposure + own dose of each image (e/Å²) from the per-image doses and exposure order."""
    by_order = np.argsort(order)
    cumulative = np.cumsum(doses[by_order])
    out = np.empty_like(doses)
    out[by_order] = cumulative
    return out


def file_name(text: str) -> str:
    """The file name of a path as the acquisition PC wrote it (Windows or POSIX); '' for ``..`` or a folder."""
    name = PureWindowsPath(text).name if "\\" in text else PurePosixPath(text).name
    return "" if name in ("", ".", "..") else name


def _stack_for(mdoc: Mdoc, stack_file: Path | None) -> Path:
    """The image stack: ``stack_file``, else the ImageFile's name (any folder in it is the writer's, so the
    name is looked up beside the mdoc, as SubFramePath's is), else ``<name>.mrc``."""
    if stack_file is not None:
        return stack_file
    assert mdoc.path is not None
    named = str(mdoc.header.get("ImageFile") or "")
    candidates = [mdoc.path.with_name(file_name(named))] if file_name(named) else []
    candidates.append(mdoc.path.with_name(tilt_series_name(mdoc.path) + ".mrc"))
    candidates.append(mdoc.path.with_suffix(""))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    given = f"{mdoc.where('ImageFile')} = {quote(named)}" if named else "no ImageFile"
    raise ImportFileError(
        f"{mdoc.path}: {given}: no image stack found beside the mdoc (looked for "
        + ", ".join(str(c.name) for c in dict.fromkeys(candidates))
        + ")"
    )


def frames_path(mdoc: Mdoc, index: int, frames_dir: Path | None) -> Path:
    """The movie of section ``index``: its SubFramePath's file name looked up in ``frames_dir``."""
    section = mdoc.sections[index]
    sub = section.get("SubFramePath")
    where = f"{mdoc.path}: {mdoc.where('SubFramePath', index)}"
    if not sub:
        raise ImportFileError(f"{where} is missing")
    name = file_name(str(sub))
    if not name:
        raise ImportFileError(f"{where} = {quote(str(sub))} names no file")
    assert mdoc.path is not None
    folders = [frames_dir] if frames_dir else [mdoc.path.parent, mdoc.path.parent / "frames"]
    for folder in folders:
        if (folder / name).is_file():
            return (folder / name).resolve()
    raise ImportFileError(f"{where}: frames file {name} not found in {', '.join(str(f) for f in folders)}")


def check_gain_fits(gain: Path, movie: Path) -> None:
    """ImportFileError naming both files unless the gain reference fits the movie's frames: the same shape,
    or turned by 90° (motion correction rotates and flips it: gain_rotate_deg, gain_flip), or for an EER movie
    that shape upsampled 2× or 4× (a gain on the upsampled grid)."""
    try:
        gain_shape, frames = frame_shape(gain), frame_shape(movie)
    except (FormatError, FileNotFoundError) as exc:
        raise ImportFileError(f"gain_file: {exc}") from None
    factors = (1, 2, 4) if is_eer(movie) else (1,)
    fits = [(frames[0] * k, frames[1] * k) for k in factors]
    if gain_shape in fits or gain_shape[::-1] in fits:
        return
    hint = ""
    if gain_shape[0] * 2 == frames[0] and gain_shape[1] * 2 == frames[1]:
        hint = " (half the size: a counting-mode gain for super-resolution frames?)"
    raise ImportFileError(
        f"gain_file {gain}: an image of {gain_shape[1]} × {gain_shape[0]} px (x × y) does not fit "
        f"the frames of {movie} ({frames[1]} × {frames[0]} px), even turned by 90°{hint}"
    )


def tilt_series_from_mdoc(
    mdoc_path: Path | str,
    overrides: dict[str, Any] | None = None,
    movies: bool = False,
    frames_dir: Path | str | None = None,
    stack_file: Path | str | None = None,
    mdoc_format: str = "auto",
) -> TiltSeries:
    """Read one tilt-series mdoc and check its files; return the TiltSeries (or TiltSeriesMovie)."""
    from tomoforge.io.mdoc import read_mdoc

    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    path = Path(mdoc_path).resolve()
    try:
        mdoc = read_mdoc(path)
    except FormatError as exc:
        raise ImportFileError(str(exc)) from None
    montage = mdoc.montage
    if montage:
        raise ImportFileError(
            f"{path}: a montage ({montage}): its sections are pieces of montaged images, not tilt images; "
            "tomoforge imports single-frame tilt series (blend the montage first, e.g. with IMOD's blendmont)"
        )
    if mdoc.section_key != "ZValue" or not mdoc.sections:
        raise ImportFileError(f"{path}: not a tilt-series mdoc (no [ZValue = i] sections)")
    expected = {"serialem": "SerialEM", "tomo5": "Tomography"}.get(mdoc_format)
    if expected and mdoc.software != expected:
        raise ImportFileError(f"{path}: written by {mdoc.software}, but mdoc_format is {mdoc_format}")
    acquisition = acquisition_from_mdoc(mdoc, overrides)
    doses = _doses(mdoc, overrides.get("dose_per_tilt_e_A2"))
    order = acquisition_order(mdoc)
    accumulated = accumulated_doses(doses, order)
    images: list[TiltImage] = []
    stack = None
    if not movies:
        stack = _stack_for(mdoc, Path(stack_file) if stack_file else None)
        shape = mrc_shape(stack)
        n_stack = shape[0] if len(shape) == 3 else 1
        if n_stack < len(mdoc.sections):
            raise ImportFileError(
                f"{stack}: holds {n_stack} images but {path} describes {len(mdoc.sections)} (ZValue 0-"
                f"{len(mdoc.sections) - 1})"
            )
    for i, section in enumerate(mdoc.sections):
        defocus = section.get("Defocus")
        if isinstance(defocus, (int, float)):  # µm, underfocus negative
            checked(mdoc, mdoc.where("Defocus", i), -defocus * 1e4, DEFOCUS, f"{defocus!r} µm")
        common: dict[str, Any] = {
            "acquisition_order": int(order[i]),
            "tilt_angle_deg": float(section["TiltAngle"]),
            "accumulated_dose_e_A2": float(accumulated[i]),
            "dose_e_A2": float(doses[i]),
            "nominal_defocus_A": -float(defocus) * 1e4 if isinstance(defocus, (int, float)) else None,
            "z_rot_deg": acquisition.tilt_axis_angle_deg,
            "y_tilt_deg": float(section["TiltAngle"]),
        }
        if movies:
            movie = frames_path(mdoc, i, Path(frames_dir) if frames_dir else None)
            declared = section.get("NumSubFrames")
            if declared is not None and declared != "":
                declared = int(checked(mdoc, mdoc.where("NumSubFrames", i), declared, FRAME_COUNT))
            found = movie_frame_count(movie)
            if declared is not None and found < declared:
                raise ImportFileError(
                    f"{movie}: holds {found} frames but {path} {mdoc.where('NumSubFrames', i)} = {declared}"
                )
            n_frames = declared if declared else found
            if i == 0 and overrides.get("gain_file"):
                check_gain_fits(Path(overrides["gain_file"]), movie)
            images.append(
                _built(
                    mdoc,
                    TiltImageMovie,
                    **common,
                    file=str(movie),
                    index=0,
                    n_frames=n_frames,
                    frame_dose_e_A2=float(doses[i]) / n_frames,
                )
            )
        else:
            images.append(_built(mdoc, TiltImage, **common, file=str(stack), index=i))
    images.sort(key=lambda t: (t.tilt_angle_deg, t.acquisition_order))
    cls = TiltSeriesMovie if movies else TiltSeries
    return _built(
        mdoc,
        cls,
        name=tilt_series_name(path),
        acquisition=acquisition,
        tilt_images=images,
        source_file=str(path),
        stack_file=str(stack) if stack else "",
    )
