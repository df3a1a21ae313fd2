"""Grant & Grigorieff (2015) critical exposure and attenuation."""

import math

import torch

from tomoforge.methods.preprocess.dose import (
    critical_exposure,
    exposure_attenuation,
    exposure_filter_2d,
    filter_by_exposure,
)


def test_critical_exposure_formula():
    for k in (0.02, 0.1, 0.25):
        assert abs(float(critical_exposure(torch.tensor(k, dtype=torch.float64))) - (0.245 * k**-1.665 + 2.81)) < 1e-9


def test_attenuation_formula_and_filter():
    k, n = 0.1, 30.0
    expected = math.exp(-n / (2 * (0.245 * k**-1.665 + 2.81)))
    assert abs(float(exposure_attenuation(torch.tensor(k, dtype=torch.float64), n)) - expected) < 1e-9
    filt = exposure_filter_2d((100, 100), 1.0, n)
    assert abs(float(filt[0, 10]) - expected) < 1e-6  # kx = 10 / 100 Å
    assert float(filt[0, 0]) > 0.999


def test_filter_by_exposure_keeps_mean_and_damps_high_frequencies(device):
    g = torch.Generator().manual_seed(0)
    images = (torch.randn(2, 64, 64, generator=g) + 5).to(device)
    out = filter_by_exposure(images, [0.0, 60.0], 2.0)
    assert out.device.type == device.type
    assert torch.allclose(out[0], images[0], atol=1e-4)
    assert abs(float(out[1].mean() - images[1].mean())) < 1e-4
    assert float(out[1].std()) < 0.5 * float(images[1].std())
