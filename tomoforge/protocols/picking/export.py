"""export-coordinates: a coordinate set as RELION 5 particle and tomogram STAR files, Dynamo tables, IMOD models
or plain text, each read back by import-coordinates.

- ``relion``: ``particles.star`` (rlnTomoName, rlnCenteredCoordinate{X,Y,Z}Angst, rlnAngle{Rot,Tilt,Psi} as
  RELION's ZYZ, rlnAutopickFigureOfMerit where a score is set; of a Particle set also its refined shift as
  rlnOrigin{X,Y,Z}Angst = −shift (RELION's centre is coordinate − origin) and its half set as rlnRandomSubset
  when every particle has one) and ``tomograms.star`` (name, size in unbinned pixels, tilt-series pixel size,
  binning, the tomogram file, the acquisition's optics);
- ``dynamo``: ``TOMO.tbl`` per tomogram (x y z in pixels from the corner, a Particle's shift as dx dy dz in
  pixels, tdrot tilt narot, cc the score) and ``tomograms.doc`` (Dynamo's index → tomogram file);
- ``imod``: ``TOMO.mod`` per tomogram, a scattered-point model in pixels from the corner (positions only: a
  Particle's centre, position + shift);
- ``text``: ``TOMO.txt`` per tomogram, ``x y z`` in Å from the tomogram's centre or pixels from its corner (a
  Particle's centre).

A Particle's data files (subtomograms or view stacks) are not named in any format: their layout is tomoforge's.

Every file is written whole or not at all (``tomoforge.io.atomic``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import Coordinate3D, Tomogram
from tomoforge.protocols.picking.coordinate_sets import read_coordinates


class ExportCoordinatesParams(ProtocolParams):
    format: Literal["relion", "dynamo", "imod", "text"] = param("relion", help="which program's files to write")
    units: Literal["angstrom", "pixel"] = param(
        "angstrom", help="text: Å from the tomogram centre, or pixels from its corner"
    )


@dataclass(frozen=True, kw_only=True)
class TomogramGeometry:
    """What an export needs of a tomogram: its name, file, size (voxels x, y, z), voxel size (Å), binning
    and optics (kV, mm, fraction; NaN where the tomogram has no acquisition)."""

    name: str
    file: str
    size_xyz: tuple[int, int, int]
    pixel_size_A: float
    binning: float
    voltage_kV: float
    spherical_aberration_mm: float
    amplitude_contrast: float


@dataclass(frozen=True, kw_only=True)
class ExportJob:
    """The job of ``export_coordinates_task``: the coordinates as arrays (tomogram names (n,), positions (n, 3) Å,
    rotations (n, 3, 3), scores (n,) with NaN for none, a Particle's refined shifts (n, 3) Å and half sets (n,),
    zero for plain coordinates), the tomograms, the params and the output folder."""

    tomograms_of: np.ndarray
    positions_A: np.ndarray
    rotations: np.ndarray
    scores: np.ndarray
    shifts_A: np.ndarray
    half_sets: np.ndarray
    tomograms: tuple[TomogramGeometry, ...]
    params: ExportCoordinatesParams
    out_dir: str


def geometry_of(tomogram: Tomogram) -> TomogramGeometry:
    acquisition = tomogram.acquisition
    return TomogramGeometry(
        name=tomogram.name,
        file=tomogram.file,
        size_xyz=tomogram.size_xyz,
        pixel_size_A=tomogram.pixel_size_A,
        binning=tomogram.binning,
        voltage_kV=acquisition.voltage_kV if acquisition else float("nan"),
        spherical_aberration_mm=acquisition.spherical_aberration_mm if acquisition else float("nan"),
        amplitude_contrast=acquisition.amplitude_contrast if acquisition else float("nan"),
    )


def pixels_from_centred(positions_A: np.ndarray, size_xyz: tuple[int, int, int], pixel_size_A: float) -> np.ndarray:
    """Å from the tomogram centre -> pixels from its corner: position / pixel + size / 2 (the inverse of
    ``tomoforge.protocols.imports.coordinates.centred_from_pixels``)."""
    return np.asarray(positions_A, float) / pixel_size_A + np.asarray(size_xyz, float) / 2.0


def export_coordinates_task(job: ExportJob) -> dict[str, list[str]]:
    """Task: write the files of ``job.params.format`` into ``job.out_dir``; returns ``{"files": [paths]}``."""
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    geometry = {t.name: t for t in job.tomograms}
    missing = sorted(set(np.unique(job.tomograms_of).tolist()) - set(geometry))
    if missing:
        raise ValueError(f"coordinates lie in tomogram(s) {', '.join(missing[:5])} that the input tomograms lack")
    fmt = job.params.format
    if fmt == "relion":
        return {"files": [str(p) for p in _write_relion(job, out)]}
    files = []
    if fmt == "dynamo":
        from tomoforge.io.errors import write_text_atomic

        doc = "\n".join(f"{i + 1} {t.file}" for i, t in enumerate(job.tomograms)) + "\n"
        files.append(write_text_atomic(out / "tomograms.doc", doc, overwrite=True))
    for index, tomogram in enumerate(job.tomograms):
        rows = np.flatnonzero(job.tomograms_of == tomogram.name)
        if not len(rows):
            continue
        positions = job.positions_A[rows]
        centres = positions + job.shifts_A[rows]  # a Particle's centre: what a format without shifts holds
        pixels = pixels_from_centred(centres, tomogram.size_xyz, tomogram.pixel_size_A)
        if fmt == "dynamo":
            from tomoforge.io.dynamo import tbl_from_arrays, write_tbl

            table = tbl_from_arrays(
                positions,
                job.rotations[rows],
                tomogram.pixel_size_A,
                tomogram.size_xyz,
                tomo=index + 1,
                scores=job.scores[rows],
            )
            table[["dx", "dy", "dz"]] = job.shifts_A[rows] / tomogram.pixel_size_A
            files.append(write_tbl(table, out / f"{tomogram.name}.tbl", overwrite=True))
        elif fmt == "imod":
            from tomoforge.io.imod import write_imod_points

            files.append(
                write_imod_points(
                    out / f"{tomogram.name}.mod",
                    pixels,
                    size_xyz=tomogram.size_xyz,
                    pixel_size_A=tomogram.pixel_size_A,
                    overwrite=True,
                )
            )
        else:
            from tomoforge.io.text import write_coordinates_text

            pixel = job.params.units == "pixel"
            header = "x y z (pixels from the corner)" if pixel else "x y z (Å from the tomogram centre)"
            path = out / f"{tomogram.name}.txt"
            files.append(write_coordinates_text(path, pixels if pixel else centres, header=header, overwrite=True))
    return {"files": [str(p) for p in files]}


def _write_relion(job: ExportJob, out: Path) -> list[Path]:
    import pandas as pd

    from tomoforge.io.star import ParticleTable, write_particles_star, write_tomograms_star

    extra = pd.DataFrame(index=np.arange(len(job.positions_A)))
    if not np.isnan(job.scores).all():
        extra["rlnAutopickFigureOfMerit"] = np.nan_to_num(job.scores, nan=0.0)
    if np.any(job.shifts_A != 0):
        for axis, name in enumerate(("X", "Y", "Z")):
            extra[f"rlnOrigin{name}Angst"] = -job.shifts_A[:, axis]
    if len(job.half_sets) and np.all(job.half_sets > 0):
        extra["rlnRandomSubset"] = job.half_sets.astype(np.int64)
    table = ParticleTable(
        tomo_names=np.asarray(job.tomograms_of, dtype=str).tolist(),
        positions_A=job.positions_A,
        rotations=job.rotations,
        extra=extra,
    )
    tomograms = pd.DataFrame(
        {
            "rlnTomoName": [t.name for t in job.tomograms],
            "rlnVoltage": [t.voltage_kV for t in job.tomograms],
            "rlnSphericalAberration": [t.spherical_aberration_mm for t in job.tomograms],
            "rlnAmplitudeContrast": [t.amplitude_contrast for t in job.tomograms],
            "rlnTomoTiltSeriesPixelSize": [t.pixel_size_A / t.binning for t in job.tomograms],
            "rlnTomoTomogramBinning": [t.binning for t in job.tomograms],
            "rlnTomoSizeX": [int(round(t.size_xyz[0] * t.binning)) for t in job.tomograms],
            "rlnTomoSizeY": [int(round(t.size_xyz[1] * t.binning)) for t in job.tomograms],
            "rlnTomoSizeZ": [int(round(t.size_xyz[2] * t.binning)) for t in job.tomograms],
            "rlnTomoReconstructedTomogram": [t.file for t in job.tomograms],
        }
    )
    tomograms = tomograms.dropna(axis=1, how="any")  # optics only where every tomogram knows them
    return [
        write_particles_star(table, out / "particles.star", overwrite=True),
        write_tomograms_star(tomograms, out / "tomograms.star", overwrite=True),
    ]


class ExportCoordinates(Protocol):
    """Export coordinates: RELION 5 particles + tomograms STAR, Dynamo .tbl, IMOD .mod or x y z text."""

    name = "export-coordinates"
    Params = ExportCoordinatesParams
    inputs = {
        "coordinates": InputSpec(Coordinate3D, help="coordinates (filter e.g. [score > 0.3])"),
        "tomograms": InputSpec(Tomogram, help="the tomograms they lie in (sizes, voxel sizes, files)"),
    }
    outputs = {"tomograms": Tomogram}
    params: ExportCoordinatesParams

    def tasks(self) -> Iterator[Task[ExportJob]]:
        picks = read_coordinates(self.input("coordinates"))
        present = set(np.unique(picks["tomogram"]).tolist())
        tomograms = [t for t in cast(Iterable[Tomogram], self.input("tomograms")) if t.name in present]
        job = ExportJob(
            tomograms_of=picks["tomogram"],
            positions_A=picks["position"],
            rotations=picks["rotation"],
            scores=picks["score"],
            shifts_A=np.stack([picks.get(f"shift_{a}_A", np.zeros(len(picks["score"]))) for a in "xyz"], axis=1),
            half_sets=picks.get("half_set", np.zeros(len(picks["score"]), dtype=np.int64)),
            tomograms=tuple(geometry_of(t) for t in tomograms),
            params=self.params,
            out_dir=str(self.context.out_dir),
        )
        yield Task(export_coordinates_task, job, key=self.params.format)

    def collect(self, task: Task[Any], result: dict[str, list[str]]) -> None:
        self.log(f"wrote {len(result['files'])} file(s): {', '.join(Path(f).name for f in result['files'][:10])}")
        source = self.input("tomograms")
        job = cast(ExportJob, task.job)
        for geometry in job.tomograms:
            self.emit("tomograms", source.get(geometry.name), task)


__all__ = ["ExportCoordinates", "ExportCoordinatesParams", "ExportJob", "export_coordinates_task"]
