"""Fiducial protocols: the fiducial model (gold beads detected on the lowest tilt and tracked through the
series, written as a landmark table; see tomoforge.protocols.align.landmarks) and the fiducial alignment
(the least-squares projection model solved from a landmark model, IMOD tiltalign; see
tomoforge.methods.align.solve)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.model import LandmarkModel, TiltSeries
from tomoforge.model.quantities import AngleDeg, BeadDiameterNM
from tomoforge.protocols.align.views import (
    ViewGeometry,
    axis_of,
    each_series,
    included,
    load_binned,
    refusal,
    series_named,
    series_tasks,
    view_geometry,
    with_solution,
)

if TYPE_CHECKING:
    import numpy as np


class FiducialModelParams(ProtocolParams):
    bead_diameter_nm: BeadDiameterNM = param(10.0, unit="nm", help="gold bead diameter")
    binning: float = param(4.0, ge=1, help="bin the images by this factor to find and track beads")
    max_beads: int = param(60, ge=3, help="seed at most this many beads on the lowest tilt")
    threshold_sd: float = param(6.0, gt=0, help="detection threshold (robust SD of the filtered image)")
    tilt_axis_angle_deg: AngleDeg | None = param(None, unit="deg", help="override the tilt axis angle")


@dataclass(frozen=True, kw_only=True)
class FiducialModelJob:
    """The job of ``fiducial_model_task``: one tilt series' included views, the params, the landmark table
    to write."""

    views: ViewGeometry
    params: FiducialModelParams
    out_file: str


def fiducial_model_task(job: FiducialModelJob) -> dict[str, Any]:
    """Learn the beads' image from the data, detect and track them, fill gaps from a first model fit; write the landmark table. Returns its
    ``file``, ``n_landmarks`` and ``pixel_size_A`` (Å/px of its positions: the binned images')."""
    import numpy as np

    from tomoforge.methods.align.beads import fill_gaps, learn_bead_template, track_beads
    from tomoforge.methods.align.solve import (
        MIN_LANDMARKS,
        MIN_VIEWS,
        TooFewLandmarksError,
        solve_fiducial_alignment,
    )
    from tomoforge.protocols.align.landmarks import write_landmarks

    v, p = job.views, job.params
    images = load_binned(v.sources, p.binning)
    tilts = np.asarray(v.tilts_deg)
    px = v.pixel_size_A * p.binning
    diameter_px = p.bead_diameter_nm * 10.0 / px
    # the beads as the data show them (CTF fringes, dark past the edge), one template for tracking and gaps
    template = learn_bead_template(images, diameter_px, threshold_sd=p.threshold_sd)
    track = track_beads(
        images,
        tilts,
        v.axis_deg,
        diameter_px,
        np.asarray(v.shifts_A) / px,
        max_beads=p.max_beads,
        threshold_sd=p.threshold_sd,
        template=template,
    )
    min_views = max(MIN_VIEWS, len(tilts) // 4)
    keep = np.isfinite(track[..., 0]).sum(axis=0) >= min_views
    if keep.sum() < MIN_LANDMARKS:
        message = too_few_beads_message(
            images, tilts, diameter_px, p, seeded=track.shape[1], kept=int(keep.sum()), min_views=min_views
        )
        raise TooFewLandmarksError(message)
    track = track[:, keep]
    first = solve_fiducial_alignment(track, tilts, v.axis_deg, px, rotation="single", tilt="fixed")
    track = fill_gaps(track, first.gap_free_px(px), images, diameter_px, template=template)
    n = write_landmarks(job.out_file, track, v.orders)
    return {"file": job.out_file, "n_landmarks": n, "pixel_size_A": px}


def too_few_beads_message(
    images: np.ndarray,
    tilts_deg: np.ndarray,
    diameter_px: float,
    params: FiducialModelParams,
    *,
    seeded: int,
    kept: int,
    min_views: int,
) -> str:
    """Why a fiducial model of (n, y, x) binned ``images`` has fewer beads than an alignment needs, with the
    strongest bead-like peak of the least tilted view (in the detection's SD units) and what to try."""
    import numpy as np

    from tomoforge.methods.align.beads import bead_score, detect_beads
    from tomoforge.methods.align.solve import MIN_LANDMARKS

    ref = int(np.argmin(np.abs(tilts_deg)))
    score = bead_score(images[ref], diameter_px).numpy()[0]
    _, heights = detect_beads(score, diameter_px, threshold_sd=-np.inf, max_count=1)
    best = f"{heights[0]:.1f}" if len(heights) else "none"
    return (
        f"{kept} gold bead(s) tracked through {min_views} views or more (an alignment needs {MIN_LANDMARKS}); "
        f"{seeded} found on the {tilts_deg[ref]:+.1f}° view above threshold_sd {params.threshold_sd:g} (its "
        f"strongest bead-like peak: {best} SD), bead diameter {params.bead_diameter_nm:g} nm = {diameter_px:.1f} px "
        f"at binning {params.binning:g}: check bead_diameter_nm, lower threshold_sd, bin less if a bead is under "
        "~4 px, or use patch-tracking for a specimen without gold"
    )


class FiducialModel(Protocol):
    """Fiducial model: detect gold beads on the lowest tilt and track them through the series."""

    name = "fiducial-model"
    citations = ("kremer1996", "mastronarde2017")
    Params = FiducialModelParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="tilt series (coarse-aligned helps)")}
    outputs = {"landmark_models": LandmarkModel}
    params: FiducialModelParams

    def tasks(self) -> Iterator[Task[Any]]:
        p = self.params

        def job(ts: TiltSeries) -> FiducialModelJob:
            views = view_geometry(ts, self.absolute, p.tilt_axis_angle_deg)
            return FiducialModelJob(views=views, params=p, out_file=str(self.out_path(f"{ts.name}_beads.tsv")))

        return series_tasks(self.input("tilt_series"), "track beads in", fiducial_model_task, job)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        self.emit(
            "landmark_models",
            LandmarkModel(
                name=task.key,
                file=self.relative(result["file"]),
                n_landmarks=result["n_landmarks"],
                diameter_nm=self.params.bead_diameter_nm,
                pixel_size_A=result["pixel_size_A"],
            ),
            task,
        )


