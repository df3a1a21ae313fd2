"""Averaging: rotated copies of a known map average back to it; wrong rotations or a mirror do not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.methods.sta.shapes import N, blobs, corr
from tomoforge.methods.align.projection_model import rotation_matrices
from tomoforge.methods.rotations import random_rotations
from tomoforge.methods.sta.averaging import average_subtomograms, centred_spectrum, full_weight, half_spectrum
from tomoforge.methods.sta.extraction import subtomogram_weights


@pytest.fixture(scope="module")
def reference():
    return blobs(np.eye(3))


def placed(reference, rotations):
    """Subtomograms of particles with rotations R (x_tomo = R x_ref): the map rotated by R."""
    return torch.as_tensor(np.stack([blobs(r) for r in rotations]))


def test_rotated_copies_average_back_to_the_map_and_wrong_conventions_do_not(reference):
    rot = random_rotations(12, np.random.default_rng(0))
    subtomos = placed(reference, rot)
    halves = np.array([1, 2] * 6)
    avg = average_subtomograms(subtomos, rot, halves, wiener_constant=1e-6)
    assert avg.counts == (6, 6)
    for m in (avg.half1, avg.half2, avg.full):
        assert corr(m, reference) > 0.99
        assert float(m.sum() / reference.sum()) == pytest.approx(1.0, abs=0.02)
    inverse = average_subtomograms(subtomos, np.transpose(rot, (0, 2, 1)), halves)  # R instead of Rᵀ
    mirrored = average_subtomograms(subtomos.flip(-3), rot, halves)  # the tomogram's hand flipped (z → −z)
    # the correct convention gives r = 0.99999; the inverse rotation 0.72, the mirrored hand 0.75 (blurred)
    assert corr(avg.full, reference) > 0.9999
    assert corr(inverse.full, reference) < 0.85 and corr(mirrored.full, reference) < 0.85


def test_halves_do_not_mix(reference):
    rot = random_rotations(4, np.random.default_rng(1))
    subtomos = placed(reference, rot)
    subtomos[1::2] = 0  # half 2 is empty data
    avg = average_subtomograms(subtomos, rot, np.array([1, 2, 1, 2]))
    assert corr(avg.half1, reference) > 0.99 and float(avg.half2.abs().max()) < 1e-6


def test_weights_fill_the_missing_wedge_from_other_orientations(reference):
    """Particles seen through a ±45° wedge in the tomogram frame: the plain mean keeps their wedges' mix,
    the weighted average divides it out, so it matches the map better."""
    rng = np.random.default_rng(2)
    rot = random_rotations(16, rng)
    subtomos = placed(reference, rot)
    w = subtomogram_weights(N, 1.0, rotation_matrices(np.arange(-45.0, 46.0, 3.0), 0.0))
    wedge = (w > 0).to(torch.float32)
    spec = torch.fft.rfftn(torch.fft.ifftshift(subtomos, dim=(-3, -2, -1)), dim=(-3, -2, -1)) * wedge
    seen = torch.fft.fftshift(torch.fft.irfftn(spec, s=(N, N, N), dim=(-3, -2, -1)), dim=(-3, -2, -1))
    halves = np.array([1, 2] * 8)
    plain = average_subtomograms(seen, rot, halves)
    weighted = average_subtomograms(seen, rot, halves, weights=wedge)
    assert 1 - corr(weighted.full, reference) < 0.3 * (1 - corr(plain.full, reference))
    assert corr(weighted.full, reference) > 0.97


def test_full_weight_is_the_centred_symmetric_grid():
    w = torch.rand(5, 5, 3)
    full = full_weight(w, 5)  # odd box: every frequency is on the rfft half or its mirror
    assert full.shape == (5, 5, 5)
    assert full[2 + 1, 2 - 2, 2 + 1] == w[1, -2, 1] and full[2 - 1, 2 + 2, 2 - 1] == w[1, -2, 1]


def test_half_spectrum_is_the_padded_centred_spectrum():
    """The pruned transform of the padded box equals the full one (``centred_spectrum``) on its x ≥ 0 half."""
    vols = torch.rand(2, 7, 7, 7) - 0.5
    half = half_spectrum(vols, 14)
    full = centred_spectrum(vols, 14)  # (2, 2, 14, 14, 14), DC at 7
    assert half.shape == (2, 2, 14, 14, 8)
    assert torch.allclose(half[..., :7], full[..., 7:], atol=1e-5)  # the centred grid lacks +Nyquist
    even = torch.rand(1, 8, 8, 8)
    assert torch.allclose(half_spectrum(even, 16)[..., :8], centred_spectrum(even, 16)[..., 8:], atol=1e-5)


def test_a_shared_weight_gives_the_same_average_as_copies_of_it(reference):
    rot = random_rotations(6, np.random.default_rng(4))
    w = subtomogram_weights(N, 1.0, rotation_matrices(np.arange(-60.0, 61.0, 3.0), 0.0))
    w = w / w.max()
    dims = (-3, -2, -1)
    spec = torch.fft.rfftn(torch.fft.ifftshift(placed(reference, rot), dim=dims), dim=dims) * w  # S = W M
    subtomos = torch.fft.fftshift(torch.fft.irfftn(spec, s=(N, N, N), dim=dims), dim=dims)
    halves = np.array([1, 2] * 3)
    shared = average_subtomograms(subtomos, rot, halves, weights=w, batch=4)
    copies = average_subtomograms(subtomos, rot, halves, weights=w.expand(6, -1, -1, -1), batch=4)
    assert torch.allclose(shared.full, copies.full, atol=1e-5 * float(copies.full.abs().max()))
    assert corr(shared.full, reference) > 0.99


def test_the_box_grid_average_is_close_to_the_fine_one(reference):
    """fine_grid=False (the average on the box's own grid, the fast path): the same map to r > 0.9999 of the
    reference, the trilinear aliases wrapped in as 5 % more mass (the fine grid's: 0.4 %)."""
    rot = random_rotations(12, np.random.default_rng(0))
    halves = np.array([1, 2] * 6)
    avg = average_subtomograms(placed(reference, rot), rot, halves, wiener_constant=1e-6, fine_grid=False)
    assert corr(avg.full, reference) > 0.9999
    assert float(avg.full.sum() / reference.sum()) == pytest.approx(1.05, abs=0.02)
    assert avg.weight1.shape == (N, N, N // 2 + 1)


def test_the_nyquist_sphere_leaves_the_corners_out(reference):
    """nyquist_sphere=True: the same map (smooth blobs: little beyond Nyquist), the weights 0 outside the
    sphere of radius box / 2, inside it as on the whole grid."""
    rot = random_rotations(6, np.random.default_rng(5))
    halves = np.array([1, 2] * 3)
    w = subtomogram_weights(N, 1.0, rotation_matrices(np.arange(-60.0, 61.0, 3.0), 0.0))
    whole = average_subtomograms(placed(reference, rot), rot, halves, weights=w, fine_grid=False)
    sphere = average_subtomograms(placed(reference, rot), rot, halves, weights=w, fine_grid=False, nyquist_sphere=True)
    kz, ky, kx = np.meshgrid(np.arange(N) - N // 2, np.arange(N) - N // 2, np.arange(N // 2 + 1), indexing="ij")
    inside = torch.as_tensor(kx**2 + ky**2 + kz**2 <= (N / 2) ** 2)
    assert float(sphere.weight1[~inside].abs().max()) == 0.0 and float(whole.weight1[~inside].max()) > 0
    assert torch.allclose(sphere.weight1[inside], whole.weight1[inside], rtol=1e-5, atol=1e-6)
    assert corr(sphere.full, whole.full) > 0.9999  # measured 0.999996
