"""Patch-tracking alignment protocol (fiducial-less): patches tracked through the series, then the
same projection model as fiducial alignment (see tomoforge.methods.align.patches).

The alignment is attached to the included tilt images (YTilt, ZRot, X/YShift in Å), never applied
to the pixels; the input's shifts (e.g. from coarse-alignment) seed the tracking.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import model_validator

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.model import TiltSeries
from tomoforge.model.quantities import AngleDeg
from tomoforge.protocols.align.alignment import included, refusal, view_geometry, with_alignment
from tomoforge.protocols.align.tasks import load_binned, write_landmarks


def patch_tracking_task(
    sources: list[tuple[str, int]],
    tilts: list[float],
    orders: list[int],
    axis_deg: float,
    shifts_A: list[list[float]],
    pixel_size_A: float,
    binning: float,
    options: dict[str, Any],
    out_file: str,
) -> dict[str, Any]:
    """Track patches and solve the projection model; write the tracks (with residuals) as a landmark table."""
    from tomoforge.methods.align.patches import patch_alignment

    images = load_binned(sources, binning)
    px = pixel_size_A * binning
    sol, tracks = patch_alignment(images, np.asarray(tilts), axis_deg, px, np.asarray(shifts_A) / px, **options)
    write_landmarks(out_file, tracks, orders, sol.residuals_px)
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
    }


class PatchTrackingParams(ProtocolParams):
    binning: float = param(4.0, ge=1, help="bin the images by this factor before tracking")
    patch_size_A: float = param(500.0, gt=0, unit="Å", help="side of a square patch")
    spacing_A: float = param(250.0, gt=0, unit="Å", help="distance between patch centres on the lowest tilt")
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


def patch_options(p: PatchTrackingParams, pixel_size_A: float) -> dict[str, Any]:
    """The ``patch_alignment`` options of these params for images of ``pixel_size_A`` (before binning)."""
    px = pixel_size_A * p.binning
    return {
        "patch_px": max(16, int(round(p.patch_size_A / px / 2)) * 2),
        "spacing_px": p.spacing_A / px,
        "high_cut_px": p.high_cut_A / px,
        "min_score": p.min_score,
        "rotation": p.rotation,
        "tilt": p.tilt,
        "level": p.level,
        "contour_views": p.contour_views or None,
        "contour_overlap": p.contour_overlap,
    }


class PatchTracking(Protocol):
    """Patch tracking: fiducial-less alignment by tracking patches with stretched cross-correlation."""

    name = "patch-tracking"
    citations = ("kremer1996", "mastronarde2017")
    Params = PatchTrackingParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="tilt series (coarse-aligned: its shifts seed the tracking)")}
    outputs = {"tilt_series": TiltSeries}

    def tasks(self):
        p, series = self.params, self.input("tilt_series")
        for ts in series:
            if (no_view := refusal(ts, series, "track patches in")) is not None:
                yield no_view
                continue
            options = patch_options(p, ts.acquisition.pixel_size_A)
            yield Task(
                patch_tracking_task,
                (
                    *view_geometry(ts, self.absolute, p.tilt_axis_angle_deg),
                    ts.acquisition.pixel_size_A,
                    p.binning,
                    options,
                    str(self.out_path(f"{ts.name}_patches.tsv")),
                ),
                key=ts.name,
                origin=(origin_of(series, ts.name),),
            )

    def collect(self, task, result):
        ts = self.input("tilt_series").get(task.key)
        values = {
            t.acquisition_order: {"y_tilt_deg": y, "z_rot_deg": z, "x_shift_A": s[0], "y_shift_A": s[1]}
            for t, y, z, s in zip(included(ts), result["y_tilt_deg"], result["z_rot_deg"], result["shifts_A"])
        }
        self.emit("tilt_series", with_alignment(ts, values), task)
        self.log(
            f"{ts.name}: {result['n_patches']} patches, residual {result['rms_px']:.3f} px, "
            f"tilt axis {result['tilt_axis_deg']:.2f}°, tilt offset {result['tilt_offset_deg']:.2f}°, "
            f"dropped patches {result['dropped']}"
        )