class FiducialAlignmentParams(ProtocolParams):
    rotation: Literal["fixed", "single", "grouped", "per_view"] = param(
        "grouped", help="in-plane rotation solved as (grouped follows a drift of the axis)"
    )
    tilt: Literal["fixed", "grouped", "per_view"] = param("grouped", help="tilt-angle refinement")
    magnification: Literal["fixed", "grouped"] = param("fixed", help="relative magnification")
    group_size: int = param(5, ge=1, help="views per group of grouped variables")
    level: bool = param(True, help="choose the tilt offset that makes the beads level")
    outlier_px: float = param(2.0, gt=0, unit="px", help="drop observations off by more than this (at least)")
    tilt_axis_angle_deg: AngleDeg | None = param(None, unit="deg", help="override the starting tilt axis angle")


@dataclass(frozen=True, kw_only=True)
class FiducialAlignmentJob:
    """The job of ``fiducial_alignment_task``: a landmark table, the included views it belongs to, the
    params, and the residual and gap-free tables to write."""

    table: str
    tilts_deg: list[float]  # nominal tilts of the included views
    orders: list[int]  # their acquisition orders
    axis_deg: float  # starting tilt axis angle
    pixel_size_A: float  # Å/px of the landmark table's positions
    shifts_A: list[list[float]] | None = None  # current (x, y) shifts (Å): what a view with no bead keeps
    params: FiducialAlignmentParams
    out_file: str
    gap_free_file: str


def fiducial_alignment_task(job: FiducialAlignmentJob) -> dict[str, Any]:
    """Solve the projection model from a landmark table; write residual and gap-free tables. Views
    where no bead was kept take their current shift (``shifts_A``, e.g. the coarse alignment's).
    Returns per view ``y_tilt_deg``, ``z_rot_deg``, ``shifts_A`` (Å), and the fit's figures."""
    import numpy as np

    from tomoforge.methods.align.solve import check_landmarks, solve_fiducial_alignment
    from tomoforge.protocols.align.landmarks import read_landmarks, write_landmarks

    p, orders = job.params, job.orders
    positions = read_landmarks(job.table, orders)
    check_landmarks(
        positions,
        what="beads",
        advice=f"the landmark model {Path(job.table).name} is too sparse: make a new one "
        "(fiducial-model: check bead_diameter_nm, lower threshold_sd) or use patch-tracking",
    )
    prior = None if job.shifts_A is None else np.asarray(job.shifts_A, dtype=float) / job.pixel_size_A
    sol = solve_fiducial_alignment(
        positions,
        np.asarray(job.tilts_deg),
        job.axis_deg,
        job.pixel_size_A,
        rotation=p.rotation,
        tilt=p.tilt,
        magnification=p.magnification,
        group_size=p.group_size,
        level=p.level,
        outlier_px=p.outlier_px,
        prior_shifts_px=prior,
    )
    write_landmarks(job.out_file, positions, orders, sol.residuals_px)
    gap_free = sol.gap_free_px(job.pixel_size_A)
    gap_free[:, sol.dropped_beads] = np.nan
    write_landmarks(job.gap_free_file, gap_free, orders)
    m = sol.model
    return {
        "y_tilt_deg": m.tilt_deg.tolist(),
        "z_rot_deg": m.z_rot_deg.tolist(),
        "shifts_A": m.shift_A.tolist(),
        "magnification": m.magnification.tolist(),
        "rms_px": sol.rms_px,
        "view_rms_px": np.nan_to_num(sol.view_rms_px, nan=-1).tolist(),
        "dropped": [int(b) + 1 for b in sol.dropped_beads],
        "tilt_axis_deg": sol.tilt_axis_deg,
        "tilt_offset_deg": sol.tilt_offset_deg,
        "n_landmarks": int(positions.shape[1] - len(sol.dropped_beads)),
        "surfaces": int(len(set(sol.surface[sol.surface >= 0].tolist()))),
        "unobserved": [int(orders[v]) for v in sol.unobserved_views],
    }


