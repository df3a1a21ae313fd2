"""Batched projections, pasting into slabs and the per-slab CTF against their one-at-a-time originals."""

import numpy as np
import pytest
import torch

from tomoforge.methods.ctf.transfer import ctf_2d
from tomoforge.methods.projection import paste_add, prepare_fourier_volume, project_fourier_slice
from tomoforge.methods.rotations import random_rotations
from tomoforge.simulate.placement import SlabCTF, box_size, paste_into_slabs, project_batch, rotate_box


def _particle(rng, n=16, pixel_size_A=4.0):
    """A lumpy particle inside a box of side n, 3 voxels from its faces, prepared for projection."""
    ax = np.arange(n) - n // 2
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    vol = np.zeros((n, n, n))
    for c in rng.uniform(-2, 2, size=(5, 3)):
        vol += np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 4.0)
    vol *= x**2 + y**2 + z**2 < (n // 2 - 3) ** 2  # the margin the simulator leaves (15 Å at 5 Å/px)
    return prepare_fourier_volume(torch.from_numpy(vol).float(), pixel_size_A)


def test_project_batch_is_the_central_box_of_one_projection_at_a_time():
    """Sampled at the unpadded box's own frequencies, the projection is the central (n/2)² of the padded one
    (what differs: the interpolation's faint tails outside it folded in, < 1 % of the peak; the integral, the
    zero frequency, is the same)."""
    rng = np.random.default_rng(3)
    fv = _particle(rng)
    m = box_size(fv)
    rotations = random_rotations(5, rng)
    shifts = rng.uniform(-0.5, 0.5, size=(5, 2))
    batch = project_batch(fv, rotations, shifts)
    assert batch.shape == (5, m, m)
    lo = fv.n // 2 - m // 2
    for r, s, image in zip(rotations, shifts, batch):
        single = project_fourier_slice(fv, r, (float(s[0]), float(s[1])))
        centre = single[lo : lo + m, lo : lo + m]
        assert float((image - centre).abs().max()) < 0.01 * float(centre.abs().max())
        assert float(image.sum()) == pytest.approx(float(single.sum()), rel=1e-4)  # the integral is kept


def test_rotated_box_sums_along_z_to_the_batch_projection():
    rng = np.random.default_rng(5)
    fv = _particle(rng)
    r = random_rotations(1, rng)[0]
    shift = np.array([0.3, -0.2, 0.4])
    box = rotate_box(fv, r, shift)
    projection = project_batch(fv, r[None], shift[None, :2])[0]
    line_integral = box.double().sum(0) * fv.pixel_size_A
    assert torch.allclose(projection.double(), line_integral, atol=1e-5 * float(line_integral.abs().max()))


def test_paste_into_slabs_equals_paste_add():
    rng = np.random.default_rng(4)
    patches = torch.from_numpy(rng.normal(size=(6, 8, 8))).float()
    centres = rng.integers(-3, 24, size=(6, 2))
    slab = np.array([0, 1, 0, 1, 1, 0])
    canvas = torch.zeros(2, 20 + 16, 20 + 16)
    paste_into_slabs(canvas, patches, slab, centres, pad=8)
    expected = torch.zeros(2, 20, 20)
    for p, c, k in zip(patches, centres, slab):
        paste_add(expected[k], p, (int(c[0]), int(c[1])))
    assert torch.allclose(canvas[:, 8:28, 8:28], expected, atol=1e-6)


def test_slab_ctf_equals_ctf_2d_at_each_height():
    optics = {"voltage_kV": 300.0, "cs_mm": 2.7, "amplitude_contrast": 0.07}
    ctf = SlabCTF((64, 80), 3.0, 31000.0, 29500.0, 35.0, **optics)
    for h in (-700.0, 0.0, 450.0):
        direct = ctf_2d((64, 80), 3.0, 31000.0 + h, 29500.0 + h, 35.0, **optics)
        assert torch.allclose(ctf.at(h), direct, atol=2e-5)
