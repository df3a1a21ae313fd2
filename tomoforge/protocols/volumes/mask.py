"""Create a mask: a sphere, a cylinder, or a map's density above a threshold (dilated), with a soft edge.

Lengths are in Å. The box and voxel size come from a reference (one mask per reference volume) or are
given (one mask). A threshold mask needs the reference: it is made from that map. With references, the
``volumes`` output holds each of them with its new mask attached (``mask_file``), as template matching and
averaging take them. The methods are ``tomoforge.methods.volumes.masks``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.protocol import ParamsError
from tomoforge.engine.sets import origin_of
from tomoforge.io.mrc import mrc_shape
from tomoforge.model.quantities import VoxelSizeA
from tomoforge.model.volume import Volume

Shape = Literal["sphere", "cylinder", "threshold"]


class MaskParams(ProtocolParams):
    shape: Shape = param("sphere", help="sphere, cylinder, or threshold (the reference map's density)")
    radius_A: float | None = param(None, gt=0, unit="Å", help="sphere or cylinder radius (the mask is 1 within)")
    height_A: float | None = param(None, gt=0, unit="Å", help="cylinder height")
    axis: Literal["z", "y", "x"] = param("z", help="cylinder axis")
    threshold: float | None = param(None, help="density above which the reference map is inside")
    dilation_A: float = param(0.0, ge=0, unit="Å", help="grow the thresholded map by this distance")
    edge_A: float = param(6.0, ge=0, unit="Å", help="width of the soft (raised-cosine) edge outside the shape")
    centre_A: tuple[float, float, float] = param(
        (0.0, 0.0, 0.0), unit="Å", help="(x, y, z) offset of the sphere or cylinder from the box centre"
    )
    box_size: int | None = param(None, ge=4, le=2048, unit="voxels", help="cubic box (without a reference)")
    pixel_size_A: VoxelSizeA | None = param(None, unit="Å/voxel", help="voxel size (without a reference)")


@dataclass(frozen=True, kw_only=True)
class MaskJob:
    """A mask to make: its box (z, y, x voxels), voxel size (Å), the reference map's path (threshold masks),
    the output file and the params."""

    box: tuple[int, int, int]
    pixel_size_A: float
    reference: str
    out_file: str
    params: MaskParams


def mask_task(job: MaskJob) -> dict[str, Any]:
    """Task: make and write the mask; returns {"file", "volume_A3" (Σ mask × voxel³), "size_xyz"}."""
    from tomoforge.io.mrc import read_mrc, write_mrc
    from tomoforge.methods.volumes.masks import cylinder_mask, mask_volume_A3, sphere_mask, threshold_mask

    p = job.params
    x, y, z = p.centre_A
    if p.shape == "sphere":
        assert p.radius_A is not None  # checked by the protocol
        mask = sphere_mask(job.box, job.pixel_size_A, p.radius_A, edge_A=p.edge_A, centre_A=(z, y, x))
    elif p.shape == "cylinder":
        assert p.radius_A is not None and p.height_A is not None
        mask = cylinder_mask(
            job.box, job.pixel_size_A, p.radius_A, p.height_A, axis=p.axis, edge_A=p.edge_A, centre_A=(z, y, x)
        )
    else:
        assert p.threshold is not None
        try:
            mask = threshold_mask(
                read_mrc(job.reference), job.pixel_size_A, p.threshold, dilation_A=p.dilation_A, edge_A=p.edge_A
            )
        except ValueError as exc:
            raise ParamsError(f"threshold: {exc} in {job.reference}") from None
    write_mrc(job.out_file, mask.numpy(), job.pixel_size_A, overwrite=True)
    nz, ny, nx = mask.shape
    return {"file": job.out_file, "volume_A3": mask_volume_A3(mask, job.pixel_size_A), "size_xyz": (nx, ny, nz)}


class CreateMask(Protocol):
    """Create masks: sphere, cylinder, or a reference's density above a threshold, with a soft edge (Å)."""

    name = "create-mask"
    Params = MaskParams
    inputs = {"reference": InputSpec(Volume, optional=True, help="maps giving box and voxel size (and density)")}
    outputs = {"masks": Volume, "volumes": Volume}  # volumes: each reference with its new mask attached
    params: MaskParams

    def _check(self) -> None:
        p = self.params
        needs = {"sphere": ("radius_A",), "cylinder": ("radius_A", "height_A"), "threshold": ("threshold",)}
        for field in needs[p.shape]:
            if getattr(p, field) is None:
                raise ParamsError(f"create-mask: {field} is required for a {p.shape} mask")
        if not self.has_input("reference"):
            if p.shape == "threshold":
                raise ParamsError("create-mask: a threshold mask needs the reference input (the map to threshold)")
            if p.box_size is None or p.pixel_size_A is None:
                raise ParamsError("create-mask: give box_size and pixel_size_A, or a reference input")

    def tasks(self) -> Iterator[Task[MaskJob]]:
        self._check()
        p = self.params
        if not self.has_input("reference"):
            assert p.box_size is not None and p.pixel_size_A is not None
            box = (p.box_size,) * 3
            job = MaskJob(
                box=box, pixel_size_A=p.pixel_size_A, reference="", out_file=str(self.out_path("mask.mrc")), params=p
            )
            yield Task(mask_task, job, key="mask")
            return
        references = self.input("reference")
        for item in references:
            assert isinstance(item, Volume)
            path = self.absolute(item.file)
            shape = mrc_shape(path)
            if len(shape) != 3:
                raise ParamsError(f"reference {item.name}: {path} is not a volume (shape {shape})")
            nz, ny, nx = shape
            box = (p.box_size,) * 3 if p.box_size is not None and p.shape != "threshold" else (nz, ny, nx)
            job = MaskJob(
                box=box,
                pixel_size_A=item.pixel_size_A,
                reference=str(path),
                out_file=str(self.out_path(f"{item.name}_mask.mrc")),
                params=p,
            )
            yield Task(mask_task, job, key=f"{item.name}_mask", item=item, origin=(origin_of(references, item.name),))

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        pixel = task.item.pixel_size_A if isinstance(task.item, Volume) else self.params.pixel_size_A
        self.log(f"{task.key}: {result['volume_A3'] / 1e3:.1f} nm³")
        mask = Volume(
            name=task.key,
            file=self.relative(result["file"]),
            pixel_size_A=pixel,
            size_xyz=result["size_xyz"],
            mask_file=self.relative(result["file"]),
        )
        self.emit("masks", mask, task)
        if isinstance(task.item, Volume):
            self.emit("volumes", task.item.model_copy(update={"mask_file": mask.file}), task)
