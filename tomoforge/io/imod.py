"""IMOD text files: ``.xf`` (2D transforms), ``.tlt``/``.rawtlt`` (tilt angles), ``.xtilt`` and
ctfplotter ``.defocus``; and the .xf <-> RELION 5 projection-model conversion.

An .xf line ``A11 A12 A21 A22 DX DY`` maps a raw-image coordinate (centred, pixels) to the aligned
image: x' = A11·x + A12·y + DX, y' = A21·x + A22·y + DY (IMOD xf format, xfmodel man page).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from tomoforge.errors import quote
from tomoforge.model.quantities import (
    ANGLE,
    DEFOCUS,
    TILT_ANGLE,
    VIEW_NUMBER,
    PhysicalRange,
)

from .errors import format_error, parse_number_table, read_text_lines, write_text_atomic

# --- .xf ------------------------------------------------------------------------------------


def read_xf(path: str | os.PathLike[str]) -> np.ndarray:
    """(n, 2, 3) array [[A11, A12, DX], [A21, A22, DY]] per view (shifts in pixels)."""
    rows = np.array(parse_number_table(path, ncols=6, what="xf line"), dtype=float).reshape(-1, 6)
    if len(rows) == 0:
        raise format_error(path, "no transforms")
    xf = np.empty((len(rows), 2, 3))
    xf[:, 0, :2], xf[:, 1, :2] = rows[:, 0:2], rows[:, 2:4]
    xf[:, 0, 2], xf[:, 1, 2] = rows[:, 4], rows[:, 5]
    return xf


def write_xf(path: str | os.PathLike[str], xf: np.ndarray, overwrite: bool = False) -> Path:
    """Write (n, 2, 3) transforms in IMOD's layout (4 × %12.7f, 2 × %12.3f)."""
    xf = np.asarray(xf, dtype=float).reshape(-1, 2, 3)
    lines = [f"{m[0, 0]:12.7f}{m[0, 1]:12.7f}{m[1, 0]:12.7f}{m[1, 1]:12.7f}{m[0, 2]:12.3f}{m[1, 2]:12.3f}" for m in xf]
    return write_text_atomic(path, "\n".join(lines) + "\n", overwrite)


# --- .tlt / .rawtlt / .xtilt ----------------------------------------------------------------


def _read_column(path: str | os.PathLike[str], what: str, allowed: PhysicalRange) -> np.ndarray:
    rows = parse_number_table(path, what=what, ranges={0: allowed})
    if not rows:
        raise format_error(path, f"no {what}s")
    return np.array([r[0] for r in rows], dtype=float)


def _write_column(path: str | os.PathLike[str], values: np.ndarray, overwrite: bool) -> Path:
    text = "".join(f"{v:7.2f}\n" for v in np.asarray(values, dtype=float).ravel())
    return write_text_atomic(path, text, overwrite)


def read_tlt(path: str | os.PathLike[str]) -> np.ndarray:
    """Tilt angles in degrees, one per view (first column of each line)."""
    return _read_column(path, "tilt angle", TILT_ANGLE)


def write_tlt(path: str | os.PathLike[str], angles_deg: np.ndarray, overwrite: bool = False) -> Path:
    """Write tilt angles (degrees), one per line, %7.2f as tiltalign does."""
    return _write_column(path, angles_deg, overwrite)


def read_xtilt(path: str | os.PathLike[str]) -> np.ndarray:
    """X-axis tilt in degrees per view (tiltalign's .xtilt, RELION's rlnTomoXTilt)."""
    return _read_column(path, "x-tilt", ANGLE)


def write_xtilt(path: str | os.PathLike[str], angles_deg: np.ndarray, overwrite: bool = False) -> Path:
    """Write x-axis tilts (degrees), one per line."""
    return _write_column(path, angles_deg, overwrite)


# --- .xf <-> projection model ---------------------------------------------------------------


