"""Preprocessing protocols over tilt series: X-ray eraser, dose filter, exclude views, binning.

Each runs one task per tilt series (a top-level function below, on file paths and plain params) that
reads the images, calls ``tomoforge.methods`` and writes new stacks (sorted by tilt angle, with the
odd/even halves when the input has them) into the run's out/ folder.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from tomoforge.engine import ProtocolParams, Task, param
from tomoforge.methods.binning import binned_pixel_size, preprocess_images
from tomoforge.methods.preprocess.dose import filter_by_exposure
from tomoforge.methods.preprocess.xray import erase_xrays
from tomoforge.model.quantities import TiltAngleDeg, VoltageKV
from tomoforge.protocols.base import PerTiltSeries
from tomoforge.protocols.refuse import NothingToProcessError
from tomoforge.protocols.tilt_stacks import (
    read_images,
    restack,
    write_stack,
)


def _write_all(sources: dict, out_base: str, pixel_size_A: float, fn) -> dict[str, Any]:
    """Apply ``fn(images (n, y, x)) -> (images, extra)`` to the stack and its halves; write them."""
    stacks, per_image = {}, None
    for kind, src in sources.items():
        images, extra = fn(read_images(src))
        stacks[kind] = write_stack(out_base, kind, images, pixel_size_A)
        if kind == "file":
            per_image = extra
    return {"stacks": stacks, "per_image": per_image}


# --- dose filter --------------------------------------------------------------------------------
def dose_filter_task(
    sources: dict, out_base: str, pixel_size_A: float, voltage_kV: float, doses_e_A2: list[float]
) -> dict[str, Any]:
    """Task: Grant & Grigorieff exposure filter of each image for its accumulated dose (e/Å²)."""

    def run(images: np.ndarray):
        return filter_by_exposure(torch.from_numpy(images), doses_e_A2, pixel_size_A, voltage_kV).numpy(), None

    return _write_all(sources, out_base, pixel_size_A, run)


class DoseFilterParams(ProtocolParams):
    voltage_kV: VoltageKV | None = param(None, unit="kV", help="override the acquisition's voltage")


class DoseFilter(PerTiltSeries):
    """Dose filter: attenuate each tilt image by its accumulated dose (Grant & Grigorieff 2015)."""

    name = "dose-filter"
    citations = ("grant2015",)
    Params = DoseFilterParams

    def task_for(self, ts, sources, out_base):
        if ts.dose_weighted:
            raise ValueError(f"tilt series {ts.name} is already dose-weighted")
        doses = [t.accumulated_dose_e_A2 for t in ts.tilt_images]
        voltage = self.params.voltage_kV or ts.acquisition.voltage_kV
        return Task(dose_filter_task, (sources, out_base, ts.acquisition.pixel_size_A, voltage, doses), key=ts.name)

    def output_series(self, ts, result):
        return restack(ts, result, self.relative, dose_weighted=True)


# --- X-ray eraser -------------------------------------------------------------------------------
class XrayParams(ProtocolParams):
    threshold_sd: float = param(4.2, gt=0, unit="SD", help="a peak stands out of the local noise by this much")
    grow_sd: float = param(3.0, gt=0, unit="SD", help="neighbours of a peak above this join it")
    max_radius_px: float = param(2.5, ge=0, unit="px", help="largest radius of a hit around its peak")
    background_px: int = param(6, ge=2, unit="px", help="half-width of the local background box")
    polarity: Literal["bright", "both"] = param("bright", help="bright outliers only, or dark (dead pixels) too")


def xray_task(sources: dict, out_base: str, pixel_size_A: float, params: dict[str, Any]) -> dict[str, Any]:
    """Task: erase X-ray hits and hot pixels of every image; per image, the number of hits."""

    def run(images: np.ndarray):
        result = erase_xrays(torch.from_numpy(images), **params)
        return result.images.numpy(), [{"xray_count": h} for h in result.hits]

    return _write_all(sources, out_base, pixel_size_A, run)


class XrayEraser(PerTiltSeries):
    """X-ray eraser: replace hot pixels and X-ray hits (local outliers) by their local background."""

    name = "xray-eraser"
    label = "X-ray eraser"
    citations = ("kremer1996",)
    Params = XrayParams

    def task_for(self, ts, sources, out_base):
        return Task(xray_task, (sources, out_base, ts.acquisition.pixel_size_A, self.params.model_dump()), key=ts.name)

    def output_series(self, ts, result):
        counts = [r["xray_count"] for r in result["per_image"]]
        self.log(f"{ts.name}: X-ray hits per image {counts}")
        return restack(ts, result, self.relative)


# --- binning / preprocess -----------------------------------------------------------------------
class PreprocessParams(ProtocolParams):
    binning: float = param(1.0, ge=1, help="Fourier-crop binning factor (any value ≥ 1)")
    normalise: Literal["none", "mean", "standardise"] = param(
        "none", help="per image: subtract the mean, or scale to mean 0 and SD 1"
    )
    invert: bool = param(False, help="invert the contrast (about each image's mean)")


def preprocess_task(
    sources: dict, out_base: str, pixel_size_A: float, binning: float, normalise: str, invert: bool
) -> dict[str, Any]:
    """Task: bin (Fourier crop), invert, normalise every image; returns the new pixel size (Å)."""
    shape: tuple[int, int] = (0, 0)
    new_pixel = pixel_size_A

    def run(images: np.ndarray):
        nonlocal shape, new_pixel
        shape = images.shape[-2:]
        new_pixel = binned_pixel_size(pixel_size_A, shape, binning)
        return preprocess_images(torch.from_numpy(images), binning, normalise, invert).numpy(), None

    stacks, per_image = {}, None
    for kind, src in sources.items():
        images, _ = run(read_images(src))
        stacks[kind] = write_stack(out_base, kind, images, new_pixel)
    return {"stacks": stacks, "per_image": per_image, "pixel_size_A": new_pixel}


class PreprocessTiltSeries(PerTiltSeries):
    """Preprocess tilt series: Fourier-crop binning, contrast inversion, normalisation."""

    name = "preprocess-tilt-series"
    label = "preprocess / binning"
    Params = PreprocessParams

    def task_for(self, ts, sources, out_base):
        p = self.params
        return Task(
            preprocess_task,
            (sources, out_base, ts.acquisition.pixel_size_A, p.binning, p.normalise, p.invert),
            key=ts.name,
        )

    def output_series(self, ts, result):
        acquisition = ts.acquisition.model_copy(update={"pixel_size_A": result["pixel_size_A"]})
        return restack(ts, result, self.relative, acquisition=acquisition.model_dump())


# --- exclude views --------------------------------------------------------------------------------
class ExcludeParams(ProtocolParams):
    acquisition_orders: list[int] = param([], help="exclude these views (acquisition order, 1 = first)")
    tilt_angles_deg: list[TiltAngleDeg] = param([], unit="deg", help="exclude the views at these tilts (±0.05°)")
    dark_fraction: float = param(
        0.0, ge=0, lt=1, help="exclude a view whose mean is below this fraction of the series' median mean (0 = off)"
    )
    blank_fraction: float = param(
        0.0, ge=0, lt=1, help="exclude a view whose SD is below this fraction of the series' median SD (0 = off)"
    )
    max_shift_jump_A: float = param(
        0.0,
        ge=0,
        unit="Å",
        help="exclude a view whose shift differs from the median of the 5 views around it by more than this (0 = off)",
    )
    restore: bool = param(False, help="first clear every exclusion of the input")
    restack: bool = param(False, help="write new stacks without the excluded views (they leave the series)")


def exclusion_task(
    sources: dict,
    out_base: str,
    pixel_size_A: float,
    excluded: list[bool],
    shifts_A: list[tuple[float, float]],
    criteria: dict[str, float],
    restack_: bool,
) -> dict:
    """Task: apply the image criteria to the views; re-stack without the excluded ones if asked."""
    excluded = list(excluded)
    reasons = ["" for _ in excluded]
    need_images = criteria["dark_fraction"] > 0 or criteria["blank_fraction"] > 0 or restack_
    images = read_images(sources["file"]) if need_images else None
    if images is not None and (criteria["dark_fraction"] > 0 or criteria["blank_fraction"] > 0):
        means, sds = images.mean(axis=(1, 2)), images.std(axis=(1, 2))
        dark = means < criteria["dark_fraction"] * np.median(means)
        blank = sds < criteria["blank_fraction"] * np.median(sds)
        for i in np.flatnonzero(dark | blank):
            excluded[i] = True
            reasons[i] = "dark" if dark[i] else "blank"
    if criteria["max_shift_jump_A"] > 0 and len(shifts_A) >= 3:
        s = np.asarray(shifts_A, float)
        local = np.stack([np.median(s[max(i - 2, 0) : i + 3], axis=0) for i in range(len(s))])
        jump = np.linalg.norm(s - local, axis=1) > criteria["max_shift_jump_A"]
        for i in np.flatnonzero(jump):
            excluded[i] = True
            reasons[i] = reasons[i] or "shift jump"
    if excluded and all(excluded):
        labels = {"": "listed or excluded before", "dark": "dark", "blank": "blank", "shift jump": "shift jump"}
        why = ", ".join(f"{reasons.count(k)} {label}" for k, label in labels.items() if k in reasons)
        raise NothingToProcessError(
            f"every one of the {len(excluded)} views would be excluded ({why}): nothing would "
            "be left to align or reconstruct; shorten acquisition_orders/tilt_angles_deg, "
            "set restore, or loosen dark_fraction, blank_fraction or max_shift_jump_A"
        )
    result: dict[str, Any] = {"excluded": excluded, "reasons": reasons, "stacks": {}}
    if restack_:
        keep = [not e for e in excluded]
        for kind, src in sources.items():
            data = images if kind == "file" else read_images(src)
            result["stacks"][kind] = write_stack(out_base, kind, data[np.asarray(keep, bool)], pixel_size_A)
    return result


class ExcludeViews(PerTiltSeries):
    """Exclude views: flag tilt images by list or by criteria (dark, blank, shift jump), or re-stack."""

    name = "exclude-views"
    Params = ExcludeParams

    def task_for(self, ts, sources, out_base):
        p = self.params
        excluded = []
        for t in ts.tilt_images:
            listed = t.acquisition_order in p.acquisition_orders or any(
                abs(t.tilt_angle_deg - a) <= 0.05 for a in p.tilt_angles_deg
            )
            excluded.append(listed or (t.excluded and not p.restore))
        shifts = [(t.x_shift_A, t.y_shift_A) for t in ts.tilt_images]
        criteria = p.model_dump(include={"dark_fraction", "blank_fraction", "max_shift_jump_A"})
        return Task(
            exclusion_task,
            (sources, out_base, ts.acquisition.pixel_size_A, excluded, shifts, criteria, p.restack),
            key=ts.name,
        )

    def output_series(self, ts, result):
        flags = result["excluded"]
        for t, why in zip(ts.tilt_images, result["reasons"]):
            if why:
                self.log(f"{ts.name}: view {t.acquisition_order} ({t.tilt_angle_deg:+.1f}°) excluded: {why}")
        if result["stacks"]:
            keep = [not f for f in flags]
            return restack(ts, {"stacks": result["stacks"]}, self.relative, keep=keep)
        images = [t.model_copy(update={"excluded": f}) for t, f in zip(ts.tilt_images, flags)]
        return ts.model_copy(update={"tilt_images": images})
