"""SerialEM / Tomography 5 ``.mdoc`` files (tilt-series and frame mdocs, CRLF or LF).

Layout (SerialEM "autodoc"): header ``Key = value`` lines, ``[T = ...]`` title lines, then one
``[ZValue = i]`` (tilt series) or ``[FrameSet = i]`` (frames) section per image with ``Key = value``
lines. Reference: https://bio3d.colorado.edu/SerialEM/hlp/html/about_formats.htm

Values: a number becomes int/float, several numbers a tuple of floats, anything else stays str
(``SubFramePath`` keeps its Windows backslashes, ``DateTime`` stays text: see parse_mdoc_datetime).
Units are the file's: TiltAngle in degrees, PixelSpacing in Å, ExposureDose in e/Å²,
Defocus in µm (negative = underfocus), Voltage in kV.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tomoforge.errors import quote
from tomoforge.model.quantities import TILT_ANGLE

from .errors import format_error, read_text_lines, write_text_atomic

#: keys always kept as text
TEXT_KEYS = frozenset(
    {
        "DateTime",
        "SubFramePath",
        "ImageFile",
        "ChannelName",
        "GainReference",
        "DarkReference",
        "NavigatorLabel",
        "T",
        "FrameSetTitle",
        "MultiShotHoleAndPosition",
    }
)
#: keys that must hold numbers (an unparsable value is an error naming the line)
NUMERIC_KEYS = frozenset(
    {
        "TiltAngle",
        "ExposureDose",
        "PixelSpacing",
        "Defocus",
        "TargetDefocus",
        "Magnification",
        "Intensity",
        "SpotSize",
        "ExposureTime",
        "Binning",
        "RotationAngle",
        "StageZ",
        "StagePosition",
        "ImageShift",
        "NumSubFrames",
        "PriorRecordDose",
        "Voltage",
        "DataMode",
        "ImageSize",
        "MagIndex",
        "CameraIndex",
        "DividedBy2",
        "CountsPerElectron",
        "DoseRate",
    }
)
SECTION_KEYS = ("ZValue", "FrameSet")

_SECTION_RE = re.compile(r"^\[\s*([^=\]]+?)\s*=\s*(.*?)\s*\]$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_SERIALEM_AXIS_RE = re.compile(r"Tilt\s+axis\s+angle\s*=\s*([-+0-9.eE]+)", re.IGNORECASE)
_TOMO5_AXIS_RE = re.compile(r"TiltAxisAngle\s*=\s*([-+0-9.eE]+)")


def parse_mdoc_value(text: str) -> Any:
    """'3' -> 3, '2.5' -> 2.5, '1 2.5' -> (1.0, 2.5), 'NaN' -> nan, anything else -> the str."""
    tokens = text.split()
    if not tokens:
        return text.strip()
    try:
        numbers = [float(t) for t in tokens]
    except ValueError:
        return text.strip()
    if len(tokens) > 1:
        return tuple(numbers)
    return int(tokens[0]) if _INT_RE.match(tokens[0]) else numbers[0]


def format_mdoc_value(value: Any) -> str:
    """Inverse of parse_mdoc_value (floats with repr precision, nan as SerialEM's 'NaN')."""
    if isinstance(value, tuple):  # always read back as floats: integral ones need no '.0'
        return " ".join(str(int(v)) if isinstance(v, float) and v.is_integer() else format_mdoc_value(v) for v in value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return repr(value)
    return str(value)


def parse_mdoc_datetime(text: str, order: str = "dmy") -> datetime:
    """Parse an mdoc ``DateTime`` value.

    SerialEM writes day-month-year, ``30-Nov-15  15:21:38`` (two- or four-digit year) — the
    order Warp's ts_import and ScipionTomo parse it with. Thermo Fisher Tomography 5 writes
    year-month-day, ``21-Nov-30  17:42:06`` (ScipionTomo's mdoc docstring shows that title next
    to ``ImageFile = 20211130_...``); pass ``order='ymd'`` for those (Mdoc.datetimes does this).
    """
    text = " ".join(text.split())
    if order == "dmy":
        formats = ("%d-%b-%y %H:%M:%S", "%d-%b-%Y %H:%M:%S")
    elif order == "ymd":
        formats = ("%y-%b-%d %H:%M:%S", "%Y-%b-%d %H:%M:%S")
    else:
        raise ValueError(f"order must be 'dmy' or 'ymd', not {order!r}")
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"cannot read mdoc date/time {text!r} as {order}")


@dataclass
class Mdoc:
    """An mdoc: header values, titles (text inside ``[T = ...]``) and one dict per section.

    ``sections[i]`` is the section with index i (``[ZValue = i]``); the index is not repeated
    inside the dict.
    """

    path: Path | None
    header: dict[str, Any] = field(default_factory=dict)
    titles: list[str] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)
    section_key: str = "ZValue"
    #: sections of other kinds, e.g. the ``[ZValue = i]`` sub-ranges after ``[FrameSet = 0]`` in a
    #: SerialEM frame-tilt-series mdoc: {kind: [section 0, section 1, ...]}
    other_sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: line number of each value: {(section kind or '' for the header, section index, key): line}
    lines: dict[tuple[str, int, str], int] = field(default_factory=dict)

    def where(self, key: str, index: int | None = None, kind: str | None = None) -> str:
        """``"line 12: [ZValue = 3] TiltAngle"`` (or ``"line 2: ImageFile"`` for a header value) for messages."""
        kind = kind or self.section_key
        line = self.lines.get((kind if index is not None else "", index if index is not None else -1, key))
        section = f"[{kind} = {index}] " if index is not None else ""
        return f"{f'line {line}: ' if line else ''}{section}{key}"

    def locate(self, key: str) -> str:
        """``where`` for the value ``_first(key)`` returns (the header's, else the first section's)."""
        return self.where(key) if key in self.header else self.where(key, 0)

    @property
    def software(self) -> str:
        """'SerialEM', 'Tomography' (Thermo Fisher Tomography 5) or 'unknown', from the first title."""
        first = self.titles[0] if self.titles else str(self.header.get("T", ""))
        first = first.strip()
        if first.startswith("SerialEM"):
            return "SerialEM"
        if first.startswith("Tomography"):
            return "Tomography"
        return "unknown"

    @property
    def raw_tilt_axis_angle(self) -> float | None:
        """The tilt axis angle number as written in a title line (degrees, the writer's convention)."""
        for title in self.titles:
            match = _SERIALEM_AXIS_RE.search(title) or _TOMO5_AXIS_RE.search(title)
            if match:
                return float(match.group(1))
        return None

    @property
    def tilt_axis_angle(self) -> float | None:
        """Tilt axis angle in tomoforge's convention (degrees from image Y, counter-clockwise).

        SerialEM's ``Tilt axis angle`` is that convention as-is. For Tomography 5 this returns None:
        its ``TiltAxisAngle`` (-174.23 in data/mdoc/tomo5_cryoboost) is not the same quantity —
        Warp and ScipionTomo import it unchanged, while CryoBoost (Klumpe lab, who wrote that file,
        src/rw/librw.py) overrides it with ``abs(RotationAngle)`` = 84.2 for its Warp/RELION runs.
        The conversion is not established, so import must ask for the value
        (see raw_tilt_axis_angle and suggested_tilt_axis_angle).
        """
        if self.software == "Tomography":
            return None
        return self.raw_tilt_axis_angle

    @property
    def suggested_tilt_axis_angle(self) -> float | None:
        """A candidate for a Tomography 5 mdoc: ``-RotationAngle`` of the first section (degrees).

        Equals ``-(TiltAxisAngle + 90)``; it is what CryoBoost uses (84.23 for RotationAngle
        -84.23). Only the axis line is supported by that evidence; the direction (±180°, i.e. the
        hand) is not verified. For SerialEM this is the header value.
        """
        if self.software != "Tomography":
            return self.tilt_axis_angle
        rotation = self.sections[0].get("RotationAngle") if self.sections else None
        return -float(rotation) if isinstance(rotation, (int, float)) else None

    @property
    def montage(self) -> str | None:
        """Why this mdoc describes a montage (SerialEM: header ``Montage = 1``, ``[MontSection = i]``
        sections, or sections with ``PieceCoordinates`` at more than one x, y per tilt), or None.

        Each section of a montage is a piece of a larger image, not a tilt image.
        """
        if self.header.get("Montage") == 1:
            return f"{self.where('Montage')} = 1"
        if self.section_key == "MontSection" or "MontSection" in self.other_sections:
            return "[MontSection = i] sections"
        pieces = {  # (tilt, piece x, piece y): the third coordinate is the section, one per image
            (s.get("TiltAngle"), *tuple(s["PieceCoordinates"])[:2])
            for s in self.sections
            if isinstance(s.get("PieceCoordinates"), tuple)
        }
        tilts = {piece[0] for piece in pieces}
        if len(pieces) > len(tilts):
            return "PieceCoordinates at several x, y per tilt angle"
        return None

    def _first(self, key: str) -> Any:
        if key in self.header:
            return self.header[key]
        return self.sections[0].get(key) if self.sections else None

    @property
    def voltage_kV(self) -> float | None:
        """Accelerating voltage in kV (header ``Voltage``, else first section), or None."""
        value = self._first("Voltage")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def pixel_size_A(self) -> float | None:
        """Pixel size in Å (header ``PixelSpacing``, else first section), or None."""
        value = self._first("PixelSpacing")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def tilt_angles(self) -> list[float]:
        """Stage tilt angle of each section in degrees (section order)."""
        return [float(s["TiltAngle"]) for s in self.sections]

    def datetimes(self) -> list[datetime | None]:
        """Each section's DateTime parsed (Tomography 5 as year-month-day); None where absent."""
        order = "ymd" if self.software == "Tomography" else "dmy"
        out: list[datetime | None] = []
        for section in self.sections:
            text = section.get("DateTime")
            out.append(parse_mdoc_datetime(str(text), order) if text is not None else None)
        return out

    def to_dataframe(self) -> pd.DataFrame:
        """One row per section with the section index in column ``section_key``."""
        rows = [{self.section_key: i, **s} for i, s in enumerate(self.sections)]
        return pd.DataFrame(rows)


