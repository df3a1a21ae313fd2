"""Half-map FSC and post-processing against known answers: half maps = one map + independent noise of a
known spectrum (the FSC crossing is S / (S + N) = 0.143), and a map with a known B-factor applied."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoforge.methods.sta.fsc import apply_shell_filter, half_map_fsc, shell_power
from tomoforge.methods.sta.postprocess import automatic_mask, postprocess, randomise_phases

N = 64
PIXEL = 2.0
K0 = 20.3  # shell where the noise power is 6 × the signal's: FSC = 1 / 7 = 0.143
STEEP = 0.3  # ln of the noise amplitude's growth per shell


def _noise_filter() -> np.ndarray:
    shells = np.arange(N)  # covers the corners of the rfft grid (up to √3 · N / 2)
    return np.sqrt(6.0) * np.exp(STEEP * (shells - K0))


def _white(seed: int) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).standard_normal((N, N, N)), dtype=torch.float64)


def _crossing(expected: np.ndarray, threshold: float = 0.143) -> float:
    i = int(np.nonzero(expected[1:] < threshold)[0][0]) + 1
    return i - 1 + (expected[i - 1] - threshold) / (expected[i - 1] - expected[i])


def test_half_maps_with_known_noise_spectrum_give_the_analytic_resolution():
    signal = _white(1)
    half1 = signal + apply_shell_filter(_white(2), _noise_filter())
    half2 = signal + apply_shell_filter(_white(3), _noise_filter())
    fsc = half_map_fsc(half1, half2, PIXEL)
    assert abs(fsc.crossing_shell() - K0) <= 1.0
    assert fsc.resolution_A() == pytest.approx(N * PIXEL / fsc.crossing_shell())


def test_masked_fsc_corrected_by_phase_randomisation_matches_the_components():
    k = torch.arange(N, dtype=torch.float64) - N // 2
    z, y, x = torch.meshgrid(k, k, k, indexing="ij")
    radius = torch.sqrt(x * x + y * y + z * z)
    inside = 0.5 * (1 + torch.cos(torch.pi * ((radius - 12) / 4).clamp(0, 1)))  # a soft sphere
    signal = apply_shell_filter(_white(4), np.exp(-0.12 * np.arange(N))).double() * inside
    noise = [0.12 * _white(s) for s in (5, 6)]  # flat: masking keeps it flat
    result = postprocess(signal + noise[0], signal + noise[1], PIXEL, bfactor_A2=0.0)
    mask = result.mask.double()
    # the answer from the components: masked signal power against masked noise power, shell by shell
    s_power = shell_power(signal * mask)
    n_power = 0.5 * (shell_power(noise[0] * mask) + shell_power(noise[1] * mask))
    expected = _crossing(s_power / (s_power + n_power))
    assert abs(result.fsc_corrected.crossing_shell() - expected) <= 1.0
    # the mask removes noise: the unmasked FSC crosses well before
    assert result.fsc_unmasked.crossing_shell() < expected - 2
    # randomised phases are uncorrelated beyond the start, so the correction only subtracts a small term
    beyond = slice(result.randomised_from_shell + 3, N // 2)
    assert np.abs(result.fsc_randomised.correlation[beyond]).max() < 0.2


def test_bfactor_from_the_guinier_fit_within_ten_percent():
    bfactor = 120.0
    k2 = (np.arange(N) / (N * PIXEL)) ** 2
    decayed = apply_shell_filter(_white(7), np.exp(-bfactor * k2 / 4.0)).double()
    quiet = np.full(N, 0.02)  # flat, weak noise
    half1 = decayed + apply_shell_filter(_white(8), quiet)
    half2 = decayed + apply_shell_filter(_white(9), quiet)
    result = postprocess(half1, half2, PIXEL, mask=np.ones((N, N, N), np.float32))
    assert result.bfactor_A2 == pytest.approx(bfactor, rel=0.1)
    # sharpening undoes the decay: the sharpened map's spectrum is flat (within the FSC weight's 1 %)
    power = shell_power(result.sharpened)[4 : N // 2 - 4]
    assert power.max() / power.min() < 1.3


def test_automatic_mask_covers_the_density_and_is_soft():
    k = torch.arange(N, dtype=torch.float64) - N // 2
    z, y, x = torch.meshgrid(k, k, k, indexing="ij")
    blob = torch.exp(-(x * x + y * y + (z - 5) ** 2) / (2 * 6.0**2))
    mask = automatic_mask(blob, PIXEL, threshold=0.2, extend_px=2, soft_edge_px=4)
    assert float(mask[N // 2 + 5, N // 2, N // 2]) == 1.0
    assert float(mask[0, 0, 0]) == 0.0
    values = mask.numpy()
    assert ((values > 0.05) & (values < 0.95)).sum() > 100  # a soft edge, not a step


def test_randomised_phases_keep_amplitudes_and_low_shells():
    volume = _white(10)
    out = randomise_phases(volume, 8, seed=1).double()
    assert np.allclose(shell_power(out), shell_power(volume), rtol=1e-4)
    fsc = half_map_fsc(volume, out, PIXEL).correlation
    assert fsc[:9].min() > 0.999 and np.abs(fsc[12:]).max() < 0.1
