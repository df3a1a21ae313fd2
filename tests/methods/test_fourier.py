import pytest
import scipy.fft
import torch

from tomoforge.methods.fourier import bin_fourier, fast_fft_size, fourier_shift_2d, frequency_grid_2d, pad_to


def test_integer_fourier_shift_is_roll():
    img = torch.randn(32, 48, generator=torch.Generator().manual_seed(0))
    out = fourier_shift_2d(img, (3.0, -5.0))
    assert torch.allclose(out, torch.roll(img, (3, -5), dims=(0, 1)), atol=1e-5)


def test_bin_keeps_mean_and_grid_units():
    img = torch.randn(64, 64, generator=torch.Generator().manual_seed(1)) + 3
    b = bin_fourier(img, 2)
    assert b.shape == (32, 32)
    assert abs(float(b.mean() - img.mean())) < 1e-5
    ky, kx = frequency_grid_2d((10, 10), 2.0)
    assert abs(float(kx[0, 5]) - 0.25) < 1e-7 and abs(float(ky[5, 0]) + 0.25) < 1e-7


def test_pad_to_keeps_centre():
    x = torch.zeros(5, 5)
    x[2, 2] = 1
    assert pad_to(x, (8, 8))[4, 4] == 1


def test_fast_fft_size_is_the_next_5_smooth_length():
    known = {1: 1, 7: 8, 11: 12, 13: 15, 17: 18, 97: 100, 101: 108, 1000: 1000, 1021: 1024, 4097: 4320}
    assert {n: fast_fft_size(n) for n in known} == known
    assert [fast_fft_size(n, even=True) for n in (1, 7, 13, 15, 97, 121, 241)] == [2, 8, 16, 16, 100, 128, 250]
    for n in range(1, 3000):  # scipy's real-input fast lengths are the 5-smooth ones
        assert fast_fft_size(n) == scipy.fft.next_fast_len(n, real=True)
    with pytest.raises(ValueError, match="at least 1"):
        fast_fft_size(0)
