"""CTF correction of tilt series: phase flip or Wiener filter in strips parallel to the tilt axis.

One task per tilt series: it reads the stack (and its odd/even halves), corrects each view with its
CTF entry (matched by acquisition order in the CTF series of the same name) and the view's projection
model (ZRot, YTilt or the nominal tilt, XTilt, shifts; see tomoforge.methods.ctf.correct for the
geometry and the hand), and writes new stacks. Excluded views are passed through untouched; a view whose
CTF entry is excluded is corrected at the defocus interpolated (in tilt) from the included entries, or
left untouched (``excluded_ctf``). The alignment is kept; the output is marked ``ctf_corrected``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, cast

import numpy as np

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.methods.ctf.settings import CorrectionSettings, Method, Optics
from tomoforge.model import TiltSeries
from tomoforge.model.ctf import CTFSeries
from tomoforge.model.quantities import (
    AmplitudeContrast,
    SphericalAberrationMM,
    VoltageKV,
)
from tomoforge.protocols.ctf.common import acquisition_optics
from tomoforge.protocols.refuse import Refusal, refuse
from tomoforge.protocols.tilt_stacks import image_sources, restack

CORRECTION = CorrectionSettings()  # the method's defaults, shown as the parameters' defaults


class CTFCorrectionParams(ProtocolParams):
    method: Method = param(
        CORRECTION.method,
        help="flip the phases where the CTF is positive, or Wiener-filter (restores amplitudes too)",
    )
    defocus_tolerance_A: float | None = param(
        CORRECTION.defocus_tolerance_A,
        gt=0,
        unit="Å",
        help="largest difference between a pixel's "
        "defocus and the defocus it is corrected at (strips twice as wide); "
        "default: what turns the CTF phase by π/8 at Nyquist",
    )
    strip_width_px: int = param(
        CORRECTION.strip_width_px, ge=0, unit="px", help="also keep strips at most this wide (0: tolerance only)"
    )
    wiener_snr: float = param(
        CORRECTION.wiener_snr, gt=0, help="Wiener: spectral signal-to-noise ratio at low frequency"
    )
    wiener_b_factor_A2: float = param(
        CORRECTION.wiener_b_factor_A2, ge=0, unit="Å²", help="Wiener: the SNR falls as exp(−B k²/2)"
    )
    pad_px: int | None = param(
        CORRECTION.pad_px,
        ge=0,
        unit="px",
        help="pad each image with its mean by this much (default: how far the CTF spreads a point at Nyquist)",
    )
    handedness: Literal[1, -1] = param(
        CORRECTION.handedness,
        help="sign of the defocus gradient across a tilted view (−1: data of the other hand, as IMOD's -invert)",
    )
    excluded_ctf: Literal["interpolate", "untouched"] = param(
        "interpolate",
        help="a view whose CTF entry is excluded: corrected at the defocus interpolated from the "
        "included entries, or left untouched",
    )
    correct_halves: bool = param(True, help="also correct the odd/even half stacks (else they are dropped)")
    voltage_kV: VoltageKV | None = param(None, unit="kV", help="override the acquisition's voltage")
    cs_mm: SphericalAberrationMM | None = param(None, unit="mm", help="override the acquisition's spherical aberration")
    amplitude_contrast: AmplitudeContrast | None = param(None, help="override the acquisition's amplitude contrast")

    def correction_settings(self) -> CorrectionSettings:
        """The method's settings these parameters set (the others at the method's defaults)."""
        return replace(
            CORRECTION,
            method=self.method,
            defocus_tolerance_A=self.defocus_tolerance_A,
            strip_width_px=self.strip_width_px,
            wiener_snr=self.wiener_snr,
            wiener_b_factor_A2=self.wiener_b_factor_A2,
            pad_px=self.pad_px,
            handedness=self.handedness,
        )


@dataclass(frozen=True, kw_only=True)
class ViewCorrection:
    """How to correct one view (stack order): its projection model (degrees; shift x, y Å), acquisition
    order and nominal tilt, its CTF (defocus U, V Å, astigmatism angle and phase shift, degrees) and a note,
    or ``skip``: why it stays untouched."""

    tilt: float
    z_rot: float
    x_tilt: float
    shift: tuple[float, float]
    order: int
    nominal: float
    u: float = 1.0
    v: float = 1.0
    angle: float = 0.0
    phase: float = 0.0
    note: str = ""
    skip: str = ""


def view_corrections(ts: TiltSeries, ctf: CTFSeries, excluded_ctf: str) -> list[ViewCorrection]:
    """Per tilt image (stack order): what the task needs to correct it, or why it is skipped."""
    entries = {e.acquisition_order: e for e in ctf.entries}
    good = sorted((e for e in ctf.entries if not e.excluded), key=lambda e: e.tilt_angle_deg)
    model = ts.projection_model("all")
    views = []
    for i, t in enumerate(ts.tilt_images):
        geometry = ViewCorrection(
            tilt=float(model.tilt_deg[i]),
            z_rot=float(model.z_rot_deg[i]),
            x_tilt=float(model.x_tilt_deg[i]),
            shift=(float(model.shift_A[i][0]), float(model.shift_A[i][1])),
            order=t.acquisition_order,
            nominal=t.tilt_angle_deg,
        )
        if t.excluded:
            views.append(replace(geometry, skip="excluded view"))
            continue
        e = entries.get(t.acquisition_order)
        if e is None:
            raise ValueError(
                f"tilt series {ts.name}: view {t.acquisition_order} ({t.tilt_angle_deg:+.1f}°) has "
                f"no entry in CTF series {ctf.name}"
            )
        if not e.excluded:
            views.append(
                replace(
                    geometry, u=e.defocus_u_A, v=e.defocus_v_A, angle=e.astigmatism_angle_deg, phase=e.phase_shift_deg
                )
            )
        elif excluded_ctf == "untouched" or not good:
            views.append(replace(geometry, skip="CTF entry excluded"))
        else:
            angles = [g.tilt_angle_deg for g in good]
            nearest = min(good, key=lambda g: abs(g.tilt_angle_deg - e.tilt_angle_deg))
            mean = float(np.interp(e.tilt_angle_deg, angles, [g.defocus_A for g in good]))
            half = 0.5 * nearest.astigmatism_A
            views.append(
                replace(
                    geometry,
                    u=mean + half,
                    v=mean - half,
                    angle=nearest.astigmatism_angle_deg,
                    phase=nearest.phase_shift_deg,
                    note="CTF entry excluded: defocus interpolated",
                )
            )
    return views


@dataclass(frozen=True, kw_only=True)
class CTFCorrectionJob:
    """The job of ``ctf_correction_task``: the images of each stack kind (file, index), where to write,
    the pixel size (Å), each view's correction, the optics and the method's settings."""

    sources: dict[str, list[tuple[str, int]]]
    out_base: str
    pixel_size_A: float
    views: list[ViewCorrection]
    optics: Optics
    settings: CorrectionSettings


def ctf_correction_task(job: CTFCorrectionJob) -> dict[str, Any]:
    """Task: correct every view of the stack (and its halves), write the stacks; strips per view."""
    import torch

    from tomoforge.methods.ctf.correct import correct_ctf_stack
    from tomoforge.protocols.tilt_stacks import read_images, write_stack

    views = job.views
    stacks, strips = {}, []
    for kind, src in job.sources.items():
        corrected, counts = correct_ctf_stack(
            torch.from_numpy(read_images(src)),
            job.pixel_size_A,
            [v.u for v in views],
            [v.v for v in views],
            [v.angle for v in views],
            tilt_deg=[v.tilt for v in views],
            z_rot_deg=[v.z_rot for v in views],
            x_tilt_deg=[v.x_tilt for v in views],
            shifts_A=[v.shift for v in views],
            optics=job.optics,
            phase_shift_deg=[v.phase for v in views],
            settings=job.settings,
            skip=[bool(v.skip) for v in views],
        )
        stacks[kind] = write_stack(job.out_base, kind, corrected.numpy(), job.pixel_size_A)
        if kind == "file":
            strips = counts
    return {"stacks": stacks, "strips": strips}


class CTFCorrection(Protocol):
    """CTF correction: phase flip or Wiener filter of each view in strips of constant defocus (IMOD ctfphaseflip)."""

    name = "ctf-correction"
    streaming = True  # a tilt series is corrected as soon as it and its CTF series are both there
    citations = ("xiong2009",)
    Params = CTFCorrectionParams
    inputs: ClassVar = {
        "tilt_series": InputSpec(TiltSeries, help="tilt series to correct (aligned: the geometry is used)"),
        "ctf": InputSpec(CTFSeries, help="CTF series, one per tilt series (same name)"),
    }
    outputs: ClassVar = {"tilt_series": TiltSeries}

    def tasks(self) -> Iterator[Task[Any]]:
        p: CTFCorrectionParams = self.params
        series, ctfs = self.input("tilt_series"), self.input("ctf")
        names = set(ctfs.keys())
        settings = p.correction_settings()
        for ts in cast("Iterator[TiltSeries]", iter(series)):
            origin: tuple[str, ...] = (origin_of(series, ts.name),)
            if ts.name not in names:
                if self.input_open("ctf"):  # streaming: its CTF may still come
                    continue
                why = (
                    f"tilt series {ts.name}: no CTF series named {ts.name} in the ctf input "
                    f"(it has {', '.join(sorted(names)) or 'none'})"
                )
                yield Task(refuse, Refusal(message=why), key=ts.name, origin=origin)
                continue
            ctf = cast(CTFSeries, ctfs.get(ts.name))
            origin += (origin_of(ctfs, ts.name),)
            try:
                if ts.ctf_corrected:
                    raise ValueError(f"tilt series {ts.name} is already CTF-corrected")
                views = view_corrections(ts, ctf, p.excluded_ctf)
            except ValueError as exc:
                yield Task(refuse, Refusal(message=str(exc)), key=ts.name, origin=origin)
                continue
            acq = ts.acquisition
            sources = image_sources(ts, self.absolute)
            if not p.correct_halves:
                sources = {"file": sources["file"]}
            job = CTFCorrectionJob(
                sources=sources,
                out_base=str(self.out_path(ts.name)),
                pixel_size_A=acq.pixel_size_A,
                views=views,
                optics=acquisition_optics(acq, p.voltage_kV, p.cs_mm, p.amplitude_contrast),
                settings=settings,
            )
            yield Task(ctf_correction_task, job, key=ts.name, origin=origin)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        ts = cast(TiltSeries, self.input("tilt_series").get(task.key))
        ctf = cast(CTFSeries, self.input("ctf").get(task.key))
        views = view_corrections(ts, ctf, self.params.excluded_ctf)
        for v, n in zip(views, result["strips"]):
            what = (
                f"untouched ({v.skip})"
                if v.skip
                else f"defocus {v.u:.0f}/{v.v:.0f} Å at {v.angle:.1f}°, {n} strip{'s' if n != 1 else ''}"
                + (f"; {v.note}" if v.note else "")
            )
            self.log(f"{ts.name}: view {v.order} ({v.nominal:+.1f}°) {what}")
        self.emit("tilt_series", restack(ts, result, self.relative, ctf_corrected=True), task)
