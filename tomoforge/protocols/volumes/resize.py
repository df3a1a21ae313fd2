"""Resize a reference: rescale to a pixel size, recentre, crop/pad to a box, low-pass, invert contrast.

One task per input volume (``resize_task``) applies ``tomoforge.methods.volumes.resize`` in that order to
the map and its half maps; its mask follows the same rescaling, shift and box (clipped to [0, 1]), and is
neither filtered nor inverted. The shift that recentres the map moves its halves and mask alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.model.quantities import VoxelSizeA
from tomoforge.model.volume import Volume

KINDS = ("file", "half1_file", "half2_file", "mask_file")
SUFFIX = {"file": "", "half1_file": "_half1", "half2_file": "_half2", "mask_file": "_mask"}


class ResizeParams(ProtocolParams):
    pixel_size_A: VoxelSizeA | None = param(None, unit="Å/voxel", help="rescale to this voxel size (Fourier space)")
    box_size: int | None = param(None, ge=4, le=2048, unit="voxels", help="crop or pad to this cubic box")
    lowpass_A: float | None = param(None, gt=0, unit="Å", help="low-pass: the filter is 1/2 at this resolution")
    invert: bool = param(False, help="invert the contrast (a reference of dark protein made bright)")
    recentre: bool = param(False, help="move the centre of mass to the box centre")


@dataclass(frozen=True, kw_only=True)
class ResizeJob:
    """A map to resize: its files ({kind: absolute path}, kind in ``KINDS``), voxel size (Å), the output base
    path and the params."""

    files: dict[str, str]
    pixel_size_A: float
    out_base: str
    params: ResizeParams


def resize_task(job: ResizeJob) -> dict[str, Any]:
    """Task: resize the map (and halves, mask); returns {"files": {kind: path}, "pixel_size_A", "size_xyz",
    "shift_zyx" (voxels of the output, when recentred)}."""
    import torch

    from tomoforge.io.mrc import read_mrc, write_mrc
    from tomoforge.methods.volumes.resize import (
        crop_or_pad,
        invert_volume,
        lowpass_volume,
        recentre_volume,
        rescale_volume,
        shift_volume,
    )

    p = job.params
    maps = {kind: torch.from_numpy(read_mrc(path)) for kind, path in job.files.items()}
    shape = tuple(maps["file"].shape)
    for kind, v in maps.items():
        if v.ndim != 3 or tuple(v.shape) != shape:
            raise ValueError(f"{job.files[kind]}: shape {tuple(v.shape)} differs from the map's {shape}")
    pixel = job.pixel_size_A
    if p.pixel_size_A is not None and abs(p.pixel_size_A - pixel) > 1e-6 * pixel:
        rescaled = {kind: rescale_volume(v, pixel, p.pixel_size_A) for kind, v in maps.items()}
        maps = {kind: r.volume for kind, r in rescaled.items()}
        pixel = rescaled["file"].pixel_size_A
    shift = (0.0, 0.0, 0.0)
    if p.recentre:
        maps["file"], shift = recentre_volume(maps["file"])
        maps.update({k: shift_volume(v, shift) for k, v in maps.items() if k != "file"})
    if p.box_size is not None:
        box = (p.box_size,) * 3
        maps = {k: crop_or_pad(v, box, fill=0.0 if k == "mask_file" else None) for k, v in maps.items()}
    if p.lowpass_A is not None:
        maps.update({k: lowpass_volume(v, pixel, p.lowpass_A) for k, v in maps.items() if k != "mask_file"})
    if p.invert:
        maps.update({k: invert_volume(v) for k, v in maps.items() if k != "mask_file"})
    if "mask_file" in maps:
        maps["mask_file"] = maps["mask_file"].clamp(0.0, 1.0)
    out = {}
    for kind, v in maps.items():
        path = f"{job.out_base}{SUFFIX[kind]}.mrc"
        write_mrc(path, v.numpy(), pixel, overwrite=True)
        out[kind] = path
    nz, ny, nx = maps["file"].shape
    return {"files": out, "pixel_size_A": pixel, "size_xyz": (nx, ny, nz), "shift_zyx": shift}


class ResizeVolume(Protocol):
    """Resize references: rescale to a pixel size, recentre, crop/pad, low-pass, invert contrast."""

    name = "resize-volume"
    Params = ResizeParams
    inputs = {"volumes": InputSpec(Volume, help="maps to resize")}
    outputs = {"volumes": Volume}
    params: ResizeParams

    def tasks(self) -> Iterator[Task[ResizeJob]]:
        volumes = self.input("volumes")
        for item in volumes:
            assert isinstance(item, Volume)  # the input is declared InputSpec(Volume)
            files = {k: str(self.absolute(getattr(item, k))) for k in KINDS if getattr(item, k)}
            job = ResizeJob(
                files=files, pixel_size_A=item.pixel_size_A, out_base=str(self.out_path(item.name)), params=self.params
            )
            yield Task(resize_task, job, key=item.name, item=item, origin=(origin_of(volumes, item.name),))

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        item = task.item
        assert isinstance(item, Volume)
        files = {k: self.relative(path) for k, path in result["files"].items()}
        if self.params.recentre:
            self.log(f"{item.name}: recentred by {tuple(round(s, 2) for s in result['shift_zyx'])} voxels (z, y, x)")
        update = {**files, "pixel_size_A": result["pixel_size_A"], "size_xyz": result["size_xyz"], "fsc": None}
        self.emit("volumes", Volume.model_validate({**item.model_dump(), **update}), task)
