"""Export to a RELION 5 tomography project: ``tomograms.star`` (``data_global``, one row per tilt series), one
``tilt_series/NAME.star`` per tilt series (one row per included view), ``particles.star`` (``data_general``,
``data_optics``, ``data_particles``) and ``optimisation_set.star`` naming the two, as RELION 5's
ReconstructTomograms and Extract jobs write them (labels as in the real files of data/relion5: pytom-match-pick's
ReconstructTomograms job, CryoBoost, WarpTools).

Geometry: tomoforge's frame is RELION 5's (both project as Rz(ZRot) · Ry(YTilt) · Rx(XTilt), the IMOD alignment
of a real tiltalign run lands where IMOD puts it: tests/io/test_imod.py); the one difference is the defocus over
the height, RELION's ΔF + hand · [P X]_z against tomoforge's ΔF + [P X]_z, so the export writes
``rlnTomoHand`` = +1 and every angle, shift, position and rotation as tomoforge holds it: ``rlnTomoXTilt``,
``rlnTomoYTilt``, ``rlnTomoZRot`` and the shifts in Å of each view's projection model, particles at X (Å from the
tomogram centre) with rotation R (``rlnAngleRot/Tilt/Psi``, RELION's ZYZ). RELION's projection of a particle
(``relion_tomo_reconstruct``: s2 · s1 · Rz · Ry · Rx · s0 with s0 the tomogram centre ⌊size/2⌋, s1 the shifts,
s2 the image centre ⌊size/2⌋) then lands where tomoforge's does, and its defocus at the particle's depth is
tomoforge's (``methods/sta/extraction.py``); :func:`tomoforge.io.relion5_particles.read_relion5_particles`
reads the export back unchanged. ``rlnTomoNominalStageTiltAngle`` and ``rlnTomoNominalTiltAxisAngle`` keep the
acquisition's values; tomograms are copied as they are (``tomograms/rec_NAME.mrc``).

Images: ``rlnMicrographName`` is ``N@stack:mrcs`` (1-based section of the tilt-series stack) or the image file.
Excluded views are left out (RELION 5 keeps only the views it uses). ``rlnMicrographPreExposure`` is the dose
before the view (accumulated − its own); ``rlnCtfScalefactor`` is cos(tilt), as RELION writes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import write_text_atomic
from .star import ParticleTable, write_particles_star, write_tilt_series_star, write_tomograms_star

#: rlnTomoHand of the export: RELION's defocus at depth ΔF + hand · [P X]_z is then tomoforge's ΔF + [P X]_z
HAND = 1.0


@dataclass(frozen=True, kw_only=True)
class ExportTiltSeries:
    """One tilt series as the export needs it, views in the order written (the included ones).

    ``images`` RELION image names per view; angles in degrees, shifts in Å (tomoforge's projection model, unset
    values resolved); ``pre_exposure_e_A2`` the dose before each view; ``defocus`` (U, V Å, angle °) per view or
    empty; ``size_xyz_px`` the tomogram in tilt-series pixels; ``tomogram_file`` the exported tomogram (relative
    to the export folder) or ''."""

    name: str
    images: tuple[str, ...]
    nominal_tilt_deg: tuple[float, ...]
    tilt_axis_deg: float
    x_tilt_deg: tuple[float, ...]
    y_tilt_deg: tuple[float, ...]
    z_rot_deg: tuple[float, ...]
    x_shift_A: tuple[float, ...]
    y_shift_A: tuple[float, ...]
    pre_exposure_e_A2: tuple[float, ...]
    defocus: tuple[tuple[float, float, float], ...]
    pixel_size_A: float
    voltage_kV: float
    cs_mm: float
    amplitude_contrast: float
    size_xyz_px: tuple[int, int, int]
    tomogram_binning: float = 1.0
    tomogram_file: str = ""


@dataclass(frozen=True, kw_only=True)
class ExportParticles:
    """Particles to export: tilt-series names (n,), centres (n, 3) Å from their tomogram's centre (refined shift
    included), rotations (n, 3, 3) reference → tomogram, half sets (n,) (0: unset, not written), numbers (n,)."""

    tomograms: np.ndarray
    positions_A: np.ndarray
    rotations: np.ndarray
    half_sets: np.ndarray
    numbers: np.ndarray


def relion_image_name(file: str, index: int, stack: bool = True) -> str:
    """RELION's name of section ``index`` (0-based) of the stack ``file``: ``N@file`` (1-based), ``:mrcs``
    appended where the extension does not say stack; a single image's file (``stack`` False) as it is."""
    if not stack:
        return file
    suffix = "" if file.endswith(".mrcs") else ":mrcs"
    return f"{index + 1:06d}@{file}{suffix}"