def _parse_line(path: Path, lineno: int, line: str) -> tuple[str, Any]:
    key, sep, value = line.partition("=")
    key = key.strip()
    if not sep or not key:
        raise format_error(path, f"line {lineno}: expected 'Key = value', got {quote(line)}")
    value = value.strip()
    if key in TEXT_KEYS:
        return key, value
    parsed = parse_mdoc_value(value)
    if key in NUMERIC_KEYS and isinstance(parsed, str) and parsed:
        raise format_error(path, f"line {lineno}: {key[:80]} = {quote(value)} is not a number")
    return key, parsed


def _ordered(path: Path, kind: str, found: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    for index in range(len(found)):
        if index not in found:
            raise format_error(path, f"[{kind} = {index}] is missing (indices run to {max(found)})")
    return [found[i] for i in range(len(found))]


def read_mdoc(path: str | os.PathLike[str]) -> Mdoc:
    """Read an mdoc; FormatError (naming file and section/line) for duplicated or missing
    section indices, a ``[ZValue]`` section without TiltAngle, or an unparsable number.

    The first section kind met is ``section_key``; later kinds go to ``other_sections``.
    """
    path = Path(path)
    mdoc = Mdoc(path=path)
    found: dict[str, dict[int, dict[str, Any]]] = {}
    current: dict[str, Any] | None = None
    place: tuple[str, int] = ("", -1)  # the section the next value belongs to ('' = header)
    for lineno, raw in enumerate(read_text_lines(path), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _SECTION_RE.match(line)
        if match:
            key, value = match.group(1).strip(), match.group(2)
            if key == "T":
                mdoc.titles.append(value.strip())
                continue
            if not _INT_RE.match(value.strip()):
                raise format_error(
                    path, f"line {lineno}: section index in [{key[:80]} = {value[:80]}] is not an integer"
                )
            index = int(value)
            kind = found.setdefault(key, {})
            if index in kind:
                raise format_error(path, f"line {lineno}: [{key} = {index}] appears twice")
            current = kind[index] = {}
            place = (key, index)
            continue
        key, value = _parse_line(path, lineno, line)
        target = mdoc.header if current is None else current
        target[key] = value
        mdoc.lines[(*place, key)] = lineno
    kinds = list(found)
    mdoc.section_key = kinds[0] if kinds else "ZValue"
    mdoc.sections = _ordered(path, mdoc.section_key, found[kinds[0]]) if kinds else []
    mdoc.other_sections = {k: _ordered(path, k, found[k]) for k in kinds[1:]}
    for section_kind, sections in [(mdoc.section_key, mdoc.sections), *mdoc.other_sections.items()]:
        if section_kind != "ZValue":
            continue
        for index, section in enumerate(sections):
            if not isinstance(section.get("TiltAngle"), (int, float)):
                raise format_error(path, f"[ZValue = {index}]: TiltAngle is missing")
            problem = TILT_ANGLE.problem(section["TiltAngle"])
            if problem:
                raise format_error(
                    path, f"{mdoc.where('TiltAngle', index, section_kind)} = {section['TiltAngle']} {problem}"
                )
    return mdoc


def format_mdoc(mdoc: Mdoc) -> str:
    """The text of an mdoc in SerialEM's layout (LF line endings, blank lines between blocks)."""
    lines = [f"{k} = {format_mdoc_value(v)}" for k, v in mdoc.header.items()]
    lines.append("")
    for title in mdoc.titles:
        lines += [f"[T = {title}]", ""]
    for kind, sections in [(mdoc.section_key, mdoc.sections), *mdoc.other_sections.items()]:
        for index, section in enumerate(sections):
            lines.append(f"[{kind} = {index}]")
            lines += [f"{k} = {format_mdoc_value(v)}" for k, v in section.items()]
            lines.append("")
    return "\n".join(lines) + "\n"


def write_mdoc(mdoc: Mdoc, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``mdoc`` in SerialEM's layout (titles kept as they are, so a Tomography 5 mdoc keeps
    its ``[T = Tomography: ...]`` / ``TiltAxisAngle`` titles); atomic, refuses to overwrite."""
    return write_text_atomic(path, format_mdoc(mdoc), overwrite=overwrite)


__all__ = [
    "Mdoc",
    "format_mdoc",
    "format_mdoc_value",
    "parse_mdoc_datetime",
    "parse_mdoc_value",
    "read_mdoc",
    "write_mdoc",
]
