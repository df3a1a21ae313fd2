"""CTF correction of tilt series: phase flip or Wiener filter in strips parallel to the tilt axis.

One task per tilt series: it reads the stack (and its odd/even halves), corrects each view with its
CTF entry (matched by acquisition order in the CTF series of the same name) and the view's projection
model (ZRot, YTilt or the nominal tilt, XTilt, shifts; see tomoforge.methods.ctf.correct for the
geometry and the hand), and writes new stacks. Excluded views are passed through untouched; a view whose
CTF entry is excluded is corrected at the defocus interpolated (in tilt) from the included entries, or
left untouched (``excluded_ctf``). The alignment is kept; the output is marked ``ctf_corrected``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.methods.ctf.correct import CorrectionSettings, Optics, correct_ctf_stack
from tomoforge.model import TiltSeries
from tomoforge.model.ctf import CTFSeries
from tomoforge.model.quantities import (
    AmplitudeContrast,
    SphericalAberrationMM,
    VoltageKV,
)
from tomoforge.protocols.tilt_stacks import (
    image_sources,
    read_images,
    restack,
    write_stack,
)


class CTFCorrectionParams(ProtocolParams):
    method: Literal["phase-flip", "wiener"] = param(
        "phase-flip", help="flip the phases where the CTF is positive, or Wiener-filter (restores amplitudes too)"
    )
    defocus_tolerance_A: float | None = param(
        None,
        gt=0,
        unit="Å",
        help="largest difference between a pixel's "
        "defocus and the defocus it is corrected at (strips twice as wide); "
        "default: what turns the CTF phase by π/8 at Nyquist",
    )
    strip_width_px: int = param(0, ge=0, unit="px", help="also keep strips at most this wide (0: tolerance only)")
    wiener_snr: float = param(1.0, gt=0, help="Wiener: spectral signal-to-noise ratio at low frequency")
    wiener_b_factor_A2: float = param(0.0, ge=0, unit="Å²", help="Wiener: the SNR falls as exp(−B k²/2)")
    pad_px: int | None = param(
        None,
        ge=0,
        unit="px",
        help="pad each image with its mean by this much (default: how far the CTF spreads a point at Nyquist)",
    )
    handedness: Literal[1, -1] = param(
        1, help="sign of the defocus gradient across a tilted view (−1: data of the other hand, as IMOD's -invert)"
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


def missing_input(message: str) -> None:
    """Task for an item that cannot be processed: fails with ``message`` (only that item fails)."""
    raise ValueError(message)


def view_corrections(ts: TiltSeries, ctf: CTFSeries, excluded_ctf: str) -> list[dict[str, Any]]:
    """Per tilt image (stack order): what the task needs to correct it, or {'skip': reason}."""
    entries = {e.acquisition_order: e for e in ctf.entries}
    good = sorted((e for e in ctf.entries if not e.excluded), key=lambda e: e.tilt_angle_deg)
    model = ts.projection_model("all")
    views = []
    for i, t in enumerate(ts.tilt_images):
        tilt = float(model.tilt_deg[i])
        geometry = {
            "tilt": tilt,
            "z_rot": float(model.z_rot_deg[i]),
            "x_tilt": float(model.x_tilt_deg[i]),
            "shift": model.shift_A[i].tolist(),
            "order": t.acquisition_order,
            "nominal": t.tilt_angle_deg,
        }
        if t.excluded:
            views.append({**geometry, "skip": "excluded view"})
            continue
        e = entries.get(t.acquisition_order)
        if e is None:
            raise ValueError(
                f"tilt series {ts.name}: view {t.acquisition_order} ({t.tilt_angle_deg:+.1f}°) has "
                f"no entry in CTF series {ctf.name}"
            )
        values = {
            "u": e.defocus_u_A,
            "v": e.defocus_v_A,
            "angle": e.astigmatism_angle_deg,
            "phase": e.phase_shift_deg,
            "note": "",
        }
        if e.excluded:
            if excluded_ctf == "untouched" or not good:
                views.append({**geometry, "skip": "CTF entry excluded"})
                continue
            angles = [g.tilt_angle_deg for g in good]
            nearest = min(good, key=lambda g: abs(g.tilt_angle_deg - e.tilt_angle_deg))
            mean = float(np.interp(e.tilt_angle_deg, angles, [g.defocus_A for g in good]))
            half = 0.5 * nearest.astigmatism_A
            values = {
                "u": mean + half,
                "v": mean - half,
                "angle": nearest.astigmatism_angle_deg,
                "phase": nearest.phase_shift_deg,
                "note": "CTF entry excluded: defocus interpolated",
            }
        views.append({**geometry, **values, "skip": ""})
    return views


def ctf_correction_task(
    sources: dict,
    out_base: str,
    pixel_size_A: float,
    views: list[dict[str, Any]],
    optics: dict[str, float],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Task: correct every view of the stack (and its halves), write the stacks; strips per view."""
    skip = [bool(v["skip"]) for v in views]

    def per(key: str, default: Any = 0.0) -> list:
        return [default if v["skip"] else v[key] for v in views]

    stacks, strips = {}, []
    for kind, src in sources.items():
        corrected, counts = correct_ctf_stack(
            torch.from_numpy(read_images(src)),
            pixel_size_A,
            per("u", 1.0),
            per("v", 1.0),
            per("angle"),
            [v["tilt"] for v in views],
            [v["z_rot"] for v in views],
            [v["x_tilt"] for v in views],
            [v["shift"] for v in views],
            Optics(**optics),
            per("phase"),
            CorrectionSettings(**settings),
            skip,
        )
        stacks[kind] = write_stack(out_base, kind, corrected.numpy(), pixel_size_A)
        if kind == "file":
            strips = counts
    return {"stacks": stacks, "strips": strips}


