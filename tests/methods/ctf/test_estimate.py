"""CTF estimation of single images: running statistics, the tilted geometry's sign against the projection
model, gold erasure, and fits of synthetic images whose defocus, astigmatism, phase shift and tilt are
known (a random phase object on a tilted plane, imaged slab by slab at its own defocus)."""

import math

import numpy as np
import pytest
import torch

from tomoforge.methods.ctf.estimate import FitSettings, Optics, fit_image, strip_spectra
from tomoforge.methods.ctf.estimate.background import running_mean, running_median
from tomoforge.methods.ctf.estimate.hand import gradient_scores
from tomoforge.methods.ctf.estimate.spectra import distance_from_axis_px, erase_high_contrast, height_above_axis_A
from tomoforge.methods.ctf.transfer import ctf_2d
from tomoforge.methods.rotations import tilt_projection_matrix

PX = 3.0
SETTINGS = FitSettings(box=256)  # 9 tiles on the 512² synthetic images, in 3 strips or more


def tilted_image(
    tilt_deg: float,
    axis_deg: float = 85.0,
    defocus_A: float = 30000.0,
    astig_A: float = 800.0,
    angle_deg: float = 25.0,
    phase_deg: float = 0.0,
    n: int = 512,
    dose: float | None = 50.0,
    seed: int = 0,
) -> torch.Tensor:
    """A white phase object on the plane z = 0 tilted by ``tilt_deg`` about the axis at ``axis_deg``: each
    pixel at distance d from the axis sits at height −d · px · tan β and is imaged in 50 Å slabs with
    DefocusU/V + height (the simulator's convention); Poisson noise of ``dose`` counts/px if given."""
    gen = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    phi = math.radians(axis_deg)
    height = -math.tan(math.radians(tilt_deg)) * PX * (x * math.cos(phi) + y * math.sin(phi))
    slab = torch.round(height / 50.0)
    potential = 0.05 * torch.randn(n, n, generator=gen)
    spectrum = 0
    for k in torch.unique(slab).tolist():
        ctf = ctf_2d(
            (n, n),
            PX,
            defocus_A + astig_A / 2 + 50 * k,
            defocus_A - astig_A / 2 + 50 * k,
            angle_deg,
            phase_shift_deg=phase_deg,
        )
        spectrum = spectrum + torch.fft.rfft2(potential * (slab == k)) * ctf
    image = 1 + 2 * torch.fft.irfft2(spectrum, s=(n, n))
    if dose:
        image = torch.poisson(image.clamp(min=0) * dose, generator=gen)
    return image


def angle_error(a: float, b: float) -> float:
    return abs((a - b + 90) % 180 - 90)


def test_running_median_and_mean_match_numpy_with_variable_windows():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 40))
    half = torch.tensor(rng.integers(1, 6, size=40), dtype=torch.float32)
    med = running_median(torch.from_numpy(values), half).numpy()
    mean = running_mean(torch.from_numpy(values), half).numpy()
    for i in range(40):
        h = int(half[i])
        idx = np.abs(np.arange(i - h, i + h + 1))  # mirrored at the start
        idx = np.where(idx > 39, 78 - idx, idx)
        assert np.allclose(med[:, i], np.median(values[:, idx], axis=1))
        if h <= i <= 39 - h:  # width 2h: the two end samples count half
            window = values[:, i - h + 1 : i + h].sum(axis=1) + 0.5 * (values[:, i - h] + values[:, i + h])
            assert np.allclose(mean[:, i], window / (2 * h), atol=1e-6)
    assert np.isfinite(mean).all()
    ramp = torch.linspace(0, 5, 50) ** 2  # a monotone background is followed exactly
    assert torch.allclose(running_median(ramp, torch.full((50,), 7.0))[8:-8], ramp[8:-8])


def test_running_median_samples_a_wide_window_evenly():
    """A window wider than 10 px a side is sampled at 21 points (offsets round(j h / 10), j = −10 … 10): the
    median of exactly those samples; a monotone background is still followed exactly."""
    rng = np.random.default_rng(2)
    values = rng.normal(size=(2, 200))
    half = torch.full((200,), 30.0)
    med = running_median(torch.from_numpy(values), half).numpy()
    offsets = np.round(np.arange(-10, 11) * 3.0).astype(int)
    for i in range(30, 170):
        assert np.allclose(med[:, i], np.median(values[:, i + offsets], axis=1))
    ramp = torch.linspace(0, 5, 200) ** 3
    assert torch.allclose(running_median(ramp, half)[30:-30], ramp[30:-30])


