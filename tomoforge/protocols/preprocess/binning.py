"""Preprocess tilt series: Fourier-crop binning, contrast inversion and normalisation of every tilt image.

One task per tilt series (``preprocess_task``) reads the stack and its odd/even halves, transforms them with
``tomoforge.methods.binning.preprocess_images`` and writes the new stacks (new pixel size) into the run's out/
folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tomoforge.engine import ProtocolParams, Task, param
from tomoforge.protocols.base import PerTiltSeries
from tomoforge.protocols.tilt_stacks import restack, transform_stacks

if TYPE_CHECKING:
    import numpy as np

    from tomoforge.model import TiltSeries


class PreprocessParams(ProtocolParams):
    binning: float = param(1.0, ge=1, help="Fourier-crop binning factor (any value ≥ 1)")
    normalise: Literal["none", "mean", "standardise"] = param(
        "none", help="per image: subtract the mean, or scale to mean 0 and SD 1"
    )
    invert: bool = param(False, help="invert the contrast (about each image's mean)")


@dataclass(frozen=True, kw_only=True)
class PreprocessJob:
    """A tilt series to bin/invert/normalise: its image sources ({kind: [(file, index)]}), the output base
    path, its pixel size (Å) and the protocol's params."""

    sources: dict[str, list[tuple[str, int]]]
    out_base: str
    pixel_size_A: float
    params: PreprocessParams


def preprocess_task(job: PreprocessJob) -> dict[str, Any]:
    """Task: bin (Fourier crop), invert, normalise every image; the result holds the new pixel size (Å)."""
    import torch

    from tomoforge.methods.binning import preprocess_images

    p = job.params

    def run(images: np.ndarray) -> tuple[np.ndarray, None]:
        out = preprocess_images(torch.from_numpy(images), factor=p.binning, normalise=p.normalise, invert=p.invert)
        return out.numpy(), None

    return transform_stacks(job.sources, job.out_base, job.pixel_size_A, run)


class PreprocessTiltSeries(PerTiltSeries):
    """Preprocess tilt series: Fourier-crop binning, contrast inversion, normalisation."""

    name = "preprocess-tilt-series"
    label = "preprocess / binning"
    Params = PreprocessParams
    params: PreprocessParams

    def task_for(self, ts: TiltSeries, sources: dict[str, list[tuple[str, int]]], out_base: str) -> Task[PreprocessJob]:
        job = PreprocessJob(
            sources=sources, out_base=out_base, pixel_size_A=ts.acquisition.pixel_size_A, params=self.params
        )
        return Task(preprocess_task, job, key=ts.name)

    def output_series(self, ts: TiltSeries, result: dict[str, Any]) -> TiltSeries:
        acquisition = ts.acquisition.model_copy(update={"pixel_size_A": result["pixel_size_A"]})
        return restack(ts, result, self.relative, acquisition=acquisition.model_dump())
