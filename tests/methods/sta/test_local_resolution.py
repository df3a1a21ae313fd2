"""Local resolution: half maps whose noise differs between two halves of the box; each half's windows find
the crossing that its signal and noise spectra predict (within one window shell)."""

from __future__ import annotations

import numpy as np
import torch

from tomoforge.methods.sta.fsc import apply_shell_filter, shell_power
from tomoforge.methods.sta.local_resolution import local_resolution

N, PIXEL, WINDOW = 48, 3.0, 16


def _white(seed: int) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).standard_normal((N, N, N)))


def _predicted_A(signal: torch.Tensor, noise_sd: float) -> float:
    """1 / frequency where S / (S + N) = 0.143, from the signal's shell power and white noise's (linear)."""
    s = shell_power(signal)
    n = noise_sd**2 * N**3
    fsc = s / (s + n)
    i = int(np.nonzero(fsc[1:] < 0.143)[0][0]) + 1
    shell = i - 1 + (fsc[i - 1] - 0.143) / (fsc[i - 1] - fsc[i])
    return N * PIXEL / shell


def test_each_region_gets_the_resolution_its_noise_predicts():
    signal = apply_shell_filter(_white(1), np.exp(-0.2 * np.arange(N))).double()
    quiet, loud = 0.03, 0.12
    x = torch.arange(N)
    sd = torch.where(x < N // 2, quiet, loud).double()[None, None, :]  # by x: left quiet, right loud
    half1 = signal + sd * _white(2)
    half2 = signal + sd * _white(3)
    res = local_resolution(half1, half2, PIXEL, window_px=WINDOW, step_px=4).numpy()
    margin = WINDOW // 2
    left = np.median(res[:, :, : N // 2 - margin])
    right = np.median(res[:, :, N // 2 + margin :])
    shell_A = lambda r: WINDOW * PIXEL / r  # resolution (Å) -> window shell  # noqa: E731
    assert abs(shell_A(left) - shell_A(_predicted_A(signal, quiet))) <= 1.0
    assert abs(shell_A(right) - shell_A(_predicted_A(signal, loud))) <= 1.0
    assert left < right - PIXEL
