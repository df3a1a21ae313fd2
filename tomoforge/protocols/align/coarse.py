"""Coarse alignment protocol: shifts by stretched cross-correlation of neighbouring views, refined by
projection matching (see tomoforge.methods.align.coarse). Shifts are attached to the included views (Å);
the pixels are resampled only into the optional interpolated stack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import TiltSeries
from tomoforge.model.quantities import AngleDeg
from tomoforge.protocols.align.views import (
    ViewGeometry,
    axis_of,
    included,
    load_binned,
    series_named,
    series_tasks,
    view_geometry,
    with_alignment,
    write_view_residuals,
)

# The slab found against the views' attenuation: at this ratio or more the refinement is repeated over the
# attenuation's slab (and, if still there, a warning says so).
THICK_SLAB_RATIO = 1.8


class CoarseParams(ProtocolParams):
    binning: float = param(4.0, ge=1, help="bin the images by this factor before correlating")
    tilt_axis_angle_deg: AngleDeg | None = param(None, unit="deg", help="override the acquisition's tilt axis angle")
    cumulative: bool = param(True, help="correlate with the sum of the views aligned so far")
    refine_iterations: int = param(3, ge=0, help="rounds of projection matching after the chain (0: the chain alone)")
    axis_search_deg: float = param(
        2.0,
        ge=0,
        le=10,
        unit="deg",
        help="search the tilt axis within this of the given one by projection matching (0: keep it)",
    )
    scan_axis: bool = param(
        True,
        help="scan the tilt axis over 180° by stretched correlation and start from it when the given one is "
        "more than 6° off",
    )
    level: bool = param(True, help="find the tilt offset that levels the specimen (else keep the nominal tilts)")
    thickness_A: float | None = param(
        None, gt=0, unit="Å", help="specimen slab thickness for the reprojections (default: found from the data)"
    )
    low_cut_A: float = param(0.0, ge=0, unit="Å", help="remove features larger than this (0: a quarter of the image)")
    high_cut_A: float = param(40.0, gt=0, unit="Å", help="low-pass: period at which the gain is 1/e")
    mean_free_path_A: float = param(
        3500.0,
        gt=0,
        unit="Å",
        help="inelastic mean free path in the specimen (ice at 300 kV: about 3500 Å), to compare the slab found "
        "with the views' attenuation",
    )
    interpolated: bool = param(False, help="also write the aligned (interpolated) stack")
    interpolated_binning: float = param(4.0, ge=1, help="binning of the interpolated stack")


@dataclass(frozen=True, kw_only=True)
class CoarseJob:
    """The job of ``coarse_task``: one tilt series' included views, the params, where the interpolated
    stack goes ("" for none)."""

    views: ViewGeometry
    params: CoarseParams
    aligned_out: str = ""
    residuals_out: str = ""


def coarse_task(job: CoarseJob) -> dict[str, Any]:
    """Coarse shifts (Å, one (x, y) per view), the specimen slab thickness (Å) the refinement used and the
    RMS correction per refinement round (Å); writes the interpolated stack when ``aligned_out`` is set."""
    import numpy as np

    from tomoforge.io.mrc import write_mrc
    from tomoforge.methods.align.coarse import coarse_alignment
    from tomoforge.methods.align.transform import aligned_stack
    from tomoforge.protocols.tilt_stacks import read_images

    v, p = job.views, job.params
    images = load_binned(v.sources, p.binning)
    px = v.pixel_size_A * p.binning

    def align(thickness_px: float | None) -> Any:
        return coarse_alignment(
            images,
            np.asarray(v.tilts_deg),
            v.axis_deg,
            low_cut_px=p.low_cut_A / px if p.low_cut_A else 0.0,
            high_cut_px=p.high_cut_A / px,
            cumulative=p.cumulative,
            refine_iterations=p.refine_iterations,
            thickness_px=thickness_px,
            axis_range_deg=p.axis_search_deg if p.refine_iterations > 0 else 0.0,
            level=p.level,
            scan_axis=p.scan_axis,
        )

    res = align(p.thickness_A / px if p.thickness_A else None)
    found_A = None
    if not p.thickness_A and res.thickness_mfp is not None and res.thickness_px is not None:
        # A slab found far thicker than the views' attenuation says is the mark of a refinement that
        # started from a drifted chain and stayed there (a reprojection over the wrong slab matches the
        # drift): refine again over the slab the attenuation gives.
        attenuation_px = res.thickness_mfp * p.mean_free_path_A / px
        if res.thickness_px >= THICK_SLAB_RATIO * attenuation_px:
            found_A = res.thickness_px * px
            res = align(attenuation_px)
    shifts = res.shifts_px
    result: dict[str, Any] = {
        "shifts_A": (shifts * px).tolist(),
        "thickness_A": None if res.thickness_px is None else res.thickness_px * px,
        "step_rms_A": [r * px for r in res.step_rms_px],
        "tilt_axis_deg": v.axis_deg if res.tilt_axis_deg is None else res.tilt_axis_deg,
        "tilt_offset_deg": res.tilt_offset_deg,
        "view_residual_A": None if res.view_residual_px is None else (res.view_residual_px * px).tolist(),
        "view_score": None if res.view_score is None else res.view_score.tolist(),
        "given_axis_deg": v.axis_deg,
        "start_axis_deg": res.start_axis_deg,
        "scanned_axis_deg": None if res.axis_scan is None else res.axis_scan.best_deg,
        "scan_spread": None if res.axis_scan is None else float(np.ptp(res.axis_scan.scores)),
        "scan_masked": res.axis_scan is not None and res.axis_scan.masked,
        "chain_drift_A": None if res.chain_drift_px is None else (res.chain_drift_px * px).tolist(),
        "thickness_mfp": res.thickness_mfp,
        "implausible_thickness_A": found_A,
        "chain_source": res.chain_source,
        "chain_scores": res.candidate_scores,
        "chains_apart_A": None if res.chains_apart_px is None else res.chains_apart_px * px,
    }
    if job.residuals_out and res.view_residual_px is not None and res.view_score is not None:
        write_view_residuals(job.residuals_out, v, result["view_residual_A"], result["view_score"])
        result["residuals_file"] = job.residuals_out
    if job.aligned_out:
        full = read_images(v.sources)
        axes = np.full(len(v.tilts_deg), result["tilt_axis_deg"])
        out = aligned_stack(full, axes, shifts * p.binning, binning=p.interpolated_binning).numpy()
        write_mrc(job.aligned_out, out.astype(np.float32), v.pixel_size_A * p.interpolated_binning, overwrite=True)
        result["aligned_file"] = job.aligned_out
    return result


class CoarseAlignment(Protocol):
    """Coarse alignment: shifts by cross-correlation of neighbouring views with cosine stretching,
    refined by projection matching (each view against the reprojection of the others)."""

    name = "coarse-alignment"
    citations = ("kremer1996", "mastronarde2017")
    Params = CoarseParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="tilt series to align")}
    outputs = {"tilt_series": TiltSeries}
    params: CoarseParams

    def tasks(self) -> Iterator[Task[Any]]:
        p = self.params

        def job(ts: TiltSeries) -> CoarseJob:
            out = str(self.out_path(f"{ts.name}_aligned.mrc")) if p.interpolated else ""
            return CoarseJob(
                views=view_geometry(ts, self.absolute, p.tilt_axis_angle_deg),
                params=p,
                aligned_out=out,
                residuals_out=str(self.out_path(f"{ts.name}_view_residuals.tsv")),
            )

        return series_tasks(self.input("tilt_series"), "align", coarse_task, job)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        ts = series_named(self.input("tilt_series"), task.key)
        axis = result.get("tilt_axis_deg", axis_of(ts, self.params.tilt_axis_angle_deg))
        offset = result.get("tilt_offset_deg", 0.0)
        values = {
            t.acquisition_order: {
                "z_rot_deg": axis,
                "y_tilt_deg": t.tilt_angle_deg + offset,
                "x_shift_A": s[0],
                "y_shift_A": s[1],
            }
            for t, s in zip(included(ts), result["shifts_A"])
        }
        self.emit("tilt_series", with_alignment(ts, values), task)
        start, given = result.get("start_axis_deg"), result.get("given_axis_deg")
        if start is not None and given is not None and abs(start - given) > 1e-6:
            self.log(
                f"{ts.name}: WARNING: the tilt axis given ({given:.2f}°) is {abs(start - given):.0f}° from the one "
                f"the views' stretching shows ({start:.2f}°, scanned over 180°): aligned from the latter; check "
                "the acquisition's tilt axis convention (Tomography 5's TiltAxisAngle is not the angle from image Y)"
            )
        if result.get("scanned_axis_deg") is not None:
            self.log(
                f"{ts.name}: tilt-axis scan over 180°: best {result['scanned_axis_deg']:.2f}°, scores spread "
                f"{result['scan_spread']:.3f}"
                + (
                    " (scored without the views' outlying pixels: gold beads flatten the scores)"
                    if result.get("scan_masked")
                    else ""
                )
            )
        apart, scores = result.get("chains_apart_A"), result.get("chain_scores") or {}
        if apart is not None:
            kept = ""
            if scores:
                listed = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
                kept = f": refined both, kept the chain of the {result.get('chain_source')} (mean view score {listed})"
            self.log(
                f"{ts.name}: the chain of the views and the chain without their outliers (gold) are {apart:.0f} Å "
                f"apart (RMS){kept}"
            )
        drift = result.get("chain_drift_A")
        if drift:
            far = int(max(range(len(drift)), key=lambda i: drift[i]))
            self.log(
                f"{ts.name}: the correlation chain drifted from the projection-matching alignment by up to "
                f"{drift[far]:.0f} Å (at {included(ts)[far].tilt_angle_deg:.0f}°; RMS "
                f"{(sum(d * d for d in drift) / len(drift)) ** 0.5:.0f} Å)"
            )
        if result.get("thickness_A") is not None:
            steps = ", ".join(f"{r:.1f}" for r in result["step_rms_A"])
            self.log(
                f"{ts.name}: specimen slab {result['thickness_A']:.0f} Å thick; projection matching "
                f"corrections (RMS, Å) {steps}; tilt axis {axis:.2f}°, tilt offset {offset:.2f}°"
            )
        mfp, thick = result.get("thickness_mfp"), result.get("thickness_A")
        if mfp is not None and thick is not None:
            expected = mfp * self.params.mean_free_path_A
            ratio = thick / expected
            warn = "WARNING: " if not 0.55 < ratio < THICK_SLAB_RATIO else ""
            if result.get("implausible_thickness_A") is not None:
                self.log(
                    f"{ts.name}: the slab found first ({result['implausible_thickness_A']:.0f} Å) was "
                    f"{THICK_SLAB_RATIO}× or more the views' attenuation ({expected:.0f} Å): refined again over "
                    "the attenuation's slab"
                )
            self.log(
                f"{ts.name}: {warn}the slab found ({thick:.0f} Å) against the views' attenuation: {mfp:.2f} mean free "
                f"paths, {expected:.0f} Å for λ = {self.params.mean_free_path_A:.0f} Å"
                + (
                    " (a slab much thicker than that: the alignment may have drifted)"
                    if ratio >= THICK_SLAB_RATIO
                    else ""
                )
            )
        if result.get("view_residual_A") is not None:
            worst = sorted(zip(result["view_residual_A"], included(ts)), key=lambda r: -r[0])[:3]
            per_view = ", ".join(f"{t.tilt_angle_deg:.0f}°: {r:.1f} Å" for r, t in worst)
            self.log(
                f"{ts.name}: projection-matching residual per view in {result.get('residuals_file', '-')}; "
                f"largest {per_view}"
            )
        if result.get("aligned_file"):
            self.log(f"{ts.name}: interpolated stack {result['aligned_file']}")


__all__ = ["CoarseAlignment", "CoarseJob", "CoarseParams", "coarse_task"]
