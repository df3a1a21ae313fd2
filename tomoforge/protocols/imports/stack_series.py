"""Turning an image stack without an mdoc (or a folder of one image per tilt) into a TiltSeries.

Rules, in the order they apply:

- Tilt angles: a ``.rawtlt``/``.tlt`` beside the stack (``TS_01.rawtlt`` or ``TS_01.mrc.rawtlt``; the
  raw angles first), the MRC's extended header (FEI1/FEI2's or the older FEI layout's
  alpha tilt, SerialEM's tilt angle of each section), or ``start + i · step``;
  for one image per tilt, the ``{TA}`` field of each file name. One angle per section, in section order.
- Views sharing one tilt angle (within 0.01°: a STEM acquisition's detector channels, SerialEM's
  multi-channel stacks) are not a tilt series: refused, naming the file and the repeated angles, unless
  ``channel`` = k picks the k-th view of each angle (in section order).
- Pixel size: the parameter, else the MRC header (cella / mx), else a FEI extended header's; 0 or 1 Å
  is a placeholder that many writers leave, refused with a request for ``pixel_size_A``.
- Acquisition order: the scheme the user names (``order``: see ``order.py``), or ``file``: the
  sections' order in the stack (a stack saved in acquisition order), or the ``{TO}`` field of the names.
  Accumulated dose of a view = its order × the dose per tilt (CONVENTIONS.md).
- A header a strict reader refuses (no map ID, an unknown machine stamp: older FEI/Thermo writers) is
  read permissively and reported as a warning in the run log.
- Tilt images are kept sorted by tilt angle; each points to its section (``index``) of its file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from tomoforge.errors import describe_validation_error
from tomoforge.io.errors import FormatError
from tomoforge.io.mrc import MrcInfo, mrc_info, read_extended_header_tilts
from tomoforge.model import Acquisition, TiltImage, TiltSeries
from tomoforge.model.quantities import PIXEL_SIZE
from tomoforge.protocols.imports.files import ImportFileError
from tomoforge.protocols.imports.order import order_from_sequence, scheme_sequence, start_distance

if TYPE_CHECKING:
    from tomoforge.protocols.imports.stacks import StackImportParams

M = TypeVar("M", bound=BaseModel)

#: views whose angles differ by less than this (degrees) share one tilt angle
SAME_ANGLE_DEG = 0.01
#: pixel sizes that mean "not set" in a header
PLACEHOLDER_PIXEL_SIZES = (0.0, 1.0)
STACK_SUFFIXES = (".mrc", ".st", ".ali", ".mrcs", ".preali")


@dataclass(frozen=True)
class View:
    """One image of the series as found: its angle, where it is, and its rank in the files (section or {TO})."""

    angle_deg: float
    file: str
    index: int
    rank: float


def stack_name(path: Path) -> str:
    """``TS_01.mrc``, ``TS_01.st`` and ``TS_01.ali`` all give ``TS_01``."""
    name = path.name
    for suffix in STACK_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def tilt_file_for(stack: Path) -> Path | None:
    """The ``.rawtlt`` or ``.tlt`` beside a stack (``TS_01.rawtlt``, ``TS_01.mrc.rawtlt``; raw angles first)."""
    for suffix in (".rawtlt", ".tlt"):
        for candidate in (stack.with_name(stack_name(stack) + suffix), stack.with_name(stack.name + suffix)):
            if candidate.is_file():
                return candidate
    return None


def _info(path: Path) -> MrcInfo:
    try:
        return mrc_info(path)
    except (FormatError, FileNotFoundError) as exc:
        raise ImportFileError(str(exc)) from None


def stack_angles(stack: Path, info: MrcInfo, p: StackImportParams) -> tuple[np.ndarray, str]:
    """The tilt angle of each section of ``stack`` and where they came from (the tilt file's path, or words)."""
    from tomoforge.io.imod import read_tlt

    n = info.shape[0] if len(info.shape) == 3 else 1
    source = p.tilt_angles
    tlt = tilt_file_for(stack) if source in ("auto", "tlt") else None
    if source == "tlt" and tlt is None:
        raise ImportFileError(
            f"{stack}: tilt_angles = tlt, but there is no {stack_name(stack)}.rawtlt or .tlt beside the stack"
        )
    if tlt is not None:
        try:
            angles = read_tlt(tlt)
        except FormatError as exc:
            raise ImportFileError(str(exc)) from None
        where = str(tlt)
    elif source == "start-step":
        assert p.tilt_start_deg is not None and p.tilt_step_deg is not None  # the params' validator
        angles = p.tilt_start_deg + p.tilt_step_deg * np.arange(n)
        if np.any(np.abs(angles) > 90):
            raise ImportFileError(
                f"{stack}: tilt_start_deg = {p.tilt_start_deg:g}, tilt_step_deg = {p.tilt_step_deg:g} give "
                f"{angles[-1]:g}° for section {n - 1}; tilt angles must lie within ±90°"
            )
        return angles, f"start {p.tilt_start_deg:g}°, step {p.tilt_step_deg:g}°"
    else:
        try:
            fei = read_extended_header_tilts(stack)
        except (FormatError, FileNotFoundError) as exc:
            raise ImportFileError(str(exc)) from None
        if fei is None:
            looked = f"no {stack_name(stack)}.rawtlt or .tlt beside it, and " if source == "auto" else ""
            raise ImportFileError(
                f"{stack}: no tilt angles: {looked}no extended header with tilt angles (FEI, SerialEM) "
                f"(extended header type {info.extended_type or 'none'!r}); write a .rawtlt beside the stack, "
                "or give tilt_angles=start-step with tilt_start_deg and tilt_step_deg"
            )
        angles, where = fei[0], f"the {info.extended_type or 'FEI'} extended header"
    if len(angles) != n:
        raise ImportFileError(f"{stack}: {where} gives {len(angles)} tilt angles for the stack's {n} images")
    return np.asarray(angles, dtype=float), where


def header_pixel_size(stack: Path, info: MrcInfo, p: StackImportParams) -> float:
    """The pixel size (Å): the parameter, else the MRC header, else a FEI extended header's; never a placeholder."""
    if p.pixel_size_A:
        return float(p.pixel_size_A)
    size = round(info.voxel_size_A, 6)
    if size in PLACEHOLDER_PIXEL_SIZES:
        fei = read_extended_header_tilts(stack)
        fei_size = float(np.median(fei[1])) if fei is not None else 0.0
        if PIXEL_SIZE.contains(fei_size) and round(fei_size, 6) not in PLACEHOLDER_PIXEL_SIZES:
            return fei_size
        raise ImportFileError(
            f"{stack}: the header's pixel size is {size:g} Å/px, a placeholder (0 or 1) that many writers "
            "leave: give the pixel size (pixel_size_A)"
        )
    problem = PIXEL_SIZE.problem(size)
    if problem:
        raise ImportFileError(f"{stack}: header pixel size (cella / mx) = {size:g} {problem}; give pixel_size_A")
    return size


def select_channel(views: list[View], channel: int, where: str) -> list[View]:
    """The views of one channel; ImportFileError where views share tilt angles and no channel is named."""
    angles = np.array([v.angle_deg for v in views])
    keys = np.round(angles / SAME_ANGLE_DEG).astype(np.int64)
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    repeated = unique[counts > 1]
    if len(repeated) == 0:
        if channel > 0:
            raise ImportFileError(f"{where}: channel = {channel}, but every tilt angle appears once (one channel)")
        return views
    if channel == 0 or len(set(counts.tolist())) > 1:
        shown = ", ".join(f"{k * SAME_ANGLE_DEG:g}° ({c}×)" for k, c in zip(repeated[:8], counts[counts > 1][:8]))
        more = f" and {len(repeated) - 8} more" if len(repeated) > 8 else ""
        if len(set(counts.tolist())) > 1:
            raise ImportFileError(
                f"{where}: views share tilt angles unevenly ({shown}{more}): not a tilt series, and not channels "
                "of one (each angle would appear equally often)"
            )
        raise ImportFileError(
            f"{where}: {len(views)} views on {len(unique)} tilt angles, each repeated: {shown}{more}. Views sharing "
            "one tilt angle are not a tilt series (a multi-channel or STEM detector stack?); give "
            f"channel = 1 to {counts[0]} to import one channel"
        )
    if channel > counts[0]:
        raise ImportFileError(
            f"{where}: channel = {channel}, but the stack has {counts[0]} channels (1 to {counts[0]})"
        )
    ranks = np.array([v.rank for v in views])
    by_angle = np.lexsort((ranks, inverse))  # grouped by angle, in file order within each
    chosen = by_angle.reshape(len(unique), counts[0])[:, channel - 1]
    return [views[i] for i in sorted(chosen.tolist())]


def acquisition_orders(views: list[View], p: StackImportParams, where: str, ranks_known: bool) -> np.ndarray:
    """1-based acquisition order of each view: the named scheme, or the files' order (``file``)."""
    angles = np.array([v.angle_deg for v in views])
    if p.order == "file":
        if not ranks_known:
            raise ImportFileError(
                f"{where}: order = file, but the name pattern has no {{TO}} (acquisition order) field; "
                "name the scheme (dose-symmetric, bidirectional, continuous)"
            )
        return order_from_sequence(np.argsort([v.rank for v in views], kind="stable"))
    if p.order != "continuous" and len(angles) > 1:
        steps = np.diff(np.unique(angles))
        tolerance = max(0.5 * float(np.median(steps)), 0.1)
        distance = start_distance(angles, p.order_start_deg)
        if distance > tolerance:
            nearest = angles[np.argmin(np.abs(angles - p.order_start_deg))]
            raise ImportFileError(
                f"{where}: order_start_deg = {p.order_start_deg:g}, but the nearest tilt is {nearest:g}° "
                f"({distance:.2f}° away, more than half a step): give the first exposed tilt"
            )
    sequence = scheme_sequence(
        angles, p.order, start_deg=p.order_start_deg, first=p.first_direction, group_size=p.group_size
    )
    return order_from_sequence(sequence)


def _built(where: str, cls: type[M], **fields: Any) -> M:
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise ImportFileError(f"{where}: {describe_validation_error(exc)}") from None


def tilt_series_from_views(
    name: str,
    views: list[View],
    pixel_size_A: float,
    p: StackImportParams,
    *,
    where: str,
    source: str,
    ranks_known: bool,
    stack_file: str = "",
) -> TiltSeries:
    """The TiltSeries of ``views`` (one channel): orders, doses and the acquisition from the params."""
    views = select_channel(views, p.channel, where)
    order = acquisition_orders(views, p, where, ranks_known)
    dose = float(p.dose_per_tilt_e_A2)
    acquisition = _built(
        where,
        Acquisition,
        voltage_kV=p.voltage_kV,
        spherical_aberration_mm=p.spherical_aberration_mm,
        amplitude_contrast=p.amplitude_contrast,
        pixel_size_A=pixel_size_A,
        tilt_axis_angle_deg=p.tilt_axis_angle_deg,
        dose_per_tilt_e_A2=dose,
    )
    images = [
        _built(
            where,
            TiltImage,
            acquisition_order=int(k),
            tilt_angle_deg=v.angle_deg,
            accumulated_dose_e_A2=dose * int(k),
            dose_e_A2=dose,
            file=v.file,
            index=v.index,
            z_rot_deg=p.tilt_axis_angle_deg,
            y_tilt_deg=v.angle_deg,
        )
        for v, k in zip(views, order)
    ]
    images.sort(key=lambda t: (t.tilt_angle_deg, t.acquisition_order))
    return _built(
        where,
        TiltSeries,
        name=name,
        acquisition=acquisition,
        tilt_images=images,
        source_file=source,
        stack_file=stack_file,
    )


def tilt_series_from_stack(stack: Path, p: StackImportParams) -> tuple[TiltSeries, list[str]]:
    """One stack (+ its tilt angles) -> its TiltSeries, and the warnings for the run log."""
    stack = stack.resolve()
    info = _info(stack)
    warnings = [f"{stack}: {problem}; read permissively" for problem in info.problems]
    angles, source = stack_angles(stack, info, p)
    pixel = header_pixel_size(stack, info, p)
    if not p.pixel_size_A and round(info.voxel_size_A, 6) != round(pixel, 6):
        warnings.append(
            f"{stack}: pixel size {pixel:g} Å/px from the extended header (the MRC header's "
            f"{info.voxel_size_A:g} is a placeholder)"
        )
    views = [View(float(a), str(stack), i, float(i)) for i, a in enumerate(angles)]
    tlt = Path(source) if source.startswith("/") else None
    where = f"{stack} (angles from {tlt.name})" if tlt else str(stack)
    ts = tilt_series_from_views(
        stack_name(stack),
        views,
        pixel,
        p,
        where=where,
        source=str(tlt or stack),
        ranks_known=True,
        stack_file=str(stack),
    )
    return ts, warnings


def tilt_series_from_images(
    name: str, images: list[tuple[str, float | None, float]], p: StackImportParams
) -> tuple[TiltSeries, list[str]]:
    """One image per tilt (file, its {TO} or None, its {TA}) -> the TiltSeries named ``name``, and warnings."""
    infos = {file: _info(Path(file)) for file, _, _ in images}
    first = Path(images[0][0])
    shapes = {info.shape for info in infos.values()}
    for file, info in infos.items():
        if len(info.shape) != 2:
            raise ImportFileError(f"{file}: holds {info.shape[0]} images; one image per tilt is expected")
    if len(shapes) > 1:
        raise ImportFileError(
            f"{first.parent}: the images of tilt series {name} differ in size: "
            + ", ".join(f"{s[1]} × {s[0]}" for s in sorted(shapes))
        )
    problems = sorted({problem for info in infos.values() for problem in info.problems})
    warnings = [
        f"{name}: {problem} in {sum(problem in i.problems for i in infos.values())} of {len(infos)} images; "
        "read permissively"
        for problem in problems
    ]
    pixel = header_pixel_size(first, infos[str(first)], p)
    ranks_known = all(rank is not None for _, rank, _ in images)
    views = [
        View(float(angle), str(Path(file).resolve()), 0, float(rank) if rank is not None else float(i))
        for i, (file, rank, angle) in enumerate(images)
    ]
    where = f"{first.parent} ({len(images)} images of {name})"
    ts = tilt_series_from_views(
        name, views, pixel, p, where=where, source=str(first.parent.resolve()), ranks_known=ranks_known
    )
    return ts, warnings
