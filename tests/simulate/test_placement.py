"""Batched projections, pasting into slabs and the per-slab CTF against their one-at-a-time originals."""

import numpy as np
import torch

from tomoforge.methods.ctf.transfer import ctf_2d
from tomoforge.methods.projection import paste_add, prepare_fourier_volume, project_fourier_slice
from tomoforge.methods.rotations import random_rotations
from tomoforge.simulate.placement import SlabCTF, paste_into_slabs, project_batch


def test_project_batch_equals_one_projection_at_a_time():
    rng = np.random.default_rng(3)
    vol = torch.from_numpy(rng.normal(size=(12, 12, 12))).float()
    fv = prepare_fourier_volume(vol, 4.0)
    rotations = random_rotations(5, rng)
    shifts = rng.uniform(-0.5, 0.5, size=(5, 2))
    batch = project_batch(fv, rotations, shifts)
    for r, s, image in zip(rotations, shifts, batch):
        single = project_fourier_slice(fv, r, (float(s[0]), float(s[1])))
        assert torch.allclose(image, single, atol=1e-4 * float(single.abs().max()))


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
