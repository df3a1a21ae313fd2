"""Masks against analytic answers: the volume of a soft sphere and cylinder (the solid's plus its cosine
edge's, by Steiner's formula), and the edge profile of a thresholded map against the raised cosine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from tomoforge.methods.volumes.masks import cylinder_mask, mask_volume_A3, sphere_mask, threshold_mask


def raised_cosine(d: np.ndarray | float, w: float) -> np.ndarray:
    d = np.asarray(d, float)
    return np.where(d <= 0, 1.0, np.where(d >= w, 0.0, 0.5 * (1 + np.cos(np.pi * d / w))))


def soft_volume(solid: float, area: float, curvature: float, w: float) -> float:
    """Volume of a convex solid with a raised-cosine edge of width w: V + ∫₀^w m(d) V'(d) dd, with Steiner's
    V(d) = V + S d + M d² + 4π/3 d³ (S the area, M the integrated mean curvature)."""
    edge, _ = quad(lambda d: float(raised_cosine(d, w)) * (area + 2 * curvature * d + 4 * np.pi * d * d), 0, w)
    return solid + edge


def test_a_soft_sphere_has_the_analytic_volume(device):
    px, radius, edge = 2.0, 20.0, 8.0
    mask = sphere_mask((40, 40, 40), px, radius, edge_A=edge, device=device)
    assert mask.device.type == device.type
    expected = soft_volume(4 / 3 * np.pi * radius**3, 4 * np.pi * radius**2, 4 * np.pi * radius, edge)
    hard, grown = 4 / 3 * np.pi * radius**3, 4 / 3 * np.pi * (radius + edge) ** 3
    volume = mask_volume_A3(mask, px)
    assert hard < volume < grown
    assert volume == pytest.approx(expected, rel=0.005)  # measured 0.005 % off (voxel sampling)
    assert float(mask.max()) == 1.0 and float(mask.min()) == 0.0


@pytest.mark.parametrize("axis", ["z", "x"])
def test_a_soft_cylinder_has_the_analytic_volume(device, axis):
    px, radius, height, edge = 2.0, 14.0, 40.0, 6.0
    mask = cylinder_mask((40, 40, 40), px, radius, height, axis=axis, edge_A=edge, device=device)
    solid = np.pi * radius**2 * height
    area = 2 * np.pi * radius**2 + 2 * np.pi * radius * height
    curvature = np.pi * (height + np.pi * radius)
    volume = mask_volume_A3(mask, px)
    assert volume == pytest.approx(soft_volume(solid, area, curvature, edge), rel=0.005)  # measured 0.05 %
    # the long axis is the one asked for: the mask reaches further along it
    profile = mask.sum(dim=tuple(i for i in range(3) if i != "zyx".index(axis))).cpu().numpy()
    assert (profile > 0).sum() == pytest.approx((height + 2 * edge) / px, abs=2)


def test_threshold_mask_of_a_ball_dilates_and_has_a_raised_cosine_edge(device):
    px, radius, dilation, edge = 2.0, 16.0, 6.0, 10.0
    box = 48
    z, y, x = np.meshgrid(*[(np.arange(box) - box // 2) * px] * 3, indexing="ij")
    ball = (np.sqrt(z * z + y * y + x * x) <= radius).astype(np.float32) * 3.0
    mask = threshold_mask(ball, px, 1.5, dilation_A=dilation, edge_A=edge, device=device).cpu().numpy()
    # along +x from the centre: 1 up to radius + dilation, then ½(1 + cos(π d / edge)); the ball's surface
    # is sampled on the voxel grid, so the edge starts at the last voxel inside (16 Å here, on the grid)
    r = np.arange(box - box // 2) * px
    expected = raised_cosine(r - (radius + dilation), edge)
    assert np.abs(mask[box // 2, box // 2, box // 2 :] - expected).max() < 1e-6
    # anywhere: the edge follows the Euclidean distance (not city-block) to the nearest voxel of the ball
    inside = np.argwhere(ball > 1.5) * px
    picks = np.random.default_rng(1).integers(0, box, (300, 3))
    nearest = np.sqrt(((picks[:, None, :] * px - inside[None]) ** 2).sum(-1)).min(1)
    expected = np.where(nearest == 0, 1.0, raised_cosine(nearest - dilation, edge))
    assert np.abs(mask[tuple(picks.T)] - expected).max() < 1e-5
    with pytest.raises(ValueError, match="maximum is 3"):
        threshold_mask(ball, px, 5.0)


def test_threshold_of_a_gaussian_gives_the_sphere_of_that_level():
    """A Gaussian of peak A thresholded at t is the sphere of radius σ √(2 ln(A / t))."""
    px, sigma = 2.0, 10.0
    box = 40
    z, y, x = np.meshgrid(*[(np.arange(box) - box // 2) * px] * 3, indexing="ij")
    blob = np.exp(-(z * z + y * y + x * x) / (2 * sigma**2)).astype(np.float32)
    mask = threshold_mask(torch.as_tensor(blob), px, 0.2)
    radius = sigma * np.sqrt(2 * np.log(1 / 0.2))
    assert mask_volume_A3(mask, px) == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.05)
