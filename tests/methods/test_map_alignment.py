"""align_maps finds the rotation and shift of a moved copy (modulo its symmetry); the FSC of a map with itself is 1."""

import time

import numpy as np
import pytest
import torch

from tomoforge.methods.map_alignment import (
    align_maps,
    fourier_shell_correlation,
    fsc_resolution_A,
    super_fibonacci_rotations,
)
from tomoforge.methods.rotations import random_rotations
from tomoforge.methods.symmetry import symmetric_angle_deg, symmetry_operators

N = 32


def gaussian_blobs(centres_px: np.ndarray, sigma_px: float = 1.8) -> torch.Tensor:
    """Sum of Gaussians at (x, y, z) offsets from voxel N // 2: exact at any rotation and shift."""
    k = torch.arange(N, dtype=torch.float64) - N // 2
    z, y, x = torch.meshgrid(k, k, k, indexing="ij")
    c = torch.as_tensor(centres_px)
    d2 = (x[..., None] - c[:, 0]) ** 2 + (y[..., None] - c[:, 1]) ** 2 + (z[..., None] - c[:, 2]) ** 2
    return torch.exp(-d2 / (2 * sigma_px**2)).sum(-1).float()


def test_fsc_of_a_map_with_itself_is_one_and_with_noise_falls():
    rng = np.random.default_rng(0)
    a = gaussian_blobs(rng.normal(scale=4.0, size=(10, 3)))
    freq, same = fourier_shell_correlation(a, a, 2.0)
    assert freq[-1] == pytest.approx(1 / 4.0) and np.allclose(same, 1.0)
    noisy = a + 0.02 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1))
    freq, curve = fourier_shell_correlation(a, noisy, 2.0)
    assert curve[1] > 0.99 and curve[-1] < 0.5
    res = fsc_resolution_A(freq, curve)
    assert 4.0 < res < 20.0
    assert fsc_resolution_A(freq, same) == pytest.approx(4.0)


def test_super_fibonacci_rotations_cover_so3():
    grid = super_fibonacci_rotations(600)
    probes = random_rotations(200, np.random.default_rng(2))
    nearest = symmetric_angle_deg(probes[:, None], grid[None], "C1").min(axis=1)
    assert nearest.max() < 25.0  # 600 rotations: mean spacing ≈ 15°


@pytest.mark.parametrize("symmetry", ["C4", "C1"])
def test_align_maps_recovers_rotation_and_shift_of_an_exact_copy(symmetry):
    rng = np.random.default_rng(5)
    centres = rng.normal(scale=3.0, size=(7, 3))
    centres /= np.maximum(1.0, np.linalg.norm(centres, axis=1, keepdims=True) / 7.0)
    if symmetry == "C4":
        centres = np.concatenate([centres[:3] @ g.T for g in symmetry_operators("C4")])
    rotation = random_rotations(1, rng)[0]
    shift = np.array([2.5, -1.5, 1.0])
    reference = gaussian_blobs(centres)
    moving = gaussian_blobs(centres @ rotation.T + shift)  # moving(x) = reference(Rᵀ (x − t))
    start = time.perf_counter()
    result = align_maps(moving, reference, 4.0, symmetry=symmetry, coarse_rotations=1500)
    print(f"align_maps {symmetry}: {time.perf_counter() - start:.1f} s")
    assert symmetric_angle_deg(result.rotation, rotation, symmetry) < 0.5
    np.testing.assert_allclose(result.shift_xyz_px, shift, atol=0.05)
    assert result.fsc[: N // 2 - 3].min() > 0.99