@pytest.mark.parametrize("tilt, axis", [(30.0, 85.0), (-50.0, -94.7), (12.0, 0.0)])
def test_strip_height_follows_the_projection_model(tilt, axis):
    """A tomogram point (X, Y, 0) lands at x_image = (Rz Ry X)[:2] with height (Rz Ry X)_z (towards the
    source): the height the strips are given at that image position must be that height."""
    rng = np.random.default_rng(1)
    m = tilt_projection_matrix(tilt, axis)
    for point in rng.uniform(-1500, 1500, size=(5, 2)):
        q = m @ np.array([point[0], point[1], 0.0])
        d = distance_from_axis_px(torch.tensor([[q[1] / PX, q[0] / PX]]), axis)
        assert float(height_above_axis_A(d, tilt, PX)[0]) == pytest.approx(q[2], abs=1e-3)


def test_erasing_a_black_bead_leaves_the_local_level():
    image = torch.poisson(torch.full((256, 256), 20.0), generator=torch.Generator().manual_seed(0))
    y, x = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    bead = (y - 100) ** 2 + (x - 140) ** 2 < 15**2
    image[bead] = 0.0
    erased = erase_high_contrast(image)
    assert float(erased[bead].mean()) == pytest.approx(20.0, abs=1.0)
    far = (y - 100) ** 2 + (x - 140) ** 2 > 40**2
    assert torch.equal(erased[far & (y > 200)], image[far & (y > 200)])


@pytest.mark.parametrize("tilt", [0.0, 45.0])
def test_fit_recovers_defocus_and_astigmatism_of_a_tilted_plane(tilt):
    image = tilted_image(tilt)
    fit = fit_image(image, Optics(PX), SETTINGS, tilt, 85.0)
    assert fit.defocus_A == pytest.approx(30000, abs=50)  # measured: 0°: −18 Å, 45°: −5 Å
    assert fit.defocus_u_A - fit.defocus_v_A == pytest.approx(800, abs=80)  # 765 Å, 818 Å
    assert angle_error(fit.astigmatism_angle_deg, 25.0) < 5  # 1.0°, 2.3°
    assert 6.0 <= fit.fit_resolution_A < 7.0  # 6.14 Å (Nyquist 6 Å)
    assert fit.phase_shift_deg == 0.0


def test_wrong_hand_fits_worse_on_a_tilted_plane():
    image = tilted_image(50.0, defocus_A=25000.0)
    optics, settings = Optics(PX), SETTINGS
    fit = fit_image(image, optics, settings, 50.0, 85.0)
    spectra = strip_spectra(image, optics, settings, 50.0, 85.0)
    params = torch.tensor([fit.defocus_A, 0.0, 0.0, 0.0])
    scores = gradient_scores(spectra, optics, params, torch.tensor([1.0, -1.0]), 50.0, 5.0)
    assert float(scores[0]) > float(scores[1]) + 0.1  # measured 0.34 vs 0.09
    flipped = fit_image(image, optics, settings, -50.0, 85.0)  # the tilt angle of the wrong sign
    assert flipped.score < fit.score - 0.1  # 0.11 vs 0.41
    assert fit.defocus_A == pytest.approx(25000, abs=50)  # −4 Å


def test_phase_shift_is_found_when_asked():
    image = tilted_image(0.0, defocus_A=12000.0, astig_A=0.0, phase_deg=70.0)
    settings = FitSettings(box=256, find_phase_shift=True, defocus_min_A=5000.0, defocus_max_A=20000.0)
    fit = fit_image(image, Optics(PX), settings)
    assert fit.phase_shift_deg == pytest.approx(70.0, abs=5.0)  # measured 69.8°
    assert fit.defocus_A == pytest.approx(12000, abs=50)  # −13 Å
    off = fit_image(image, Optics(PX), FitSettings(box=256, defocus_min_A=5000.0, defocus_max_A=20000.0))
    assert off.phase_shift_deg == 0.0 and off.score < fit.score - 0.1  # 0.43 vs 0.63