def tilt_series_dataframe(ts: ExportTiltSeries) -> pd.DataFrame:
    """The per-tilt-series table (``data_NAME``) of ``ts``."""
    n = len(ts.images)
    df = pd.DataFrame(
        {
            "rlnMicrographMovieName": list(ts.images),
            "rlnTomoNominalStageTiltAngle": np.asarray(ts.nominal_tilt_deg, float),
            "rlnTomoNominalTiltAxisAngle": np.full(n, float(ts.tilt_axis_deg)),
            "rlnMicrographPreExposure": np.asarray(ts.pre_exposure_e_A2, float),
            "rlnMicrographName": list(ts.images),
        }
    )
    if ts.defocus:
        d = np.asarray(ts.defocus, float).reshape(n, 3)
        df["rlnDefocusU"] = d[:, 0]
        df["rlnDefocusV"] = d[:, 1]
        df["rlnCtfAstigmatism"] = d[:, 0] - d[:, 1]
        df["rlnDefocusAngle"] = d[:, 2]
    df["rlnTomoXTilt"] = np.asarray(ts.x_tilt_deg, float)
    df["rlnTomoYTilt"] = np.asarray(ts.y_tilt_deg, float)
    df["rlnTomoZRot"] = np.asarray(ts.z_rot_deg, float)
    df["rlnTomoXShiftAngst"] = np.asarray(ts.x_shift_A, float)
    df["rlnTomoYShiftAngst"] = np.asarray(ts.y_shift_A, float)
    df["rlnCtfScalefactor"] = np.cos(np.deg2rad(np.asarray(ts.y_tilt_deg, float)))
    return df


def tomograms_dataframe(series: Sequence[ExportTiltSeries], star_files: Sequence[str]) -> pd.DataFrame:
    """``data_global``: one row per tilt series, its per-tilt-series star (``star_files``, as RELION resolves
    them: relative to the project folder)."""
    df = pd.DataFrame(
        {
            "rlnTomoName": [t.name for t in series],
            "rlnVoltage": [float(t.voltage_kV) for t in series],
            "rlnSphericalAberration": [float(t.cs_mm) for t in series],
            "rlnAmplitudeContrast": [float(t.amplitude_contrast) for t in series],
            "rlnMicrographOriginalPixelSize": [float(t.pixel_size_A) for t in series],
            "rlnTomoHand": [HAND] * len(series),
            "rlnTomoTiltSeriesPixelSize": [float(t.pixel_size_A) for t in series],
            "rlnTomoTiltSeriesStarFile": list(star_files),
            "rlnTomoTomogramBinning": [float(t.tomogram_binning) for t in series],
            "rlnTomoSizeX": [int(t.size_xyz_px[0]) for t in series],
            "rlnTomoSizeY": [int(t.size_xyz_px[1]) for t in series],
            "rlnTomoSizeZ": [int(t.size_xyz_px[2]) for t in series],
        }
    )
    if all(t.tomogram_file for t in series):
        df["rlnTomoReconstructedTomogram"] = [t.tomogram_file for t in series]
    return df


