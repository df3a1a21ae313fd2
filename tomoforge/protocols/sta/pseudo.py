"""Extract pseudo-subtomograms (RELION 4/5 style): from aligned tilt series, their CTF and coordinates, each
particle's included views cut at its projected centre (sub-pixel), CTF-premultiplied at its height and
dose-weighted (``methods/sta/extraction.py``), written as one view stack per tilt series in the
``io/particle_views`` format (``NAME.mrcs`` + ``NAME.views.npz``; a particle's views consecutive, ``index`` its
first). Views that are excluded, or whose accumulated dose exceeds ``max_dose_e_A2``, are skipped. Coordinates
are in Å from their tomogram's centre; with the tomograms input their origin (the tomogram centre in the tilt
series' frame) is added and their tilt series taken from it, else the tomogram is named as its tilt series.
Half sets are kept where set, else drawn once at random (``seed``). With ``output=3d`` each particle's views are
inserted into a 3D pseudo-subtomogram in the tomogram frame, written with its weight volume
(``methods/sta/pseudo3d.py``) as the particle's ``file`` and ``weight_file``: what average-subtomograms reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import numpy as np
from pydantic import model_validator

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.model import Coordinate3D, CTFSeries, TiltSeries, Tomogram
from tomoforge.model.coordinates import Particle
from tomoforge.protocols.refuse import Refusal, refuse
from tomoforge.protocols.sta.extract import (
    assign_half_sets,
    centres_A,
    ctf_per_view,
    particle_columns,
    read_coordinates,
)
from tomoforge.protocols.tilt_stacks import image_sources


class PseudoParams(ProtocolParams):
    box: int = param(64, ge=4, le=1024, unit="px", help="box (binned pixels) in which the CTF is applied")
    cropped_box: int | None = param(None, ge=4, le=1024, unit="px", help="final view size (≤ box; default box)")
    binning: float = param(1.0, ge=1, help="output pixel = the tilt series' × this (Fourier cropping)")
    max_dose_e_A2: float | None = param(None, gt=0, unit="e/Å²", help="skip views of more accumulated dose")
    premultiply_ctf: bool = param(True, help="multiply each view by its CTF at the particle's height")
    dose_weight: bool = param(True, help="attenuate each view by its accumulated dose (Grant & Grigorieff)")
    invert: bool = param(False, help="invert the contrast (premultiplied views of dark protein are bright already)")
    normalise: bool = param(True, help="each cut box to mean 0, SD 1 before filtering")
    seed: int = param(0, ge=0, help="seed of the random half sets given to particles without one")
    output: Literal["2d", "3d"] = param(
        "2d",
        help="2d: each particle's views as a 2D stack; 3d: its views inserted into a 3D pseudo-subtomogram with its "
        "CTF² weight volume (average-subtomograms reads them)",
    )
    weight_3d: Literal["sqrt-ctf2", "ctf2"] = param(
        "ctf2",
        help="3d: ctf2 writes Σ CTF·view and Σ CTF² (RELION 5's files), which average-subtomograms averages as RELION "
        "does, Σ data / Σ CTF² over all particles (the default: on the small virions as good as the 2D path to "
        "Nyquist); sqrt-ctf2 divides each particle's data by its own √Σ CTF² (weight √Σ CTF²), which is noisy "
        "where all of a particle's CTFs are near a zero (FSC to the reference 0.80 vs 0.87 at 0.75 Nyquist)",
    )

    @model_validator(mode="after")
    def _crop_within_box(self) -> PseudoParams:
        if self.cropped_box is not None and self.cropped_box > self.box:
            raise ValueError(f"cropped_box ({self.cropped_box}) must be at most box ({self.box})")
        return self


@dataclass(frozen=True, kw_only=True)
class PseudoJob:
    """The job of ``pseudo_task``: the used views' images (file, index), projection model (matrices, shifts Å,
    tilts), accumulated doses, CTF (U, V, angle; empty: none), optics and pixel size; the particles (numbers,
    centres in Å in the tilt series' frame); the stack to write and the params."""

    sources: list[tuple[str, int]]
    view_matrices: list[list[list[float]]]
    shifts_A: list[list[float]]
    tilt_deg: list[float]
    dose_e_A2: list[float]
    defocus_A: list[list[float]]
    optics: tuple[float, float, float]
    pixel_size_A: float
    numbers: list[int]
    centres_A: list[list[float]]
    stack: str
    params: PseudoParams


def pseudo_task(job: PseudoJob) -> dict[str, Any]:
    """Task: cut the views of one tilt series' particles; write the stack and its view metadata."""
    import torch

    from tomoforge.io.mrc import write_mrc
    from tomoforge.io.particle_views import ParticleViews, write_particle_views
    from tomoforge.methods.ctf.settings import Optics
    from tomoforge.methods.sta.extraction import extract_particle_views
    from tomoforge.protocols.tilt_stacks import read_images

    p = job.params
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    images = read_images(job.sources)
    out = extract_particle_views(
        images,
        np.asarray(job.centres_A),
        view_matrices=np.asarray(job.view_matrices),
        shifts_A=np.asarray(job.shifts_A),
        pixel_size_A=job.pixel_size_A,
        box=p.box,
        cropped_box=p.cropped_box,
        binning=p.binning,
        defocus_A=np.asarray(job.defocus_A) if job.defocus_A else None,
        dose_e_A2=np.asarray(job.dose_e_A2),
        optics=Optics(*job.optics),
        premultiply_ctf=p.premultiply_ctf,
        dose_weight=p.dose_weight,
        invert=p.invert,
        normalise=p.normalise,
        device=device,
    )
    n, v = out.views.shape[:2]
    premultiplied = p.premultiply_ctf and bool(job.defocus_A)
    if p.output == "3d":
        return _write_3d(job, out, premultiplied) | {"views": v, "count": n, "pixel_size_A": out.pixel_size_A}
    write_mrc(job.stack, out.views.reshape(n * v, *out.views.shape[2:]).cpu().numpy(), out.pixel_size_A, overwrite=True)
    views = ParticleViews(
        particle=np.repeat(np.asarray(job.numbers, dtype=np.int64), v),
        view_matrix=np.tile(np.asarray(job.view_matrices, dtype=np.float64), (n, 1, 1)),
        defocus_u_A=out.defocus_A[..., 0].reshape(-1),
        defocus_v_A=out.defocus_A[..., 1].reshape(-1),
        astigmatism_deg=out.defocus_A[..., 2].reshape(-1),
        dose_e_A2=np.tile(np.asarray(job.dose_e_A2, dtype=np.float64), n),
        tilt_deg=np.tile(np.asarray(job.tilt_deg, dtype=np.float64), n),
        pixel_size_A=out.pixel_size_A,
        voltage_kV=job.optics[0],
        cs_mm=job.optics[1],
        amplitude_contrast=job.optics[2],
        ctf_premultiplied=premultiplied,
        dose_weighted=p.dose_weight,
    )
    write_particle_views(job.stack, views)
    return {"views": v, "count": n, "pixel_size_A": out.pixel_size_A, "premultiplied": premultiplied}


def _write_3d(job: PseudoJob, out: Any, premultiplied: bool) -> dict[str, Any]:
    """Each particle's views inserted into its 3D pseudo-subtomogram (``methods/sta/pseudo3d.py``): the data and
    CTF² weight volumes written beside the stack's name as ``NAME_NUMBER.mrc`` and ``NAME_NUMBER_weight.mrc``."""
    from tomoforge.io.mrc import write_mrc
    from tomoforge.methods.sta.insertion import ViewFilters
    from tomoforge.methods.sta.pseudo3d import pseudo_subtomogram

    p = job.params
    base = job.stack.removesuffix(".mrcs")
    doses = np.asarray(job.dose_e_A2, float) if p.dose_weight else np.zeros(len(job.dose_e_A2))
    files, weights = [], []
    for i, number in enumerate(job.numbers):
        defocus = np.asarray(out.defocus_A[i], float)
        filters = ViewFilters(
            defocus_u_A=defocus[:, 0],
            defocus_v_A=defocus[:, 1],
            astigmatism_deg=defocus[:, 2],
            dose_e_A2=doses,
            pixel_size_A=out.pixel_size_A,
            voltage_kV=job.optics[0],
            cs_mm=job.optics[1],
            amplitude_contrast=job.optics[2],
            ctf_premultiplied=True,
            dose_weighted=True,
            use_ctf=premultiplied,
        )
        data, weight = pseudo_subtomogram(
            out.views[i],
            np.asarray(job.view_matrices),
            filters,
            root_weight=p.weight_3d == "sqrt-ctf2",
            device=out.views.device,
        )
        files.append(str(write_mrc(f"{base}_{number:07d}.mrc", data.cpu().numpy(), out.pixel_size_A, overwrite=True)))
        path = f"{base}_{number:07d}_weight.mrc"
        weights.append(str(write_mrc(path, weight.cpu().numpy(), out.pixel_size_A, overwrite=True)))
    return {"files": files, "weights": weights, "premultiplied": premultiplied}


class ExtractPseudoSubtomograms(Protocol):
    """Extract pseudo-subtomograms: per particle, its views cut from the aligned tilt series, CTF-premultiplied."""

    name = "extract-pseudo-subtomograms"
    citations = ("grant2015",)
    Params = PseudoParams
    inputs: ClassVar = {
        "tilt_series": InputSpec(TiltSeries, help="aligned tilt series"),
        "coordinates": InputSpec(Coordinate3D, help="particle coordinates (or particles)"),
        "ctf": InputSpec(CTFSeries, help="the tilt series' CTF (premultiplication)", optional=True),
        "tomograms": InputSpec(Tomogram, help="the tomograms the coordinates refer to (origin)", optional=True),
    }
    outputs: ClassVar = {"particles": Particle}
    streaming = False

    def _columns(self) -> dict[str, np.ndarray]:
        if not hasattr(self, "_cached"):
            columns = read_coordinates(self.input("coordinates"))
            columns["half_set"] = assign_half_sets(columns["half_set"], self.params.seed)
            centres = centres_A(columns)
            if self.has_input("tomograms"):
                for tomo in cast("list[Tomogram]", list(self.input("tomograms"))):
                    rows = columns["tomogram"] == tomo.name
                    centres[rows] += np.asarray(tomo.origin_A)
                    columns["tilt_series"][rows] = tomo.tilt_series or tomo.name
            columns["centre"] = centres
            self._cached = columns
        return self._cached

    def tasks(self) -> Iterator[Task[Any]]:
        p: PseudoParams = self.params
        columns = self._columns()
        ctfs = {c.name: c for c in cast("list[CTFSeries]", list(self.input("ctf")))} if self.has_input("ctf") else {}
        series = self.input("tilt_series")
        names = set(series.keys())
        unmatched = int(np.sum(~np.isin(columns["tilt_series"], list(names))))
        if unmatched:
            self.log(f"WARNING {unmatched} particle(s) lie in no input tilt series (by name): left out")
        for ts in cast("list[TiltSeries]", list(series)):
            rows = np.flatnonzero(columns["tilt_series"] == ts.name)
            if len(rows) == 0:
                continue
            views = [t for t in ts.included() if p.max_dose_e_A2 is None or t.accumulated_dose_e_A2 <= p.max_dose_e_A2]
            if not views or not ts.aligned:
                why = "has no view left (excluded or above max_dose_e_A2)" if views == [] else "is not aligned"
                yield Task(refuse, Refusal(message=f"tilt series {ts.name} {why}"), key=ts.name)
                continue
            defocus = ctf_per_view(views, ctfs.get(ts.name))
            if not defocus and p.premultiply_ctf:
                self.log(f"WARNING {ts.name}: no CTF for every used view: views not premultiplied")
            from tomoforge.methods.align.projection_model import rotation_matrices

            model = ts.projection_model(views)
            index = {t.acquisition_order: i for i, t in enumerate(ts.tilt_images)}
            sources = image_sources(ts, self.absolute)["file"]
            ac = ts.acquisition
            job = PseudoJob(
                sources=[sources[index[t.acquisition_order]] for t in views],
                view_matrices=rotation_matrices(model.tilt_deg, model.z_rot_deg, model.x_tilt_deg).tolist(),
                shifts_A=model.shift_A.tolist(),
                tilt_deg=model.tilt_deg.tolist(),
                dose_e_A2=[t.accumulated_dose_e_A2 for t in views],
                defocus_A=defocus,
                optics=(ac.voltage_kV, ac.spherical_aberration_mm, ac.amplitude_contrast),
                pixel_size_A=ac.pixel_size_A,
                numbers=[int(v) for v in columns["number"][rows]],
                centres_A=columns["centre"][rows].tolist(),
                stack=str(self.out_path(f"{ts.name}.mrcs")),
                params=p,
            )
            yield Task(pseudo_task, job, key=ts.name, origin=(origin_of(series, ts.name),))

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        job = cast(PseudoJob, task.job)
        columns = self._columns()
        rows = np.flatnonzero(np.isin(columns["number"], job.numbers))
        out = particle_columns(columns, rows, columns["half_set"])
        out["tilt_series"] = np.array([task.key] * len(rows))
        position = {n: i for i, n in enumerate(job.numbers)}
        if "files" in result:  # 3D pseudo-subtomograms: a data and a weight file per particle
            out["file"] = np.array([self.relative(result["files"][position[int(n)]]) for n in out["number"]])
            out["weight_file"] = np.array([self.relative(result["weights"][position[int(n)]]) for n in out["number"]])
            out["index"] = np.zeros(len(rows), dtype=np.int64)
        else:
            out["file"] = np.array([self.relative(job.stack)] * len(rows))
            out["index"] = np.array([position[int(n)] * result["views"] for n in out["number"]], dtype=np.int64)
        self.output("particles").append_columns(out)
        self.log(
            f"{task.key}: {result['count']} particles × {result['views']} views at {result['pixel_size_A']:.3f} Å/px"
            f"{', CTF-premultiplied' if result['premultiplied'] else ''}"
            f"{', inserted into 3D pseudo-subtomograms' if 'files' in result else ''}"
        )


__all__ = ["ExtractPseudoSubtomograms", "PseudoJob", "PseudoParams", "pseudo_task"]
