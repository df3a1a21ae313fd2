"""Extract subtomograms: 3D boxes from tomograms at coordinates, each with its 3D weight, as a Particle set.

One task per tomogram (``extract_task``): every particle of it is cut, centred to a fraction of a voxel and
resampled to the output voxel in Fourier space (``methods/sta/extraction.py``), and written as one MRC per
particle (``TOMO/TOMO_NUMBER.mrc``), its weight beside it (``_weight.mrc``: missing wedge, |CTF| at the
particle's height and dose of the tilt series' included views, on the rfftn grid) when the tilt series is
given. "Tomogram source": ``picking`` extracts from the tomogram the coordinates name; ``tilt-series`` from
any input tomogram of the same tilt series (re-extraction at another binning: positions are in Å, they do not
move; the particles keep naming the tomogram their coordinates refer to, whose centre the other tomogram must
share). Half sets are kept where the input has them, else drawn once at random (``seed``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np

from tomoforge.engine import InputSpec, ItemSet, Protocol, ProtocolParams, Task, param
from tomoforge.model import Coordinate3D, CTFSeries, TiltSeries, Tomogram
from tomoforge.model.coordinates import Particle
from tomoforge.model.quantities import VoxelSizeA
from tomoforge.protocols.refuse import Refusal, refuse

BASE_COLUMNS = ("number", "tomogram", "x_A", "y_A", "z_A", "group", "score", "has_orientation", "rotation")
PARTICLE_COLUMNS = ("half_set", "shift_x_A", "shift_y_A", "shift_z_A", "tilt_series")


def read_coordinates(item_set: ItemSet) -> dict[str, np.ndarray]:
    """The columns of a coordinate or particle set as arrays (Particle's own columns filled in for plain
    coordinates: no shift, no half set, the tomogram's name as the tilt series)."""
    columns = item_set.arrays(*BASE_COLUMNS)
    if issubclass(item_set.item_class, Particle):
        columns |= item_set.arrays(*PARTICLE_COLUMNS)
    else:
        n = len(columns["number"])
        columns |= {"half_set": np.zeros(n, np.int64), "tilt_series": np.array([""] * n, dtype=object)}
        columns |= {f"shift_{a}_A": np.zeros(n) for a in "xyz"}
    columns["tilt_series"] = np.where(columns["tilt_series"] == "", columns["tomogram"], columns["tilt_series"])
    return columns


def centres_A(columns: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 3) particle centres: position + refined shift (Å from the tomogram's centre)."""
    return np.stack([columns[f"{a}_A"] + columns[f"shift_{a}_A"] for a in "xyz"], axis=1)


def assign_half_sets(half_set: np.ndarray, seed: int) -> np.ndarray:
    """Half sets: kept where set (1, 2); the unset ones (0) drawn at random, as many 1s as 2s (±1)."""
    out = np.asarray(half_set, dtype=np.int64).copy()
    unset = np.flatnonzero(out == 0)
    draw = np.tile([1, 2], len(unset) // 2 + 1)[: len(unset)]
    out[unset] = np.random.default_rng(seed).permutation(draw)
    return out


def particle_file(out_dir: str, tomogram: str, number: int, suffix: str = "") -> str:
    """The file of one extracted particle: ``out_dir/TOMO/TOMO_NUMBER{suffix}.mrc``."""
    return str(Path(out_dir) / tomogram / f"{tomogram}_{number:07d}{suffix}.mrc")


def particle_columns(columns: dict[str, np.ndarray], rows: np.ndarray, halves: np.ndarray) -> dict[str, Any]:
    """The Particle fields of ``rows`` of the input columns (the data files are added by the caller)."""
    out = {name: columns[name][rows] for name in (*BASE_COLUMNS, *PARTICLE_COLUMNS)}
    out["half_set"] = halves[rows]
    out["score"] = np.array([None if v is None or v != v else float(v) for v in out["score"]], dtype=object)
    return out


class ExtractParams(ProtocolParams):
    box: int = param(64, ge=4, le=1024, unit="voxel", help="box size of the extracted subtomograms")
    binning: float | None = param(
        None, ge=0.1, help="output voxel = the tomogram's × this (default: the tomogram's; or set pixel_size_A)"
    )
    pixel_size_A: VoxelSizeA | None = param(None, unit="Å/voxel", help="output voxel size (overrides binning)")
    tomogram_source: Literal["picking", "tilt-series"] = param(
        "picking",
        help="picking: the tomogram the coordinates name; tilt-series: any input tomogram of the same tilt "
        "series (re-extraction from another reconstruction or binning)",
    )
    invert: bool = param(False, help="invert the contrast (dark protein in the tomogram becomes bright)")
    normalise: bool = param(True, help="each subtomogram to mean 0, standard deviation 1")
    weights: bool = param(True, help="write each subtomogram's 3D weight (needs the tilt series input)")
    seed: int = param(0, ge=0, help="seed of the random half sets given to particles without one")


@dataclass(frozen=True, kw_only=True)
class ExtractJob:
    """The job of ``extract_task``: one tomogram file (voxel Å) and its particles (numbers, centres in Å),
    the view matrices, accumulated doses and per-view defocus (U, V, angle) of its tilt series' included views
    (empty: no weights), the CTF optics, where to write and the params."""

    tomogram_file: str
    tomogram_name: str
    pixel_size_A: float
    numbers: list[int]
    centres_A: list[list[float]]
    view_matrices: list[list[list[float]]]
    dose_e_A2: list[float]
    defocus_A: list[list[float]]
    optics: tuple[float, float, float]
    out_dir: str
    params: ExtractParams


def extract_task(job: ExtractJob) -> dict[str, Any]:
    """Task: extract the particles of one tomogram; returns the output voxel size and whether weights were
    written (one per particle)."""
    import torch

    from tomoforge.io.mrc import open_mrc_mmap, write_mrc
    from tomoforge.methods.ctf.settings import Optics
    from tomoforge.methods.sta.extraction import extract_subtomograms, project_particles, subtomogram_weights

    p = job.params
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    target = p.pixel_size_A or job.pixel_size_A * (p.binning or 1.0)
    centres = np.asarray(job.centres_A, dtype=np.float64).reshape(-1, 3)
    with open_mrc_mmap(job.tomogram_file) as data:
        subtomos = extract_subtomograms(
            data,
            centres,
            pixel_size_A=job.pixel_size_A,
            box=p.box,
            output_pixel_size_A=target,
            invert=p.invert,
            normalise=p.normalise,
            device=device,
        )
    boxes = subtomos.boxes.cpu().numpy()
    weighted = bool(p.weights and job.view_matrices)
    weights = None
    if weighted:
        r = np.asarray(job.view_matrices)
        defocus = None
        if job.defocus_A:
            _, height = project_particles(centres, r, np.zeros((len(r), 2)))
            defocus = np.broadcast_to(np.asarray(job.defocus_A), (len(centres), len(r), 3)).copy()
            defocus[..., :2] += height[..., None]
        weights = (
            subtomogram_weights(
                p.box,
                subtomos.pixel_size_A,
                r,
                dose_e_A2=job.dose_e_A2 or None,
                defocus_A=defocus,
                optics=Optics(*job.optics),
                device=device,
            )
            .cpu()
            .numpy()
        )
    for i, number in enumerate(job.numbers):
        write_mrc(
            particle_file(job.out_dir, job.tomogram_name, number), boxes[i], subtomos.pixel_size_A, overwrite=True
        )
        if weights is not None:
            w = weights[i if len(weights) > 1 else 0]
            write_mrc(
                particle_file(job.out_dir, job.tomogram_name, number, "_weight"),
                w,
                subtomos.pixel_size_A,
                overwrite=True,
            )
    return {"pixel_size_A": subtomos.pixel_size_A, "weighted": weighted, "count": len(job.numbers)}


def ctf_per_view(views: list[Any], ctf: CTFSeries | None) -> list[list[float]]:
    """[defocus U, V (Å), astigmatism angle (°)] of each view from its CTF entry (by acquisition order); empty
    when the CTF is not given or misses a view."""
    if ctf is None:
        return []
    by_order = {e.acquisition_order: e for e in ctf.entries}
    if not all(t.acquisition_order in by_order for t in views):
        return []
    entries = [by_order[t.acquisition_order] for t in views]
    return [[e.defocus_u_A, e.defocus_v_A, e.astigmatism_angle_deg] for e in entries]


def view_geometry(ts: TiltSeries | None, ctf: CTFSeries | None) -> tuple[list[Any], list[float], list[Any]]:
    """(view matrices, accumulated doses, defocus U V angle) of a tilt series' included views (see
    ``ctf_per_view``)."""
    from tomoforge.methods.align.projection_model import rotation_matrices

    if ts is None:
        return [], [], []
    views = ts.included()
    model = ts.projection_model(views)
    matrices = rotation_matrices(model.tilt_deg, model.z_rot_deg, model.x_tilt_deg).tolist()
    return matrices, [t.accumulated_dose_e_A2 for t in views], ctf_per_view(views, ctf)


class ExtractSubtomograms(Protocol):
    """Extract subtomograms: 3D boxes at the coordinates (any voxel size), with their 3D weights."""

    name = "extract-subtomograms"
    Params = ExtractParams
    inputs: ClassVar = {
        "coordinates": InputSpec(Coordinate3D, help="particle coordinates (or particles, re-extracted)"),
        "tomograms": InputSpec(Tomogram, help="the tomograms to extract from"),
        "tilt_series": InputSpec(TiltSeries, help="their tilt series, for the 3D weights", optional=True),
        "ctf": InputSpec(CTFSeries, help="their CTF, for the weights", optional=True),
    }
    outputs: ClassVar = {"particles": Particle}
    streaming = False

    def _columns(self) -> dict[str, np.ndarray]:
        if not hasattr(self, "_cached"):
            columns = read_coordinates(self.input("coordinates"))
            columns["half_set"] = assign_half_sets(columns["half_set"], self.params.seed)
            self._cached = columns
        return self._cached

    def tasks(self) -> Iterator[Task[Any]]:
        p: ExtractParams = self.params
        columns = self._columns()
        tomograms = cast("list[Tomogram]", list(self.input("tomograms")))
        series = (
            {t.name: t for t in cast("list[TiltSeries]", list(self.input("tilt_series")))}
            if self.has_input("tilt_series")
            else {}
        )
        ctfs = {c.name: c for c in cast("list[CTFSeries]", list(self.input("ctf")))} if self.has_input("ctf") else {}
        by_name = {t.name: t for t in tomograms}
        by_series = {(t.tilt_series or t.name): t for t in tomograms}
        key_column = "tomogram" if p.tomogram_source == "picking" else "tilt_series"
        for key in sorted(set(columns[key_column].tolist())):
            rows = np.flatnonzero(columns[key_column] == key)
            tomo = by_name.get(key) if p.tomogram_source == "picking" else by_series.get(key)
            if tomo is None:
                where = "named" if p.tomogram_source == "picking" else "of tilt series"
                message = (
                    f"{len(rows)} coordinates lie in {key!r}, but no input tomogram is {where} {key!r} "
                    f"(tomograms: {', '.join(by_name) or 'none'}); give it, or set tomogram_source"
                )
                yield Task(refuse, Refusal(message=message), key=key)
                continue
            ts_name = tomo.tilt_series or tomo.name
            matrices, doses, defocus = view_geometry(series.get(ts_name), ctfs.get(ts_name))
            if p.weights and series and not matrices:
                self.log(f"WARNING {key}: no tilt series {ts_name!r} among the inputs: no weights written")
            given = series.get(ts_name)
            ac = tomo.acquisition or (given.acquisition if given is not None else None)
            job = ExtractJob(
                tomogram_file=str(self.absolute(tomo.file)),
                tomogram_name=tomo.name,
                pixel_size_A=tomo.pixel_size_A,
                numbers=[int(v) for v in columns["number"][rows]],
                centres_A=centres_A(columns)[rows].tolist(),
                view_matrices=matrices,
                dose_e_A2=doses,
                defocus_A=defocus,
                optics=(ac.voltage_kV, ac.spherical_aberration_mm, ac.amplitude_contrast) if ac else (300.0, 2.7, 0.1),
                out_dir=str(self.context.out_dir),
                params=p,
            )
            yield Task(extract_task, job, key=key)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        job = cast(ExtractJob, task.job)
        columns = self._columns()
        rows = np.flatnonzero(np.isin(columns["number"], job.numbers))
        out = particle_columns(columns, rows, columns["half_set"])
        numbers = out["number"]
        out["file"] = np.array([self.relative(particle_file(job.out_dir, job.tomogram_name, int(n))) for n in numbers])
        out["index"] = np.zeros(len(rows), dtype=np.int64)
        if result["weighted"]:
            out["weight_file"] = np.array(
                [self.relative(particle_file(job.out_dir, job.tomogram_name, int(n), "_weight")) for n in numbers]
            )
        self.output("particles").append_columns(out)
        self.log(
            f"{job.tomogram_name}: {result['count']} subtomograms of {job.params.box}³ at "
            f"{result['pixel_size_A']:.3f} Å/voxel{' with weights' if result['weighted'] else ''}"
        )


__all__ = ["ExtractJob", "ExtractParams", "ExtractSubtomograms", "extract_task", "read_coordinates"]
