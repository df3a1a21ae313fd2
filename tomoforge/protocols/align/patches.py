"""Patch-tracking alignment protocol (fiducial-less). By default landmarks of one height matched against thin
layers of a reconstruction give the tilt axis, the shifts and the tilt offset (tomoforge.methods.align.
layer_alignment); with ``layer_tracks`` off, patches are tracked through the series and solved with the same
projection model as fiducial alignment (tomoforge.methods.align.patches).

The alignment is attached to the included tilt images (YTilt, ZRot, X/YShift in Å), never applied
to the pixels; the input's shifts (e.g. from coarse-alignment) seed the tracking.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import model_validator

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import TiltSeries
from tomoforge.model.quantities import AngleDeg
from tomoforge.protocols.align.views import (
    ViewGeometry,
    included,
    load_binned,
    series_named,
    series_tasks,
    stored_axis,
    view_geometry,
    with_solution,
    write_view_residuals,
)

if TYPE_CHECKING:
    import numpy as np

    from tomoforge.methods.align.layer_tracks import LayerTrackingSettings
    from tomoforge.methods.align.patches import PatchAlignmentSettings
    from tomoforge.methods.align.solve import FiducialSolution


# Layer tracking's sizes were tuned at 8 Å/px (issue 16's 2 Å images at binning 4): scaled to other samplings.
LAYER_REFERENCE_A = 8.0


class PatchTrackingParams(ProtocolParams):
    binning: float = param(4.0, ge=1, help="bin the images by this factor before tracking")
    layer_tracks: bool = param(
        True,
        help="align by landmarks of one height matched against thin layers of a reconstruction (the tilt axis "
        "within 0.1° on a foreign-like 1100 Å slab where patches put it 0.6° off); off: track patches",
    )
    layer_thickness_A: float = param(64.0, gt=0, unit="Å", help="layer tracks: thickness of a layer")
    layer_passes: int = param(2, ge=1, le=5, help="layer tracks: passes of two rounds each, each from the last")
    thickness_A: float | None = param(
        None, gt=0, unit="Å", help="layer tracks: the specimen slab (default: found from the input's alignment)"
    )
    patch_size_A: float = param(500.0, gt=0, unit="Å", help="patch tracks (layer_tracks off): side of a square patch")
    spacing_A: float = param(
        250.0, gt=0, unit="Å", help="patch tracks: distance between patch centres on the lowest tilt"
    )
    high_cut_A: float = param(40.0, gt=0, unit="Å", help="low-pass: period at which the gain is 1/e")
    min_score: float = param(
        0.15,
        gt=0,
        le=1,
        help="normalised correlation below which a patch is a gap (protein "
        "patches of a 3 e/Å² tilt at 12 Å/px correlate at 0.1–0.3 with their neighbours)",
    )
    contour_views: int = param(
        16,
        ge=0,
        help="cut each track into pieces of this many views (0: whole tracks), each "
        "with its own 3D point: what a patch shows drifts with the tilt (IMOD's LengthAndOverlap)",
    )
    contour_overlap: int = param(4, ge=0, help="views shared by consecutive pieces")
    rotation: Literal["fixed", "single", "grouped", "per_view"] = param(
        "fixed",
        help="in-plane rotation: fixed keeps the input's tilt axis (patch tracks pin it poorly: solving it "
        "cost 1.3–2.3° and 2 px on the small preset without gold)",
    )
    tilt: Literal["fixed", "grouped", "per_view"] = param(
        "fixed", help="tilt-angle refinement (grouped absorbs patch-tracking errors: off by default)"
    )
    level: bool = param(False, help="choose the tilt offset that makes the patches level (unreliable for patches)")
    tilt_axis_angle_deg: AngleDeg | None = param(None, unit="deg", help="override the tilt axis angle")

    @model_validator(mode="after")
    def _contours_longer_than_their_overlap(self) -> PatchTrackingParams:
        if self.contour_views and (self.contour_views < 2 or self.contour_overlap >= self.contour_views):
            raise ValueError(
                f"contour_views ({self.contour_views}) must be at least 2 and more than contour_overlap "
                f"({self.contour_overlap}), or 0 for whole tracks"
            )
        return self


def patch_options(p: PatchTrackingParams, pixel_size_A: float) -> PatchAlignmentSettings:
    """The ``patch_alignment`` settings of these params for images of ``pixel_size_A`` (Å/px, before binning)."""
    from tomoforge.methods.align.patches import PatchAlignmentSettings, PatchTrackingSettings

    px = pixel_size_A * p.binning
    tracking = PatchTrackingSettings(
        patch_px=max(16, int(round(p.patch_size_A / px / 2)) * 2),
        spacing_px=p.spacing_A / px,
        high_cut_px=p.high_cut_A / px,
        min_score=p.min_score,
    )
    return PatchAlignmentSettings(
        tracking=tracking,
        rotation=p.rotation,
        tilt=p.tilt,
        level=p.level,
        contour_views=p.contour_views or None,
        contour_overlap=p.contour_overlap,
        layers=layer_options(p, px) if p.layer_tracks else None,
        layer_passes=p.layer_passes,
    )


def layer_options(p: PatchTrackingParams, px: float) -> LayerTrackingSettings:
    """Layer tracking's settings for images of ``px`` Å/px (after binning): the defaults, tuned at 8 Å/px,
    scaled to ``px``; the layers ``layer_thickness_A`` thick."""
    from tomoforge.methods.align.layer_tracks import LayerTrackingSettings

    d, k = LayerTrackingSettings(), LAYER_REFERENCE_A / px
    return LayerTrackingSettings(
        patch_px=max(12, int(round(d.patch_px * k / 2)) * 2),
        spacing_px=max(4.0, d.spacing_px * k),
        layer_px=max(1.0, p.layer_thickness_A / px),
        per_xy=d.per_xy,
        low_cut_px=d.low_cut_px * k,
        high_cut_px=max(2.0, d.high_cut_px * k),
        radius_px=max(2.0, d.radius_px * k),
        exclude=d.exclude,
        axis_exclude=d.axis_exclude,
        min_score=d.min_score,
        noise_radius_px=None if d.noise_radius_px is None else d.noise_radius_px * k,
    )


@dataclass(frozen=True, kw_only=True)
class PatchTrackingJob:
    """The job of ``patch_tracking_task``: one tilt series' included views, the binning, the method's
    settings (at the binned pixel size), the landmark table to write, and for layer tracks the input's tilt
    offset (degrees, None: none stored) and the slab (Å, None: estimated)."""

    views: ViewGeometry
    binning: float
    settings: PatchAlignmentSettings
    out_file: str
    residuals_file: str = ""
    tilt_offset_deg: float | None = None
    thickness_A: float | None = None


def solution_fields(sol: FiducialSolution, tracks: np.ndarray) -> dict[str, Any]:
    """What a task returns of a solution (model per view, angles, residuals) and its (n, m, 2) tracks."""
    m = sol.model
    return {
        "y_tilt_deg": m.tilt_deg.tolist(),
        "z_rot_deg": m.z_rot_deg.tolist(),
        "shifts_A": m.shift_A.tolist(),
        "rms_px": sol.rms_px,
        "tilt_axis_deg": sol.tilt_axis_deg,
        "tilt_offset_deg": sol.tilt_offset_deg,
        "n_patches": int(tracks.shape[1]),
        "dropped": [int(b) + 1 for b in sol.dropped_beads],
        "view_rms_px": sol.view_rms_px.tolist(),
    }


def patch_tracking_task(job: PatchTrackingJob) -> dict[str, Any]:
    """Track patches and solve the projection model; write the tracks (with residuals) as a landmark table.
    Returns per view ``y_tilt_deg``, ``z_rot_deg``, ``shifts_A`` (Å), and the fit's figures."""
    import numpy as np

    from tomoforge.methods.align.patches import patch_alignment
    from tomoforge.protocols.align.landmarks import write_landmarks

    v = job.views
    images = load_binned(v.sources, job.binning)
    px = v.pixel_size_A * job.binning
    if job.settings.layers is not None:
        return layer_tracking(job, images, px)
    sol, tracks = patch_alignment(
        images, np.asarray(v.tilts_deg), v.axis_deg, px, np.asarray(v.shifts_A) / px, settings=job.settings
    )
    write_landmarks(job.out_file, tracks, v.orders, sol.residuals_px)
    matching: dict[str, Any] = {}
    if sol.view_matching_px is not None and sol.view_matching_score is not None:
        matching["view_residual_A"] = (sol.view_matching_px * px).tolist()
        if job.residuals_file:  # "" (a caller outside the protocol): no file
            write_view_residuals(job.residuals_file, v, matching["view_residual_A"], sol.view_matching_score.tolist())
            matching["residuals_file"] = job.residuals_file
    return {
        **solution_fields(sol, tracks),
        **matching,
    }


