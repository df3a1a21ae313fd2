"""Reading the views along lines: the plan of where each view is sampled, and the sampling itself.

For view i and tomogram row j the view is read along the line of constant ρ = y_j (see geometry.py):
samples at τ = τ0_i + k (k = 0 … n_tau − 1, one pixel apart), bilinear in the image, with the alignment
applied on the fly (no interpolated stack). Lengths here are in pixels of the images, which are also
the voxels of the tomogram.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.fourier import as_tensor
from tomoforge.methods.reconstruct.geometry import VolumeGeometry


@dataclass
class LinePlan:
    """Per-view constants of the line decomposition, the τ sampling and the row offsets."""

    volume: VolumeGeometry
    image_shape: tuple[int, int]  # (y, x) of the views
    cos_b: np.ndarray
    sin_b: np.ndarray
    cos_a: np.ndarray
    tan_a: np.ndarray
    z_rot_rad: np.ndarray
    shift_px: np.ndarray  # (n, 2)
    tau0: np.ndarray  # (n,) τ of the first sample (px)
    n_tau: int  # samples per line at 1 px spacing (common to all views)
    oversampling: int  # the lines are upsampled by this before the voxels read them
    row_lo: np.ndarray  # (n,) lowest row offset a voxel of this view reads (floor(−tan a · z))
    n_offsets: np.ndarray  # (n,) number of row offsets of this view (1 when XTilt = 0)

    @property
    def n_views(self) -> int:
        return len(self.cos_b)

    @property
    def n_samples(self) -> int:
        """Samples per line after oversampling."""
        return self.n_tau * self.oversampling

    @property
    def halo_lo(self) -> int:
        """Line rows needed below a block of tomogram rows (≤ 0)."""
        return int(min(0, self.row_lo.min()))

    @property
    def halo_hi(self) -> int:
        """Line rows needed above a block of tomogram rows (≥ 0)."""
        return int(max(0, (self.row_lo + self.n_offsets - 1).max()))

    @property
    def spread(self) -> int:
        """How many rows a view's lines mix (0 when no view has an XTilt)."""
        return self.halo_hi - self.halo_lo

    def rows_for(self, y0: int, y1: int) -> tuple[int, int]:
        """Line rows [r0, r1) that tomogram rows [y0, y1) read."""
        return y0 + self.halo_lo, y1 + self.halo_hi


def plan_lines(
    geometry: ProjectionModel,
    volume: VolumeGeometry,
    image_shape: tuple[int, int],
    pixel_size_A: float,
    oversampling: int = 2,
    like: LinePlan | None = None,
) -> LinePlan:
    """The line plan of ``geometry`` for ``volume``; the images' pixel must equal the voxel size.
    ``like``: take the τ sampling of that plan (of a larger volume containing this one)."""
    if abs(pixel_size_A - volume.voxel_size_A) > 1e-4 * volume.voxel_size_A:
        raise ValueError(
            f"image pixel {pixel_size_A:.4f} Å differs from the voxel size {volume.voxel_size_A:.4f} Å: "
            "bin the images to the tomogram's voxel size first"
        )
    if oversampling < 1:
        raise ValueError(f"oversampling must be ≥ 1, got {oversampling}")
    geometry.check_reconstructable()
    b, a = np.deg2rad(geometry.tilt_deg), np.deg2rad(geometry.x_tilt_deg)
    cos_b, sin_b, cos_a, tan_a = np.cos(b), np.sin(b), np.cos(a), np.tan(a)
    x, z = volume.axis_px("x"), volume.axis_px("z")
    xs, zs = np.array([x[0], x[-1]]), np.array([z[0], z[-1]])
    corners = cos_b[:, None, None] * xs[None, :, None] + (sin_b / cos_a)[:, None, None] * zs[None, None, :]
    lo, hi = corners.reshape(len(b), -1).min(axis=1), corners.reshape(len(b), -1).max(axis=1)
    tau0 = np.floor(lo) - 2.0
    n_tau = int(np.ceil((hi - tau0).max())) + 3
    if like is not None:
        if np.any(like.tau0 > tau0) or np.any(like.tau0 + like.n_tau < np.ceil(hi) + 3):
            raise ValueError("the plan to copy does not cover this volume's lines")
        tau0, n_tau = like.tau0.copy(), like.n_tau
    r = -tan_a[:, None] * zs[None, :]
    row_lo = np.floor(r.min(axis=1)).astype(np.int64)
    n_off = np.where(tan_a == 0.0, 1, np.floor(r.max(axis=1)).astype(np.int64) + 2 - row_lo)
    return LinePlan(
        volume,
        (int(image_shape[0]), int(image_shape[1])),
        cos_b,
        sin_b,
        cos_a,
        tan_a,
        np.deg2rad(geometry.z_rot_deg),
        geometry.shift_A / pixel_size_A,
        tau0,
        n_tau,
        int(oversampling),
        row_lo,
        n_off.astype(np.int64),
    )


