"""AreTomo ``.aln`` alignment files (AreTomo 1.x, 2, 3 layouts).

Layout: ``#`` header lines (``# RawSize = nx ny nz``, ``# NumPatches = n``,
``# DarkFrame = section value2 tilt``, ``# AlphaOffset = a``, ``# BetaOffset = b``,
``# Thickness = t``; AreTomo 1.2 writes ``# nsections npatches`` instead), the column line
``# SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT``, one global row per kept view (ROT: tilt-axis
angle in degrees, TX/TY: shifts in pixels, TILT: tilt angle in degrees), then optionally
``# Local Alignment`` and rows ``section patch x y tx ty good`` (pixels).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import format_error, read_text_lines, write_text_atomic
from .imod import projection_model_to_xf

GLOBAL_COLUMNS = ["SEC", "ROT", "GMAG", "TX", "TY", "SMEAN", "SFIT", "SCALE", "BASE", "TILT"]
LOCAL_COLUMNS = ["section", "patch", "x", "y", "tx", "ty", "good"]
DARK_COLUMNS = ["section", "value2", "tilt_deg"]

_KEY_RE = re.compile(r"^#\s*(\w+)\s*=\s*(.*)$")


@dataclass
class AlnFile:
    """An .aln file: header numbers, dark (excluded) frames, global and local alignment tables."""

    path: Path | None
    header: dict[str, Any] = field(default_factory=dict)
    global_alignment: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=GLOBAL_COLUMNS))
    dark_frames: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DARK_COLUMNS))
    local_alignment: pd.DataFrame | None = None
    title: str = "AreTomo Alignment / Priims bprmMn"


def _numbers(path: Path, lineno: int, text: str, count: int | None = None) -> list[float]:
    try:
        values = [float(t) for t in text.split()]
    except ValueError:
        raise format_error(path, f"line {lineno}: cannot read numbers from {text.strip()!r}") from None
    if count is not None and len(values) != count:
        raise format_error(path, f"line {lineno}: {len(values)} values, expected {count}")
    return values


def read_aln(path: str | os.PathLike[str]) -> AlnFile:
    """Read an AreTomo .aln file; FormatError naming the line on a malformed row."""
    path = Path(path)
    aln = AlnFile(path=path)
    dark, rows, local = [], [], []
    in_local = False
    for lineno, raw in enumerate(read_text_lines(path), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line.lstrip("#").strip()
            match = _KEY_RE.match(line)
            if body.lower().startswith("local alignment"):
                in_local = True
            elif body.startswith("SEC"):
                continue
            elif lineno == 1:
                aln.title = body
            elif match and match.group(1) == "DarkFrame":
                dark.append(_numbers(path, lineno, match.group(2), 3))
            elif match:
                values = _numbers(path, lineno, match.group(2))
                aln.header[match.group(1)] = values[0] if len(values) == 1 else tuple(values)
            elif body:  # AreTomo 1.2: '# 41 0'
                aln.header["Sections"] = tuple(_numbers(path, lineno, body))
            continue
        if in_local:
            local.append(_numbers(path, lineno, line, len(LOCAL_COLUMNS)))
        else:
            rows.append(_numbers(path, lineno, line, len(GLOBAL_COLUMNS)))
    if not rows:
        raise format_error(path, "no global alignment rows (SEC ROT GMAG TX TY ...)")
    table = pd.DataFrame(rows, columns=GLOBAL_COLUMNS)
    table["SEC"] = table["SEC"].astype(int)
    aln.global_alignment = table
    aln.dark_frames = pd.DataFrame(dark, columns=DARK_COLUMNS).astype(
        {"section": int, "value2": int, "tilt_deg": float}
    )
    if in_local:
        aln.local_alignment = pd.DataFrame(local, columns=LOCAL_COLUMNS).astype({"section": int, "patch": int})
    return aln


def _header_value(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(f"{v:g}" for v in value)
    return f"{value:8.2f}" if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def write_aln(aln: AlnFile, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``aln`` in AreTomo 2/3's layout."""
    lines = [f"# {aln.title}"]
    first: list[str] = [k for k in ("Sections", "RawSize", "NumPatches") if k in aln.header]
    for key in first:  # AreTomo's order: sizes, dark frames, then offsets and thickness
        value = aln.header[key]
        if key == "Sections":
            lines.append("# " + "  ".join(f"{v:g}" for v in value))
        else:
            lines.append(f"# {key} = {_header_value(value)}")
    for r in aln.dark_frames.itertuples():
        lines.append(f"# DarkFrame = {int(r.section):5d}{int(r.value2):5d}{r.tilt_deg:9.2f}")
    for key, value in aln.header.items():
        if key not in first:
            lines.append(f"# {key} = {_header_value(value)}")
    lines.append("# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT")
    for r in aln.global_alignment.itertuples():
        lines.append(
            f"{int(r.SEC):5d}  {r.ROT:9.4f}  {r.GMAG:9.5f}  {r.TX:9.3f}  {r.TY:9.3f}  "
            f"{r.SMEAN:7.2f}  {r.SFIT:7.2f}  {r.SCALE:7.2f}  {r.BASE:7.2f}  {r.TILT:8.2f}"
        )
    if aln.local_alignment is not None:
        lines.append("# Local Alignment")
        for r in aln.local_alignment.itertuples():
            lines.append(
                f"{int(r.section):4d} {int(r.patch):3d} {r.x:8.2f} {r.y:9.2f} {r.tx:9.2f} {r.ty:9.2f} {r.good:5.1f}"
            )
    return write_text_atomic(path, "\n".join(lines) + "\n", overwrite)


def aln_to_projection_model(aln: AlnFile, pixel_size_A: float) -> dict[str, np.ndarray]:
    """Global alignment -> RELION 5 projection model (one entry per row of the table).

    As RELION 5 imports AreTomo (src/tomography_python_programs/align_tilt_series/aretomo/
    utils.py): XTilt = 0, YTilt = TILT, ZRot = ROT (degrees), X/YShift = TX/TY · pixel size (Å).
    The same numbers come from AreTomo's own ``-OutXF`` .xf (data/aretomo/lil-aretomo/TS_121.xf)
    through tomoforge.io.imod.xf_to_projection_model. ``section`` is the row's SEC value.
    """
    table = aln.global_alignment
    px = float(pixel_size_A)
    return {
        "section": table["SEC"].to_numpy(dtype=int),
        "x_tilt_deg": np.zeros(len(table)),
        "y_tilt_deg": table["TILT"].to_numpy(dtype=float),
        "z_rot_deg": table["ROT"].to_numpy(dtype=float),
        "x_shift_A": table["TX"].to_numpy(dtype=float) * px,
        "y_shift_A": table["TY"].to_numpy(dtype=float) * px,
    }


def aln_to_xf(aln: AlnFile) -> np.ndarray:
    """IMOD transforms (n, 2, 3) equal to what AreTomo writes with ``-OutXF``: A = rotation by
    −ROT, (DX, DY) = −A · (TX, TY). (alnfile 0.1's save_xf uses +ROT: its xf in
    data/aretomo/alnfile disagrees with AreTomo's in the sign of the in-plane rotation.)"""
    model = aln_to_projection_model(aln, 1.0)
    return projection_model_to_xf(model["z_rot_deg"], model["x_shift_A"], model["y_shift_A"], 1.0)


__all__ = ["AlnFile", "aln_to_projection_model", "aln_to_xf", "read_aln", "write_aln"]