class FiducialAlignment(Protocol):
    """Fiducial alignment: least-squares projection model from a landmark model (IMOD tiltalign)."""

    name = "fiducial-alignment"
    streaming = True  # a tilt series is aligned as soon as it and its landmark model are both there
    citations = ("kremer1996", "mastronarde2017")
    Params = FiducialAlignmentParams
    inputs = {
        "tilt_series": InputSpec(TiltSeries, help="tilt series the landmarks were tracked on"),
        "landmark_models": InputSpec(LandmarkModel, help="tracked beads, one model per tilt series"),
    }
    outputs = {"tilt_series": TiltSeries, "landmark_models": LandmarkModel}
    params: FiducialAlignmentParams

    def tasks(self) -> Iterator[Task[Any]]:
        p, series, models = self.params, self.input("tilt_series"), self.input("landmark_models")
        names = set(models.keys())
        for ts in each_series(series):
            if ts.name not in names:
                if not self.input_open("landmark_models"):  # streaming: it may still come
                    self.log(f"{ts.name}: no landmark model, skipped")
                continue
            views = included(ts)
            if not views:
                yield refusal(ts, "align", (origin_of(series, ts.name),))
                continue
            lm = cast(LandmarkModel, models.get(ts.name))
            job = FiducialAlignmentJob(
                table=str(self.absolute(lm.file)),
                tilts_deg=[t.tilt_angle_deg for t in views],
                orders=[t.acquisition_order for t in views],
                axis_deg=axis_of(ts, p.tilt_axis_angle_deg),
                pixel_size_A=lm.pixel_size_A,
                shifts_A=[[t.x_shift_A, t.y_shift_A] for t in views],
                params=p,
                out_file=str(self.out_path(f"{ts.name}_residuals.tsv")),
                gap_free_file=str(self.out_path(f"{ts.name}_gap_free.tsv")),
            )
            origin = (origin_of(series, ts.name), origin_of(models, ts.name))
            yield Task(fiducial_alignment_task, job, key=ts.name, origin=origin)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        ts = series_named(self.input("tilt_series"), task.key)
        lm = cast(LandmarkModel, self.input("landmark_models").get(task.key))
        self.emit("tilt_series", with_solution(ts, result), task)
        self.emit(
            "landmark_models",
            lm.model_copy(
                update={
                    "file": self.relative(task.job.out_file),
                    "has_residuals": True,
                    "n_landmarks": result["n_landmarks"],
                }
            ),
            task,
        )
        self.log(
            f"{ts.name}: residual {result['rms_px']:.3f} px, tilt axis {result['tilt_axis_deg']:.2f}°, "
            f"tilt offset {result['tilt_offset_deg']:.2f}°, dropped beads {result['dropped']}, "
            f"{result['surfaces']} surface(s)"
        )
        if result.get("unobserved"):
            self.log(
                f"{ts.name}: no bead kept in view(s) {result['unobserved']} (acquisition order): their shift "
                "is the input's, moved into this alignment's frame"
            )


__all__ = [
    "FiducialAlignment",
    "FiducialAlignmentJob",
    "FiducialAlignmentParams",
    "FiducialModel",
    "FiducialModelJob",
    "FiducialModelParams",
    "fiducial_alignment_task",
    "fiducial_model_task",
    "too_few_beads_message",
]