def xf_to_projection_model(xf: np.ndarray, pixel_size_A: float) -> dict[str, np.ndarray]:
    """IMOD transforms -> RELION 5 ZRot (degrees) and X/YShift (Å), as RELION 5 imports IMOD.

    RELION 5 (src/tomography_python_programs/align_tilt_series/imod/_utils.py, through
    teamtomo/yet-another-imod-wrapper utils/xf.py):
    ``rlnTomoZRot = atan2(-A21, A11)`` and
    ``(rlnTomoXShiftAngst, rlnTomoYShiftAngst) = -(A⁻¹ · (DX, DY)) · pixel size``
    (the specimen shifts; rotation centre at IMOD's image centre). ZRot is then the tilt-axis
    angle of that view in tomoforge's convention. rlnTomoYTilt is the .tlt angle, rlnTomoXTilt 0
    (RELION) or the .xtilt value.
    """
    xf = np.asarray(xf, dtype=float).reshape(-1, 2, 3)
    matrices, shifts = xf[:, :, :2], xf[:, :, 2:]
    z_rot = np.rad2deg(np.arctan2(-matrices[:, 1, 0], matrices[:, 0, 0]))
    specimen = -(np.linalg.pinv(matrices) @ shifts)[:, :, 0] * float(pixel_size_A)
    return {"z_rot_deg": z_rot, "x_shift_A": specimen[:, 0], "y_shift_A": specimen[:, 1]}


def xf_distortion(xf: np.ndarray) -> dict[str, np.ndarray]:
    """What an IMOD transform holds beyond a rotation: per view, its ``magnification`` (√|det A|) and
    ``skew_deg`` (the angle between A's columns minus 90°). tiltalign writes them when it solves for
    magnification or skew; a rotation-only projection model (RELION 5's, tomoforge's) drops them.

    Returns also ``edge_px_per_1000``: how far, at most, a point 1000 px from the rotation centre
    moves when A is replaced by the rotation :func:`xf_to_projection_model` keeps (the largest
    singular value of their difference, × 1000), so the loss can be told in pixels for any image size.
    """
    matrices = np.asarray(xf, dtype=float).reshape(-1, 2, 3)[:, :, :2]
    magnification = np.sqrt(np.abs(np.linalg.det(matrices)))
    first, second = matrices[:, :, 0], matrices[:, :, 1]
    cosine = np.sum(first * second, axis=1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))
    skew_deg = np.rad2deg(np.arccos(np.clip(cosine, -1.0, 1.0))) - 90.0
    theta = np.arctan2(-matrices[:, 1, 0], matrices[:, 0, 0])
    c, s = np.cos(theta), np.sin(theta)
    kept = np.stack([np.stack([c, s], axis=-1), np.stack([-s, c], axis=-1)], axis=1)
    edge = 1000.0 * np.linalg.svd(matrices - kept, compute_uv=False)[:, 0]
    return {"magnification": magnification, "skew_deg": skew_deg, "edge_px_per_1000": edge}


def projection_model_to_xf(
    z_rot_deg: ArrayLike, x_shift_A: ArrayLike, y_shift_A: ArrayLike, pixel_size_A: float
) -> np.ndarray:
    """Inverse of xf_to_projection_model: A = rotation by −ZRot, (DX, DY) = −A · shift / pixel size."""
    theta = np.deg2rad(np.asarray(z_rot_deg, dtype=float).ravel())
    c, s = np.cos(theta), np.sin(theta)
    n = len(theta)
    xf = np.zeros((n, 2, 3))
    xf[:, 0, 0], xf[:, 0, 1], xf[:, 1, 0], xf[:, 1, 1] = c, s, -s, c
    shifts = np.stack(
        [
            np.broadcast_to(np.asarray(x_shift_A, dtype=float), (n,)),
            np.broadcast_to(np.asarray(y_shift_A, dtype=float), (n,)),
        ],
        axis=1,
    )
    xf[:, :, 2] = -(xf[:, :, :2] @ (shifts / float(pixel_size_A))[:, :, None])[:, :, 0]
    return xf


# --- ctfplotter .defocus --------------------------------------------------------------------

DEFOCUS_COLUMNS = [
    "start_view",
    "end_view",
    "start_angle_deg",
    "end_angle_deg",
    "defocus_u_A",
    "defocus_v_A",
    "astigmatism_angle_deg",
    "phase_shift_deg",
    "cut_on_frequency",
]
# Flags of a version-3 file (IMOD ctfutils.h, DEF_FILE_*; ctfphaseflip man page, "Defocus file format").
DEF_HAS_ASTIG, DEF_ASTIG_IN_RAD, DEF_HAS_PHASE, DEF_PHASE_IN_RAD, DEF_INVERT_ANGLES, DEF_HAS_CUT_ON = 1, 2, 4, 8, 16, 32


def _angle_within_90(angle_deg: float) -> float:
    """The same axis as an angle in (−90°, 90°]."""
    a = (angle_deg + 90.0) % 180.0 - 90.0
    return 90.0 if a == -90.0 else a


