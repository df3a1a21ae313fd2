"""CTF estimation protocol: one task per tilt series, on the raw (not dose-filtered) images.

The task reads the images, calls ``tomoforge.methods.ctf.estimate.estimate_tilt_series`` and writes
``<TS>_spectra.mrc`` (per-tilt spectra, data left and fitted model right, for a viewer),
``<TS>_ctf.png`` (defocus and fit resolution against tilt angle) and ``<TS>_spectra.png``. The
output is one CTFSeries per tilt series (one CTFTiltImage per tilt image, its exclusion flag copied),
with the hand check (is the defocus gradient across the tilted images the geometry's?).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.methods.ctf.settings import FitSettings, Optics
from tomoforge.model import CTFSeries, CTFTiltImage, TiltSeries
from tomoforge.model.quantities import (
    AmplitudeContrast,
    AngleDeg,
    DefocusA,
    SphericalAberrationMM,
    VoltageKV,
)
from tomoforge.protocols.ctf.common import acquisition_optics
from tomoforge.protocols.refuse import Refusal, no_view_message, refuse
from tomoforge.protocols.tilt_stacks import image_sources

FIT = FitSettings()  # the method's defaults, shown as the parameters' defaults


class CTFEstimationParams(ProtocolParams):
    box_A: float = param(FIT.box_A, gt=0, unit="Å", help="box of the tiled power spectra (px: this / pixel size)")
    box_px: int = param(
        FIT.box, ge=0, unit="px", help="box of the tiled power spectra in px, overriding box_A (0: off)"
    )
    resolution_low_A: float = param(FIT.resolution_low_A, gt=0, unit="Å", help="lowest resolution fitted")
    resolution_high_A: float = param(
        FIT.resolution_high_A, gt=0, unit="Å", help="highest resolution fitted (Nyquist at most)"
    )
    defocus_min_A: DefocusA = param(
        FIT.defocus_min_A, gt=0, unit="Å", help="lowest defocus searched (underfocus positive)"
    )
    defocus_max_A: DefocusA = param(FIT.defocus_max_A, gt=0, unit="Å", help="highest defocus searched")
    defocus_step_A: float = param(
        FIT.defocus_step_A, gt=0, unit="Å", help="grid step of the search (searched at ≤ 100 Å)"
    )
    find_phase_shift: bool = param(FIT.find_phase_shift, help="fit a phase shift (phase plate)")
    phase_shift_min_deg: float = param(FIT.phase_shift_min_deg, unit="deg", help="phase shift search: from")
    phase_shift_max_deg: float = param(FIT.phase_shift_max_deg, unit="deg", help="phase shift search: to")
    phase_shift_step_deg: float = param(FIT.phase_shift_step_deg, gt=0, unit="deg", help="phase shift search: step")
    use_nominal_defocus: bool = param(
        False, help="search around each image's nominal defocus (mdoc) instead of the series consensus"
    )
    search_window_A: float = param(
        FIT.window_A, gt=0, unit="Å", help="per-tilt search: ± this around the consensus (or the nominal defocus)"
    )
    astigmatism: Literal["series", "per-tilt"] = param(
        "series", help="one astigmatism for the series (fitted on the least-exposed tilts), or one per tilt"
    )
    erase_gold_sd: float = param(
        FIT.erase_threshold_sd,
        ge=0,
        unit="SD",
        help="erase gold beads and outliers beyond this many SDs before the spectra (0 = off)",
    )
    tilt_axis_angle_deg: AngleDeg | None = param(
        None, unit="deg", help="override the tilt axis angle (else the alignment's ZRot, else the acquisition's)"
    )
    voltage_kV: VoltageKV | None = param(None, unit="kV", help="override the acquisition's voltage")
    spherical_aberration_mm: SphericalAberrationMM | None = param(None, unit="mm", help="override the acquisition's Cs")
    amplitude_contrast: AmplitudeContrast | None = param(None, help="override the acquisition's amplitude contrast")

    def fit_settings(self) -> FitSettings:
        """The method's settings these parameters set (the others at the method's defaults)."""
        return FitSettings(
            box=self.box_px,
            box_A=self.box_A,
            resolution_low_A=self.resolution_low_A,
            resolution_high_A=self.resolution_high_A,
            defocus_min_A=self.defocus_min_A,
            defocus_max_A=self.defocus_max_A,
            defocus_step_A=self.defocus_step_A,
            find_phase_shift=self.find_phase_shift,
            phase_shift_min_deg=self.phase_shift_min_deg,
            phase_shift_max_deg=self.phase_shift_max_deg,
            phase_shift_step_deg=self.phase_shift_step_deg,
            window_A=self.search_window_A,
            erase_threshold_sd=self.erase_gold_sd,
        )


@dataclass(frozen=True, kw_only=True)
class SeriesGeometry:
    """Per tilt image (stack order): tilt angle and tilt axis angle (degrees), where the tomogram centre
    projects (x, y Å from the image centre), accumulated dose (e/Å²), nominal defocus (Å), exclusion."""

    tilt_angles_deg: list[float]
    tilt_axis_angle_deg: list[float]
    shifts_xy_A: list[tuple[float, float]]
    accumulated_dose: list[float]
    nominal_defocus_A: list[float | None]
    excluded: list[bool]


@dataclass(frozen=True, kw_only=True)
class CTFEstimationJob:
    """The job of ``ctf_estimation_task``: the images (file, index), their geometry and optics, the fit."""

    sources: list[tuple[str, int]]
    geometry: SeriesGeometry
    pixel_size_A: float
    optics: Optics
    settings: FitSettings
    use_nominal: bool
    astigmatism: Literal["series", "per-tilt"]
    out_base: str
    name: str


def ctf_estimation_task(job: CTFEstimationJob) -> dict[str, Any]:
    """Task: estimate the CTF of every image the job names; write the spectra stack and the plots."""
    import math

    import numpy as np
    import torch

    from tomoforge.io.mrc import write_mrc
    from tomoforge.methods.ctf.estimate import Optics as ImageOptics
    from tomoforge.methods.ctf.estimate import diagnostic_images, estimate_tilt_series
    from tomoforge.protocols.ctf.plots import defocus_plot, spectra_plot
    from tomoforge.protocols.tilt_stacks import read_images

    start = time.perf_counter()
    images = torch.from_numpy(read_images(job.sources))
    geometry, name = job.geometry, job.name
    opt = ImageOptics(job.pixel_size_A, job.optics.voltage_kV, job.optics.cs_mm, job.optics.amplitude_contrast)
    series = estimate_tilt_series(
        images,
        opt,
        geometry.tilt_angles_deg,
        geometry.tilt_axis_angle_deg,
        job.settings,
        accumulated_dose=geometry.accumulated_dose,
        nominal_defocus_A=geometry.nominal_defocus_A,
        use_nominal=job.use_nominal,
        astigmatism=job.astigmatism,
        shifts_xy_A=geometry.shifts_xy_A,
        excluded=geometry.excluded,
    )
    fits = series.fits
    diag = diagnostic_images(series.spectra, fits, opt, job.settings.resolution_low_A).numpy()
    spectra_file = write_mrc(f"{job.out_base}_spectra.mrc", diag.astype(np.float32), opt.pixel_size_A, overwrite=True)
    tilts = geometry.tilt_angles_deg
    plot_file = defocus_plot(
        f"{job.out_base}_ctf.png",
        name,
        tilts,
        [f.defocus_u_A for f in fits],
        [f.defocus_v_A for f in fits],
        [f.fit_resolution_A for f in fits],
        geometry.excluded,
        series.hand.message,
    )
    spectra_png = spectra_plot(
        f"{job.out_base}_spectra.png",
        name,
        diag,
        tilts,
        [f.defocus_A for f in fits],
        [f.fit_resolution_A for f in fits],
    )
    return {
        "entries": [
            {
                "defocus_u_A": f.defocus_u_A,
                "defocus_v_A": f.defocus_v_A,
                "astigmatism_angle_deg": f.astigmatism_angle_deg,
                "phase_shift_deg": f.phase_shift_deg,
                "fit_resolution_A": f.fit_resolution_A,
                "score": f.score,
                "score_gap": f.score_gap if math.isfinite(f.score_gap) else None,
                "ambiguous": f.ambiguous,
            }
            for f in fits
        ],
        "consensus_A": series.consensus_A,
        "warnings": [w for w in series.warnings if w.startswith("no clear Thon rings")],
        "hand_verdict": series.hand.verdict,
        "hand_message": series.hand.message,
        "measured_scale": series.hand.measured_scale,
        "spectra_file": str(spectra_file),
        "plot_file": plot_file,
        "spectra_plot_file": spectra_png,
        "seconds": time.perf_counter() - start,
    }


class CTFEstimation(Protocol):
    """CTF estimation: per-tilt defocus U/V, astigmatism, phase shift, fit resolution (tilted-specimen aware)."""

    name = "ctf-estimation"
    citations = ("rohou2015", "xiong2009")
    Params = CTFEstimationParams
    inputs: ClassVar = {"tilt_series": InputSpec(TiltSeries, help="raw (not dose-filtered) tilt series")}
    outputs: ClassVar = {"ctf": CTFSeries}

    def tasks(self) -> Iterator[Task[Any]]:
        p: CTFEstimationParams = self.params
        series = self.input("tilt_series")
        if p.resolution_high_A >= p.resolution_low_A:
            raise ValueError(
                f"resolution_high_A ({p.resolution_high_A}) must be below resolution_low_A ({p.resolution_low_A})"
            )
        if p.defocus_max_A <= p.defocus_min_A:
            raise ValueError(f"defocus_max_A ({p.defocus_max_A}) must exceed defocus_min_A ({p.defocus_min_A})")
        settings = p.fit_settings()
        for ts in cast("Iterator[TiltSeries]", iter(series)):
            origin = (origin_of(series, ts.name),)
            if not ts.included():
                why = Refusal(message=no_view_message(ts.name, "estimate the CTF of"))
                yield Task(refuse, why, key=ts.name, origin=origin)
                continue
            if ts.dose_weighted:
                self.log(f"{ts.name}: warning: the images are dose-weighted; CTF estimation wants the raw series")
            job = CTFEstimationJob(
                sources=image_sources(ts, self.absolute)["file"],
                geometry=self.geometry(ts),
                pixel_size_A=ts.acquisition.pixel_size_A,
                optics=acquisition_optics(
                    ts.acquisition, p.voltage_kV, p.spherical_aberration_mm, p.amplitude_contrast
                ),
                settings=settings,
                use_nominal=p.use_nominal_defocus,
                astigmatism=p.astigmatism,
                out_base=str(self.out_path(ts.name)),
                name=ts.name,
            )
            yield Task(ctf_estimation_task, job, key=ts.name, origin=origin)

    def geometry(self, ts: TiltSeries) -> SeriesGeometry:
        """Per tilt image: tilt angle (refined if aligned), tilt axis (override, else ZRot, else the
        acquisition's), where the tomogram centre projects (alignment shifts), dose, nominal defocus."""
        override = self.params.tilt_axis_angle_deg
        views = ts.tilt_images
        model = ts.projection_model("all")
        return SeriesGeometry(
            tilt_angles_deg=[float(a) for a in model.tilt_deg],
            tilt_axis_angle_deg=[float(a) for a in model.z_rot_deg]
            if override is None
            else [float(override)] * len(views),
            shifts_xy_A=[(float(x), float(y)) for x, y in model.shift_A],
            accumulated_dose=[t.accumulated_dose_e_A2 for t in views],
            nominal_defocus_A=[t.nominal_defocus_A for t in views],
            excluded=[t.excluded for t in views],
        )

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        ts = cast(TiltSeries, self.input("tilt_series").get(task.key))
        entries = []
        for t, e in zip(ts.tilt_images, result["entries"]):
            entries.append(
                CTFTiltImage(
                    acquisition_order=t.acquisition_order, tilt_angle_deg=t.tilt_angle_deg, excluded=t.excluded, **e
                )
            )
            self.log(
                f"{ts.name} view {t.acquisition_order} ({t.tilt_angle_deg:+.1f}°): defocus U {e['defocus_u_A']:.0f}"
                f" V {e['defocus_v_A']:.0f} Å at {e['astigmatism_angle_deg']:.1f}°, fit resolution "
                f"{e['fit_resolution_A']:.1f} Å, score {e['score']:.3f}"
                + ("" if e.get("score_gap") is None else f", gap {e['score_gap']:.1f} SD")
                + (" (ambiguous)" if e.get("ambiguous") else "")
                + (" (excluded)" if t.excluded else "")
            )
        self.log(f"{ts.name}: consensus defocus {result['consensus_A']:.0f} Å, {result['seconds']:.1f} s")
        for warning in result.get("warnings", []):
            self.log(f"{ts.name}: WARNING: {warning}")
        unsure = [
            f"{t.acquisition_order} ({t.tilt_angle_deg:+.1f}°)" for t, e in zip(ts.tilt_images, result["entries"])
        ]
        unsure = [v for v, e in zip(unsure, result["entries"]) if e.get("ambiguous")]
        if unsure:
            self.log(
                f"{ts.name}: WARNING: ambiguous CTF fit (score gap to the next candidate below the threshold) at "
                f"views {', '.join(unsure)}: check their spectra ({len(unsure)} of {len(result['entries'])})"
            )
        if result["hand_verdict"] == "opposite":
            self.log(f"{ts.name}: WARNING: {result['hand_message']}")
        else:
            self.log(f"{ts.name}: {result['hand_message']}")
        self.emit(
            "ctf",
            CTFSeries(
                name=ts.name,
                entries=entries,
                spectra_file=self.relative(result["spectra_file"]),
                plot_file=self.relative(result["plot_file"]),
                spectra_plot_file=self.relative(result["spectra_plot_file"]),
                hand_check=result["hand_verdict"],
            ),
            task,
        )