def line_grid(plan: LinePlan, r0: int, r1: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n_views, r1 − r0, n_tau, 2) ``grid_sample`` grid (align_corners=True) of the samples of line rows
    [r0, r1) (tomogram row indices; may lie outside the tomogram)."""
    vol = plan.volume
    ny_img, nx_img = plan.image_shape
    rho0 = r0 - vol.shape_zyx[1] // 2 + vol.centre_A[1] / vol.voxel_size_A
    # image position = Rz(θ) · (τ0 + k + sin b sin a · ρ, cos a · ρ) + shift: affine in (k, ρ) per view
    ct, st = np.cos(plan.z_rot_rad), np.sin(plan.z_rot_rad)
    sb_sa, ca = plan.sin_b * plan.cos_a * plan.tan_a, plan.cos_a
    du_dk, dv_dk = ct, st
    du_dr, dv_dr = ct * sb_sa - st * ca, st * sb_sa + ct * ca
    u0 = ct * plan.tau0 + du_dr * rho0 + plan.shift_px[:, 0] + nx_img // 2
    v0 = st * plan.tau0 + dv_dr * rho0 + plan.shift_px[:, 1] + ny_img // 2
    sx, sy = 2.0 / max(nx_img - 1, 1), 2.0 / max(ny_img - 1, 1)
    k = torch.arange(plan.n_tau, dtype=torch.float32, device=device)[None, None, :]
    j = torch.arange(r1 - r0, dtype=torch.float32, device=device)[None, :, None]

    def coefficient(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32, device=device)[:, None, None]

    grid = torch.empty(plan.n_views, r1 - r0, plan.n_tau, 2, device=device)
    grid[..., 0] = coefficient(u0 * sx - 1.0) + coefficient(du_dk * sx) * k + coefficient(du_dr * sx) * j
    grid[..., 1] = coefficient(v0 * sy - 1.0) + coefficient(dv_dk * sy) * k + coefficient(dv_dr * sy) * j
    return grid


@dataclass
class Views:
    """The images as the lines read them: ``sign`` · (image − ``mean``) · border taper, applied per sample
    (the images themselves are not copied)."""

    images: torch.Tensor  # (n, y, x) float32
    mean: torch.Tensor  # (n,) subtracted from each view (zeros: nothing)
    taper_px: float  # width of the cosine border taper (0: none)
    sign: float = 1.0  # −1 inverts the contrast

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape)

    def subset(self, views: Sequence[int] | np.ndarray) -> Views:
        """The views indexed by ``views``."""
        index = torch.as_tensor(np.asarray(views), device=self.device)
        return Views(self.images[index], self.mean[index], self.taper_px, self.sign)


def views_from(
    images: torch.Tensor | np.ndarray,
    taper_px: int | None = None,
    invert: bool = False,
    subtract_mean: bool = True,
    device: torch.device | str | None = None,
) -> Views:
    """``Views`` of ``images`` (n, y, x): each minus its mean when ``subtract_mean`` (the specimen extends
    beyond the field, so what lies outside the image is taken as average), the border tapered to 0 over
    ``taper_px`` (None: 1/64 of the size, at least 2 px), the contrast inverted with ``invert``."""
    x = as_tensor(images, device=device)
    if x.ndim != 3:
        raise ValueError(f"views must be a stack (n, y, x), got shape {tuple(x.shape)}")
    mean = x.mean(dim=(-2, -1)) if subtract_mean else torch.zeros(x.shape[0], device=x.device)
    width = max(2, min(x.shape[-2:]) // 64) if taper_px is None else int(taper_px)
    return Views(x, mean, float(width), -1.0 if invert else 1.0)


def views_and_plan(
    images: torch.Tensor | np.ndarray | Views,
    geometry: ProjectionModel,
    volume: VolumeGeometry,
    pixel_size_A: float,
    *,
    oversampling: int,
    taper_px: int | None,
    invert: bool,
    subtract_mean: bool,
    device: torch.device | str | None,
) -> tuple[Views, LinePlan]:
    """The ``Views`` of ``images`` (n, y, x; or ``Views`` already) and their line plan for ``volume``,
    checked against the ``geometry``'s number of views (arguments as ``views_from`` and ``plan_lines``)."""
    views = images if isinstance(images, Views) else views_from(images, taper_px, invert, subtract_mean, device)
    if views.shape[0] != geometry.n_views:
        raise ValueError(f"images {views.shape} do not match the {geometry.n_views} views of the geometry")
    plan = plan_lines(geometry, volume, (views.shape[-2], views.shape[-1]), pixel_size_A, oversampling)
    return views, plan


