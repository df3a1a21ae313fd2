"""Weighted back-projection (WBP) of an aligned tilt series, block by block along the tilt axis.

Each view is read along lines perpendicular to the tilt axis (alignment applied on the fly, bilinear),
the lines are weighted (IMOD RADIAL ramp with cut-off and Gaussian fall-off, optionally the SIRT-like
filter) and each voxel takes, in every view, the linearly interpolated value of its line at its τ.
With the ramp and each view weighted by the angle it stands for, the tomogram is in the units of the
images per voxel length: a view is then ≈ the sum of the voxels along the beam (Kak & Slaney 1988).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.reconstruct import settings as defaults
from tomoforge.methods.reconstruct.backproject import LineProjector, projector_bytes
from tomoforge.methods.reconstruct.geometry import VolumeGeometry, angular_weights
from tomoforge.methods.reconstruct.lines import LinePlan, Views, plan_lines, sample_lines, views_and_plan
from tomoforge.methods.reconstruct.slabs import (
    Progress,
    RowCounter,
    Volume,
    VolumeSink,
    report,
    row_blocks,
    rows_per_block,
    run_blocks,
    single_threaded_torch,
)
from tomoforge.methods.reconstruct.weighting import filter_lines, padded_length, wbp_filters


def reconstruct_wbp(
    images: torch.Tensor | np.ndarray | Views,
    pixel_size_A: float,
    geometry: ProjectionModel,
    volume: VolumeGeometry,
    *,
    cutoff: float = defaults.RADIAL_CUTOFF,
    falloff: float = defaults.RADIAL_FALLOFF,
    sirt_like_iterations: int = defaults.SIRT_LIKE_ITERATIONS,
    oversampling: int = defaults.OVERSAMPLING,
    taper_px: int | None = None,
    invert: bool = False,
    subtract_mean: bool = True,
    memory_GB: float = defaults.MEMORY_GB,
    rows_per_chunk: int | None = None,
    out: Volume | None = None,
    progress: Progress | None = None,
    device: torch.device | str | None = None,
) -> Volume:
    """The WBP tomogram (z, y, x) of ``images`` (n_views, y, x; pixel ``pixel_size_A`` = the voxel size).

    ``cutoff``/``falloff``: IMOD RADIAL (cycles/pixel); ``sirt_like_iterations`` > 0: IMOD's SIRT-like
    filter equivalent to that many SIRT iterations; ``oversampling``: lines are upsampled by this before
    the voxels interpolate them; ``taper_px``: border taper of the views (None: 1/64 of their size);
    ``invert``: invert the contrast. Works in blocks of rows that fit ``memory_GB`` with the projector;
    ``out``: a (z, y, x) array to write the rows into (e.g. a memmap; returned), else a new tensor.
    When the projector alone would take over half of ``memory_GB``, the tomogram is done in parts along
    z (exact: a voxel's value depends on no other voxel). ``images`` may also be ``Views``.
    ``progress``: called with messages (set-up, every tenth of the rows).
    """
    workers = torch.get_num_threads()  # shared out as blocks; torch itself single-threaded meanwhile
    with single_threaded_torch():
        views, plan = views_and_plan(
            images,
            geometry,
            volume,
            pixel_size_A,
            oversampling=oversampling,
            taper_px=taper_px,
            invert=invert,
            subtract_mean=subtract_mean,
            device=device,
        )
        dev = views.device
        n_pad = padded_length(plan.n_tau)
        filters = torch.as_tensor(
            wbp_filters(
                n_pad,
                geometry.tilt_deg,
                angular_weights(geometry.tilt_deg),
                cutoff,
                falloff,
                sirt_like_iterations,
                volume.shape_zyx[0],
            ),
            dtype=torch.float32,
            device=dev,
        )
        sink = VolumeSink(volume.shape_zyx, out, dev)
        nz = volume.shape_zyx[0]
        parts = min(nz, int(np.ceil(projector_bytes(plan) / (0.5 * memory_GB * 1e9))))
        if parts <= 1:
            backproject_volume(views, plan, filters, n_pad, sink, memory_GB, rows_per_chunk, progress, workers)
            return sink.result()
        # the projector alone would take over half the memory: parts along z, read along the same lines
        target = sink.result()
        edges = np.linspace(0, nz, parts + 1).round().astype(int)
        for i, (z0, z1) in enumerate(zip(edges[:-1].tolist(), edges[1:].tolist())):
            report(progress, f"z part {i + 1}/{parts}: voxels {z0}-{z1 - 1} of {nz}")
            part = plan_lines(
                geometry,
                volume.z_part(z0, z1),
                (views.shape[-2], views.shape[-1]),
                pixel_size_A,
                oversampling,
                like=plan,
            )
            backproject_volume(
                views,
                part,
                filters,
                n_pad,
                VolumeSink(part.volume.shape_zyx, target[z0:z1], dev),
                memory_GB,
                rows_per_chunk,
                progress,
                workers,
            )
        return target


def backproject_volume(
    views: Views,
    plan: LinePlan,
    filters: torch.Tensor | None,
    n_pad: int,
    sink: VolumeSink,
    memory_GB: float,
    rows_per_chunk: int | None,
    progress: Progress | None,
    workers: int | None = None,
) -> None:
    """Back-project the (filtered) lines into every row of ``plan.volume``, in blocks shared out to workers."""
    start = time.perf_counter()
    dev = views.device
    projector = LineProjector(plan, dev)
    ny = plan.volume.shape_zyx[1]
    rows = rows_per_block(plan, memory_GB * 1e9 - projector.nbytes, dev, rows=rows_per_chunk)
    report(
        progress,
        f"WBP of {plan.n_views} views into {plan.volume.shape_zyx[::-1]} voxels (x, y, z): "
        f"projector {projector.nbytes / 1e6:.0f} MB built in {time.perf_counter() - start:.1f} s, "
        f"blocks of {rows} rows",
    )
    counter = RowCounter(ny, progress, "back-projected", start)

    def work(y0: int, y1: int) -> None:
        voxels = backproject_rows(views, projector, filters, n_pad, y0, y1)
        sink.write(y0, projector.rows_of(voxels))
        counter.add(y1 - y0)

    run_blocks(row_blocks(ny, rows), work, dev, workers)


def backproject_rows(
    views: Views, projector: LineProjector, filters: torch.Tensor | None, n_pad: int, y0: int, y1: int
) -> torch.Tensor:
    """(n_voxels, y1 − y0): tomogram rows [y0, y1) back-projected from the (filtered) lines of ``views``."""
    plan = projector.plan
    r0, r1 = plan.rows_for(y0, y1)
    lines = filter_lines(sample_lines(views, plan, r0, r1), filters, plan.oversampling, n_pad)
    return projector.backproject_columns(projector.columns_from_lines(lines, r0, y0, y1))


def split_views(tilt_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the two halves of alternate views (by tilt angle): (odd, even) = (1st, 3rd, …), (2nd, 4th, …)."""
    order = np.argsort(np.asarray(tilt_deg), kind="stable")
    return np.sort(order[0::2]), np.sort(order[1::2])


__all__ = ["reconstruct_wbp", "backproject_volume", "backproject_rows", "split_views"]
