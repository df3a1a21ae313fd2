"""The alignment methods follow their input's device: the same numbers on CUDA as on the CPU."""

import numpy as np
import torch

from tests.methods.align.synthetic import render_beads, true_model
from tomoforge.methods.align.coarse import coarse_alignment
from tomoforge.methods.align.filters import bandpass, cross_correlation
from tomoforge.methods.align.transform import aligned_stack, warp_images

PX = 8.0
TILTS = np.arange(-30, 31, 6.0)


def test_warp_and_aligned_stack_follow_the_input_device(device):
    raw = torch.as_tensor(np.random.default_rng(0).normal(size=(2, 64, 64)), dtype=torch.float32)
    z_rot, shifts = [10.0, -5.0], [[2.0, 1.0], [-1.0, 3.0]]
    on_device = aligned_stack(raw.to(device), z_rot, shifts, binning=2.0)
    assert on_device.device.type == device.type and on_device.shape == (2, 32, 32)
    assert torch.allclose(on_device.cpu(), aligned_stack(raw, z_rot, shifts, binning=2.0), atol=1e-4)
    patch = warp_images(raw.to(device), np.eye(2), [[0.5, -0.5]], out_shape=(16, 16))
    assert patch.device.type == device.type and patch.shape == (2, 16, 16)


def test_filters_follow_the_input_device(device):
    raw = torch.as_tensor(np.random.default_rng(1).normal(size=(2, 64, 64)), dtype=torch.float32)
    filtered = bandpass(raw.to(device), 16.0, 2.0)
    assert filtered.device.type == device.type
    assert torch.allclose(filtered.cpu(), bandpass(raw, 16.0, 2.0), atol=1e-4)
    cc = cross_correlation(filtered[0], filtered[0])
    assert cc.device.type == device.type and int(cc.argmax()) == 32 * 64 + 32  # zero shift at n // 2


def test_the_coarse_chain_gives_the_same_shifts_on_the_input_device(device):
    rng = np.random.default_rng(5)
    truth = true_model(rng, TILTS, shift_sigma_A=30.0, drift_deg=0.0)
    points = np.c_[rng.uniform(-600, 600, (30, 2)), rng.uniform(-100, 100, 30)]
    images = torch.as_tensor(render_beads(truth, points, (96, 96), PX, 60.0, noise_sd=0.2, rng=rng))
    cpu = coarse_alignment(images, TILTS, 85.0, refine_iterations=0).shifts_px
    got = coarse_alignment(images.to(device), TILTS, 85.0, refine_iterations=0).shifts_px
    assert np.allclose(got, cpu, atol=0.05)
