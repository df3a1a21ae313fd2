"""SIRT: x ← x + λ · C · Aᵀ · R · (b − A x), with R = 1 / (A 1) and C = 1 / (Aᵀ 1), from x = 0.

A is the forward projector (line integrals) and Aᵀ the back-projector of ``backproject`` (exact
adjoints); b are the views read along the same lines as WBP reads them (alignment on the fly, no
interpolated stack); samples outside a view's image are not data (R = 0 there) and the column sums
count only measured samples (Gilbert 1972; as astra-toolbox's SIRT).

Memory: the tomogram is done in slabs of rows along the tilt axis. Without XTilt every row is its own
problem, so a slab needs nothing from its neighbours; with an XTilt a view's lines mix up to
``plan.spread`` rows, so a slab is iterated with ``iterations × spread`` extra rows on each side,
which makes its own rows exactly those of the whole-volume SIRT.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.reconstruct import settings as defaults
from tomoforge.methods.reconstruct.backproject import LineProjector, projector_bytes
from tomoforge.methods.reconstruct.geometry import VolumeGeometry
from tomoforge.methods.reconstruct.lines import LinePlan, Views, line_grid, sample_lines, views_and_plan
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
from tomoforge.methods.reconstruct.weighting import filter_lines, padded_length

MIN_RAY_VOXELS = 0.5  # samples whose ray crosses less than this (voxel lengths) of the tomogram are ignored


def measured_samples(plan: LinePlan, r0: int, r1: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n_views, r1 − r0, n_samples) 1 where an (upsampled) line sample lies inside its image, else 0."""
    grid = line_grid(plan, r0, r1, device)  # 1-px samples: the upsampled ones lie between them
    ny, nx = plan.image_shape
    u = (grid[..., 0] + 1) * (nx - 1) / 2
    v = (grid[..., 1] + 1) * (ny - 1) / 2
    inside = (u >= 0) & (u <= nx - 1) & (v >= 0) & (v <= ny - 1)
    os = plan.oversampling
    both = inside & torch.roll(inside, -1, dims=-1)  # a fine sample between two inside samples is inside
    both[..., -1] = inside[..., -1]
    return both.repeat_interleave(os, dim=-1).to(torch.float32)


def ray_lengths(projector: LineProjector, r0: int, r1: int) -> torch.Tensor:
    """(n_views, r1 − r0, n_samples) A·1 of the whole tomogram for line rows [r0, r1): length (voxels) of
    each sample's ray inside the tomogram."""
    plan = projector.plan
    ny = plan.volume.shape_zyx[1]
    dev = projector.matrix.device
    column_sums = projector.column_sums
    out = torch.zeros(plan.n_views, r1 - r0, plan.n_samples, device=dev)
    rows = torch.arange(r0, r1, device=dev)
    for v in range(plan.n_views):
        base = int(projector.col_base[v])
        sums = column_sums[base : base + int(projector.block_sizes[v])].reshape(int(plan.n_offsets[v]), -1)
        for d in range(int(plan.n_offsets[v])):
            source = rows - (int(plan.row_lo[v]) + d)  # the tomogram row whose voxels land on this line row
            valid = ((source >= 0) & (source < ny)).to(torch.float32)
            out[v] += valid[:, None] * sums[d][None, :]
    return out


