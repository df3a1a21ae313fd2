"""Reconstruction on synthetic data: geometry (a bead lands where it is), the projector pair, slabs, filters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.reconstruct import (
    VolumeGeometry,
    angular_weights,
    default_volume_shape,
    reconstruct_sirt,
    reconstruct_wbp,
    split_views,
)
from tomoforge.methods.reconstruct.backproject import LineProjector
from tomoforge.methods.reconstruct.lines import plan_lines
from tomoforge.methods.reconstruct.weighting import radial_filter, ramp_filter, sirt_like_factor

PIXEL_A = 10.0
TILTS = np.arange(-60.0, 60.1, 3.0)


def tilted_geometry(seed: int = 0, x_tilt: float = 2.0) -> ProjectionModel:
    """41 views ±60°, tilt axis ≈ 84° with per-view jitter, an XTilt, shifts of ~30 Å."""
    rng = np.random.default_rng(seed)
    n = len(TILTS)
    return ProjectionModel(TILTS, 84.0 + rng.normal(0, 0.3, n), rng.normal(0, 30, (n, 2)), x_tilt)


def bead_images(geometry: ProjectionModel, position_A: np.ndarray, shape=(128, 128), sigma_px=1.2) -> np.ndarray:
    """Analytic projections of a Gaussian bead at ``position_A`` (x, y, z Å): the projection model by hand."""
    uv = geometry.project(np.asarray(position_A)[None])[:, 0] / PIXEL_A
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dx = xx[None] - shape[1] // 2 - uv[:, 0, None, None]
    dy = yy[None] - shape[0] // 2 - uv[:, 1, None, None]
    return np.exp(-(dx**2 + dy**2) / (2 * sigma_px**2)).astype(np.float32)


def peak(volume: np.ndarray, half: int = 3) -> np.ndarray:
    """Sub-voxel peak (z, y, x): centroid of the values above half the maximum around the maximum, re-centred."""
    centre = np.array(np.unravel_index(np.argmax(volume), volume.shape))
    for _ in range(3):
        lo = np.maximum(np.round(centre).astype(int) - half, 0)
        window = volume[tuple(slice(a, a + 2 * half + 1) for a in lo)]
        w = np.clip(window - 0.5 * window.max(), 0, None)
        idx = np.indices(window.shape).reshape(3, -1).T + lo
        centre = (idx * w.reshape(-1, 1)).sum(0) / w.sum()
    return centre


BEAD_A = np.array([123.0, -211.0, 87.0])
VOLUME = VolumeGeometry((48, 96, 96), PIXEL_A, (20.0, -30.0, 10.0))


@pytest.mark.parametrize("method", ["wbp", "sirt"])
def test_a_bead_reconstructs_at_its_3d_position(method, device):
    """ZRot ≈ 84° (jittered per view), XTilt 2°, shifts, a tilt offset of 1.5° given as an offset, and a
    tomogram centre moved off the specimen centre: the bead is found within 0.2 voxel of where it is."""
    true = tilted_geometry()
    true = ProjectionModel(true.tilt_deg + 1.5, true.z_rot_deg, true.shift_A, true.x_tilt_deg)
    images = bead_images(true, BEAD_A)
    nominal = ProjectionModel(TILTS, true.z_rot_deg, true.shift_A, true.x_tilt_deg).with_offsets(tilt_offset_deg=1.5)
    if method == "wbp":
        rec = reconstruct_wbp(images, PIXEL_A, nominal, VOLUME, cutoff=0.5, falloff=0.0, taper_px=0, device=device)
    else:
        rec = reconstruct_sirt(images, PIXEL_A, nominal, VOLUME, iterations=10, device=device)
    assert rec.device.type == device.type
    found = peak(rec.cpu().numpy())
    expected = VOLUME.index_of(BEAD_A)
    assert np.all(np.abs(found - expected) < 0.2), (found, expected)  # measured ≤ 0.1 voxel (z, the wedge axis)
    wrong = peak(reconstruct_wbp(images, PIXEL_A, nominal.with_offsets(axis_offset_deg=180.0), VOLUME).numpy())
    assert np.max(np.abs(wrong - expected)) > 5  # the hand matters: ZRot + 180° puts it elsewhere


def test_forward_projector_is_the_exact_adjoint_of_the_back_projector():
    geometry = tilted_geometry(1, x_tilt=3.0)
    plan = plan_lines(geometry, VolumeGeometry((20, 24, 28), PIXEL_A, (5.0, 0.0, -7.0)), (40, 40), PIXEL_A, 1)
    projector = LineProjector(plan)
    assert plan.spread > 0  # the XTilt mixes rows
    rng = np.random.default_rng(0)
    voxels = torch.from_numpy(rng.standard_normal((projector.n_voxels, 5)).astype(np.float32))
    columns = torch.from_numpy(rng.standard_normal((projector.n_columns, 5)).astype(np.float32))
    lhs = float((projector.project_columns(voxels) * columns).sum())
    rhs = float((voxels * projector.backproject_columns(columns)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_forward_projection_of_a_slab_is_its_ray_length():
    """A · 1 through a slab of thickness T at tilt β is T / cos β (voxels) in the middle of the shadow (on
    average over a few samples: a linear splat at spacing cos β ripples by ~0.4 %)."""
    geometry = ProjectionModel([0.0, 30.0, 60.0], 0.0, np.zeros((3, 2)))
    volume = VolumeGeometry((16, 8, 200), PIXEL_A)
    plan = plan_lines(geometry, volume, (8, 256), PIXEL_A, 1)
    projector = LineProjector(plan)
    line = projector.project_columns(torch.ones(projector.n_voxels, 1))[:, 0].reshape(3, -1)
    for i, beta in enumerate((0.0, 30.0, 60.0)):
        middle = int(round(-plan.tau0[i]))
        assert float(line[i, middle - 10 : middle + 10].mean()) == pytest.approx(
            16 / np.cos(np.deg2rad(beta)), rel=2e-3
        )


def test_slab_by_slab_and_in_parts_along_z_equals_the_whole_volume(tmp_path):
    geometry = tilted_geometry(2, x_tilt=2.5)
    rng = np.random.default_rng(1)
    images = rng.standard_normal((geometry.n_views, 96, 96)).astype(np.float32)
    volume = VolumeGeometry((24, 64, 72), PIXEL_A, (0.0, 15.0, 0.0))
    whole = reconstruct_wbp(images, PIXEL_A, geometry, volume).numpy()
    out = np.lib.format.open_memmap(tmp_path / "wbp.npy", mode="w+", dtype=np.float32, shape=volume.shape_zyx)
    slabs = reconstruct_wbp(images, PIXEL_A, geometry, volume, rows_per_chunk=7, out=out)
    assert slabs is out
    assert np.allclose(out, whole, atol=1e-5 * np.abs(whole).max())
    messages = []
    parts = reconstruct_wbp(images, PIXEL_A, geometry, volume, memory_GB=0.002, progress=messages.append).numpy()
    assert any("z part 3/3" in m for m in messages)  # a 2.3 MB projector in 1 MB halves of the budget
    assert np.allclose(parts, whole, atol=1e-5 * np.abs(whole).max())
    with pytest.raises(MemoryError, match="memory_GB"):
        reconstruct_sirt(images, PIXEL_A, geometry, volume, iterations=1, memory_GB=0.002)
    sirt_whole = reconstruct_sirt(images, PIXEL_A, geometry, volume, iterations=3, rows_per_slab=64).numpy()
    sirt_slabs = reconstruct_sirt(images, PIXEL_A, geometry, volume, iterations=3, rows_per_slab=10).numpy()
    assert np.allclose(sirt_slabs, sirt_whole, atol=1e-4 * np.abs(sirt_whole).max())


def test_views_left_out_do_not_contribute():
    geometry = tilted_geometry(3, x_tilt=0.0)
    images = bead_images(geometry, BEAD_A)
    keep = np.ones(geometry.n_views, bool)
    keep[[5, 20, 33]] = False
    spoiled = images.copy()
    spoiled[~keep] = 1e3 * np.random.default_rng(0).standard_normal(spoiled[~keep].shape)
    a = reconstruct_wbp(images[keep], PIXEL_A, geometry.subset(keep), VOLUME)
    b = reconstruct_wbp(spoiled[keep], PIXEL_A, geometry.subset(keep), VOLUME)
    assert torch.equal(a, b)
    assert np.all(np.abs(peak(a.numpy()) - VOLUME.index_of(BEAD_A)) < 0.3)


def test_ramp_radial_and_sirt_like_filters():
    n = 512
    f = np.fft.rfftfreq(n)
    ramp = ramp_filter(n)
    middle = (f > 0.05) & (f < 0.45)
    assert np.allclose(ramp[middle], f[middle], atol=2e-3)  # |f| where the finite kernel does not matter
    assert 0 < ramp[0] < 1.0 / n  # the Ram-Lak DC term: small and positive
    radial = radial_filter(n, cutoff=0.25, falloff=0.05)
    i = np.argmin(np.abs(f - 0.30))
    assert radial[i] == pytest.approx(ramp[i] * np.exp(-0.5 * ((f[i] - 0.25) / 0.05) ** 2), rel=1e-9)
    assert np.allclose(radial[f <= 0.25], ramp[f <= 0.25])
    fac = sirt_like_factor(np.array([0.001, 0.002, 0.2]), 10, 0.002)
    assert fac[0] == 1.0 and fac[1] == 1.0  # at or below f0 a frequency is recovered
    assert fac[2] == pytest.approx(1 - 0.99**10)


def test_angular_weights_halves_odd_even_and_default_shape():
    w = angular_weights(np.array([10.0, -3.0, 0.0, 3.0, 6.0]))
    assert np.allclose(np.rad2deg(w), [4.0, 3.0, 3.0, 3.0, 3.5])
    odd, even = split_views(np.array([6.0, -6.0, 0.0, 3.0, -3.0]))
    assert odd.tolist() == [0, 1, 2] and even.tolist() == [3, 4]  # by tilt: −6 (1), −3 (4), 0 (2), 3 (3), 6 (0)
    assert default_volume_shape((100, 200), 85.0, 50) == (50, 200, 100)  # axis ≈ image X: x across = image y
    assert default_volume_shape((100, 200), 2.0, 50, size_x_px=64) == (50, 100, 64)