def test_tile_content_centres_follow_the_located_power():
    """One 256 px tile: white noise alone puts its centre at the tile's centre; a textured patch (3× the
    noise's band power over 48 × 48 px) near one corner pulls it there, by the patch's share of the power."""
    from tomoforge.methods.ctf.estimate.spectra import tile_content_centres

    g = torch.Generator().manual_seed(0)
    noise = torch.randn((256, 256), generator=g)
    centre = tile_content_centres(noise, 256, 0.5, 3.0, 50.0, 8.0)
    assert centre.shape == (1, 2) and centre.abs().max() < 4.0
    image = noise.clone()
    image[30:78, 170:218] += 2.0 * torch.randn((48, 48), generator=g)  # centred at (y, x) = (54, 194)
    moved = tile_content_centres(image, 256, 0.5, 3.0, 50.0, 8.0)[0]
    share = 48 * 48 * 3.0 / (256 * 256 + 48 * 48 * 3.0)  # excess power / all (the median spread evenly)
    expected = share * (torch.tensor([54.0, 194.0]) - 127.5)
    assert torch.allclose(moved, expected, atol=3.0), (moved, expected)
    blank = tile_content_centres(torch.zeros((256, 256)), 256, 0.5, 3.0, 50.0, 8.0)
    assert torch.equal(blank, torch.zeros((1, 2)))  # nothing located: the geometric centre, no NaN


@pytest.mark.parametrize(("px", "box", "high_A"), [(5.0, 308, 10.0), (3.0, 512, 12.5)])
def test_the_background_does_not_shift_the_rings(px, box, high_A):
    """A spectrum that is exactly the model's (1 + 3 CTF² at 3 µm, the 1536 Å box) scores best at its own
    defocus. With the background the running median alone (before this test), the best was +70 Å at
    5 Å/px (band to Nyquist, 10 Å) and +170 Å at 3 Å/px with the band stopped at 12.5 Å: the median follows
    the chirped rings; measured now +10 Å and −10 Å (grid 10 Å)."""
    from tomoforge.methods.ctf.estimate.fit import landscape
    from tomoforge.methods.ctf.estimate.model import StripSpectra, ring_model
    from tomoforge.methods.ctf.estimate.spectra import PolarGrid

    optics, grid = Optics(px), PolarGrid.build(box, px, 36)
    spectra = StripSpectra(grid, torch.zeros(1, 36, grid.n_radii), torch.zeros(1), (0.0, 0.0))
    ctf2 = 0.5 + ring_model(spectra, optics, torch.tensor([30000.0]), None, None, torch.zeros(1))[0]
    spectra.amplitude = (1 + 3 * ctf2).expand(1, 36, -1).contiguous()
    defocus = torch.arange(29000.0, 31001.0, 10.0)
    scores = landscape(spectra, optics, FitSettings(resolution_high_A=high_A), defocus, torch.zeros(1), 30000.0)
    assert abs(float(defocus[int(scores.argmax())]) - 30000.0) <= 30.0


def test_strips_are_as_wide_as_the_height_tolerance_allows():
    """An untilted image is one strip; a tilted one is cut where the specimen's height changes by
    ``strip_height_A`` (60 Å), strips at least ``strip_fraction`` (1/8) of a box wide. 5 Å/px, 768² of noise
    (4 × 4 tiles of the 308 px box, their content centres scattered): before, 10 strips at every tilt."""
    from tomoforge.methods.ctf.estimate.fit import strip_width_px

    settings, px = FitSettings(), 5.0
    assert strip_width_px(settings, 308, px, 0.0) == math.inf
    assert strip_width_px(settings, 308, px, 5.0) == pytest.approx(60.0 / (px * math.tan(math.radians(5.0))))
    assert strip_width_px(settings, 308, px, 60.0) == pytest.approx(308 / 8)
    image = torch.randn((768, 768), generator=torch.Generator().manual_seed(0))
    counts = {t: strip_spectra(image, Optics(px), settings, t, 85.0).amplitude.shape[0] for t in (0.0, 2.0, 45.0)}
    assert counts == {0.0: 1, 2.0: 3, 45.0: 10}, counts
