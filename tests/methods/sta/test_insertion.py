"""Fourier insertion: views of a known map reconstructed back (FSC and scale), symmetry, CTF and dose."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.methods.sta.gaussians import GaussianMap
from tomoforge.methods.ctf.transfer import ctf_2d
from tomoforge.methods.map_alignment import fourier_shell_correlation
from tomoforge.methods.projection import prepare_fourier_volume, project_fourier_slice
from tomoforge.methods.rotations import random_rotations
from tomoforge.methods.sta.insertion import (
    ViewFilters,
    insert_views,
    new_accumulator,
    outside_sphere,
    reconstruct_map,
    reconstruct_views,
    tau2_from_fsc,
)
from tomoforge.methods.symmetry import symmetry_operators

BOX = 24


def _fsc(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
    return fourier_shell_correlation(
        torch.as_tensor(np.asarray(a), dtype=torch.float64), torch.as_tensor(np.asarray(b), dtype=torch.float64), 1.0
    )[1]


@pytest.fixture(scope="module")
def blobs() -> GaussianMap:
    return GaussianMap(BOX)


@pytest.fixture(scope="module")
def rotations() -> np.ndarray:
    return random_rotations(600, np.random.default_rng(3))


def test_views_from_many_directions_give_the_map_back(blobs, rotations):
    truth = blobs.volume()
    rec = reconstruct_views(blobs.views(rotations), rotations)
    fsc = _fsc(truth, rec)
    assert fsc[: int(0.8 * BOX / 2) + 1].min() >= 0.9, fsc
    # the map's projections are the views: the same scale as the truth
    scale = float((rec.double().numpy() * truth).sum() / (truth**2).sum())
    assert scale == pytest.approx(1.0, abs=0.05)


def test_unpadded_views_relion_sampling_give_the_map_back(blobs, rotations):
    """pad_views=False (the views' own b² spectra placed on the 2x grid, the default of reconstruct_views): the
    map to 0.8 Nyquist, the same scale."""
    truth = blobs.volume()
    rec = reconstruct_views(blobs.views(rotations), rotations, pad_views=False)
    fsc = _fsc(truth, rec)
    assert fsc[: int(0.8 * BOX / 2) + 1].min() >= 0.99, fsc  # 0.9992
    scale = float((rec.double().numpy() * truth).sum() / (truth**2).sum())
    assert scale == pytest.approx(1.0, abs=0.05)


def test_unpadded_views_alias_outside_the_inscribed_sphere_only():
    """A particle to 0.4 of the box (blobs within 10 px of a 32-px box): unpadded views repeat every 32 px, so
    the map in the whole box is off (FSC to 0.8 Nyquist 0.915) and inside the inscribed sphere, the map that
    reconstruct_map keeps, exact (0.9925; padded 0.991 / 0.998)."""
    box = 32
    wide = GaussianMap(box, count=30, sigma=1.5, radius=10.0)
    truth = wide.volume()
    rots = random_rotations(600, np.random.default_rng(3))
    acc = new_accumulator(box)
    insert_views(acc, wide.views(rots), rots, pad_views=False)
    whole = reconstruct_map(acc, sphere=False)
    kept = reconstruct_map(acc)
    top = int(0.8 * box / 2) + 1
    assert _fsc(truth, whole)[1:top].min() < 0.94
    assert _fsc(truth, kept)[1:top].min() >= 0.99
    # the fine error (frequencies beyond half Nyquist) lives outside the sphere: its mean square there is
    # 21x that inside (3.2x for padded views)
    z = np.arange(box) - box // 2
    r = np.sqrt(z[:, None, None] ** 2 + z[None, :, None] ** 2 + z[None, None, :] ** 2)
    k = np.fft.fftfreq(box, 1.0 / box)
    fine = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2) > box / 4
    error = np.fft.ifftn(np.fft.fftn(whole.double().numpy() - truth) * fine).real ** 2
    inside, outside = error[r < box / 2 - 2].mean(), error[r > box / 2 + 2].mean()
    assert outside > 10 * inside, (inside, outside)
    assert torch.equal(kept, outside_sphere(whole))


def test_projector_views_agree_with_closed_form(blobs):
    """project_fourier_slice of the sampled map gives the closed-form views: the two conventions agree."""
    rots = random_rotations(3, np.random.default_rng(5))
    fv = prepare_fourier_volume(torch.as_tensor(blobs.volume(), dtype=torch.float32), 1.0)
    lo = fv.n // 2 - BOX // 2
    projected = np.stack([project_fourier_slice(fv, r)[lo : lo + BOX, lo : lo + BOX].numpy() for r in rots])
    expected = blobs.views(rots)
    # the projector's trilinear Fourier interpolation damps the edges a little (no gridding correction there)
    cc = (projected * expected).sum((1, 2)) / np.sqrt((projected**2).sum((1, 2)) * (expected**2).sum((1, 2)))
    assert cc.min() > 0.998
    assert np.abs(projected - expected).max() < 0.06 * expected.max()


def test_transposed_rotations_fail(blobs, rotations):
    """A wrong convention (Rᵀ for R) loses the map: the test above can fail."""
    rec = reconstruct_views(blobs.views(rotations), np.swapaxes(rotations, 1, 2))
    fsc = _fsc(blobs.volume(), rec)
    assert fsc[4:10].mean() < 0.5, fsc


def test_symmetry_from_one_nth_of_the_views_equals_all_views(blobs):
    ops = symmetry_operators("D3")
    sym = blobs.symmetrised(ops)
    rots = random_rotations(100, np.random.default_rng(4))
    expanded = (rots[:, None] @ ops[None]).reshape(-1, 3, 3)
    full = reconstruct_views(sym.views(expanded), expanded)
    partial = reconstruct_views(sym.views(rots), rots, symmetry="D3")
    assert torch.allclose(partial, full, atol=2e-3 * float(full.abs().max()))
    assert _fsc(sym.volume(), partial)[: int(0.8 * BOX / 2) + 1].min() >= 0.9


def _ctf_filters(n: int, rng: np.random.Generator, pixel_size_A: float, premultiplied: bool) -> ViewFilters:
    u = rng.uniform(8000.0, 20000.0, n)
    return ViewFilters(
        defocus_u_A=u,
        defocus_v_A=u - rng.uniform(0.0, 500.0, n),
        astigmatism_deg=rng.uniform(0.0, 180.0, n),
        dose_e_A2=np.zeros(n),
        pixel_size_A=pixel_size_A,
        ctf_premultiplied=premultiplied,
    )


def _apply(views: np.ndarray, filters: ViewFilters, power: int) -> np.ndarray:
    """Views (n, b, b) multiplied by CTF^power, filtered on a twice larger grid and cropped (as insertion pads)."""
    n, b, _ = views.shape
    big = np.zeros((n, 2 * b, 2 * b))
    big[:, b // 2 : b // 2 + b, b // 2 : b // 2 + b] = views
    spectra = np.fft.rfft2(np.fft.ifftshift(big, axes=(1, 2)))
    ctf = np.stack(
        [
            ctf_2d((2 * b, 2 * b), filters.pixel_size_A, u, v, a).numpy()
            for u, v, a in zip(filters.defocus_u_A, filters.defocus_v_A, filters.astigmatism_deg)
        ]
    )
    out = np.fft.fftshift(np.fft.irfft2(spectra * ctf**power, s=(2 * b, 2 * b)), axes=(1, 2))
    return out[:, b // 2 : b // 2 + b, b // 2 : b // 2 + b]


@pytest.mark.parametrize("premultiplied", [False, True])
def test_ctf_modulated_views_with_ctf_weights_give_the_plain_map(blobs, rotations, premultiplied):
    rng = np.random.default_rng(6)
    rotations = rotations[:400]
    filters = _ctf_filters(len(rotations), rng, 6.0, premultiplied)
    plain = reconstruct_views(blobs.views(rotations), rotations)
    modulated = _apply(blobs.views(rotations), filters, 2 if premultiplied else 1)
    rec = reconstruct_views(modulated, rotations, filters=filters)
    fsc = _fsc(plain, rec)
    # many defoci fill each other's zeros: the whole curve, from the first shell on
    assert fsc[1 : int(0.8 * BOX / 2) + 1].min() >= 0.9, fsc
    error = float(torch.linalg.norm(rec - plain) / torch.linalg.norm(plain))
    assert error < 0.1
    # without the CTF weights the map is far off
    naive = reconstruct_views(modulated, rotations)
    assert float(torch.linalg.norm(naive - plain) / torch.linalg.norm(plain)) > 3 * error


def test_tau2_regularisation_zeroes_shells_without_signal(blobs, rotations):
    acc = new_accumulator(BOX)
    insert_views(acc, blobs.views(rotations), rotations)
    fsc = np.ones(BOX // 2 + 1) * 0.999
    fsc[8:] = 0.0
    tau2 = tau2_from_fsc(acc, fsc)
    assert np.all(tau2[8:] == 0) and np.all(tau2[:8] > 0)
    rec = reconstruct_map(acc, tau2=tau2)
    spectrum = torch.fft.fftshift(torch.fft.fftn(rec.double()))
    k = torch.arange(BOX) - BOX // 2
    kz, ky, kx = torch.meshgrid(k, k, k, indexing="ij")
    shell = torch.round(torch.sqrt((kz**2 + ky**2 + kx**2).double()))
    # beyond shell 8 only the gridding correction's leakage remains
    assert float(spectrum[shell > 9].abs().max()) < 1e-3 * float(spectrum.abs().max())
    low = _fsc(reconstruct_map(acc), rec)[:7]
    assert low.min() > 0.99


def test_max_shell_skips_finer_frequencies_and_keeps_the_coarser_ones(blobs, rotations):
    """RELION's --maxres: views inserted up to shell 6 give the full map's shells below it and lose its signal in
    shells 8 and 9 (what is left there is the trilinear spill and the gridding correction's leakage)."""
    full = reconstruct_views(blobs.views(rotations), rotations)
    acc = new_accumulator(BOX)
    insert_views(acc, blobs.views(rotations), rotations, max_shell=6.0)
    rec = reconstruct_map(acc)
    assert _fsc(full, rec)[:6].min() > 0.99
    k = torch.arange(BOX) - BOX // 2
    kz, ky, kx = torch.meshgrid(k, k, k, indexing="ij")
    shell = torch.round(torch.sqrt((kz**2 + ky**2 + kx**2).double())).long()
    cut, kept = (torch.fft.fftshift(torch.fft.fftn(x.double())).abs() for x in (rec, full))
    for s in (8, 9):  # the full map's largest coefficients there: 1.6e-2, 7.9e-3 of its maximum; here 3.6e-3, 2.6e-3
        assert float(cut[shell == s].max()) < 0.5 * float(kept[shell == s].max())
    with pytest.raises(ValueError, match="max_shell"):
        insert_views(acc, blobs.views(rotations[:2]), rotations[:2], max_shell=0.0)
