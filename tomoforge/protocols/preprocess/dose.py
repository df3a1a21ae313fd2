"""Dose filter: each tilt image attenuated for its accumulated dose (Grant & Grigorieff 2015).

One task per tilt series (``dose_filter_task``) reads the stack and its odd/even halves, filters them with
``tomoforge.methods.preprocess.dose.filter_by_exposure`` and writes the new stacks into the run's out/ folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tomoforge.engine import ProtocolParams, Task, param
from tomoforge.model.quantities import VoltageKV
from tomoforge.protocols.base import PerTiltSeries
from tomoforge.protocols.tilt_stacks import restack, transform_stacks

if TYPE_CHECKING:
    import numpy as np

    from tomoforge.model import TiltSeries


@dataclass(frozen=True, kw_only=True)
class DoseFilterJob:
    """A tilt series to dose-filter: its image sources ({kind: [(file, index)]}), the output base path,
    pixel size (Å), voltage (kV) and each image's accumulated dose (e/Å², in the order of the sources)."""

    sources: dict[str, list[tuple[str, int]]]
    out_base: str
    pixel_size_A: float
    voltage_kV: float
    doses_e_A2: tuple[float, ...]


def dose_filter_task(job: DoseFilterJob) -> dict[str, Any]:
    """Task: Grant & Grigorieff exposure filter of each image for its accumulated dose (e/Å²)."""
    import torch

    from tomoforge.methods.preprocess.dose import filter_by_exposure

    def run(images: np.ndarray) -> tuple[np.ndarray, None]:
        filtered = filter_by_exposure(
            torch.from_numpy(images), job.doses_e_A2, job.pixel_size_A, voltage_kV=job.voltage_kV
        )
        return filtered.numpy(), None

    return transform_stacks(job.sources, job.out_base, job.pixel_size_A, run)


class DoseFilterParams(ProtocolParams):
    voltage_kV: VoltageKV | None = param(None, unit="kV", help="override the acquisition's voltage")


class DoseFilter(PerTiltSeries):
    """Dose filter: attenuate each tilt image by its accumulated dose (Grant & Grigorieff 2015)."""

    name = "dose-filter"
    citations = ("grant2015",)
    Params = DoseFilterParams
    params: DoseFilterParams

    def task_for(self, ts: TiltSeries, sources: dict[str, list[tuple[str, int]]], out_base: str) -> Task[DoseFilterJob]:
        if ts.dose_weighted:
            raise ValueError(f"tilt series {ts.name} is already dose-weighted")
        job = DoseFilterJob(
            sources=sources,
            out_base=out_base,
            pixel_size_A=ts.acquisition.pixel_size_A,
            voltage_kV=self.params.voltage_kV or ts.acquisition.voltage_kV,
            doses_e_A2=tuple(t.accumulated_dose_e_A2 for t in ts.tilt_images),
        )
        return Task(dose_filter_task, job, key=ts.name)

    def output_series(self, ts: TiltSeries, result: dict[str, Any]) -> TiltSeries:
        return restack(ts, result, self.relative, dose_weighted=True)