def particle_table(particles: ExportParticles, series: Sequence[ExportTiltSeries]) -> ParticleTable:
    """The particles with one optics group per tilt series (``data_optics``) and
    ``rlnTomoSubTomosAre2DStacks`` 1 (RELION 5's pseudo-subtomograms) in ``data_general``."""
    names = np.asarray(particles.tomograms, dtype=str)
    by_name = {t.name: t for t in series}
    missing = sorted(set(names.tolist()) - set(by_name))
    if missing:
        raise ValueError(f"particles lie in tilt series {', '.join(missing[:5])} that the export lacks")
    used = [t for t in series if t.name in set(names.tolist())]
    group = {t.name: i + 1 for i, t in enumerate(used)}
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [group[t.name] for t in used],
            "rlnOpticsGroupName": [f"opticsGroup{group[t.name]}" for t in used],
            "rlnSphericalAberration": [float(t.cs_mm) for t in used],
            "rlnVoltage": [float(t.voltage_kV) for t in used],
            "rlnTomoTiltSeriesPixelSize": [float(t.pixel_size_A) for t in used],
            "rlnAmplitudeContrast": [float(t.amplitude_contrast) for t in used],
        }
    )
    n = len(names)
    extra = pd.DataFrame(
        {
            "rlnOpticsGroup": np.array([group[s] for s in names], dtype=np.int64),
            "rlnTomoParticleName": [f"{s}/{int(k)}" for s, k in zip(names, np.asarray(particles.numbers))],
        },
        index=np.arange(n),
    )
    halves = np.asarray(particles.half_sets, dtype=np.int64)
    if n and np.all(halves > 0):
        extra["rlnRandomSubset"] = halves
    positions = np.asarray(particles.positions_A, float).reshape(n, 3)
    rotations = np.asarray(particles.rotations, float).reshape(n, 3, 3)
    return ParticleTable(
        tomo_names=names.tolist(),
        positions_A=positions,
        rotations=rotations,
        extra=extra,
        optics=optics,
        general={"rlnTomoSubTomosAre2DStacks": 1},
    )


def write_optimisation_set(
    path: str | os.PathLike[str], particles_star: str, tomograms_star: str, overwrite: bool = False
) -> Path:
    """An optimisation set (RELION 5's unnamed key/value block) naming the particles and tomograms stars."""
    lines = ["# version 50001", "", "data_", "", f"_rlnTomoTomogramsFile\t{tomograms_star}"]
    if particles_star:
        lines.append(f"_rlnTomoParticlesFile\t{particles_star}")
    return write_text_atomic(path, "\n".join(lines) + "\n\n", overwrite)


def write_relion5_project(
    out_dir: str | os.PathLike[str],
    series: Sequence[ExportTiltSeries],
    particles: ExportParticles | None = None,
    overwrite: bool = True,
) -> list[Path]:
    """Write tomograms.star, tilt_series/NAME.star, particles.star (where ``particles``) and
    optimisation_set.star into ``out_dir`` (paths inside relative to it: run RELION 5 from ``out_dir``)."""
    out = Path(out_dir)
    (out / "tilt_series").mkdir(parents=True, exist_ok=True)
    files, stars = [], []
    for ts in series:
        star = f"tilt_series/{ts.name}.star"
        files.append(write_tilt_series_star(tilt_series_dataframe(ts), out / star, ts.name, overwrite=overwrite))
        stars.append(star)
    files.append(write_tomograms_star(tomograms_dataframe(series, stars), out / "tomograms.star", overwrite))
    particles_star = ""
    if particles is not None and len(particles.tomograms):
        files.append(write_particles_star(particle_table(particles, series), out / "particles.star", overwrite))
        particles_star = "particles.star"
    files.append(write_optimisation_set(out / "optimisation_set.star", particles_star, "tomograms.star", overwrite))
    return files


__all__ = [
    "HAND",
    "ExportParticles",
    "ExportTiltSeries",
    "particle_table",
    "relion_image_name",
    "tilt_series_dataframe",
    "tomograms_dataframe",
    "write_optimisation_set",
    "write_relion5_project",
]
