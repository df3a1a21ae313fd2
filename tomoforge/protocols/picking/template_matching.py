"""Template matching: search each tomogram for a reference map, write the picks, the score and angle maps.

One task per tomogram (``template_matching_task``): it reads the tomogram and the reference (and mask),
resamples them to the tomogram's voxel size where they differ, weights the template like the tomogram's
data (missing wedge from the included views of its tilt series; per-view dose, CTF and cosine when known),
whitens both and low-passes them to the target resolution (``lowpass_A``, else ``resolution_A``, else the
Nyquist sphere), searches the rotations (``methods.picking``) in tiles that fit ``memory_GB``, and extracts the
peaks above a threshold from the false positives accepted (or n-sigma). The tomogram's tilt series and CTF are
found by the Tomogram's ``tilt_series`` name in the optional inputs; without them the wedge is the range
``wedge_deg``. Positions are written in Å from the tomogram's centre, rotations x_tomogram = R · x_reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.model import CTFSeries, LandmarkModel, TiltSeries, Tomogram
from tomoforge.model.coordinates import Coordinate3D
from tomoforge.model.volume import Volume
from tomoforge.protocols.picking.tm_histogram import score_histogram
from tomoforge.protocols.picking.tm_locations import GoldBeads, LocalNormals, bead_voxels, location_cones
from tomoforge.protocols.reconstruct.tomogram import log_line
from tomoforge.protocols.refuse import Refusal, refuse

if TYPE_CHECKING:
    import numpy as np

    from tomoforge.methods.picking.template_weighting import TiltWeighting


class TemplateMatchingParams(ProtocolParams):
    angular_step_deg: float | None = param(
        None, ge=0.5, le=180, unit="deg", help="angular step (default: Crowther's from particle_diameter_A)"
    )
    particle_diameter_A: float | None = param(
        None, gt=0, unit="Å", help="particle diameter for Crowther's step and the default minimum distance"
    )
    resolution_A: float | None = param(None, gt=0, unit="Å", help="target resolution (default: 2 voxels)")
    symmetry: str = param("", help="point group of the reference (default: the reference Volume's)")
    cone_deg: float = param(
        180.0, gt=0, le=180, unit="deg", help="search only rotations whose z axis is this close to cone_axis"
    )
    cone_axis: tuple[float, float, float] = param((0.0, 0.0, 1.0), help="direction (x, y, z) of the cone's axis")
    wedge_deg: tuple[float, float] = param((-60.0, 60.0), unit="deg", help="tilt range when no tilt series is given")
    wedge_step_deg: float = param(3.0, gt=0, unit="deg", help="tilt step when no tilt series is given")
    ctf_weighting: bool = param(True, help="weight by each view's CTF when the CTF series is given")
    dose_weighting: bool = param(True, help="weight by each view's accumulated dose when known")
    cosine_weighting: bool = param(False, help="weight each view by the cosine of its tilt")
    whiten: bool = param(True, help="spectral whitening of tomogram and template")
    highpass_A: float | None = param(None, gt=0, unit="Å", help="remove detail coarser than this")
    lowpass_A: float | None = param(
        None, gt=0, unit="Å", help="remove detail finer than this (default: resolution_A, 2 voxels unless given)"
    )
    protein_dark: bool = param(True, help="the protein is dark in the tomogram (the reference is bright)")
    background_correction: bool = param(False, help="subtract a phase-randomised template's score (twice the work)")
    false_positives: float = param(1.0, gt=0, help="false positives accepted per tomogram (sets the threshold)")
    n_sigma: float | None = param(None, gt=0, help="threshold at mean + n_sigma SD instead")
    min_distance_A: float | None = param(
        None, gt=0, unit="Å", help="least distance between picks (default: the radius)"
    )
    max_count: int | None = param(None, ge=1, help="keep at most this many picks per tomogram")
    edge_A: float | None = param(None, ge=0, unit="Å", help="no pick this close to a face (default: half the box)")
    gold_sigma: float | None = param(None, gt=0, help="exclude picks near voxels darker than mean − gold_sigma SD")
    gold_radius_A: float = param(60.0, ge=0, unit="Å", help="distance kept from gold voxels (and bead surfaces)")
    normals_max_distance_A: float | None = param(
        None, gt=0, unit="Å", help="with normals: search only this close to one of their points"
    )
    refine_orientations: bool = param(
        True, help="refine each pick's rotation below the step (a hill climb of its local score)"
    )
    refine_lowpass_A: float | None = param(
        None, gt=0, unit="Å", help="low-pass of the refinement (default lowpass_A): finer than a coarse search's"
    )
    memory_GB: float = param(2.0, gt=0, unit="GB", help="memory for the search (larger tomograms go in tiles)")
    device: str = param("auto", help="'auto' (a GPU when torch sees one), 'cpu' or 'cuda'")


@dataclass(frozen=True, kw_only=True)
class TemplateMatchingJob:
    """The job of ``template_matching_task``: the tomogram, the reference (and mask) files with their voxel
    sizes (Å), the symmetry, the views' weighting, where to write, the parameters and the run log."""

    tomogram: str
    tomogram_name: str
    voxel_A: float
    reference: str
    reference_voxel_A: float
    mask: str
    mask_voxel_A: float
    symmetry: str
    weighting: TiltWeighting
    out_base: str
    params: TemplateMatchingParams
    log_file: str = ""
    origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0)
    beads: GoldBeads | None = None
    normals: LocalNormals | None = None