def read_imod_defocus(path: str | os.PathLike[str]) -> pd.DataFrame:
    """ctfplotter/ctfphaseflip defocus file (versions 1–3) as a DataFrame, read as IMOD reads it.

    Version 2: ``start end angle1 angle2 defocus_nm`` per line, the first line ending with a 6th value, 2.
    Version 3: a first line ``flags 0 0. 0. 0 3`` (flags: 1 astigmatism, 2 its angle in radians, 4 phase
    shift, 8 phase in radians, 16 tilt angles inverted, 32 cut-on frequency), then
    ``start end angle1 angle2 defocus1 [defocus2 astig_angle] [phase] [cut_on]`` (IMOD ctfutils.cpp
    readDefocusFile). No version (1): written before IMOD 3.12.20, whose views may start at 0 (an old
    ctfplotter bug IMOD corrects): those are shifted to start at 1.

    Columns: start_view, end_view (1-based, inclusive), start/end_angle_deg (sign restored where flag 16),
    defocus_u_A ≥ defocus_v_A (Å, underfocus positive; the file has nm), astigmatism_angle_deg (of the U
    axis from X, in (−90, 90]; U/V swapped and the axis turned by 90° where defocus1 < defocus2, as IMOD
    does), phase_shift_deg, cut_on_frequency (as the file has it, NaN where absent);
    ``attrs['version']`` and ``attrs['flags']``.
    """
    lines = [(n, ln) for n, ln in enumerate(read_text_lines(path), start=1) if ln.strip()]
    if not lines:
        raise format_error(path, "empty defocus file")

    def numbers(lineno: int, text: str) -> list[float]:
        try:
            values = [float(t) for t in text.replace(",", " ").split()]
        except ValueError:
            raise format_error(path, f"line {lineno}: cannot read numbers from {quote(text.strip())}") from None
        if not all(math.isfinite(v) for v in values):
            raise format_error(path, f"line {lineno}: {quote(text.strip())} holds a non-finite number (nan or inf)")
        return values

    def check(lineno: int, field: str, value: float, allowed: PhysicalRange) -> None:
        problem = allowed.problem(value)
        if problem:
            raise format_error(path, f"line {lineno}: {field} {value:g} {problem}")

    first = numbers(*lines[0])
    flags, version, body = 0, 1, lines
    if len(first) >= 6 and int(first[5]) > 2:
        flags, version, body = int(first[0]), int(first[5]), lines[1:]
    elif len(first) >= 6:
        version = int(first[5])
    need = (
        5
        + (2 if flags & DEF_HAS_ASTIG else 0)
        + (1 if flags & DEF_HAS_PHASE else 0)
        + (1 if flags & DEF_HAS_CUT_ON else 0)
    )
    sign = -1.0 if flags & DEF_INVERT_ANGLES else 1.0
    rows = []
    for lineno, text in body:
        vals = numbers(lineno, text)
        if len(vals) < need:
            raise format_error(path, f"line {lineno}: {len(vals)} values, expected {need}")
        check(lineno, "starting view", vals[0], VIEW_NUMBER)
        check(lineno, "ending view", vals[1], VIEW_NUMBER)
        start, end = int(vals[0]), int(vals[1])
        if end < start:
            raise format_error(path, f"line {lineno}: ending view {end} before starting view {start}")
        d1, d2, angle, pos = vals[4] * 10.0, vals[4] * 10.0, 0.0, 5
        if flags & DEF_HAS_ASTIG:
            d2, angle, pos = vals[5] * 10.0, vals[6], 7
            angle = float(np.degrees(angle)) if flags & DEF_ASTIG_IN_RAD else angle
        phase = np.nan
        if flags & DEF_HAS_PHASE:
            phase = float(np.degrees(vals[pos])) if flags & DEF_PHASE_IN_RAD else vals[pos]
            pos += 1
        cuton = vals[pos] if flags & DEF_HAS_CUT_ON else np.nan
        for field, value, allowed in (
            ("starting angle", vals[2], TILT_ANGLE),
            ("ending angle", vals[3], TILT_ANGLE),
            ("defocus (nm → Å)", d1, DEFOCUS),
            ("defocus 2 (nm → Å)", d2, DEFOCUS),
            ("astigmatism angle (°)", angle, ANGLE),
            ("phase shift (°)", phase, ANGLE),
        ):
            if not (field.startswith("phase") and np.isnan(value)):
                check(lineno, field, value, allowed)
        if d2 > d1:
            d1, d2, angle = d2, d1, angle - 90.0
        rows.append([start, end, sign * vals[2], sign * vals[3], d1, d2, _angle_within_90(angle), phase, cuton])
    df = pd.DataFrame(rows, columns=DEFOCUS_COLUMNS)
    if version < 2 and len(df) and int(df.start_view.min()) == 0:
        df[["start_view", "end_view"]] += 1
    df.attrs.update(version=version, flags=flags)
    return df


