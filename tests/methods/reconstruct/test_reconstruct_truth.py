"""Reconstruction against the simulator's truth (the `small` preset, seed 1).

A box of the truth tomogram (96 × 128 × 128 voxels of 12 Å, mean removed, edges tapered) is projected by
an independent projector, ``project_fourier_slice`` (Fourier space, trilinear, with the gridding
correction), along the simulated tilts, tilt axis, tilt offset and shifts. The reconstructions are compared
with the truth box filtered by the same missing wedge (the measured tilt range, about the tilt axis) and
band limit (the cut-off of the 1D radial filter: |(kx, kz)| ≤ cut-off).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoforge.io.mrc import read_mrc
from tomoforge.methods.align.projection_model import ProjectionModel, rotation_matrices
from tomoforge.methods.projection import prepare_fourier_volume, project_fourier_slice
from tomoforge.methods.reconstruct import VolumeGeometry, reconstruct_sirt, reconstruct_wbp

PIXEL_A = 12.0
BOX = (96, 128, 128)
IMAGE = 192


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def taper(n: int, width: int) -> np.ndarray:
    d = np.minimum(np.arange(n), np.arange(n)[::-1]).astype(float)
    return 0.5 - 0.5 * np.cos(np.pi * np.clip((d + 0.5) / width, 0, 1))


def wedge_filtered(volume: np.ndarray, band: float, tilt_range: tuple[float, float]) -> np.ndarray:
    """``volume`` keeping the Fourier components in the measured wedge (the direction of (kx, kz) within
    the tilt range: the central planes of views tilted about y) with |(kx, kz)| ≤ ``band`` (cycles/voxel)."""
    spec = np.fft.rfftn(volume)
    kz = np.fft.fftfreq(volume.shape[0])[:, None, None]
    kx = np.fft.rfftfreq(volume.shape[2])[None, None, :]
    angle = np.degrees(np.arctan2(kz, kx + 0 * kz))
    keep = (angle >= tilt_range[0]) & (angle <= tilt_range[1]) & (np.hypot(kx, kz) <= band)
    keep = keep | ((kx == 0) & (kz == 0))
    return np.fft.irfftn(spec * np.broadcast_to(keep, spec.shape), volume.shape, axes=(0, 1, 2))


def truth_geometry(truth: dict, shift_scale: float = 1.0) -> ProjectionModel:
    """The simulated projection model, views in acquisition order."""
    t = truth["tilts"]
    return ProjectionModel(
        [r["y_tilt_deg"] for r in t],
        [r["z_rot_deg"] for r in t],
        [[r["x_shift_A"] * shift_scale, r["y_shift_A"] * shift_scale] for r in t],
        [r["x_tilt_deg"] for r in t],
    )


@pytest.fixture(scope="module")
def truth_box(small_sim):
    """(box (z, y, x), projections (n, 192, 192) in voxel units, geometry, truth dict)."""
    ts = small_sim.tilt_series[0]
    tomogram = read_mrc(ts.tomogram).astype(np.float32)
    lo = [s // 2 - b // 2 for s, b in zip(tomogram.shape, BOX)]
    box = tomogram[tuple(slice(a, a + b) for a, b in zip(lo, BOX))]
    box = (
        (box - box.mean())
        * taper(BOX[0], 8)[:, None, None]
        * taper(BOX[1], 8)[None, :, None]
        * taper(BOX[2], 8)[None, None, :]
    )
    box = box.astype(np.float32)
    geometry = truth_geometry(ts.truth, 0.25)  # the simulated shifts, smaller so that the box stays in view
    # gridding correction: trilinear interpolation in Fourier space multiplies real space by sinc²
    n = int(np.ceil(max(BOX) * 2.0 / 16) * 16)
    apod = [np.sinc((np.arange(b) - b // 2) / n) ** 2 for b in BOX]
    fv = prepare_fourier_volume(
        torch.from_numpy(box / (apod[0][:, None, None] * apod[1][None, :, None] * apod[2][None, None, :])),
        PIXEL_A,
        padding=2.0,
    )
    rotations = rotation_matrices(geometry.tilt_deg, geometry.z_rot_deg, geometry.x_tilt_deg)
    images = torch.stack(
        [project_fourier_slice(fv, r, tuple(s / PIXEL_A)) for r, s in zip(rotations, geometry.shift_A)]
    )
    c = fv.n // 2 - IMAGE // 2
    images = images[:, c : c + IMAGE, c : c + IMAGE] / PIXEL_A  # line integrals in voxel lengths
    return box, images, geometry, ts.truth


def tilt_range(geometry: ProjectionModel) -> tuple[float, float]:
    return float(geometry.tilt_deg.min()), float(geometry.tilt_deg.max())


def test_wbp_correlates_with_the_wedge_filtered_truth(truth_box):
    box, images, geometry, _ = truth_box
    volume = VolumeGeometry(BOX, PIXEL_A)
    for cutoff, floor in ((0.15, 0.96), (0.25, 0.95)):
        rec = reconstruct_wbp(images, PIXEL_A, geometry, volume, cutoff=cutoff, falloff=0.0, subtract_mean=False)
        r = pearson(rec.numpy(), wedge_filtered(box, cutoff, tilt_range(geometry)))
        assert r >= floor, (cutoff, r)  # measured 0.970 (0.15), 0.960 (0.25)


def test_sirt_correlates_with_the_wedge_filtered_truth_and_beats_wbp_contrast(truth_box):
    """SIRT from x = 0 also fills part of the missing wedge (the box is a support constraint), so here both
    are compared within the measured wedge and band. Contrast: (mean of the particles − mean of the ice) /
    SD of the ice, for the particles (70 % of their radius) and ice away from every particle, in the box."""
    box, images, geometry, truth = truth_box
    volume = VolumeGeometry(BOX, PIXEL_A)
    sirt = reconstruct_sirt(images, PIXEL_A, geometry, volume, iterations=30, subtract_mean=False).numpy()
    band, wedge = 0.15, tilt_range(geometry)
    r = pearson(wedge_filtered(sirt, band, wedge), wedge_filtered(box, band, wedge))
    assert r >= 0.96, r  # measured 0.981 (20 iterations: 0.967)
    wbp = reconstruct_wbp(images, PIXEL_A, geometry, volume, subtract_mean=False).numpy()
    particles, ice = particle_and_ice_masks(truth, volume)
    contrast = {
        name: float((v[particles].mean() - v[ice].mean()) / v[ice].std())
        for name, v in (("wbp", wbp), ("sirt", sirt), ("truth", box))
    }
    assert contrast["sirt"] > 1.15 * contrast["wbp"], contrast  # measured 9.0 vs 6.8 (truth 7.3)


def test_sirt_like_filter_behaves_like_sirt(truth_box):
    box, images, geometry, _ = truth_box
    volume = VolumeGeometry(BOX, PIXEL_A)
    sirt = reconstruct_sirt(images, PIXEL_A, geometry, volume, iterations=20, subtract_mean=False).numpy()
    like = reconstruct_wbp(
        images, PIXEL_A, geometry, volume, cutoff=0.5, falloff=0.0, sirt_like_iterations=20, subtract_mean=False
    ).numpy()
    plain = reconstruct_wbp(images, PIXEL_A, geometry, volume, cutoff=0.5, falloff=0.0, subtract_mean=False).numpy()
    assert pearson(like, sirt) >= 0.95  # measured 0.976
    assert pearson(like, sirt) > pearson(plain, sirt) + 0.03  # plain WBP: 0.919
    assert 0.8 < like.std() / sirt.std() < 1.25  # the same scale (measured 0.88)


def particle_and_ice_masks(truth: dict, volume: VolumeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Voxels within 70 % of a particle's radius; ice: inside the slab, > 3 voxels from any object, 10 voxels
    from the box faces."""
    shape = volume.shape_zyx
    zz, yy, xx = np.indices(shape)
    particles, near = np.zeros(shape, bool), np.zeros(shape, bool)
    radius = {s["name"]: s["radius_A"] for s in truth["species"]}
    objects = [(p["position_A"], radius[p["species"]], True) for p in truth["particles"]]
    objects += [(p["position_A"], 60.0, False) for p in truth["background"]]
    objects += [(f["position_A"], f["diameter_A"] / 2, False) for f in truth["fiducials"]]
    for position, r_A, is_particle in objects:
        c = volume.index_of(np.asarray(position))
        d2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        r = r_A / volume.voxel_size_A
        if is_particle:
            particles |= d2 <= (0.7 * r) ** 2
        near |= d2 <= (r + 3) ** 2
    inner = np.ones(shape, bool)
    for axis, n in enumerate(shape):
        idx = np.indices(shape)[axis]
        inner &= (idx >= 10) & (idx < n - 10)
    half_ice = truth["specimen"]["ice_thickness_A"] / volume.voxel_size_A / 2
    ice = ~near & inner & (np.abs(zz - shape[0] // 2) < half_ice - 5)
    assert particles[inner].sum() > 1000 and ice.sum() > 10000
    return particles & inner, ice