def layer_tracking(job: PatchTrackingJob, images: Any, px: float) -> dict[str, Any]:
    """``patch_tracking_task`` by layer tracks (``layer_alignment``) on the binned ``images`` (``px`` Å/px):
    the landmark table, the per-view residual of the landmarks' fit (Å) and the mean score of each view's
    matches, and what the log reports."""
    import numpy as np

    from tomoforge.methods.align.layer_alignment import layer_alignment
    from tomoforge.protocols.align.landmarks import write_landmarks

    v, st = job.views, job.settings
    assert st.layers is not None
    la = layer_alignment(
        images,
        np.asarray(v.tilts_deg),
        v.axis_deg,
        px,
        np.asarray(v.shifts_A) / px,
        tilt_offset_deg=job.tilt_offset_deg,
        thickness_px=None if job.thickness_A is None else job.thickness_A / px,
        settings=st.layers,
        passes=st.layer_passes,
    )
    sol = la.solution
    write_landmarks(job.out_file, la.tracks_px, v.orders, sol.residuals_px)
    residual_A = (sol.view_rms_px * px).tolist()
    seen = np.isfinite(la.tracks_px[..., 0])
    score = (np.where(seen, la.scores, 0.0).sum(axis=1) / np.maximum(seen.sum(axis=1), 1)).tolist()
    out: dict[str, Any] = {}
    if job.residuals_file:
        write_view_residuals(job.residuals_file, v, residual_A, score, what="layer-track fit")
        out["residuals_file"] = job.residuals_file
    return {
        **solution_fields(sol, la.tracks_px),
        "layer_residual_A": residual_A,
        "layer_rounds": [list(r) for r in la.rounds],
        "thickness_A": la.thickness_px * px,
        "thickness_estimated": la.thickness_estimated,
        "offset_source": la.offset_source,
        **out,
    }