def write_imod_defocus(df: pd.DataFrame, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write a defocus file as ctfplotter does: version 2 when there is neither astigmatism nor phase
    shift nor cut-on, otherwise version 3 with the flags of what is there (angles in degrees)."""
    astig = bool(((df["defocus_u_A"] - df["defocus_v_A"]).abs() > 0.05).any())
    phase = "phase_shift_deg" in df and bool(df["phase_shift_deg"].notna().any())
    cuton = "cut_on_frequency" in df and bool(df["cut_on_frequency"].notna().any())
    flags = (DEF_HAS_ASTIG if astig else 0) | (DEF_HAS_PHASE if phase else 0) | (DEF_HAS_CUT_ON if cuton else 0)
    lines = [f"{flags} 0 0. 0. 0 3"] if flags else []
    for i, r in enumerate(df.itertuples()):
        text = (
            f"{int(r.start_view)}\t{int(r.end_view)}\t{r.start_angle_deg:.2f}\t"
            f"{r.end_angle_deg:.2f}\t{r.defocus_u_A / 10:.2f}"
        )
        if astig:
            text += f"\t{r.defocus_v_A / 10:.2f}\t{_angle_within_90(r.astigmatism_angle_deg):.2f}"
        if phase:
            text += f"\t{0.0 if np.isnan(r.phase_shift_deg) else r.phase_shift_deg:.2f}"
        if cuton:
            text += f"\t{0.0 if np.isnan(r.cut_on_frequency) else r.cut_on_frequency:.4f}"
        if not flags and i == 0:
            text += "\t2"
        lines.append(text)
    return write_text_atomic(path, "\n".join(lines) + "\n", overwrite)


__all__ = [
    "projection_model_to_xf",
    "read_imod_defocus",
    "read_imod_points",
    "read_tlt",
    "read_xf",
    "read_xtilt",
    "write_imod_defocus",
    "write_imod_points",
    "write_tlt",
    "write_xf",
    "write_xtilt",
    "xf_distortion",
    "xf_to_projection_model",
]


# --- IMOD models (.mod), through the imodmodel package --------------------------------------


def read_imod_points(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The points of an IMOD model: columns ``object_id``, ``contour_id`` (0-based) and ``x``, ``y``, ``z`` in
    pixels of the image it was made on (IMOD's model coordinates). FormatError naming the file if it is not a
    readable model or holds no point, or a coordinate is not finite."""
    import imodmodel

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        df = imodmodel.read(path)
    except Exception as exc:  # the parser raises assorted errors on a damaged or foreign file
        raise format_error(path, f"not a readable IMOD model ({type(exc).__name__}: {quote(str(exc))[:200]})") from None
    if df is None or not len(df):
        raise format_error(path, "no points in the model")
    df = df.reset_index(drop=True)
    xyz = df[["x", "y", "z"]].to_numpy(dtype=float)
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise format_error(path, f"point {i + 1}: {quote(xyz[i].tolist())} is not finite")
    return df


def write_imod_points(
    path: str | os.PathLike[str],
    xyz_px: np.ndarray,
    *,
    size_xyz: tuple[int, int, int] | None = None,
    pixel_size_A: float | None = None,
    contours: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write points (n, 3) x, y, z in pixels as a scattered-point IMOD model (one object; a contour per value of
    ``contours``, else one), with the image size and pixel size (Å) in its header; whole or not at all."""
    import imodmodel
    from imodmodel.models import ImodModel

    from .atomic import atomic_path
    from .errors import check_writable

    path = check_writable(path, overwrite)
    xyz = np.asarray(xyz_px, dtype=np.float64).reshape(-1, 3)
    df = pd.DataFrame(
        {
            "object_id": np.zeros(len(xyz), dtype=np.int64),
            "contour_id": np.zeros(len(xyz), dtype=np.int64) if contours is None else np.asarray(contours),
            "x": xyz[:, 0],
            "y": xyz[:, 1],
            "z": xyz[:, 2],
        }
    )
    model = ImodModel.from_dataframe(df, type=imodmodel.models.ContourType.SCATTERED)
    if size_xyz is not None:
        model.header.xmax, model.header.ymax, model.header.zmax = (int(v) for v in size_xyz)
    if pixel_size_A is not None:
        model.header.pixelsize = float(pixel_size_A)
        model.header.units = -10  # IMOD's code for Å
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # imodmodel 0.1 calls pydantic's deprecated .dict()
        model.to_file(tmp)
    return path
