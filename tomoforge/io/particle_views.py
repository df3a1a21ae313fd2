"""Particle view stacks: the 2D views of particles cut from aligned tilt series, and what each view needs
to be put back into 3D (its projection direction, its CTF at the particle's height, its dose).

This is the format between pseudo-subtomogram extraction and particle reconstruction. One stack per tilt
series: an MRC stack ``NAME.mrcs`` whose sections are the particles' views, a particle's views consecutive
(``Particle.file`` names the stack, ``Particle.index`` its first section), and beside it ``NAME.views.npz``
(plain numpy arrays, loaded without pickle) with one row per section:

- ``particle``: the particle's number in its set;
- ``view_matrix`` (n, 3, 3): the view's rotation ``Rz(ZRot) · Ry(YTilt) · Rx(XTilt)`` of the tilt series'
  projection model (docs/conventions.md), taking the tomogram's frame to the view's (x, y, beam) frame;
  a particle's view of the reference is then ``view_matrix @ R_particle``;
- ``defocus_u_A``, ``defocus_v_A``, ``astigmatism_deg``: the CTF at the particle's height in that view;
- ``dose_e_A2``: the view's accumulated dose; ``tilt_deg``: its refined tilt angle;

and scalars: ``pixel_size_A``, ``voltage_kV``, ``cs_mm``, ``amplitude_contrast``, ``ctf_premultiplied``
(the views were multiplied by their CTF) and ``dose_weighted`` (they were attenuated by their dose).
The view's centre (``N // 2``) is the particle's projected centre, shift included.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from tomoforge.io.atomic import atomic_path
from tomoforge.io.errors import format_error

VIEWS_SUFFIX = ".views.npz"
_ROWS = ("particle", "view_matrix", "defocus_u_A", "defocus_v_A", "astigmatism_deg", "dose_e_A2", "tilt_deg")


@dataclass(frozen=True, kw_only=True)
class ParticleViews:
    """The per-section metadata of a particle view stack (see the module's docstring); n sections."""

    particle: np.ndarray  # (n,) int64
    view_matrix: np.ndarray  # (n, 3, 3) float64
    defocus_u_A: np.ndarray  # (n,) float64
    defocus_v_A: np.ndarray  # (n,)
    astigmatism_deg: np.ndarray  # (n,)
    dose_e_A2: np.ndarray  # (n,)
    tilt_deg: np.ndarray  # (n,)
    pixel_size_A: float
    voltage_kV: float
    cs_mm: float
    amplitude_contrast: float
    ctf_premultiplied: bool
    dose_weighted: bool

    def __post_init__(self) -> None:
        n = len(self.particle)
        for name in _ROWS:
            value = getattr(self, name)
            if len(value) != n:
                raise ValueError(f"ParticleViews.{name} has {len(value)} rows, particle has {n}")
        if np.shape(self.view_matrix)[1:] != (3, 3):
            raise ValueError(f"ParticleViews.view_matrix must be (n, 3, 3), got {np.shape(self.view_matrix)}")

    def __len__(self) -> int:
        return len(self.particle)


def views_path(stack: str | os.PathLike[str]) -> Path:
    """The metadata file beside a view stack: ``NAME.mrcs`` -> ``NAME.views.npz``."""
    stack = Path(stack)
    return stack.with_name(stack.stem + VIEWS_SUFFIX)


def write_particle_views(stack: str | os.PathLike[str], views: ParticleViews) -> Path:
    """Write the metadata of the view stack ``stack`` (whole or not at all); returns its path."""
    target = views_path(stack)
    arrays: dict[str, Any] = {f.name: np.asarray(getattr(views, f.name)) for f in fields(views)}
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)
    return target


def read_particle_views(stack: str | os.PathLike[str]) -> ParticleViews:
    """The metadata of the view stack ``stack``; a missing or malformed file is a ``FormatError`` naming it."""
    path = views_path(stack)
    try:
        with np.load(path, allow_pickle=False) as data:
            values = {f.name: data[f.name] for f in fields(ParticleViews)}
    except (OSError, KeyError, ValueError) as exc:
        raise format_error(path, f"not a particle view file ({exc})") from None
    given: dict[str, Any] = {k: v for k, v in values.items() if k in _ROWS}
    given |= {k: float(values[k].item()) for k in ("pixel_size_A", "voltage_kV", "cs_mm", "amplitude_contrast")}
    given |= {k: bool(values[k].item()) for k in ("ctf_premultiplied", "dose_weighted")}
    try:
        return ParticleViews(**given)
    except ValueError as exc:
        raise format_error(path, str(exc)) from None


__all__ = ["VIEWS_SUFFIX", "ParticleViews", "read_particle_views", "views_path", "write_particle_views"]
