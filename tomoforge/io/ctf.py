"""Per-tilt CTF files: CTFFIND output text, RELION 5 tilt-series star CTF columns, and the common table
the import/export protocols use (IMOD ctfplotter ``.defocus`` is in tomoforge.io.imod).

Common table (``CTF_COLUMNS``), one row per tilt image: ``view`` (1-based row key: position in the
stack the file was made from, or row number), ``tilt_angle_deg`` (NaN where the file has none),
defocus_u_A ≥ defocus_v_A (Å, underfocus positive), astigmatism_angle_deg (U from the image X axis),
phase_shift_deg, fit_resolution_A and score (NaN where absent).

CTFFIND 4/5 text output (the ``.txt`` beside ``_diag`` images; CTFFIND's own header): comment lines
``#``, then per micrograph ``number defocus1 defocus2 azimuth phase_shift cross_correlation spacing``,
defocus in Å, azimuth in degrees (of defocus 1 from X), phase shift in radians, the last column the
resolution (Å) up to which CTF rings were fit; CTFFIND 5 adds tilt axis angle, tilt angle (degrees) and
sample thickness (Å). No CTFFIND file is in ../shared/data: this follows the column line CTFFIND writes.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from tomoforge.errors import quote
from tomoforge.model.quantities import ANGLE, DEFOCUS, SCORE, VIEW_NUMBER

from .errors import format_error, read_text_lines, write_text_atomic
from .imod import read_imod_defocus, write_imod_defocus
from .star import read_star_blocks, write_tilt_series_star

CTF_COLUMNS = [
    "view",
    "tilt_angle_deg",
    "defocus_u_A",
    "defocus_v_A",
    "astigmatism_angle_deg",
    "phase_shift_deg",
    "fit_resolution_A",
    "score",
]

# --- common table ---------------------------------------------------------------------------------


def normalise_table(df: pd.DataFrame) -> pd.DataFrame:
    """The table with every CTF column (NaN where absent), U ≥ V (swapped, axis turned by 90° where
    not) and the astigmatism angle in (−90, 90]."""
    out = df.copy()
    for c in CTF_COLUMNS:
        if c not in out:
            out[c] = np.nan
    u, v = out["defocus_u_A"].to_numpy(float), out["defocus_v_A"].to_numpy(float)
    swap = v > u
    out["defocus_u_A"], out["defocus_v_A"] = np.where(swap, v, u), np.where(swap, u, v)
    angle = out["astigmatism_angle_deg"].fillna(0.0).to_numpy(float) + np.where(swap, 90.0, 0.0)
    wrapped = (angle + 90.0) % 180.0 - 90.0
    wrapped = np.where(wrapped == -90.0, 90.0, wrapped)
    out["astigmatism_angle_deg"] = np.where((angle > -90.0) & (angle <= 90.0), angle, wrapped)
    out["phase_shift_deg"] = out["phase_shift_deg"].fillna(0.0)
    out["view"] = out["view"].astype(int)
    return out[CTF_COLUMNS].reset_index(drop=True)


# --- IMOD .defocus <-> table -----------------------------------------------------------------------


def imod_to_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per view of a read .defocus (a range line gives each of its views its values; the tilt
    angle is known only for single-view lines)."""
    rows = []
    for r in df.itertuples():
        for view in range(int(r.start_view), int(r.end_view) + 1):
            rows.append(
                {
                    "view": view,
                    "tilt_angle_deg": r.start_angle_deg if r.start_view == r.end_view else np.nan,
                    "defocus_u_A": r.defocus_u_A,
                    "defocus_v_A": r.defocus_v_A,
                    "astigmatism_angle_deg": r.astigmatism_angle_deg,
                    "phase_shift_deg": r.phase_shift_deg,
                }
            )
    return normalise_table(pd.DataFrame(rows))


def table_to_imod(table: pd.DataFrame) -> pd.DataFrame:
    """A .defocus DataFrame (one single-view line per row) for tomoforge.io.imod.write_imod_defocus."""
    t = normalise_table(table)
    phase = t["phase_shift_deg"].where(t["phase_shift_deg"] != 0.0) if (t["phase_shift_deg"] != 0).any() else np.nan
    return pd.DataFrame(
        {
            "start_view": t["view"],
            "end_view": t["view"],
            "start_angle_deg": t["tilt_angle_deg"],
            "end_angle_deg": t["tilt_angle_deg"],
            "defocus_u_A": t["defocus_u_A"],
            "defocus_v_A": t["defocus_v_A"],
            "astigmatism_angle_deg": t["astigmatism_angle_deg"],
            "phase_shift_deg": phase,
            "cut_on_frequency": np.nan,
        }
    )


