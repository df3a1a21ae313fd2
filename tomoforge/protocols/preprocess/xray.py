"""X-ray eraser: hot pixels and X-ray hits of every tilt image replaced by their local background.

One task per tilt series (``xray_task``) reads the stack and its odd/even halves, erases them with
``tomoforge.methods.preprocess.xray.erase_xrays`` and writes the new stacks into the run's out/ folder; the
number of hits of each image goes to its tilt image (``xray_count``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tomoforge.engine import ProtocolParams, Task, param
from tomoforge.methods.preprocess.settings import XRAY_DEFAULTS, Polarity, XraySettings
from tomoforge.protocols.base import PerTiltSeries
from tomoforge.protocols.tilt_stacks import restack, transform_stacks

if TYPE_CHECKING:
    import numpy as np

    from tomoforge.model import TiltSeries


class XrayParams(ProtocolParams):
    threshold_sd: float = param(
        XRAY_DEFAULTS.threshold_sd, gt=0, unit="SD", help="a peak stands out of the local noise by this much"
    )
    grow_sd: float = param(XRAY_DEFAULTS.grow_sd, gt=0, unit="SD", help="neighbours of a peak above this join it")
    max_radius_px: float = param(
        XRAY_DEFAULTS.max_radius_px, ge=0, unit="px", help="largest radius of a hit around its peak"
    )
    background_px: int = param(
        XRAY_DEFAULTS.background_px, ge=2, unit="px", help="half-width of the local background box"
    )
    polarity: Polarity = param(XRAY_DEFAULTS.polarity, help="bright outliers only, or dark (dead pixels) too")

    def settings(self) -> XraySettings:
        """These params as the method's options."""
        return XraySettings(**self.model_dump())


@dataclass(frozen=True, kw_only=True)
class XrayJob:
    """A tilt series to erase: its image sources ({kind: [(file, index)]}), the output base path, its pixel
    size (Å) and the eraser's options."""

    sources: dict[str, list[tuple[str, int]]]
    out_base: str
    pixel_size_A: float
    settings: XraySettings


def xray_task(job: XrayJob) -> dict[str, Any]:
    """Task: erase X-ray hits and hot pixels of every image; per image, the number of hits."""
    import torch

    from tomoforge.methods.preprocess.xray import erase_xrays

    def run(images: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        result = erase_xrays(torch.from_numpy(images), settings=job.settings)
        return result.images.numpy(), [{"xray_count": h} for h in result.hits]

    return transform_stacks(job.sources, job.out_base, job.pixel_size_A, run)


class XrayEraser(PerTiltSeries):
    """X-ray eraser: replace hot pixels and X-ray hits (local outliers) by their local background."""

    name = "xray-eraser"
    label = "X-ray eraser"
    citations = ("kremer1996",)
    Params = XrayParams
    params: XrayParams

    def task_for(self, ts: TiltSeries, sources: dict[str, list[tuple[str, int]]], out_base: str) -> Task[XrayJob]:
        job = XrayJob(
            sources=sources,
            out_base=out_base,
            pixel_size_A=ts.acquisition.pixel_size_A,
            settings=self.params.settings(),
        )
        return Task(xray_task, job, key=ts.name)

    def output_series(self, ts: TiltSeries, result: dict[str, Any]) -> TiltSeries:
        counts = [r["xray_count"] for r in result["per_image"]]
        self.log(f"{ts.name}: X-ray hits per image {counts}")
        return restack(ts, result, self.relative)
