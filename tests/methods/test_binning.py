"""Fourier-crop binning against band-limited truth; normalisation and inversion by formula."""

import numpy as np
import pytest
import torch

from tomoforge.methods.binning import bin_images, binned_pixel_size, invert_contrast, normalise_images


def band_limited(ny, nx, factor, rng, waves=25):
    """(image on the full grid, the same function sampled every ``factor`` pixels), below the new Nyquist."""
    my, mx = int(round(ny / factor)), int(round(nx / factor))
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    ys, xs = np.mgrid[0:my, 0:mx] * np.array([ny / my, nx / mx])[:, None, None]
    img, truth = np.zeros((ny, nx)), np.zeros((my, mx))
    for _ in range(waves):
        ky = rng.integers(-(my // 2) + 1, my // 2)
        kx = rng.integers(-(mx // 2) + 1, mx // 2)
        phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 2)
        img += amp * np.cos(2 * np.pi * (ky * y / ny + kx * x / nx) + phase)
        truth += amp * np.cos(2 * np.pi * (ky * ys / ny + kx * xs / nx) + phase)
    return img, truth


@pytest.mark.parametrize("shape,factor", [((64, 96), 2), ((60, 90), 1.5), ((48, 48), 3)])
def test_binning_a_band_limited_image_matches_the_truth_at_the_coarser_sampling(shape, factor, device):
    img, truth = band_limited(*shape, factor, np.random.default_rng(1))
    result = bin_images(torch.from_numpy(img).to(device), factor)
    assert result.device.type == device.type
    binned = result.cpu().numpy()
    assert binned.shape == truth.shape
    # float32 FFT round-off only: no aliasing and no half-pixel shift
    assert np.abs(binned - truth).max() < 2e-5 * np.abs(truth).max()


def test_binning_keeps_the_mean_and_scales_the_pixel_size(device):
    x = torch.rand(3, 40, 50, device=device) + 2
    assert torch.allclose(bin_images(x, 2).mean((-2, -1)), x.mean((-2, -1)), atol=1e-5)
    assert binned_pixel_size(1.35, (40, 50), 2) == pytest.approx(2.7)
    assert binned_pixel_size(1.0, (40, 50), 1.5) == pytest.approx(50 / 33)
    assert torch.equal(bin_images(x, 1), x)
    with pytest.raises(ValueError, match="≥ 1"):
        bin_images(x, 0.5)


def test_normalise_and_invert(device):
    x = torch.rand(2, 30, 30, device=device) * 5 + 3
    z = normalise_images(x, "standardise")
    assert torch.allclose(z.mean((-2, -1)), torch.zeros(2, device=device), atol=1e-5)
    assert torch.allclose(z.std((-2, -1)), torch.ones(2, device=device), atol=1e-5)
    assert torch.allclose(normalise_images(x, "mean").mean((-2, -1)), torch.zeros(2, device=device), atol=1e-5)
    inv = invert_contrast(x)
    assert torch.allclose(inv, 2 * x.mean((-2, -1), keepdim=True) - x)
    assert torch.allclose(inv.mean((-2, -1)), x.mean((-2, -1)), atol=1e-5)