def _edge_(d: torch.Tensor, width: float) -> torch.Tensor:
    """In place: the cosine taper at distance ``d`` (px) inside the border, 0 at −0.5, 1 from ``width`` − 0.5."""
    d.add_(0.5).div_(width).clamp_(0.0, 1.0).mul_(torch.pi).cos_()
    return d.mul_(-0.5).add_(0.5)


def _inside_(t: torch.Tensor, n: int) -> torch.Tensor:
    """In place: the bilinear weight of [0, n − 1] at position ``t`` (1 inside, falling to 0 one pixel out)."""
    return torch.minimum(t + 1, n - t, out=t).clamp_(0.0, 1.0)


def sample_lines(views: Views, plan: LinePlan, r0: int, r1: int) -> torch.Tensor:
    """(n_views, r1 − r0, n_tau) bilinear samples of the views along line rows [r0, r1); zero outside the
    images. Mean and taper are applied at the sample positions: sign · (sample − mean · coverage) · taper,
    coverage being the bilinear weight of the image's support (1 inside)."""
    grid = line_grid(plan, r0, r1, views.device)
    lines = F.grid_sample(views.images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]
    subtract = bool(torch.any(views.mean != 0))
    if not subtract and views.taper_px <= 0:
        return lines if views.sign > 0 else lines.neg_()
    ny, nx = plan.image_shape
    u = (grid[..., 0] + 1).mul_(0.5 * (nx - 1))
    v = (grid[..., 1] + 1).mul_(0.5 * (ny - 1))
    del grid
    if subtract:
        coverage = _inside_(u.clone(), nx).mul_(_inside_(v.clone(), ny))
        lines.addcmul_(coverage, views.mean[:, None, None], value=-1.0)
        del coverage
    if views.taper_px > 0:
        lines.mul_(_edge_(torch.minimum(u, (nx - 1) - u), views.taper_px))
        lines.mul_(_edge_(torch.minimum(v, (ny - 1) - v), views.taper_px))
    return lines if views.sign > 0 else lines.neg_()


__all__ = ["LinePlan", "plan_lines", "line_grid", "Views", "views_from", "views_and_plan", "sample_lines"]
