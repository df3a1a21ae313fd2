"""Fourier-space rotation and projection: central-slice identity, direction, accuracy, pasting."""

import numpy as np
import torch
from scipy import ndimage

from tomoforge.methods.projection import (
    bin_fourier_volume,
    paste_add,
    prepare_fourier_volume,
    project_along_z,
    project_fourier_slice,
    rotate_volume_fourier,
)
from tomoforge.methods.rotations import random_rotations, rotation_about_z


def _blobs(n=40):
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    v = np.exp(-((x - 6) ** 2 + y**2 + (z + 3) ** 2) / 8.0) + 0.5 * np.exp(-((x + 4) ** 2 + (y - 7) ** 2 + z**2) / 12.0)
    return torch.tensor(v, dtype=torch.float32)


def test_zero_tilt_projection_is_line_integral():
    v = _blobs()
    fv = prepare_fourier_volume(v, 2.0)
    p = project_fourier_slice(fv, np.eye(3))
    ref = torch.zeros(fv.n, fv.n)
    paste_add(ref, project_along_z(v, 2.0), (fv.n // 2, fv.n // 2))
    assert torch.allclose(p, ref, atol=1e-5 * float(ref.max()))


def test_z_sum_of_rotated_volume_equals_slice_projection():
    fv = prepare_fourier_volume(_blobs(), 3.0)
    r = random_rotations(1, np.random.default_rng(3))[0]
    p = project_fourier_slice(fv, r, (0.3, -0.4))
    q = project_along_z(rotate_volume_fourier(fv, r, (0.3, -0.4, 0.2)), 3.0)
    assert torch.allclose(p, q, atol=1e-5 * float(p.abs().max()))


def test_rotation_matches_real_space_rotation():
    v = _blobs()
    fv = prepare_fourier_volume(v, 1.0)
    rot = rotation_about_z(90) @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])  # exact 90° turns
    out = rotate_volume_fourier(fv, rot)
    lo = fv.n // 2 - 20
    out = out[lo : lo + 40, lo : lo + 40, lo : lo + 40]
    # reference: x' = R x applied with scipy on (z, y, x) arrays
    rz = rot[::-1, ::-1]
    c = np.array([20, 20, 20])
    ref = ndimage.affine_transform(v.numpy(), rz.T, offset=c - rz.T @ c, order=1)
    assert float((out - torch.tensor(ref)).abs().max()) < 0.01 * float(v.max())


def test_random_rotation_projection_accuracy():
    v = _blobs()
    fv = prepare_fourier_volume(v, 1.0)
    r = random_rotations(1, np.random.default_rng(7))[0]
    rz = r[::-1, ::-1]
    c = np.array([20, 20, 20])
    ref = ndimage.affine_transform(v.numpy(), rz.T, offset=c - rz.T @ c, order=3).sum(0)
    p = project_fourier_slice(fv, r)
    lo = fv.n // 2 - 20
    err = float((p[lo : lo + 40, lo : lo + 40] - torch.tensor(ref)).abs().max())
    assert err < 0.03 * float(ref.max())


def test_binning_keeps_integral():
    v = _blobs()
    fv = prepare_fourier_volume(v, 1.0)
    b = bin_fourier_volume(fv, 2)
    assert b.pixel_size_A == 2.0
    vol = rotate_volume_fourier(b, np.eye(3))
    assert abs(float(vol.sum()) * 8 - float(v.sum())) < 1e-3 * float(v.sum())


def test_paste_add_clips():
    t = torch.zeros(10, 10)
    paste_add(t, torch.ones(4, 4), (0, 9))
    assert float(t.sum()) == 6.0 and t[0, 9] == 1 and t[1, 8] == 1
    paste_add(t, torch.ones(4, 4), (50, 50))
    assert float(t.sum()) == 6.0