class CTFCorrection(Protocol):
    """CTF correction: phase flip or Wiener filter of each view in strips of constant defocus (IMOD ctfphaseflip)."""

    name = "ctf-correction"
    streaming = True  # a tilt series is corrected as soon as it and its CTF series are both there
    citations = ("xiong2009",)
    Params = CTFCorrectionParams
    inputs = {
        "tilt_series": InputSpec(TiltSeries, help="tilt series to correct (aligned: the geometry is used)"),
        "ctf": InputSpec(CTFSeries, help="CTF series, one per tilt series (same name)"),
    }
    outputs = {"tilt_series": TiltSeries}

    def settings(self) -> dict[str, Any]:
        p = self.params
        return {
            "method": p.method,
            "defocus_tolerance_A": p.defocus_tolerance_A,
            "strip_width_px": p.strip_width_px,
            "wiener_snr": p.wiener_snr,
            "wiener_b_factor_A2": p.wiener_b_factor_A2,
            "pad_px": p.pad_px,
            "handedness": p.handedness,
        }

    def tasks(self):
        p, series, ctfs = self.params, self.input("tilt_series"), self.input("ctf")
        names = set(ctfs.keys())
        for ts in series:
            origin = (origin_of(series, ts.name),)
            if ts.name not in names:
                if self.input_open("ctf"):  # streaming: its CTF may still come
                    continue
                yield Task(
                    missing_input,
                    (
                        f"tilt series {ts.name}: no CTF series named {ts.name} in the ctf input "
                        f"(it has {', '.join(sorted(names)) or 'none'})",
                    ),
                    key=ts.name,
                    origin=origin,
                )
                continue
            ctf = ctfs.get(ts.name)
            origin += (origin_of(ctfs, ts.name),)
            try:
                if ts.ctf_corrected:
                    raise ValueError(f"tilt series {ts.name} is already CTF-corrected")
                views = view_corrections(ts, ctf, p.excluded_ctf)
            except ValueError as exc:
                yield Task(missing_input, (str(exc),), key=ts.name, origin=origin)
                continue
            acq = ts.acquisition
            optics = {
                "voltage_kV": p.voltage_kV or acq.voltage_kV,
                "cs_mm": acq.spherical_aberration_mm if p.cs_mm is None else p.cs_mm,
                "amplitude_contrast": acq.amplitude_contrast if p.amplitude_contrast is None else p.amplitude_contrast,
            }
            sources = image_sources(ts, self.absolute)
            if not p.correct_halves:
                sources = {"file": sources["file"]}
            yield Task(
                ctf_correction_task,
                (sources, str(self.out_path(ts.name)), acq.pixel_size_A, views, optics, self.settings()),
                key=ts.name,
                origin=origin,
            )

    def collect(self, task, result):
        ts = self.input("tilt_series").get(task.key)
        views = view_corrections(ts, self.input("ctf").get(task.key), self.params.excluded_ctf)
        for v, n in zip(views, result["strips"]):
            what = (
                f"untouched ({v['skip']})"
                if v["skip"]
                else f"defocus {v['u']:.0f}/{v['v']:.0f} Å at {v['angle']:.1f}°, {n} strip{'s' if n != 1 else ''}"
                + (f"; {v['note']}" if v["note"] else "")
            )
            self.log(f"{ts.name}: view {v['order']} ({v['nominal']:+.1f}°) {what}")
        self.emit("tilt_series", restack(ts, result, self.relative, ctf_corrected=True), task)
