"""Exclude views: tilt images flagged as excluded by list (acquisition order, tilt angle) or by criteria
(dark, blank, a jump of the shifts), or the stacks re-written without them.

One task per tilt series (``exclusion_task``) applies the image criteria and re-stacks when asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tomoforge.engine import ProtocolParams, Task, param
from tomoforge.model.quantities import TiltAngleDeg
from tomoforge.protocols.base import PerTiltSeries
from tomoforge.protocols.refuse import NothingToProcessError
from tomoforge.protocols.tilt_stacks import read_images, restack, write_stack

if TYPE_CHECKING:
    from tomoforge.model import TiltSeries


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


@dataclass(frozen=True, kw_only=True)
class ExclusionJob:
    """A tilt series' views to judge: image sources ({kind: [(file, index)]}), output base path, pixel size
    (Å), each view's exclusion so far (listed or inherited), its shift (x, y) in Å, and the params."""

    sources: dict[str, list[tuple[str, int]]]
    out_base: str
    pixel_size_A: float
    excluded: tuple[bool, ...]
    shifts_A: tuple[tuple[float, float], ...]
    params: ExcludeParams


def exclusion_task(job: ExclusionJob) -> dict[str, Any]:
    """Task: apply the image criteria to the views; re-stack without the excluded ones if asked."""
    p = job.params
    excluded = list(job.excluded)
    reasons = ["" for _ in excluded]
    need_images = p.dark_fraction > 0 or p.blank_fraction > 0 or p.restack
    images = read_images(job.sources["file"]) if need_images else None
    if images is not None and (p.dark_fraction > 0 or p.blank_fraction > 0):
        means, sds = images.mean(axis=(1, 2)), images.std(axis=(1, 2))
        dark = means < p.dark_fraction * np.median(means)
        blank = sds < p.blank_fraction * np.median(sds)
        for i in np.flatnonzero(dark | blank):
            excluded[i] = True
            reasons[i] = "dark" if dark[i] else "blank"
    if p.max_shift_jump_A > 0 and len(job.shifts_A) >= 3:
        s = np.asarray(job.shifts_A, float)
        local = np.stack([np.median(s[max(i - 2, 0) : i + 3], axis=0) for i in range(len(s))])
        jump = np.linalg.norm(s - local, axis=1) > p.max_shift_jump_A
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
    if p.restack:
        keep = [not e for e in excluded]
        for kind, src in job.sources.items():
            data = images if kind == "file" and images is not None else read_images(src)
            result["stacks"][kind] = write_stack(job.out_base, kind, data[np.asarray(keep, bool)], job.pixel_size_A)
    return result


class ExcludeViews(PerTiltSeries):
    """Exclude views: flag tilt images by list or by criteria (dark, blank, shift jump), or re-stack."""

    name = "exclude-views"
    Params = ExcludeParams
    params: ExcludeParams

    def task_for(self, ts: TiltSeries, sources: dict[str, list[tuple[str, int]]], out_base: str) -> Task[ExclusionJob]:
        p = self.params
        excluded: list[bool] = []
        for t in ts.tilt_images:
            listed = t.acquisition_order in p.acquisition_orders or any(
                abs(t.tilt_angle_deg - a) <= 0.05 for a in p.tilt_angles_deg
            )
            excluded.append(listed or (t.excluded and not p.restore))
        job = ExclusionJob(
            sources=sources,
            out_base=out_base,
            pixel_size_A=ts.acquisition.pixel_size_A,
            excluded=tuple(excluded),
            shifts_A=tuple((t.x_shift_A, t.y_shift_A) for t in ts.tilt_images),
            params=p,
        )
        return Task(exclusion_task, job, key=ts.name)

    def output_series(self, ts: TiltSeries, result: dict[str, Any]) -> TiltSeries:
        flags = result["excluded"]
        for t, why in zip(ts.tilt_images, result["reasons"]):
            if why:
                self.log(f"{ts.name}: view {t.acquisition_order} ({t.tilt_angle_deg:+.1f}°) excluded: {why}")
        if result["stacks"]:
            keep = [not f for f in flags]
            return restack(ts, {"stacks": result["stacks"]}, self.relative, keep=keep)
        images = [t.model_copy(update={"excluded": f}) for t, f in zip(ts.tilt_images, flags)]
        return ts.model_copy(update={"tilt_images": images})
