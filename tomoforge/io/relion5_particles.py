"""RELION 5 / WarpTools particle sets: 2D tilt stacks (``_rlnTomoSubTomosAre2DStacks 1``) and 3D subtomograms.

A particle STAR (``data_general``, ``data_optics``, ``data_particles``) and its tomograms STAR (``data_global``
and one loop per tomogram with one row per tilt: ``_rlnTomoProjX/Y/Z/W`` — the rows of the 4 × 4 matrix that
takes tomogram coordinates to the tilt image's — or RELION's ``_rlnTomoXTilt/YTilt/ZRot``; defocus,
``_rlnCtfScalefactor`` and ``_rlnMicrographPreExposure`` per tilt; RELION 5 keeps that loop in the file its
``_rlnTomoTiltSeriesStarFile`` names, relative to the project folder). A 2D particle's ``rlnImageName`` is an
MRC stack with one section per tilt of its tomogram; ``_rlnTomoVisibleFrames`` flags the tilts it is seen in.

Geometry. RELION 5 projects a tomogram point X with P = Rz(rlnTomoZRot) · Ry(rlnTomoYTilt) · Rx(rlnTomoXTilt)
(TomoBackprojectProgram::getProjectMatrices; right-handed rotations), tomoforge's own model, and a particle's view
rotation is P · A (A: RELION's Euler matrix, ``io.euler``). What differs is the defocus over the height
h = [P X]_z: RELION's is ΔF + rlnTomoHand · h (Tomogram::getCtf), tomoforge's always ΔF + h (z towards the
source). A tomogram with rlnTomoHand −1 (RELION's default, and every real file in data/relion5) is therefore
read in the frame mirrored in z, M = diag(1, 1, −1), keeping every rotation proper: view matrix M P M, particle
rotation M A M, position (x, y, −z); then positions project where RELION projects them and the defocus at a
particle is RELION's. A tomogram with rlnTomoHand +1 is read as it is. (The WarpTools test set,
data/relion5/tomodrgn_warptools, rlnTomoHand −1, matches the RELION map shipped beside it only in the mirrored
frame: FSC at the map's noise bound, sqrt(2F / (1 + F)) from the FSC F of two halves, 0.98, 0.93, 0.85, 0.79 … 0.38
in shells 1–12 at 12 Å (0.8 Nyquist; 0.93 of the bound on average), against 0.24 of it on average unmirrored;
tests/io/test_relion5_particles.py, tests/protocols/sta/test_warptools_cli.py. The bound is all any program reaches:
that map is not a reconstruction of these 40 particles but a reference of other data (tomodrgn uses it as ground
truth; voxel 1.667 × 7.2 = 12.0024 Å, not the export's 12.0; its name lacks the subset's "4-tomos_10-ptcls"): RELION
3.1's relion_reconstruct --ctf of the same 1360 views, written as a single-particle STAR with the Euler angles of
the mirrored frame's view rotations, matches our map at FSC 0.96–0.999 but the shipped map only at 0.91 of the
bound; benchmarks/warptools_relion.py. The angles of P · A in RELION's own frame give the mirror-image map there
(0.24 of the bound).)

Coordinates: RELION 5's ``rlnCenteredCoordinate{X,Y,Z}Angst``, or WarpTools' ``rlnCoordinate{X,Y,Z}`` in
pixels of the exported images (``rlnImagePixelSize``) from the tomogram's corner (its size,
``rlnTomoSize{X,Y,Z}``, in tilt-series pixels); minus ``rlnOrigin{X,Y,Z}Angst``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tomoforge.io.euler import relion_euler_to_matrix
from tomoforge.io.star import ANGLES, CENTERED, ORIGINS_A, PIXEL_COORDS, read_star_blocks
from tomoforge.methods.rotations import tilt_projection_matrix

from .errors import format_error

MIRROR_Z = np.diag([1.0, 1.0, -1.0])


def hand_frame(hand: float) -> np.ndarray:
    """The reflection taking a RELION tomogram of ``rlnTomoHand`` ``hand`` to tomoforge's frame: M = diag(1, 1, −1)
    for −1 (defocus falling with z), the identity for +1 (tomoforge's: defocus growing with z)."""
    return MIRROR_Z if hand < 0 else np.eye(3)


@dataclass(frozen=True, kw_only=True)
class RelionTilts:
    """The tilts of one tomogram: projection rotations (t, 3, 3) and per-tilt CTF and dose."""

    projection: np.ndarray
    defocus_u_A: np.ndarray
    defocus_v_A: np.ndarray
    astigmatism_deg: np.ndarray
    ctf_scale: np.ndarray
    dose_e_A2: np.ndarray
    hand: float
    size_A: np.ndarray  # (3,) tomogram size, Å
    shift_A: np.ndarray | None = None  # (t, 2) rlnTomoX/YShiftAngst where given (None: rlnTomoProj matrices)


@dataclass(frozen=True, kw_only=True)
class RelionParticles:
    """A RELION 5 particle set in tomoforge's frame (see the module docstring).

    ``positions_A`` (n, 3) centred Å, ``rotations`` (n, 3, 3) reference -> tomogram, ``tomograms`` (n,)
    names, ``images`` (n,) absolute paths of each particle's stack or subtomogram, ``visible`` (n, t) bool
    for 2D stacks (t tilts of the particle's tomogram; None for 3D), ``half_sets`` (n,) (``rlnRandomSubset``
    or 0), ``tilts`` per tomogram, the optics constants and flags."""

    positions_A: np.ndarray
    rotations: np.ndarray
    tomograms: np.ndarray
    images: list[Path]
    visible: list[np.ndarray] | None
    half_sets: np.ndarray
    tilts: dict[str, RelionTilts]
    pixel_size_A: float
    voltage_kV: float
    cs_mm: float
    amplitude_contrast: float
    ctf_premultiplied: bool
    stacks_2d: bool


def _vector(path: Path, text: Any) -> np.ndarray:
    try:
        return np.array([float(v) for v in str(text).strip().strip("[]").split(",")])
    except ValueError:
        raise format_error(path, f"{text!r} is not a list of numbers like [1,0,0,0]") from None


def _tilts(path: Path, table: pd.DataFrame, hand: float, size_A: np.ndarray) -> RelionTilts:
    shift = None
    if all(f"rlnTomoProj{a}" in table for a in "XYZ"):
        rows = [np.stack([_vector(path, v) for v in table[f"rlnTomoProj{a}"]]) for a in "XYZ"]
        projection = np.stack(rows, axis=1)[:, :, :3]
    elif "rlnTomoYTilt" in table:
        x_tilt = table["rlnTomoXTilt"] if "rlnTomoXTilt" in table else pd.Series(np.zeros(len(table)))
        projection = np.stack(
            [
                tilt_projection_matrix(float(y), float(z), float(x))
                for y, z, x in zip(table["rlnTomoYTilt"], table["rlnTomoZRot"], x_tilt)
            ]
        )
        if all(c in table for c in ("rlnTomoXShiftAngst", "rlnTomoYShiftAngst")):
            shift = table[["rlnTomoXShiftAngst", "rlnTomoYShiftAngst"]].to_numpy(float)
    else:
        raise format_error(path, "a tomogram loop has neither _rlnTomoProjX/Y/Z nor _rlnTomoYTilt")
    u = table["rlnDefocusU"].to_numpy(float)
    v = table["rlnDefocusV"].to_numpy(float)
    angle = table["rlnDefocusAngle"].to_numpy(float) if "rlnDefocusAngle" in table else np.zeros(len(u))
    scale = table["rlnCtfScalefactor"].to_numpy(float) if "rlnCtfScalefactor" in table else np.ones(len(u))
    dose = table["rlnMicrographPreExposure"].to_numpy(float) if "rlnMicrographPreExposure" in table else 0 * u
    return RelionTilts(
        projection=hand_frame(hand) @ projection @ hand_frame(hand),
        defocus_u_A=np.maximum(u, v),
        defocus_v_A=np.minimum(u, v),
        astigmatism_deg=np.where(u >= v, angle, angle + 90.0),
        ctf_scale=scale,
        dose_e_A2=dose,
        hand=hand,
        size_A=size_A,
        shift_A=shift,
    )


def _tilt_series_star(tomo_path: Path, star: Any, name: str) -> pd.DataFrame:
    """The tilt table of tomogram ``name`` from its ``rlnTomoTiltSeriesStarFile``: a path relative to the RELION
    project folder, looked for beside the tomograms STAR and in each folder above it."""
    if star is None or not str(star).strip():
        raise format_error(tomo_path, f"no data_{name} loop and no _rlnTomoTiltSeriesStarFile for tomogram {name}")
    relative = Path(str(star))
    candidates = [relative] if relative.is_absolute() else [d / relative for d in tomo_path.resolve().parents]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise format_error(tomo_path, f"tomogram {name}: its tilt-series STAR {str(star)!r} is not found")
    blocks = read_star_blocks(found)
    table = blocks.get(name, next(iter(blocks.values())))
    if not isinstance(table, pd.DataFrame):
        raise format_error(found, f"no data_{name} loop")
    return table


def _optics(path: Path, blocks: dict[str, Any]) -> pd.Series:
    optics = blocks.get("optics")
    if not isinstance(optics, pd.DataFrame) or optics.empty:
        raise format_error(path, "no data_optics block (pixel size, voltage, Cs, amplitude contrast)")
    return optics.iloc[0]


def read_relion5_particles(
    particles_star: str | os.PathLike[str], tomograms_star: str | os.PathLike[str]
) -> RelionParticles:
    """Read a RELION 5 / WarpTools particle STAR with its tomograms STAR (paths of images relative to the
    particle STAR's folder, as RELION resolves them)."""
    path, tomo_path = Path(particles_star), Path(tomograms_star)
    blocks = read_star_blocks(path)
    tomo_blocks = read_star_blocks(tomo_path)
    particles = blocks.get("particles")
    if not isinstance(particles, pd.DataFrame):
        raise format_error(path, "no data_particles loop")
    glob = tomo_blocks.get("global")
    if not isinstance(glob, pd.DataFrame):
        raise format_error(tomo_path, "no data_global loop")
    optics = _optics(path, blocks)
    general = blocks.get("general")
    stacks_2d = bool(int(general.get("rlnTomoSubTomosAre2DStacks", 0))) if isinstance(general, dict) else False
    ts_pixel = float(optics.get("rlnTomoTiltSeriesPixelSize", optics.get("rlnImagePixelSize", 1.0)))
    image_pixel = float(optics.get("rlnImagePixelSize", ts_pixel))
    tilts: dict[str, RelionTilts] = {}
    for row in glob.itertuples():
        name = str(row.rlnTomoName)
        table = tomo_blocks.get(name)
        if not isinstance(table, pd.DataFrame):
            table = _tilt_series_star(tomo_path, getattr(row, "rlnTomoTiltSeriesStarFile", None), name)
        size = np.array([getattr(row, f"rlnTomoSize{a}", 0.0) for a in "XYZ"], float) * ts_pixel
        tilts[name] = _tilts(tomo_path, table, float(getattr(row, "rlnTomoHand", 1.0)), size)
    names = particles["rlnTomoName"].astype(str).to_numpy()
    missing = sorted(set(names) - set(tilts))
    if missing:
        raise format_error(path, f"rlnTomoName {missing[0]!r} is not in {tomo_path.name}")
    if all(c in particles for c in CENTERED):
        positions = particles[CENTERED].to_numpy(float)
    elif all(c in particles for c in PIXEL_COORDS):
        corner = np.stack([tilts[n].size_A / 2 for n in names])
        positions = particles[PIXEL_COORDS].to_numpy(float) * image_pixel - corner
    else:
        raise format_error(path, "data_particles has neither _rlnCenteredCoordinateXAngst nor _rlnCoordinateX")
    if all(c in particles for c in ORIGINS_A):
        positions = positions - particles[ORIGINS_A].to_numpy(float)
    if all(c in particles for c in ANGLES):
        rotations = relion_euler_to_matrix(*particles[ANGLES].to_numpy(float).T)
    else:
        rotations = np.broadcast_to(np.eye(3), (len(particles), 3, 3))
    visible = None
    if stacks_2d:
        visible = []
        for name, text in zip(names, particles.get("rlnTomoVisibleFrames", [None] * len(names))):
            count = len(tilts[name].ctf_scale)
            flags = np.ones(count, bool) if text is None else _vector(path, text).astype(bool)
            if len(flags) != count:
                raise format_error(path, f"_rlnTomoVisibleFrames has {len(flags)} flags, {name} has {count} tilts")
            visible.append(flags)
    names_of_images = particles["rlnImageName"] if "rlnImageName" in particles else []  # none before extraction
    images = [path.parent / str(n).split("@")[-1] for n in names_of_images]
    half = particles["rlnRandomSubset"].to_numpy(int) if "rlnRandomSubset" in particles else np.zeros(len(names), int)
    z_sign = pd.Series(names, dtype=object).map({n: -1.0 if t.hand < 0 else 1.0 for n, t in tilts.items()})
    frame = np.ones((len(names), 3))
    frame[:, 2] = z_sign.to_numpy(float)  # the diagonal of hand_frame, per particle
    return RelionParticles(
        positions_A=positions * frame,
        rotations=np.asarray(rotations) * frame[:, :, None] * frame[:, None, :],
        tomograms=names,
        images=images,
        visible=visible,
        half_sets=half,
        tilts=tilts,
        pixel_size_A=image_pixel,
        voltage_kV=float(optics.get("rlnVoltage", 300.0)),
        cs_mm=float(optics.get("rlnSphericalAberration", 2.7)),
        amplitude_contrast=float(optics.get("rlnAmplitudeContrast", 0.1)),
        ctf_premultiplied=bool(int(optics.get("rlnCtfDataAreCtfPremultiplied", 0))),
        stacks_2d=stacks_2d,
    )


def particle_depth_defocus(particles: RelionParticles, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(defocus U, V) (Å) of each tilt at particle ``index``'s height: the tilt's defocus plus the
    particle's depth along the beam times the tomogram's hand (RELION's rlnTomoHand, Tomogram::getCtf). The depth
    is RELION's, in the file's frame: [P X]_z there is −[P X]_z in the mirrored frame a hand −1 tomogram is read in."""
    tilts = particles.tilts[str(particles.tomograms[index])]
    depth = (tilts.projection @ particles.positions_A[index] @ hand_frame(tilts.hand))[:, 2]
    return tilts.defocus_u_A + tilts.hand * depth, tilts.defocus_v_A + tilts.hand * depth


__all__ = [
    "MIRROR_Z",
    "RelionParticles",
    "RelionTilts",
    "hand_frame",
    "particle_depth_defocus",
    "read_relion5_particles",
]