def read_imod_ctf(path: str | os.PathLike[str]) -> pd.DataFrame:
    return imod_to_table(read_imod_defocus(path))


def write_imod_ctf(table: pd.DataFrame, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    return write_imod_defocus(table_to_imod(table), path, overwrite)


# --- CTFFIND text ----------------------------------------------------------------------------------

CTFFIND_COLUMNS_LINE = (
    "# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; #3 - defocus 2; "
    "#4 - azimuth of astigmatism; #5 - additional phase shift [radians]; #6 - cross correlation; "
    "#7 - spacing (in Angstroms) up to which CTF rings were fit successfully"
)
CTFFIND5_EXTRA = ["tilt_axis_angle_deg", "specimen_tilt_deg", "thickness_A"]
_HEADER_FIELDS = {
    "pixel_size_A": r"Pixel size:\s*([-\d.eE+]+)",
    "voltage_kV": r"acceleration voltage:\s*([-\d.eE+]+)",
    "cs_mm": r"spherical aberration:\s*([-\d.eE+]+)",
    "amplitude_contrast": r"amplitude contrast:\s*([-\d.eE+]+)",
}


#: CTFFIND's columns 1–6 and their ranges (column 7, the fit resolution, may be inf: no fit, read as NaN)
_CTFFIND_RANGES = [
    ("micrograph number", VIEW_NUMBER),
    ("defocus 1", DEFOCUS),
    ("defocus 2", DEFOCUS),
    ("azimuth", ANGLE),
    ("phase shift, radians", ANGLE),
    ("cross correlation", SCORE),
]


def read_ctffind(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A CTFFIND output text as the common table (``view`` = micrograph number); CTFFIND 5's extra
    columns kept by name; ``attrs``: pixel size, voltage, Cs, amplitude contrast from the header.

    FormatError naming the line and column for a value that is not a finite number in its range.
    """
    rows, attrs = [], {}
    for lineno, line in enumerate(read_text_lines(path), start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            for key, pattern in _HEADER_FIELDS.items():
                m = re.search(pattern, text)
                if m:
                    attrs[key] = float(m.group(1))
            continue
        try:
            vals = [float(t) for t in text.split()]
        except ValueError:
            raise format_error(path, f"line {lineno}: cannot read numbers from {quote(text)}") from None
        if len(vals) < 7:
            raise format_error(path, f"line {lineno}: {len(vals)} values, CTFFIND writes at least 7")
        for column, (field, allowed) in enumerate(_CTFFIND_RANGES):
            if allowed.problem(vals[column]):
                raise format_error(
                    path,
                    f"line {lineno}: column {column + 1} ({field}) {vals[column]:g} {allowed.problem(vals[column])}",
                )
        row = {
            "view": round(vals[0]),
            "defocus_u_A": vals[1],
            "defocus_v_A": vals[2],
            "astigmatism_angle_deg": vals[3],
            "phase_shift_deg": float(np.degrees(vals[4])),
            "score": vals[5],
            "fit_resolution_A": vals[6] if math.isfinite(vals[6]) else np.nan,
        }
        row.update(zip(CTFFIND5_EXTRA, vals[7:10]))
        rows.append(row)
    if not rows:
        raise format_error(path, "no CTFFIND result lines")
    df = pd.DataFrame(rows)
    extra = [c for c in CTFFIND5_EXTRA if c in df]
    out = pd.concat([normalise_table(df), df[extra]], axis=1)
    out.attrs.update(attrs)
    return out


def write_ctffind(
    table: pd.DataFrame,
    path: str | os.PathLike[str],
    pixel_size_A: float,
    voltage_kV: float,
    cs_mm: float,
    amplitude_contrast: float,
    overwrite: bool = False,
) -> Path:
    """Write the table as CTFFIND 4 writes its output text (micrograph number = ``view``)."""
    t = normalise_table(table)
    lines = [
        "# Output from CTFFind version 4.1.14 (format), written by tomoforge",
        f"# Input file: {Path(path).stem}.mrc ; Number of micrographs: {len(t)}",
        (
            f"# Pixel size: {pixel_size_A:0.3f} Angstroms ; acceleration voltage: {voltage_kV:0.1f} keV ; "
            f"spherical aberration: {cs_mm:0.2f} mm ; amplitude contrast: {amplitude_contrast:0.2f}"
        ),
        CTFFIND_COLUMNS_LINE,
    ]
    for r in t.itertuples():
        lines.append(
            f"{r.view:f} {r.defocus_u_A:f} {r.defocus_v_A:f} {r.astigmatism_angle_deg:f} "
            f"{np.radians(r.phase_shift_deg):f} {0.0 if np.isnan(r.score) else r.score:f} "
            f"{0.0 if np.isnan(r.fit_resolution_A) else r.fit_resolution_A:f}"
        )
    return write_text_atomic(path, "\n".join(lines) + "\n", overwrite)


# --- RELION 5 star -----------------------------------------------------------------------------------

RELION_CTF = {
    "rlnDefocusU": "defocus_u_A",
    "rlnDefocusV": "defocus_v_A",
    "rlnDefocusAngle": "astigmatism_angle_deg",
    "rlnPhaseShift": "phase_shift_deg",
    "rlnCtfMaxResolution": "fit_resolution_A",
    "rlnCtfFigureOfMerit": "score",
    "rlnTomoNominalStageTiltAngle": "tilt_angle_deg",
}


def read_relion_ctf(path: str | os.PathLike[str], block: str | None = None) -> pd.DataFrame:
    """The CTF of a RELION star as the common table: a RELION 5 per-tilt-series star (its one loop) or
    a CtfFind job's micrographs star (``data_micrographs``); ``view`` = row number. Extra columns kept:
    rlnMicrographName (``micrograph``), rlnMicrographPreExposure (``pre_exposure_e_A2``)."""
    path = Path(path)
    blocks = read_star_blocks(path)
    name = block or (
        "micrographs"
        if "micrographs" in blocks
        else next(
            (k for k, v in blocks.items() if isinstance(v, pd.DataFrame) and "rlnDefocusU" in v), next(iter(blocks))
        )
    )
    if name not in blocks:
        raise format_error(path, f"no data_{name} block (blocks: {', '.join(blocks)})")
    df = blocks[name]
    df = pd.DataFrame([df]) if isinstance(df, dict) else df
    missing = [c for c in ("rlnDefocusU", "rlnDefocusV") if c not in df]
    if missing:
        raise format_error(path, f"data_{name}: column _{missing[0]} is missing")
    table = df[[c for c in RELION_CTF if c in df and c != "rlnCtfFigureOfMerit"]].rename(columns=RELION_CTF)
    table = table.astype(float)  # the columns of STAR_RANGES, checked by read_star_blocks
    if "rlnCtfFigureOfMerit" in df:  # an optional score: text (CryoBoost writes None) means none
        table["score"] = pd.to_numeric(df["rlnCtfFigureOfMerit"], errors="coerce").to_numpy(dtype=float)
    table.insert(0, "view", np.arange(1, len(df) + 1))
    out = normalise_table(table)
    if "rlnMicrographName" in df:
        out["micrograph"] = df["rlnMicrographName"].astype(str).to_numpy()
    if "rlnMicrographPreExposure" in df:
        out["pre_exposure_e_A2"] = df["rlnMicrographPreExposure"].astype(float).to_numpy()
    out.attrs["tomo_name"] = name
    return out


def write_relion_ctf(
    table: pd.DataFrame, path: str | os.PathLike[str], tomo_name: str, overwrite: bool = False
) -> Path:
    """A RELION 5 per-tilt-series star (loop ``data_<tomo_name>``) with the CTF columns RELION 5 keeps
    per tilt (and rlnTomoNominalStageTiltAngle / rlnMicrographPreExposure where the table has them)."""
    t = normalise_table(table)
    out = pd.DataFrame()
    if t["tilt_angle_deg"].notna().all():
        out["rlnTomoNominalStageTiltAngle"] = t["tilt_angle_deg"]
    if "pre_exposure_e_A2" in table:
        out["rlnMicrographPreExposure"] = table["pre_exposure_e_A2"].to_numpy(dtype=float)
    out["rlnDefocusU"] = t["defocus_u_A"]
    out["rlnDefocusV"] = t["defocus_v_A"]
    out["rlnCtfAstigmatism"] = t["defocus_u_A"] - t["defocus_v_A"]
    out["rlnDefocusAngle"] = t["astigmatism_angle_deg"]
    out["rlnPhaseShift"] = t["phase_shift_deg"]
    out["rlnCtfFigureOfMerit"] = t["score"].fillna(0.0)
    out["rlnCtfMaxResolution"] = t["fit_resolution_A"].fillna(0.0)
    return write_tilt_series_star(out, path, tomo_name, overwrite)


__all__ = [
    "CTF_COLUMNS",
    "imod_to_table",
    "normalise_table",
    "read_ctffind",
    "read_imod_ctf",
    "read_relion_ctf",
    "table_to_imod",
    "write_ctffind",
    "write_imod_ctf",
    "write_relion_ctf",
]