def reconstruct_sirt(
    images: torch.Tensor | np.ndarray,
    pixel_size_A: float,
    geometry: ProjectionModel,
    volume: VolumeGeometry,
    *,
    iterations: int = defaults.SIRT_ITERATIONS,
    relaxation: float = defaults.SIRT_RELAXATION,
    oversampling: int = defaults.OVERSAMPLING,
    invert: bool = False,
    subtract_mean: bool = True,
    memory_GB: float = defaults.MEMORY_GB,
    rows_per_slab: int | None = None,
    out: Volume | None = None,
    progress: Progress | None = None,
    device: torch.device | str | None = None,
) -> Volume:
    """The SIRT tomogram (z, y, x) after ``iterations`` from zero; arguments as ``reconstruct_wbp``.

    ``oversampling`` stays 1 unless you know why: the forward projector is the adjoint of linear
    interpolation on the lines, which at a finer spacing than the voxels deposits a comb (a voxel
    aligned with a sample leaves its neighbours empty), a poor model of the data.

    ``rows_per_slab``: tomogram rows iterated together (default: what fits ``memory_GB``; with an XTilt
    at least 4 × iterations × spread so that the extra rows stay a small part). ``progress`` hears of the
    iterations of the first slab, and of every tenth of the rows done.
    """
    if iterations < 1:
        raise ValueError(f"SIRT needs at least 1 iteration, got {iterations}")
    workers = torch.get_num_threads()  # shared out as slabs; torch itself single-threaded meanwhile
    with single_threaded_torch():
        views, plan = views_and_plan(
            images,
            geometry,
            volume,
            pixel_size_A,
            oversampling=oversampling,
            taper_px=0,
            invert=invert,
            subtract_mean=subtract_mean,
            device=device,
        )
        dev = views.device
        if 2 * projector_bytes(plan) > memory_GB * 1e9:
            raise MemoryError(
                f"SIRT of {volume.shape_zyx[::-1]} voxels (x, y, z) from {geometry.n_views} views needs "
                f"{2 * projector_bytes(plan) / 1e9:.1f} GB for its projector pair, more than memory_GB = "
                f"{memory_GB:g}: bin the images, reduce the thickness or width, or raise memory_GB"
            )
        start = time.perf_counter()
        projector = LineProjector(plan, dev)
        projector.column_sums  # noqa: B018 (Sᵀ and its column sums built now, once, counted in the memory)
        ny = volume.shape_zyx[1]
        halo = iterations * plan.spread
        budget = memory_GB * 1e9 - projector.nbytes
        rows = rows_per_block(plan, budget, dev, sirt=True, rows=rows_per_slab)
        if halo and rows_per_slab is None:
            rows = max(rows, 4 * halo)
            if rows + 2 * halo >= ny:
                rows = ny
        sink = VolumeSink(volume.shape_zyx, out, dev)
        report(
            progress,
            f"SIRT ({iterations} iterations) of {geometry.n_views} views into {volume.shape_zyx[::-1]} "
            f"voxels (x, y, z): projector {projector.nbytes / 1e6:.0f} MB built in "
            f"{time.perf_counter() - start:.1f} s, slabs of {rows} rows (+{halo} each side)",
        )
        counter = RowCounter(ny, progress, "done", start)

        def work(s0: int, s1: int) -> None:
            e0, e1 = max(0, s0 - halo), min(ny, s1 + halo)
            x = sirt_slab(views, projector, e0, e1, iterations, relaxation, progress if s0 == 0 else None, start)
            sink.write(s0, x[:, s0 - e0 : s1 - e0])
            counter.add(s1 - s0)

        run_blocks(row_blocks(ny, rows), work, dev, workers)
        return sink.result()


def sirt_slab(
    views: Views,
    projector: LineProjector,
    e0: int,
    e1: int,
    iterations: int,
    relaxation: float,
    progress: Progress | None = None,
    start: float = 0.0,
) -> torch.Tensor:
    """SIRT on tomogram rows [e0, e1) alone (the rest of the tomogram taken as 0): (z, e1 − e0, x)."""
    plan = projector.plan
    n_pad = padded_length(plan.n_tau)
    r0, r1 = plan.rows_for(e0, e1)
    data = filter_lines(sample_lines(views, plan, r0, r1), None, plan.oversampling, n_pad)
    lengths = ray_lengths(projector, r0, r1)
    weight = measured_samples(plan, r0, r1, views.device) * (lengths >= MIN_RAY_VOXELS)
    weight = weight / torch.clamp(lengths, min=MIN_RAY_VOXELS)
    del lengths
    coverage = projector.backproject_columns(
        projector.columns_from_lines((weight > 0).to(torch.float32), r0, e0, e1)
    ) * float(plan.oversampling)
    step = torch.where(coverage > 0, relaxation / coverage.clamp(min=1e-6), torch.zeros_like(coverage))
    del coverage
    x = torch.zeros(projector.n_voxels, e1 - e0, device=views.device)
    for it in range(iterations):
        if it == 0:
            difference = data  # x = 0: nothing to project
        else:
            projected = torch.zeros_like(data)
            projector.add_columns_to_lines(projector.project_columns(x), projected, r0, e0)
            difference = data - projected
            del projected
        x += step * projector.backproject_columns(projector.columns_from_lines(difference * weight, r0, e0, e1))
        if progress is not None and (it + 1 == iterations or (it + 1) % max(1, iterations // 5) == 0):
            res = float(torch.sqrt(torch.sum(difference**2 * (weight > 0)) / torch.clamp((weight > 0).sum(), min=1)))
            report(
                progress,
                f"rows {e0}-{e1 - 1}: iteration {it + 1}/{iterations}, residual RMS {res:.4g} before "
                f"it ({time.perf_counter() - start:.1f} s)",
            )
    return projector.rows_of(x)


__all__ = ["reconstruct_sirt", "sirt_slab", "ray_lengths", "measured_samples"]