class PatchTracking(Protocol):
    """Patch tracking: fiducial-less alignment by tracking patches with stretched cross-correlation."""

    name = "patch-tracking"
    citations = ("kremer1996", "mastronarde2017")
    Params = PatchTrackingParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="tilt series (coarse-aligned: its shifts seed the tracking)")}
    outputs = {"tilt_series": TiltSeries}

    params: PatchTrackingParams

    def tasks(self) -> Iterator[Task[Any]]:
        p = self.params

        def job(ts: TiltSeries) -> PatchTrackingJob:
            return PatchTrackingJob(
                tilt_offset_deg=stored_offset(ts),
                thickness_A=p.thickness_A,
                views=replace(
                    view_geometry(ts, self.absolute, p.tilt_axis_angle_deg),
                    axis_deg=stored_axis(ts, p.tilt_axis_angle_deg),
                ),
                binning=p.binning,
                settings=patch_options(p, ts.acquisition.pixel_size_A),
                out_file=str(self.out_path(f"{ts.name}_patches.tsv")),
                residuals_file=str(self.out_path(f"{ts.name}_view_residuals.tsv")),
            )

        return series_tasks(self.input("tilt_series"), "track patches in", patch_tracking_task, job)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        ts = series_named(self.input("tilt_series"), task.key)
        self.emit("tilt_series", with_solution(ts, result), task)
        if "layer_residual_A" in result:
            self._log_layers(ts, result)
            return
        self.log(
            f"{ts.name}: {result['n_patches']} patches, residual {result['rms_px']:.3f} px, "
            f"tilt axis {result['tilt_axis_deg']:.2f}°, tilt offset {result['tilt_offset_deg']:.2f}°, "
            f"dropped patches {result['dropped']}"
        )
        if "view_residual_A" in result:
            worst = sorted(result["view_residual_A"], reverse=True)[:3]
            self.log(
                f"{ts.name}: refined by projection matching; residual per view in {result['residuals_file']}, "
                "largest " + ", ".join(f"{r:.1f} Å" for r in worst)
            )

    def _log_layers(self, ts: TiltSeries, r: dict[str, Any]) -> None:
        rounds = ", ".join(f"{a:.2f}→{b:.2f}" for a, b in r["layer_rounds"])
        self.log(
            f"{ts.name}: layer tracks: {r['n_patches']} landmarks, residual {r['rms_px']:.3f} px; tilt axis "
            f"{r['tilt_axis_deg']:.2f}° (rounds, axis of the layers → axis of their tracks: {rounds}); tilt "
            f"offset {r['tilt_offset_deg']:.2f}° from {r['offset_source']}; slab {r['thickness_A']:.0f} Å "
            f"({'found from the input alignment' if r['thickness_estimated'] else 'given'})"
        )
        views = sorted(zip(r["layer_residual_A"], [t.tilt_angle_deg for t in included(ts)]), reverse=True)
        self.log(
            f"{ts.name}: residual per view (Å, RMS of the landmarks' misfit): "
            + ", ".join(f"{t:.0f}°: {a:.1f}" for a, t in sorted(views, key=lambda q: q[1]))
            + "; largest "
            + ", ".join(f"{a:.1f} Å at {t:.0f}°" for a, t in views[:3])
            + (f"; table in {r['residuals_file']}" if "residuals_file" in r else "")
        )


def stored_offset(ts: TiltSeries) -> float | None:
    """The tilt offset an earlier alignment stored (mean YTilt − nominal tilt over the included views, degrees),
    None where none is stored."""
    pairs = [(t.y_tilt_deg, t.tilt_angle_deg) for t in included(ts)]
    if not pairs or any(y is None for y, _ in pairs):
        return None
    return sum(float(y) - t for y, t in pairs if y is not None) / len(pairs)


__all__ = ["PatchTracking", "PatchTrackingJob", "PatchTrackingParams", "patch_options", "patch_tracking_task"]
