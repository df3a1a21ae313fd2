"""local-resolution: a map of resolution (Å) per voxel from the windowed FSC between a map's half maps
(``methods.sta.local_resolution``); written as an MRC beside a Volume that points to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model.volume import Volume
from tomoforge.protocols.sta.halves import volumes_with_halves


class LocalResolutionParams(ProtocolParams):
    window_px: int = param(16, ge=6, unit="voxel", help="side of the FSC window")
    step_px: int = param(2, ge=1, unit="voxel", help="spacing of the window centres")
    threshold: float = param(0.143, gt=0, lt=1, help="FSC threshold")


@dataclass(frozen=True, kw_only=True)
class LocalResolutionJob:
    """The job of ``local_resolution_task``: the half maps, pixel size, output path and params."""

    half1: str
    half2: str
    pixel_size_A: float
    out_file: str
    params: LocalResolutionParams


def local_resolution_task(job: LocalResolutionJob) -> dict[str, Any]:
    """Task: the resolution map into ``out_file``; returns its median and range (Å)."""
    import numpy as np

    from tomoforge.io.mrc import read_mrc, write_mrc
    from tomoforge.methods.sta.local_resolution import local_resolution

    p = job.params
    res = local_resolution(
        read_mrc(job.half1),
        read_mrc(job.half2),
        job.pixel_size_A,
        window_px=p.window_px,
        step_px=p.step_px,
        threshold=p.threshold,
    ).numpy()
    write_mrc(job.out_file, res, job.pixel_size_A, overwrite=True)
    return {"file": job.out_file, "median_A": float(np.median(res)), "range_A": [float(res.min()), float(res.max())]}


class LocalResolution(Protocol):
    """Local resolution: windowed FSC between half maps, a map of resolution per voxel."""

    name = "local-resolution"
    Params = LocalResolutionParams
    inputs: ClassVar = {"volumes": InputSpec(Volume, help="maps with their two half maps")}
    outputs: ClassVar = {"volumes": Volume}
    params: LocalResolutionParams

    def tasks(self) -> Iterator[Task[Any]]:
        for volume, refusal in volumes_with_halves(self, "local resolution"):
            if refusal is not None:
                yield refusal
                continue
            job = LocalResolutionJob(
                half1=str(self.absolute(volume.half1_file)),
                half2=str(self.absolute(volume.half2_file)),
                pixel_size_A=volume.pixel_size_A,
                out_file=str(self.out_path(f"{volume.name}_local_resolution.mrc")),
                params=self.params,
            )
            yield Task(local_resolution_task, job, key=volume.name)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        source = cast(Volume, self.input("volumes").get(task.key))
        volume = Volume(
            name=f"{source.name}_local_resolution",
            file=self.relative(result["file"]),
            pixel_size_A=source.pixel_size_A,
            symmetry=source.symmetry,
        )
        self.emit("volumes", volume, task)
        low, high = result["range_A"]
        self.log(f"{source.name}: local resolution median {result['median_A']:.1f} Å, from {low:.1f} to {high:.1f} Å")


__all__ = ["LocalResolution", "LocalResolutionJob", "LocalResolutionParams", "local_resolution_task"]