def _resampled(path: str, voxel_A: float, target_A: float) -> np.ndarray:
    """A cubic map from ``path`` on voxels of ``target_A`` (Fourier crop/pad), float32."""
    import numpy as np

    from tomoforge.io.mrc import read_mrc
    from tomoforge.methods.volumes.resize import rescale_volume

    data = np.asarray(read_mrc(path), dtype=np.float32)
    if data.ndim != 3 or len(set(data.shape)) != 1:
        raise ValueError(f"{path}: a reference or mask must be a cubic map, got shape {data.shape}")
    if voxel_A != target_A:  # the centre voxel N // 2 stays the centre (a plain Fourier crop keeps voxel 0)
        data = rescale_volume(data, voxel_A, target_A).volume.numpy()
    return data


def template_matching_task(job: TemplateMatchingJob) -> dict[str, Any]:
    """Task: search one tomogram; write ``{out_base}_scores.mrc``, ``_angles.mrc`` (index of the best rotation),
    ``_rotations.npy`` (n, 3, 3) and ``_histogram.png``; return the picks (Å from the centre, rotations, scores)."""
    import numpy as np
    import torch
    from scipy.ndimage import distance_transform_edt

    from tomoforge.io.mrc import read_mrc, write_mrc
    from tomoforge.methods.picking.angles import angular_sampling, crowther_step_deg
    from tomoforge.methods.picking.peaks import edge_mask, false_positive_threshold, find_peaks, score_statistics
    from tomoforge.methods.picking.refine import filtered_tomogram, refine_picks
    from tomoforge.methods.picking.template_matching import match_template
    from tomoforge.methods.picking.template_weighting import (
        bandpass_radial,
        radial_on_grid,
        tilt_weight,
        whitening_filter,
    )

    p, voxel = job.params, job.voxel_A
    device = p.device if p.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    tomo = np.asarray(read_mrc(job.tomogram), dtype=np.float32)
    template = _resampled(job.reference, job.reference_voxel_A, voxel)
    n = template.shape[0]
    mask = _resampled(job.mask, job.mask_voxel_A, voxel).clip(0, 1) if job.mask else None
    if mask is not None and mask.shape != template.shape:
        raise ValueError(f"{job.mask}: the mask ({mask.shape[0]}³ at {voxel:g} Å) differs from the reference ({n}³)")
    diameter = p.particle_diameter_A or n * voxel * 0.8
    step = p.angular_step_deg or crowther_step_deg(diameter, p.resolution_A or 2 * voxel)
    groups, allowed = None, None
    if job.normals is None:
        rotations = angular_sampling(
            max(step, 0.5), symmetry=job.symmetry, normals_xyz=np.array([p.cone_axis]), cone_deg=p.cone_deg
        )
    else:  # a cone around the normal of the nearest point, per location
        every = angular_sampling(max(step, 0.5), symmetry=job.symmetry)
        rotations, allowed, groups = location_cones(job.normals, every, p.cone_deg, voxel, tomo.shape)
    shells, white = whitening_filter(torch.from_numpy(tomo)) if p.whiten else (None, None)
    edge_inv = 2.0 / (n * voxel)

    # the search is band-limited to its target resolution (by default the Nyquist sphere: the corners beyond it
    # are sampled in some directions only); the transforms skip the spectrum's zero columns
    lowpass = p.lowpass_A or p.resolution_A or 2.0 * voxel

    def radial(shape: tuple[int, int, int], lowpass_A: float = lowpass) -> torch.Tensor:
        out = torch.ones((shape[0], shape[1], shape[2] // 2 + 1))
        if shells is not None and white is not None:
            out = out * radial_on_grid(shells, white, shape)
        k = radial_on_grid(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), shape) / voxel
        return out * bandpass_radial(k, highpass_A=p.highpass_A, lowpass_A=lowpass_A, edge_A_inv=edge_inv)

    def refine_radial(shape: tuple[int, int, int]) -> torch.Tensor:
        return radial(shape, p.refine_lowpass_A or lowpass)

    log_line(
        job.log_file, f"{job.tomogram_name}: {len(rotations)} rotations (step {step:.2f}°, {job.symmetry}) on {device}"
    )
    edge_px = int(round(p.edge_A / voxel)) if p.edge_A is not None else n // 2
    inner = edge_mask(tomo.shape, edge_px)  # type: ignore[arg-type]
    weight = tilt_weight((n, n, n), voxel, job.weighting)
    result = match_template(
        tomo,
        template,
        rotations,
        mask=mask,
        template_weight=weight,
        radial_filter=radial,
        protein_dark=p.protein_dark,
        background_correction=p.background_correction,
        memory_budget_bytes=int(p.memory_GB * 2**30),
        device=device,
        statistics_mask=inner,
        location_groups=groups,
        allowed_rotations=allowed,
    )
    mean, sd = score_statistics(result.scores, inner)
    if p.n_sigma is not None:
        threshold = mean + p.n_sigma * sd
    else:  # the statistics of single-rotation scores: noise draws V × R of them
        threshold = false_positive_threshold(
            result.rotation_score_sd,
            int(inner.sum()),
            len(rotations),
            p.false_positives,
            mean=result.rotation_score_mean,
        )
    scores = result.scores
    if p.gold_sigma is not None:  # gold: voxels far darker (or, protein bright, brighter) than the rest
        gold = (
            (tomo < tomo.mean() - p.gold_sigma * tomo.std())
            if p.protein_dark
            else (tomo > tomo.mean() + p.gold_sigma * tomo.std())
        )
        if gold.any():
            near = distance_transform_edt(~gold) <= p.gold_radius_A / voxel
            scores = np.where(near, -np.inf, scores).astype(np.float32)
    min_distance = (p.min_distance_A or diameter / 2) / voxel
    beads = np.zeros((0, 3))
    if job.beads is not None:  # the landmark model's beads: no pick within a bead radius + gold_radius_A
        beads = bead_voxels(job.beads, job.origin_A, voxel, tomo.shape)
        log_line(job.log_file, f"{job.tomogram_name}: {len(beads)} gold beads of the landmark model excluded")
    exclude_px = ((job.beads.diameter_A / 2 if job.beads is not None else 0.0) + p.gold_radius_A) / voxel
    peaks = find_peaks(
        scores,
        threshold=threshold,
        min_distance_px=min_distance,
        max_count=p.max_count,
        edge_px=edge_px,
        exclude_zyx_px=beads,
        exclude_radius_px=exclude_px,
    )
    base = job.out_base
    write_mrc(f"{base}_scores.mrc", result.scores, voxel, overwrite=True)
    write_mrc(f"{base}_angles.mrc", result.best_rotation.astype(np.float32), voxel, overwrite=True)
    np.save(f"{base}_rotations.npy", result.rotations, allow_pickle=False)
    score_histogram(f"{base}_histogram.png", job.tomogram_name, result.scores[inner], mean, sd, threshold)
    centre = np.array(tomo.shape) // 2
    found = result.rotations[result.best_rotation[tuple(peaks.positions_zyx.T)]]
    positions_zyx, pick_scores = peaks.refined_zyx, peaks.scores
    if p.refine_orientations and len(found):
        found, positions_zyx, refined = refine_picks(
            filtered_tomogram(tomo, refine_radial, torch.device(device)),
            template,
            peaks.positions_zyx,
            found,
            step_deg=step,
            mask=mask,
            box_filter=weight * refine_radial((n, n, n)),
            protein_dark=p.protein_dark,
        )
        log_line(
            job.log_file,
            f"{job.tomogram_name}: orientations refined, median score {np.median(peaks.scores):.4f} at the searched "
            f"rotations, {np.median(refined):.4f} refined",
        )
        order = np.argsort(-refined, kind="stable")  # best first by the refined score, the picks' score
        found, positions_zyx, pick_scores = found[order], positions_zyx[order], refined[order]
    xyz_A = (positions_zyx[:, ::-1] - centre[::-1]) * voxel  # to a fraction of a voxel
    log_line(
        job.log_file,
        f"{job.tomogram_name}: {len(peaks.scores)} picks above {threshold:.4f} (score mean {mean:.4f}, SD {sd:.4f}; "
        f"one rotation's mean {result.rotation_score_mean:.4f}, SD {result.rotation_score_sd:.4f}) "
        f"in {result.seconds:.1f} s, {result.n_tiles} tile(s)",
    )
    return {
        "positions_A": xyz_A.astype(np.float64),
        "rotations": found.astype(np.float64),
        "scores": np.asarray(pick_scores, dtype=np.float64),
        "beads_zyx": beads.astype(np.float64),
        "threshold": threshold,
        "score_sd": sd,
        "n_rotations": len(rotations),
        "step_deg": step,
        "seconds": result.seconds,
        "scores_file": f"{base}_scores.mrc",
        "angles_file": f"{base}_angles.mrc",
        "rotations_file": f"{base}_rotations.npy",
        "histogram_file": f"{base}_histogram.png",
    }


def view_weighting(
    tomogram: Tomogram, series: TiltSeries | None, ctf: CTFSeries | None, p: TemplateMatchingParams
) -> TiltWeighting:
    """The views the tomogram was made of: the tilt series' included views (tilt, accumulated dose, the CTF's
    mean defocus by acquisition order), else the range ``wedge_deg`` at ``wedge_step_deg``."""
    from tomoforge.methods.picking.template_weighting import TiltWeighting, default_views

    acq = (series.acquisition if series is not None else None) or tomogram.acquisition
    optics: dict[str, Any] = {}
    if acq is not None:
        optics = {
            "voltage_kV": acq.voltage_kV,
            "cs_mm": acq.spherical_aberration_mm,
            "amplitude_contrast": acq.amplitude_contrast,
        }
    if series is None:
        return TiltWeighting(
            tilt_angles_deg=tuple(default_views(*p.wedge_deg, p.wedge_step_deg)), cosine=p.cosine_weighting, **optics
        )
    views = series.included()
    tilts = tuple(t.tilt_angle_deg if t.y_tilt_deg is None else t.y_tilt_deg for t in views)
    doses = tuple(t.accumulated_dose_e_A2 for t in views)
    defocus = None
    if ctf is not None and p.ctf_weighting:
        by_order = {e.acquisition_order: e for e in ctf.entries}
        missing = [t.acquisition_order for t in views if t.acquisition_order not in by_order]
        if missing:
            raise ValueError(f"CTF series {ctf.name} has no entry for view(s) {missing} of tilt series {series.name}")
        defocus = tuple(by_order[t.acquisition_order].defocus_A for t in views)
    return TiltWeighting(
        tilt_angles_deg=tilts,
        doses_e_A2=doses if p.dose_weighting and any(d > 0 for d in doses) else None,
        defocus_A=defocus,
        ctf_corrected=series.ctf_corrected,
        cosine=p.cosine_weighting,
        **optics,
    )


class TemplateMatching(Protocol):
    """Template matching: locally normalised cross-correlation of a weighted reference over rotations."""

    name = "template-matching"
    streaming = False
    citations = ("roseman2003", "cruzleon2024")
    Params = TemplateMatchingParams
    inputs: ClassVar = {
        "tomograms": InputSpec(Tomogram, help="tomograms to search"),
        "reference": InputSpec(Volume, help="the reference map (protein bright), its first item"),
        "mask": InputSpec(Volume, optional=True, help="mask for the correlation (default: a sphere)"),
        "tilt_series": InputSpec(TiltSeries, optional=True, help="the tomograms' tilt series (views, doses)"),
        "ctf": InputSpec(CTFSeries, optional=True, help="the tilt series' CTF (per-view weighting)"),
        "landmark_models": InputSpec(
            LandmarkModel, optional=True, help="gold beads of the tilt series (with tilt_series): no pick near them"
        ),
        "normals": InputSpec(
            Coordinate3D, optional=True, help="points with orientations: cone_deg around the nearest one's z axis"
        ),
    }
    outputs: ClassVar = {"coordinates": Coordinate3D, "score_maps": Volume, "angle_maps": Volume}

    def _first(self, name: str) -> Volume | None:
        if not self.has_input(name):
            return None
        for item in self.input(name):
            return cast(Volume, item)
        raise ValueError(f"input '{name}' holds no Volume")

    def tasks(self) -> Iterator[Task[Any]]:
        p: TemplateMatchingParams = self.params
        tomograms = self.input("tomograms")
        reference, mask = self._first("reference"), self._first("mask")
        assert reference is not None  # a required input
        series = {
            ts.name: ts
            for ts in cast(
                "Iterator[TiltSeries]", iter(self.input("tilt_series") if self.has_input("tilt_series") else ())
            )
        }
        ctfs = {
            c.name: c for c in cast("Iterator[CTFSeries]", iter(self.input("ctf") if self.has_input("ctf") else ()))
        }
        log_file = str(self.context.run_dir / "run.log")
        landmarks = {
            m.name: m
            for m in cast(
                "Iterator[LandmarkModel]",
                iter(self.input("landmark_models") if self.has_input("landmark_models") else ()),
            )
        }
        normals = self._normals()
        for tomo in cast("Iterator[Tomogram]", iter(tomograms)):
            origin = (origin_of(tomograms, tomo.name),)
            ts = series.get(tomo.tilt_series or tomo.name)
            if series and ts is None:
                why = f"tomogram {tomo.name}: no tilt series named {tomo.tilt_series or tomo.name!r} in the tilt_series input"
                yield Task(refuse, Refusal(message=why), key=tomo.name, origin=origin)
                continue
            try:
                weighting = view_weighting(tomo, ts, ctfs.get(ts.name) if ts is not None else None, p)
            except ValueError as exc:
                yield Task(refuse, Refusal(message=f"tomogram {tomo.name}: {exc}"), key=tomo.name, origin=origin)
                continue
            if ts is None:
                self.log(f"{tomo.name}: no tilt series given; wedge {p.wedge_deg[0]:g} to {p.wedge_deg[1]:g}°")
            beads = None
            if landmarks and (ts is None or ts.name not in landmarks):
                why = f"tomogram {tomo.name}: the landmark_models input needs its tilt series (and a model named so)"
                yield Task(refuse, Refusal(message=why), key=tomo.name, origin=origin)
                continue
            if ts is not None and ts.name in landmarks:
                beads = self._beads(landmarks[ts.name], ts)
            local = normals.get(tomo.name) if normals is not None else None
            if normals is not None and local is None:
                why = f"tomogram {tomo.name}: the normals input holds no oriented point of it"
                yield Task(refuse, Refusal(message=why), key=tomo.name, origin=origin)
                continue
            job = TemplateMatchingJob(
                tomogram=str(self.absolute(tomo.file)),
                tomogram_name=tomo.name,
                voxel_A=tomo.pixel_size_A,
                reference=str(self.absolute(reference.file)),
                reference_voxel_A=reference.pixel_size_A,
                mask=str(self.absolute(mask.file)) if mask is not None else "",
                mask_voxel_A=mask.pixel_size_A if mask is not None else 1.0,
                symmetry=p.symmetry or reference.symmetry,
                weighting=weighting,
                out_base=str(self.out_path(tomo.name)),
                params=p,
                log_file=log_file,
                origin_A=tomo.origin_A,
                beads=beads,
                normals=local,
            )
            yield Task(template_matching_task, job, key=tomo.name, origin=origin)

    def _beads(self, model: LandmarkModel, ts: TiltSeries) -> GoldBeads:
        views = ts.tilt_images
        pm = ts.projection_model("all")
        return GoldBeads(
            landmarks_file=str(self.absolute(model.file)),
            pixel_size_A=model.pixel_size_A,
            diameter_A=model.diameter_nm * 10.0,
            orders=tuple(t.acquisition_order for t in views),
            tilt_deg=tuple(float(v) for v in pm.tilt_deg),
            z_rot_deg=tuple(float(v) for v in pm.z_rot_deg),
            x_tilt_deg=tuple(float(v) for v in pm.x_tilt_deg),
            shift_A=tuple((float(a), float(b)) for a, b in pm.shift_A),
        )

    def _normals(self) -> dict[str, LocalNormals] | None:
        """Per tomogram: the points of the ``normals`` input that have an orientation, with their z axis."""
        if not self.has_input("normals"):
            return None
        import numpy as np

        cols = self.input("normals").arrays("tomogram", "x_A", "y_A", "z_A", "rotation", "has_orientation")
        out = {}
        oriented = cols["has_orientation"].astype(bool)
        for name in np.unique(cols["tomogram"][oriented]):
            rows = oriented & (cols["tomogram"] == name)
            points = np.stack([cols["x_A"][rows], cols["y_A"][rows], cols["z_A"][rows]], 1)
            axes = cols["rotation"][rows][:, :, 2]
            out[str(name)] = LocalNormals(
                points_A=tuple(map(tuple, points.tolist())),
                normals=tuple(map(tuple, axes.tolist())),
                max_distance_A=self.params.normals_max_distance_A,
            )
        return out

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        import numpy as np

        job = cast(TemplateMatchingJob, task.job)
        positions = np.asarray(result["positions_A"], dtype=float).reshape(-1, 3)
        coordinates = self.output("coordinates")
        k = len(positions)
        if k:
            start = len(coordinates)
            coordinates.append_columns(
                {
                    "number": np.arange(start, start + k),
                    "tomogram": np.array([job.tomogram_name] * k),
                    "x_A": positions[:, 0],
                    "y_A": positions[:, 1],
                    "z_A": positions[:, 2],
                    "rotation": np.asarray(result["rotations"], dtype=float).reshape(-1, 3, 3),
                    "has_orientation": np.ones(k, dtype=bool),
                    "score": np.asarray(result["scores"], dtype=float),
                },
                origins=[task.origin] * k,
            )
        for output, key in (("score_maps", "scores_file"), ("angle_maps", "angles_file")):
            self.emit(
                output,
                Volume(name=job.tomogram_name, file=self.relative(result[key]), pixel_size_A=job.voxel_A),
                task,
            )
        self.log(
            f"{job.tomogram_name}: {k} picks (threshold {result['threshold']:.4f}, {result['n_rotations']} rotations "
            f"at {result['step_deg']:.2f}°) in {result['seconds']:.1f} s; histogram {Path(result['histogram_file']).name}"
        )


__all__ = ["TemplateMatching", "TemplateMatchingJob", "TemplateMatchingParams", "template_matching_task"]
