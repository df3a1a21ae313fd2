"""Warp / WarpTools tilt-series metadata (``<TiltSeries>`` XML).

Per tilt: Angles (degrees), Dose (accumulated e/Å²), UseTilt, AxisAngle (degrees), AxisOffsetX/Y
(Å), MoviePath; CTF parameters in ``<CTF><Param Name= Value=/>`` (PixelSize Å, Voltage kV,
Cs mm, Defocus µm, DefocusDelta µm, DefocusAngle °); per-tilt defocus in ``GridCTF`` (µm, one node
per tilt along Z) with ``GridCTFDefocusDelta`` / ``GridCTFDefocusAngle``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tomoforge.errors import quote

from .errors import format_error

PER_TILT = ("Angles", "Dose", "UseTilt", "AxisAngle", "AxisOffsetX", "AxisOffsetY", "MoviePath")


@dataclass
class WarpTiltSeries:
    """A Warp tilt series. Defocus U ≥ V in Å (underfocus positive) where a GridCTF exists:
    U = (defocus + delta), V = (defocus − delta), angle = DefocusAngle (Warp's CTF model)."""

    path: Path
    angles_deg: np.ndarray
    dose_e_per_A2: np.ndarray
    use_tilt: np.ndarray
    axis_angles_deg: np.ndarray
    axis_offsets_A: np.ndarray  # (n, 2) x, y
    movie_paths: list[str]
    pixel_size_A: float | None
    voltage_kV: float | None
    cs_mm: float | None
    amplitude_contrast: float | None
    defocus_u_A: np.ndarray | None = None
    defocus_v_A: np.ndarray | None = None
    defocus_angle_deg: np.ndarray | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    ctf: dict[str, str] = field(default_factory=dict)
    options_ctf: dict[str, str] = field(default_factory=dict)


def _lines(root: ET.Element, tag: str) -> list[str]:
    node = root.find(tag)
    if node is None or node.text is None:
        return []
    return [t.strip() for t in node.text.strip().splitlines() if t.strip()]


def _floats(path: Path, root: ET.Element, tag: str, n: int | None) -> np.ndarray:
    values = _lines(root, tag)
    try:
        array = np.array([float(v) for v in values], dtype=float)
    except ValueError as exc:
        raise format_error(path, f"<{tag}>: {exc}") from None
    if n is not None and len(array) != n:
        raise format_error(path, f"<{tag}> has {len(array)} values for {n} tilts")
    return array


def _params(root: ET.Element, tag: str) -> dict[str, str]:
    node = root.find(tag)
    if node is None:
        return {}
    return {name: p.get("Value", "") for p in node.iter("Param") if (name := p.get("Name")) is not None}


def _grid(path: Path, root: ET.Element, tag: str, n: int) -> np.ndarray | None:
    node = root.find(tag)
    if node is None:
        return None
    nodes = node.findall("Node")
    if int(node.get("Depth", "0")) != n or len(nodes) != n:
        return None  # not a per-tilt grid (e.g. 1x1x1)
    values = np.empty(n)
    for number, item in enumerate(nodes, start=1):
        try:
            z, value = int(item.get("Z", "")), float(item.get("Value", ""))
        except ValueError:
            z = -1
        if not 0 <= z < n:
            raise format_error(
                path,
                f"<{tag}> node {number} needs Z (0 to {n - 1}) and a Value, "
                f"got Z={quote(item.get('Z', ''))} Value={quote(item.get('Value', ''))}",
            )
        values[z] = value
    return values


def _opt_float(params: dict[str, str], key: str) -> float | None:
    value = params.get(key)
    return float(value) if value not in (None, "") else None


def read_warp_tilt_series_xml(path: str | os.PathLike[str]) -> WarpTiltSeries:
    """Read a Warp tilt-series XML (FormatError naming the file and element)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise format_error(path, f"not readable XML ({exc})") from exc
    if root.tag != "TiltSeries":
        raise format_error(path, f"root element is <{root.tag}>, expected <TiltSeries>")
    angles = _floats(path, root, "Angles", None)
    n = len(angles)
    if n == 0:
        raise format_error(path, "<Angles> is missing or empty")
    use = _lines(root, "UseTilt")
    ctf = _params(root, "CTF")
    options = _params(root, "OptionsCTF")
    ts = WarpTiltSeries(
        path=path,
        angles_deg=angles,
        dose_e_per_A2=_floats(path, root, "Dose", n),
        use_tilt=np.array([u.lower() == "true" for u in use]) if use else np.ones(n, bool),
        axis_angles_deg=_floats(path, root, "AxisAngle", n),
        axis_offsets_A=np.stack([_floats(path, root, "AxisOffsetX", n), _floats(path, root, "AxisOffsetY", n)], axis=1),
        movie_paths=_lines(root, "MoviePath"),
        pixel_size_A=_opt_float(ctf, "PixelSize") or _opt_float(options, "PixelSize"),
        voltage_kV=_opt_float(ctf, "Voltage"),
        cs_mm=_opt_float(ctf, "Cs"),
        amplitude_contrast=_opt_float(ctf, "Amplitude"),
        attributes=dict(root.attrib),
        ctf=ctf,
        options_ctf=options,
    )
    if len(ts.use_tilt) != n:
        raise format_error(path, f"<UseTilt> has {len(ts.use_tilt)} values for {n} tilts")
    defocus = _grid(path, root, "GridCTF", n)
    if defocus is not None:
        delta = _grid(path, root, "GridCTFDefocusDelta", n)
        angle = _grid(path, root, "GridCTFDefocusAngle", n)
        delta = np.full(n, _opt_float(ctf, "DefocusDelta") or 0.0) if delta is None else delta
        angle = np.full(n, _opt_float(ctf, "DefocusAngle") or 0.0) if angle is None else angle
        half = np.abs(delta)
        ts.defocus_u_A = (defocus + half) * 1e4
        ts.defocus_v_A = (defocus - half) * 1e4
        ts.defocus_angle_deg = np.where(delta < 0, angle + 90.0, angle)
    return ts


def warp_attributes(ts: WarpTiltSeries) -> dict[str, Any]:
    """The root attributes (AreAnglesInverted, PlaneNormal, ...) with booleans and numbers parsed."""
    out: dict[str, Any] = {}
    for key, value in ts.attributes.items():
        if value in ("True", "False"):
            out[key] = value == "True"
        else:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


__all__ = ["WarpTiltSeries", "read_warp_tilt_series_xml", "warp_attributes"]
