"""Resizing references against known answers: a Gaussian's sigma in Å through rescaling, recentring of a
shifted blob, the low-pass's attenuation against its formula, and a down/up round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoforge.methods.volumes.resize import (
    centre_of_mass,
    crop_or_pad,
    invert_volume,
    lowpass_filter,
    lowpass_volume,
    recentre_volume,
    rescale_volume,
)


def gaussian(box: int, pixel_size_A: float, sigma_A: float, centre_vox=None) -> np.ndarray:
    """A 3D Gaussian of ``sigma_A`` (Å) with peak 1 at ``centre_vox`` (z, y, x voxels; default N // 2)."""
    c = np.full(3, box // 2, float) if centre_vox is None else np.asarray(centre_vox, float)
    z, y, x = np.meshgrid(*[np.arange(box)] * 3, indexing="ij")
    r2 = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2
    return np.exp(-r2 * pixel_size_A**2 / (2 * sigma_A**2)).astype(np.float32)


def sigma_A(volume: torch.Tensor, pixel_size_A: float) -> float:
    """The RMS radius / √3 of a blob about its centre of mass (Å): sigma for a Gaussian."""
    v = volume.detach().cpu().double()
    c = centre_of_mass(v).numpy()
    z, y, x = np.meshgrid(*[np.arange(n) for n in v.shape], indexing="ij")
    r2 = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2
    w = v.numpy()
    return float(np.sqrt((w * r2).sum() / (3 * w.sum()))) * pixel_size_A


@pytest.mark.parametrize("target", [5.0, 2.0])
def test_a_gaussian_keeps_its_sigma_in_angstrom_when_rescaled(device, target):
    blob = gaussian(40, 3.0, 9.0)
    out = rescale_volume(torch.as_tensor(blob, device=device), 3.0, target)
    assert out.volume.device.type == device.type
    # 40 × 3 / 5 = 24 voxels exactly; 40 × 3 / 2 = 60
    assert out.volume.shape == (int(40 * 3 / target),) * 3
    assert out.pixel_size_A == pytest.approx(target, rel=1e-9)
    assert sigma_A(out.volume, out.pixel_size_A) == pytest.approx(9.0, rel=0.01)
    assert float(out.volume.max()) == pytest.approx(1.0, abs=0.02)  # values on the same scale


def test_rescaling_keeps_positions_in_angstrom_from_the_centre(device):
    """A blob 4.5 voxels of 3 Å from the centre stays 13.5 Å from it at any pixel size and box parity."""
    for box, target in ((40, 5.0), (41, 4.0), (40, 2.2)):
        blob = gaussian(box, 3.0, 6.0, [box // 2 + 4.5, box // 2 - 3.0, box // 2 + 2.0])
        out = rescale_volume(torch.as_tensor(blob, device=device), 3.0, target)
        n = out.volume.shape[0]
        found = (centre_of_mass(out.volume).cpu().numpy() - n // 2) * out.pixel_size_A
        assert np.abs(found - [13.5, -9.0, 6.0]).max() < 0.02 * target, (box, target, found)


def test_rescale_pads_to_reach_the_target_pixel_size():
    """7.84 → 10 Å from a 64 box: 64 × 0.784 = 50.18 voxels would give 10.035 Å; padded to 88 (69.0 voxels),
    the spectrum is cropped to 69 and the map cut back to 50 voxels of 9.9988 Å."""
    blob = gaussian(64, 7.84, 30.0)
    out = rescale_volume(blob, 7.84, 10.0)
    assert out.volume.shape == (50, 50, 50)  # round(64 × 0.784)
    unpadded = 7.84 * 64 / 50
    assert abs(out.pixel_size_A - 10.0) < abs(unpadded - 10.0)
    assert abs(out.pixel_size_A - 10.0) < 0.002
    assert sigma_A(out.volume, out.pixel_size_A) == pytest.approx(30.0, rel=0.01)


def test_recentre_moves_a_shifted_map_to_the_box_centre(device):
    rng = np.random.default_rng(3)
    true_centre = np.array([20.0 + 3.3, 20.0 - 4.7, 20.0 + 1.6])
    blob = gaussian(40, 1.0, 3.0, true_centre) + 0.6 * gaussian(40, 1.0, 2.0, true_centre + [0, 2, 0])
    blob += rng.normal(0, 0.005, blob.shape).astype(np.float32)
    out, shift = recentre_volume(torch.as_tensor(blob, device=device))
    com = centre_of_mass(out).cpu().numpy()
    assert np.abs(com - 20.0).max() < 0.1, com
    # the density's own centre (truth) moved by the shift returned
    truth_com = (true_centre + 0.6 * (2 / 3) ** 3 * (true_centre + [0, 2, 0])) / (1 + 0.6 * (2 / 3) ** 3)
    assert np.abs(truth_com + np.asarray(shift) - 20.0).max() < 0.1, (truth_com, shift)


def test_lowpass_attenuates_each_frequency_by_the_raised_cosine(device):
    rng = np.random.default_rng(0)
    noise = torch.as_tensor(rng.normal(size=(40, 40, 40)).astype(np.float32), device=device)
    px, res, falloff = 2.5, 10.0, 3.0
    out = lowpass_volume(noise, px, res, falloff=falloff)
    ratio = (torch.fft.rfftn(out).abs() / torch.fft.rfftn(noise).abs()).cpu().numpy()
    k = np.sqrt(
        sum(
            g**2
            for g in np.meshgrid(np.fft.fftfreq(40, px), np.fft.fftfreq(40, px), np.fft.rfftfreq(40, px), indexing="ij")
        )
    )
    kc, w = 1 / res, falloff / (40 * px)
    expected = np.where(
        k < kc - w / 2, 1.0, np.where(k > kc + w / 2, 0.0, 0.5 * (1 + np.cos(np.pi * (k - kc + w / 2) / w)))
    )
    assert np.abs(ratio - expected).max() < 1e-3
    at_cutoff = np.abs(k - kc) < 1e-9  # |k| = 1/10 Å⁻¹ exactly: (±10, 0, 0) / 100 Å and its permutations
    assert at_cutoff.sum() >= 6 and np.allclose(ratio[at_cutoff], 0.5, atol=1e-3)
    filt = lowpass_filter((40, 40, 40), px, res, falloff=falloff).numpy()
    assert filt[0, 0, 0] == 1.0 and filt[0, 0, 20] == 0.0


def test_down_and_up_again_loses_only_what_the_coarse_sampling_cannot_hold(device):
    blob = gaussian(48, 3.0, 12.0)  # spectrum at the coarse Nyquist 1/12 Å⁻¹: exp(−2π²) ≈ 3e-9
    down = rescale_volume(torch.as_tensor(blob, device=device), 3.0, 6.0)
    up = rescale_volume(down.volume, down.pixel_size_A, 3.0)
    assert up.volume.shape == blob.shape and up.pixel_size_A == pytest.approx(3.0)
    error = float(torch.sqrt(((up.volume.cpu() - torch.as_tensor(blob)) ** 2).mean()) / np.sqrt((blob**2).mean()))
    assert error < 1e-3, error
    sharp = gaussian(48, 3.0, 3.0)  # half its power is above the coarse Nyquist: the round trip must lose it
    back = rescale_volume(rescale_volume(sharp, 3.0, 6.0).volume, 6.0, 3.0).volume
    assert float(torch.sqrt(((back - torch.as_tensor(sharp)) ** 2).mean())) > 1e-3


def test_crop_pad_keeps_the_centre_and_invert_negates(device):
    v = torch.zeros(9, 10, 11, device=device)
    v[4, 5, 5] = 1.0
    out = crop_or_pad(v, (12, 6, 7), fill=0.0)
    assert out.shape == (12, 6, 7) and float(out[6, 3, 3]) == 1.0 and float(out.sum()) == 1.0
    assert float(invert_volume(v)[4, 5, 5]) == -1.0
    padded = crop_or_pad(torch.ones(4, 4, 4, device=device), (6, 6, 6))
    assert float(padded.min()) == 1.0  # filled with the mean of the outer faces
