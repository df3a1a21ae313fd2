"""Motion estimation against known shifts; local model fit; dose weights and sums by formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from tomoforge.methods.fourier import fourier_shift_2d, spatial_frequency_2d
from tomoforge.methods.preprocess import motion
from tomoforge.methods.preprocess.dose import exposure_attenuation


def specimen(n: int, seed: int = 0) -> torch.Tensor:
    """A positive image with a 1/k spectrum (mean 1)."""
    g = torch.Generator().manual_seed(seed)
    k2 = torch.fft.fftfreq(n)[:, None] ** 2 + torch.fft.rfftfreq(n)[None] ** 2
    spec = torch.fft.rfft2(torch.randn(n, n, generator=g)) / torch.sqrt(k2 + 1e-4) * torch.exp(-50 * k2)
    img = torch.fft.irfft2(spec, s=(n, n))
    img = img - img.min()
    return img / img.mean()


def movie(img, shifts, dose_px, seed=1):
    torch.manual_seed(seed)
    return torch.stack([torch.poisson(dose_px * fourier_shift_2d(img, s).clamp(min=0)) for s in shifts])


def rms(a, b):
    e = (a - a.mean(0)) - (b - b.mean(0))
    return float(e.pow(2).sum(-1).mean().sqrt())


def test_global_shifts_at_one_electron_per_pixel_per_frame(device):
    g = torch.Generator().manual_seed(2)
    true = torch.cumsum(torch.randn(10, 2, generator=g) * 1.5, 0)
    true -= true[0].clone()
    frames = movie(specimen(256), true, 1.0)
    est = motion.estimate_global_shifts(frames.to(device), 2.0, bfactor_A2=500)
    assert est.device.type == device.type
    est = est.cpu()
    assert torch.allclose(est[0], torch.zeros(2))
    assert rms(est, true) < 0.2  # measured 0.16 px (256², 10 frames)


def test_max_shift_limits_the_search():
    true = torch.tensor([[0.0, 0.0], [0.0, 30.0], [0.0, 0.0]])
    frames = movie(specimen(128), true, 20.0)
    assert abs(float(motion.estimate_global_shifts(frames, 1.0, bfactor_A2=100)[1, 1]) - 30) < 0.2
    limited = motion.estimate_global_shifts(frames, 1.0, bfactor_A2=100, max_shift_A=10.0)
    assert abs(float(limited[1, 1])) < 15  # the 30 px shift is outside the search (relative shifts ≤ 2 × 10)


def test_local_model_fit_recovers_its_coefficients():
    truth = torch.randn(18, 2) * 0.5
    corners = torch.tensor([[y, x] for y in (16.0, 64.0, 112.0) for x in (16.0, 64.0, 112.0)])
    model = motion.LocalMotion((128, 128), 6, 0, truth, corners, torch.zeros(0))
    frame = torch.arange(6).expand(9, 6)
    shifts = model.displacement(corners[:, 0, None].expand(9, 6), corners[:, 1, None].expand(9, 6), frame)
    fitted = motion.fit_local_motion(corners, shifts, (128, 128))
    assert torch.allclose(fitted.coefficients, truth, atol=1e-4) and fitted.rms_fit_px < 1e-4


def test_patches_recover_a_smooth_local_field():
    n, nf = 256, 6
    coefficients = torch.zeros(18, 2)
    coefficients[1, 1] = 1.5  # x shift ∝ t·x
    coefficients[3, 0] = -1.5  # y shift ∝ t·y
    model = motion.LocalMotion((n, n), nf, 0, coefficients, torch.zeros(0, 2), torch.zeros(0))
    img = specimen(n, 3)
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    frames = []
    for i in range(nf):  # frame i shows the specimen displaced by d_i: frame(p) = img(p − d_i(p))
        d = model.displacement(yy, xx, torch.full((n, n), i))
        grid = torch.stack([2 * (xx - d[..., 1]) / (n - 1) - 1, 2 * (yy - d[..., 0]) / (n - 1) - 1], -1)
        frames.append(F.grid_sample(img[None, None], grid[None], mode="bicubic", align_corners=True)[0, 0])
    torch.manual_seed(0)
    frames = torch.poisson(20 * torch.stack(frames).clamp(min=0))
    fitted = motion.estimate_local_motion(frames, 1.0, patches=(4, 4), bfactor_A2=50)
    inner = (slice(32, -32), slice(32, -32))
    errors = []
    for i in range(nf):
        t = torch.full((n, n), i)
        errors.append((fitted.displacement(yy, xx, t) - model.displacement(yy, xx, t))[inner])
    err = float(torch.stack(errors).pow(2).sum(-1).mean().sqrt())
    assert err < 0.2, err  # field up to 1.5 px; measured ~0.06 px
    corrected = motion.apply_local_motion(frames.clone(), fitted)
    sharp = lambda x: float(torch.fft.rfft2(x.sum(0)).abs()[20:60, 20:60].mean())  # noqa: E731
    assert sharp(corrected) > sharp(frames)


def test_dose_weights_follow_grant_and_grigorieff():
    w = motion.dose_weights(5, 0.6, 10.0, (32, 32), 2.0)
    k = spatial_frequency_2d((32, 32), 2.0).to(torch.float64)
    q = torch.stack([exposure_attenuation(k, 10.0 + 0.6 * (i + 1)) for i in range(5)])
    expected = q * math.sqrt(5) / q.pow(2).sum(0).sqrt()
    assert torch.allclose(w.double(), expected, atol=1e-6)
    assert torch.allclose(w[:, 0, 0], torch.ones(5), atol=1e-6)  # k = 0: plain sum
    assert torch.allclose(w.pow(2).sum(0), torch.full_like(w[0], 5.0), atol=1e-4)  # noise power of a sum
    assert bool(w[0, 8, 8] > w[4, 8, 8])  # earlier frames weigh more at high k


def test_sums_odd_even_and_frame_range():
    frames = torch.arange(6.0)[:, None, None].expand(6, 4, 4).clone()
    sums = motion.sum_frames(frames, first=1, last=4)
    assert float(sums.total[0, 0]) == 1 + 2 + 3 + 4
    assert float(sums.odd[0, 0]) == 1 + 3 and float(sums.even[0, 0]) == 2 + 4
    weighted = motion.sum_frames(frames, first=1, last=4, weights=torch.ones(6, 4, 3))
    assert torch.allclose(weighted.total, sums.total, atol=1e-5)


def test_hot_pixels_are_masked_so_they_do_not_pin_the_shifts_to_zero():
    g = torch.Generator().manual_seed(4)
    true = torch.cumsum(torch.randn(8, 2, generator=g) * 0.8, 0)
    true -= true[0].clone()
    frames = movie(specimen(256), true, 1.0)
    hot = torch.randint(0, 256, (2, 60), generator=g)
    frames[:, hot[0], hot[1]] += 40.0  # hot pixels: bright in every frame, fixed on the detector
    pinned = rms(motion.estimate_global_shifts(frames, 2.0, bfactor_A2=1500), true)
    masked = rms(motion.estimate_global_shifts(motion.without_hot_pixels(frames), 2.0, bfactor_A2=1500), true)
    # measured (B = 1500 Å²): 0.97 px with the hot pixels, 0.16 px once they are masked
    assert masked < 0.25 and pinned > 0.8
    changed = (motion.without_hot_pixels(frames) != frames).any(0)
    assert changed[hot[0], hot[1]].all() and changed.sum() < 2 * 60  # the hot pixels, few others


def test_defects_corrected_in_the_cropped_spectra_equal_masked_frames():
    g = torch.Generator().manual_seed(5)
    frames = movie(specimen(128), torch.cumsum(torch.randn(6, 2, generator=g), 0), 2.0)
    hot = torch.randint(0, 128, (2, 30), generator=g)
    frames[:, hot[0], hot[1]] += 50.0
    mask = motion.hot_pixel_mask(frames.sum(0))
    assert mask[hot[0], hot[1]].all() and int(mask.sum()) <= 35
    masked = torch.where(mask, frames.mean(dim=(-2, -1), keepdim=True), frames)
    crop = motion.alignment_crop((128, 128), 2.0, 500.0)
    fast = motion.alignment_spectra(torch.fft.rfft2(frames), (128, 128), 2.0, 500.0, crop, frames=frames, defects=mask)
    slow = motion.alignment_spectra(torch.fft.rfft2(masked), (128, 128), 2.0, 500.0, crop)
    assert torch.allclose(fast, slow, atol=1e-3 * float(slow.abs().max()))


def test_aligned_sums_shift_weight_and_bin_in_one_pass(device):
    frames = movie(specimen(64), torch.zeros(5, 2), 30.0)
    shifts = torch.tensor([[0.0, 0.0], [0.5, -1.25], [2.0, 0.3], [-1.5, 1.0], [0.7, 0.7]])
    expected = motion.shift_frames_(frames.clone(), shifts)
    on_device = motion.aligned_sums(frames.to(device), shifts.to(device), first=1, last=4)
    assert on_device.total.device.type == device.type
    sums = motion.FrameSums(on_device.total.cpu(), on_device.odd.cpu(), on_device.even.cpu())
    assert torch.allclose(sums.total, expected[1:5].sum(0), atol=1e-3)
    assert torch.allclose(sums.odd, expected[1] + expected[3], atol=1e-3)
    w = motion.dose_weights(5, 1.0, 0.0, (32, 32), 2.0)
    binned = motion.aligned_sums(frames, shifts, first=0, last=4, weights=w, out_shape=(32, 32))
    spectra = torch.fft.rfft2(expected)
    crop = torch.cat([spectra[:, :16, :17], spectra[:, -16:, :17]], dim=1) * w
    reference = torch.fft.irfft2(crop.sum(0), s=(32, 32)) / 4  # Fourier crop 64 → 32: values × 32²/64²
    assert torch.allclose(binned.total, reference, atol=1e-3 * float(reference.abs().max()))
    assert float(binned.total.mean()) == pytest.approx(float(frames.sum(0).mean()), rel=1e-5)
