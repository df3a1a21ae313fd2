"""Reconstruct tomogram: WBP or SIRT of each aligned tilt series, the alignment applied on the fly.

One task per tilt series (``reconstruct_task``): it reads the included views, bins them (Fourier crop),
reconstructs block by block along the tilt axis straight into the output MRC (memory-mapped, so the
tomogram need not fit in memory), and the odd/even halves when asked. Progress goes to the run's log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.io.log import append_log_line
from tomoforge.methods.reconstruct import settings as defaults
from tomoforge.model import TiltSeries, Tomogram
from tomoforge.protocols.refuse import Refusal, no_view_message, refuse
from tomoforge.protocols.tilt_stacks import image_sources

if TYPE_CHECKING:
    import numpy as np
    import torch

    from tomoforge.methods.align.projection_model import ProjectionModel


class ReconstructParams(ProtocolParams):
    method: Literal["wbp", "sirt"] = param("wbp", help="weighted back-projection or SIRT")
    iterations: int = param(defaults.SIRT_ITERATIONS, ge=1, help="SIRT iterations")
    relaxation: float = param(defaults.SIRT_RELAXATION, gt=0, lt=2, help="SIRT relaxation λ")
    binning: float = param(1.0, ge=1, help="bin the images by this (Fourier crop) first; the voxel is the binned pixel")
    thickness_A: float = param(2000.0, gt=0, unit="Å", help="tomogram thickness (z)")
    thickness_px: int | None = param(
        None, ge=1, unit="voxel", help="tomogram thickness in voxels (overrides thickness_A)"
    )
    size_x_px: int | None = param(None, ge=1, unit="voxel", help="width across the tilt axis (default: the image's)")
    size_y_px: int | None = param(None, ge=1, unit="voxel", help="length along the tilt axis (default: the image's)")
    x_shift_A: float = param(0.0, unit="Å", help="move the specimen in the tomogram along x (IMOD SHIFT x)")
    z_shift_A: float = param(0.0, unit="Å", help="move the specimen in the tomogram along z, + up (IMOD SHIFT z)")
    tilt_offset_deg: float = param(0.0, unit="deg", help="add to every tilt angle (IMOD OFFSET)")
    tilt_axis_offset_deg: float = param(0.0, unit="deg", help="add to every view's tilt axis angle (ZRot)")
    radial_cutoff: float = param(
        defaults.RADIAL_CUTOFF, gt=0, le=0.5, unit="cycles/px", help="WBP: ramp up to this (IMOD RADIAL)"
    )
    radial_falloff: float = param(
        defaults.RADIAL_FALLOFF, ge=0, unit="cycles/px", help="WBP: Gaussian fall-off SD beyond the cut-off"
    )
    sirt_like_iterations: int = param(
        defaults.SIRT_LIKE_ITERATIONS, ge=0, help="WBP: SIRT-like filter equivalent to this many iterations (0: off)"
    )
    oversampling: int = param(
        defaults.OVERSAMPLING, ge=1, le=4, help="WBP: upsample the filtered lines by this before interpolating"
    )
    invert: bool = param(False, help="invert the contrast (dark protein becomes bright)")
    odd_even: bool = param(
        False,
        help="also reconstruct the odd/even halves (from the odd/even frame sums when the "
        "tilt series has them, else from alternate views)",
    )
    memory_GB: float = param(defaults.MEMORY_GB, gt=0, unit="GB", help="memory for the projector and a block of rows")
    allow_unaligned: bool = param(False, help="reconstruct a tilt series that is not aligned (with a warning)")


def log_line(log_file: str, message: str) -> None:
    """Append a time-stamped line to the run log ``log_file`` from a worker (nothing when it is '')."""
    if log_file:
        append_log_line(log_file, message)


def write_volume(
    path: str, shape_zyx: tuple[int, int, int], voxel_size_A: float, fill: Callable[[np.ndarray], None]
) -> None:
    """Create the MRC ``path`` (float32, memory-mapped through a temporary file, renamed at the end) and
    let ``fill(data)`` write its (z, y, x) values."""
    import mrcfile

    from tomoforge.io.atomic import atomic_path

    with atomic_path(path) as tmp, mrcfile.new_mmap(tmp, shape=shape_zyx, mrc_mode=2, overwrite=True) as mrc:
        mrc.voxel_size = voxel_size_A
        fill(mrc.data)
        mrc.update_header_stats()


@dataclass(frozen=True, kw_only=True)
class ReconstructJob:
    """The job of ``reconstruct_task``: the included views of each stack kind (file, index), their
    projection model, the pixel size (Å), where to write, the parameters and the run log (or '')."""

    sources: dict[str, list[tuple[str, int]]]
    geometry: ProjectionModel
    pixel_size_A: float
    out_base: str
    params: ReconstructParams
    log_file: str = ""


def reconstruct_task(job: ReconstructJob) -> dict[str, Any]:
    """Task: reconstruct one tilt series into ``{out_base}.mrc`` (and ``_ODD``/``_EVN`` with ``odd_even``);
    returns the files, voxel size (Å), size (x, y, z) and origin (Å)."""
    import numpy as np
    import torch

    from tomoforge.methods.binning import bin_images, binned_pixel_size
    from tomoforge.methods.reconstruct.geometry import VolumeGeometry, default_volume_shape
    from tomoforge.methods.reconstruct.sirt import reconstruct_sirt
    from tomoforge.methods.reconstruct.wbp import reconstruct_wbp, split_views
    from tomoforge.protocols.tilt_stacks import read_images

    start = time.perf_counter()
    p, sources, log_file = job.params, job.sources, job.log_file
    name = Path(job.out_base).name
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    tilt = job.geometry.with_offsets(p.tilt_offset_deg, p.tilt_axis_offset_deg)
    raw = read_images(sources["file"])
    voxel = binned_pixel_size(job.pixel_size_A, raw.shape[-2:], p.binning)
    images = bin_images(raw, p.binning)
    del raw
    thickness = p.thickness_px or max(1, int(round(p.thickness_A / voxel)))
    shape = default_volume_shape(
        (int(images.shape[-2]), int(images.shape[-1])),
        float(np.median(tilt.z_rot_deg)),
        thickness,
        p.size_x_px,
        p.size_y_px,
    )
    volume = VolumeGeometry(shape, voxel, (-p.x_shift_A, 0.0, -p.z_shift_A))
    log_line(
        log_file,
        f"{name}: {tilt.n_views} views binned by {p.binning:g} to {voxel:.3f} Å/px on {device}; "
        f"{p.method.upper()} into {shape[2]} x {shape[1]} x {shape[0]} voxels (x, y, z)",
    )

    def run(views: torch.Tensor | np.ndarray, geometry: ProjectionModel, label: str) -> str:
        def progress(message: str) -> None:
            log_line(log_file, f"{name}{label}: {message}")

        def fill(data: np.ndarray) -> None:
            common: dict[str, Any] = {
                "invert": p.invert,
                "memory_GB": p.memory_GB,
                "out": data,
                "device": device,
                "progress": progress,
            }
            if p.method == "sirt":
                reconstruct_sirt(
                    views, voxel, geometry, volume, iterations=p.iterations, relaxation=p.relaxation, **common
                )
            else:
                reconstruct_wbp(
                    views,
                    voxel,
                    geometry,
                    volume,
                    cutoff=p.radial_cutoff,
                    falloff=p.radial_falloff,
                    sirt_like_iterations=p.sirt_like_iterations,
                    oversampling=p.oversampling,
                    **common,
                )

        path = f"{job.out_base}{label}.mrc"
        write_volume(path, shape, voxel, fill)
        return path

    result: dict[str, Any] = {
        "file": run(images, tilt, ""),
        "pixel_size_A": voxel,
        "size_xyz": shape[::-1],
        "origin_A": list(volume.centre_A),
    }
    if p.odd_even:
        if "odd_file" in sources and "even_file" in sources:
            halves = {
                "odd_file": (bin_images(read_images(sources["odd_file"]), p.binning), tilt),
                "even_file": (bin_images(read_images(sources["even_file"]), p.binning), tilt),
            }
            result["halves_from"] = "odd/even frame sums"
        else:
            odd, even = split_views(tilt.tilt_deg)
            halves = {"odd_file": (images[odd], tilt.subset(odd)), "even_file": (images[even], tilt.subset(even))}
            result["halves_from"] = "alternate views"
        for kind, (views, geometry) in halves.items():
            result[kind] = run(views, geometry, "_ODD" if kind == "odd_file" else "_EVN")
    result["seconds"] = time.perf_counter() - start
    log_line(log_file, f"{name}: done in {result['seconds']:.1f} s")
    return result


class ReconstructTomogram(Protocol):
    """Reconstruct tomogram: weighted back-projection (IMOD-style radial / SIRT-like filter) or SIRT."""

    name = "reconstruct-tomogram"
    citations = ("kremer1996", "radermacher1988", "gilbert1972", "zeng2012")
    Params = ReconstructParams
    inputs: ClassVar = {"tilt_series": InputSpec(TiltSeries, help="aligned tilt series")}
    outputs: ClassVar = {"tomograms": Tomogram}

    def tasks(self) -> Iterator[Task[Any]]:
        p: ReconstructParams = self.params
        series = self.input("tilt_series")
        log_file = str(self.context.run_dir / "run.log")
        for ts in cast("Iterator[TiltSeries]", iter(series)):
            origin = (origin_of(series, ts.name),)
            if not ts.included():
                yield Task(refuse, Refusal(message=no_view_message(ts.name, "reconstruct")), key=ts.name, origin=origin)
                continue
            if not ts.aligned and not ts.interpolated:
                if not p.allow_unaligned:
                    why = (
                        f"tilt series {ts.name} is not aligned (its tilt images have no projection "
                        "model): align it first, or set allow_unaligned"
                    )
                    yield Task(refuse, Refusal(message=why), key=ts.name, origin=origin)
                    continue
                self.log(f"WARNING {ts.name}: not aligned; reconstructing with the nominal tilts and tilt axis")
            sources = {
                kind: [s for s, t in zip(files, ts.tilt_images) if not t.excluded]
                for kind, files in image_sources(ts, self.absolute).items()
            }
            if p.odd_even and len(sources["file"]) < 2 and not {"odd_file", "even_file"} <= set(sources):
                why = (
                    f"tilt series {ts.name}: odd/even halves from alternate views need 2 included views, it has "
                    f"{len(sources['file'])} (and no odd/even frame sums): set odd_even false, or include more views"
                )
                yield Task(refuse, Refusal(message=why), key=ts.name, origin=origin)
                continue
            skipped = ts.n_images - len(ts.included())
            if skipped:
                self.log(f"{ts.name}: {skipped} excluded view(s) skipped")
            job = ReconstructJob(
                sources=sources,
                geometry=ts.projection_model(),
                pixel_size_A=ts.acquisition.pixel_size_A,
                out_base=str(self.out_path(ts.name)),
                params=p,
                log_file=log_file,
            )
            yield Task(reconstruct_task, job, key=ts.name, origin=origin)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        ts = cast(TiltSeries, self.input("tilt_series").get(task.key))
        halves = {k: self.relative(result[k]) for k in ("odd_file", "even_file") if k in result}
        self.emit(
            "tomograms",
            Tomogram(
                name=ts.name,
                file=self.relative(result["file"]),
                pixel_size_A=result["pixel_size_A"],
                size_xyz=tuple(result["size_xyz"]),
                binning=self.params.binning,
                origin_A=tuple(result["origin_A"]),
                tilt_series=ts.name,
                acquisition=ts.acquisition,
                **halves,
            ),
            task,
        )
        extra = f", odd/even from {result['halves_from']}" if halves else ""
        self.log(
            f"{ts.name}: tomogram {result['size_xyz']} voxels of {result['pixel_size_A']:.3f} Å "
            f"in {result['seconds']:.1f} s{extra}"
        )


__all__ = ["ReconstructJob", "ReconstructParams", "ReconstructTomogram", "reconstruct_task"]
