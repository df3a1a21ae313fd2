"""CTF correction: defocus gradient against the simulator's projection, filters against the CTF formula,
strip phase flip on a synthetic tilted specimen, and the issue's floor on a simulated tilt series: after
correction the FRC with the CTF-free noise-free truth no longer changes sign past the first CTF zero."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoforge.methods.ctf.correct import (
    CorrectionSettings,
    correct_ctf_image,
    correct_ctf_stack,
    correction_filters,
    defocus_gradient,
    fourier_ring_correlation,
    strip_offsets,
)
from tomoforge.methods.ctf.transfer import ctf_1d, ctf_2d, electron_wavelength_A
from tomoforge.methods.rotations import tilt_projection_matrix

LAMBDA_300 = electron_wavelength_A(300.0)


def test_defocus_gradient_is_the_height_of_the_projected_mid_plane():
    rng = np.random.default_rng(0)
    for tilt, z_rot, x_tilt in ((60.0, 0.0, 0.0), (-45.0, 85.0, 0.0), (30.0, -174.2, 2.5), (0.0, 40.0, 0.0)):
        g = defocus_gradient(tilt, z_rot, x_tilt)[0]
        r = tilt_projection_matrix(tilt, z_rot, x_tilt)  # the simulator's Rz · Ry · Rx
        points = np.c_[rng.uniform(-2000, 2000, (50, 2)), np.zeros(50)]
        projected = points @ r.T  # (x, y) in the image (Å from the specimen centre's image), z = height h
        np.testing.assert_allclose(projected[:, :2] @ g, projected[:, 2], atol=1e-8)
        if x_tilt == 0.0:  # |g| = tan(tilt), perpendicular to the tilt axis (ZRot from the image Y axis)
            assert np.hypot(*g) == pytest.approx(abs(math.tan(math.radians(tilt))), abs=1e-12)
            axis = np.array([-math.sin(math.radians(z_rot)), math.cos(math.radians(z_rot))])
            assert abs(g @ axis) < 1e-12


def test_filters_follow_the_ctf_formula_with_astigmatism(device):
    shape, px = (96, 128), 2.0
    for u, v, angle in ((25000.0, 23000.0, 30.0), (18000.0, 18000.0, 0.0), (40000.0, 38500.0, -65.0)):
        ctf = ctf_2d(shape, px, u, v, angle).double()
        flip = correction_filters(shape, px, [u], [v], angle, device=device)[0].double()
        assert flip.device.type == device.type
        flip = flip.cpu()
        clear = ctf.abs() > 1e-3
        assert torch.equal(flip[clear], -torch.sign(ctf[clear]))
        wiener = correction_filters(shape, px, [u], [v], angle, method="wiener", wiener_snr=4.0, device=device)
        wiener = wiener[0].double().cpu()
        torch.testing.assert_close(
            wiener, -ctf / (ctf * ctf + 0.25), atol=3e-4, rtol=0
        )  # χ in float32: measured 1.4e-4
        b = correction_filters(shape, px, [u], [v], angle, method="wiener", wiener_snr=4.0, wiener_b_factor_A2=200.0)[
            0
        ].double()
        ky = torch.fft.fftfreq(shape[0], px)[:, None].double()
        kx = torch.fft.rfftfreq(shape[1], px)[None, :].double()
        snr = 4.0 * torch.exp(-200.0 * (ky**2 + kx**2) / 2)
        torch.testing.assert_close(b, -ctf / (ctf * ctf + 1 / snr), atol=3e-4, rtol=0)
    with pytest.raises(ValueError, match="method"):
        correction_filters(shape, px, [2e4], [2e4], 0.0, method="deconvolve")


def test_strips_keep_every_pixel_within_the_tolerance():
    offsets = torch.linspace(-1300.0, 1300.0, 512, dtype=torch.float64)[None, :].expand(64, 512)
    centres, index = strip_offsets(offsets, 100.0, 1.732 * 2.0, 0)
    assert len(centres) == 13  # 2600 Å of defocus in strips of ≤ 200 Å
    assert float((offsets - centres[index]).abs().max()) <= 100.0 + 1e-9
    centres, _ = strip_offsets(offsets, 100.0, 1.732 * 2.0, 16)  # 16 px = 55 Å of defocus at 60°, 2 Å/px
    assert len(centres) == 47
    centres, index = strip_offsets(torch.zeros(8, 8, dtype=torch.float64), 100.0, 0.0, 16)
    assert len(centres) == 1 and float(centres[0]) == 0.0


def tilted_specimen_image(obj: torch.Tensor, px: float, defocus_A: float, tilt_deg: float, bin_A: float = 40.0):
    """Image of a thin specimen ``obj`` (y, x) on the mid-plane tilted about the image Y axis (ZRot 0):
    a point at image x has height h = −tan(tilt)·x (Ry maps (x, z) to (cos·x + sin·z, −sin·x + cos·z)),
    each ``bin_A`` band of heights imaged with its own CTF (object side, as the simulator does)."""
    ny, nx = obj.shape
    x = (torch.arange(nx, dtype=torch.float64) - nx // 2) * px
    h = (-math.tan(math.radians(tilt_deg)) * x)[None, :].expand(ny, nx)
    bins = torch.round(h / bin_A)
    image = torch.zeros(ny, nx, dtype=torch.float64)
    k = torch.sqrt(torch.fft.fftfreq(ny, px)[:, None] ** 2 + torch.fft.rfftfreq(nx, px)[None, :] ** 2).double()
    for b in torch.unique(bins).tolist():
        part = torch.where(bins == b, obj.double(), torch.zeros((), dtype=torch.float64))
        ctf = ctf_1d(k, defocus_A + b * bin_A)  # no astigmatism: the textbook CTF of tomoforge.methods.ctf.transfer
        image += torch.fft.irfft2(torch.fft.rfft2(part) * ctf, s=(ny, nx))
    return image.float()


def band_correlations(a: torch.Tensor, b: torch.Tensor, px: float, k_min: float, bands: int) -> np.ndarray:
    """Correlation of a and b high-passed above ``k_min`` (1/Å), in ``bands`` column bands across x."""
    ky = torch.fft.fftfreq(a.shape[0], px)[:, None]
    kx = torch.fft.rfftfreq(a.shape[1], px)[None, :]
    keep = (ky**2 + kx**2).sqrt() >= k_min
    fa = torch.fft.irfft2(torch.fft.rfft2(a) * keep, s=a.shape)
    fb = torch.fft.irfft2(torch.fft.rfft2(b) * keep, s=b.shape)
    out = []
    for cols in torch.arange(a.shape[1]).chunk(bands):
        x, y = fa[:, cols].double().ravel(), fb[:, cols].double().ravel()
        out.append(float((x * y).sum() / torch.sqrt((x * x).sum() * (y * y).sum())))
    return np.array(out)


def test_strip_flip_removes_the_sign_errors_a_single_defocus_leaves_at_the_edges():
    px, defocus, tilt = 2.0, 30000.0, 60.0
    obj = torch.randn(256, 512, generator=torch.Generator().manual_seed(1))
    image = tilted_specimen_image(obj, px, defocus, tilt)
    reference = -obj  # the image with a perfect transfer CTF = −1
    periodic = dict(pad_px=0)  # the synthetic image is formed periodically (FFT)
    single, n1 = correct_ctf_image(
        image, px, defocus, defocus, 0.0, tilt, 0.0, settings=CorrectionSettings(defocus_tolerance_A=1e6, **periodic)
    )
    strips, n2 = correct_ctf_image(
        image, px, defocus, defocus, 0.0, tilt, 0.0, settings=CorrectionSettings(defocus_tolerance_A=50.0, **periodic)
    )
    assert (n1, n2) == (1, 18)  # ±887 Å of defocus across the image at 60°
    # above 1/6.1 Å a 887 Å defocus error turns the CTF phase by more than π/2 (π λ Δf k²)
    k_min = math.sqrt(0.5 / (LAMBDA_300 * 887.0))
    c_single = band_correlations(single, reference, px, k_min, 8)
    c_strips = band_correlations(strips, reference, px, k_min, 8)
    assert c_single[0] < -0.2 and c_single[-1] < -0.2, c_single  # measured −0.47, −0.47 at the edges
    assert c_strips.min() > 0.6, c_strips  # measured 0.75…0.76 in every band (0.70 at the centre unflipped)
    wrong_hand, _ = correct_ctf_image(
        image,
        px,
        defocus,
        defocus,
        0.0,
        tilt,
        0.0,
        settings=CorrectionSettings(defocus_tolerance_A=50.0, handedness=-1, **periodic),
    )
    c_wrong = band_correlations(wrong_hand, reference, px, k_min, 8)
    assert (c_wrong[[1, 2, 5, 6]] < 0.0).all(), c_wrong  # the other hand doubles the error: −0.34…−0.38


def test_wiener_restores_amplitudes_better_than_a_flip_and_skipped_views_pass_through(device):
    px, defocus = 2.0, 25000.0
    obj = torch.randn(2, 128, 128, generator=torch.Generator().manual_seed(2))
    ctf = ctf_2d((128, 128), px, defocus, defocus)
    images = torch.fft.irfft2(torch.fft.rfft2(obj) * ctf, s=(128, 128)).to(device)  # the work follows the input
    flip, strips = correct_ctf_stack(
        images, px, defocus, defocus, 0.0, 0.0, 0.0, settings=CorrectionSettings(pad_px=0), skip=[False, True]
    )
    wiener, _ = correct_ctf_stack(
        images,
        px,
        defocus,
        defocus,
        0.0,
        0.0,
        0.0,
        settings=CorrectionSettings(method="wiener", wiener_snr=100.0, pad_px=0),
    )
    assert flip.device.type == device.type and wiener.device.type == device.type
    assert strips == [1, 0] and torch.equal(flip[1], images[1])

    def corr(a, b):
        return float(np.corrcoef(a.ravel().cpu().numpy(), b.ravel().cpu().numpy())[0, 1])

    assert corr(wiener[0], -obj[0]) > corr(flip[0], -obj[0]) + 0.05  # measured 0.975 vs 0.903 (noise-free)


@pytest.fixture(scope="module")
def ctf_free_simulation(tmp_path_factory, test_data):
    """A tiny simulation at 3 Å/px (5 tilts, −60…60°) with the CTF-free noise-free stack. The gold's
    absorption is off: the simulator adds it unmodulated by the CTF, which a flip would wrongly invert."""
    from tomoforge.simulate import simulate

    return simulate(
        tmp_path_factory.mktemp("ctf_free"),
        preset="tiny",
        seed=3,
        progress=False,
        overrides={
            "data_root": str(test_data),
            "detector.image_size": [256, 256],
            "detector.pixel_size_A": 3.0,
            "acquisition.tilt_min_deg": -60.0,
            "acquisition.tilt_max_deg": 60.0,
            "acquisition.tilt_step_deg": 30.0,
            "acquisition.frames_per_tilt": 1,
            "output.write_ctf_free_stack": True,
            "specimen.fiducials.absorption_per_A": 0.0,
        },
    )


def test_corrected_frc_with_the_ctf_free_truth_keeps_its_sign_past_the_first_zero(ctf_free_simulation):
    from tomoforge.io.mrc import read_mrc

    ts = ctf_free_simulation.tilt_series[0]
    truth = ts.truth
    raw = torch.from_numpy(read_mrc(ts.noise_free_stack))
    free = torch.from_numpy(read_mrc(ctf_free_simulation.outdir / truth["noise_free_tilt_series_ctf_free"]))
    tilts = truth["tilts"]
    corrected, strips = correct_ctf_stack(
        raw,
        truth["pixel_size_A"],
        [t["defocus_u_A"] for t in tilts],
        [t["defocus_v_A"] for t in tilts],
        [t["defocus_angle_deg"] for t in tilts],
        [t["y_tilt_deg"] for t in tilts],
        [t["z_rot_deg"] for t in tilts],
        [t["x_tilt_deg"] for t in tilts],
        [[t["x_shift_A"], t["y_shift_A"]] for t in tilts],
        settings=CorrectionSettings(pad_px=0),
    )  # the simulator forms images periodically
    assert min(strips[2], strips[4]) >= 3  # measured 4 and 4 strips at ±60° (768 Å field, ±228 Å by default)
    worst = 1.0
    for i, t in enumerate(tilts):
        k, before = fourier_ring_correlation(raw[i] - raw[i].mean(), free[i] - free[i].mean(), truth["pixel_size_A"])
        _, after = fourier_ring_correlation(
            corrected[i] - corrected[i].mean(), free[i] - free[i].mean(), truth["pixel_size_A"]
        )
        first_zero = math.sqrt(1.0 / (LAMBDA_300 * t["defocus_u_A"]))  # χ = π (A ≈ 0.07 puts it a little lower)
        past = k.numpy() > first_zero
        changes = int(np.sum(np.diff(np.sign(before.numpy()[past])) != 0))
        assert changes >= 8, (t["nominal_tilt_deg"], changes)  # measured 10 sign changes up to Nyquist
        assert float(after[past].min()) > 0.3, (t["nominal_tilt_deg"], after[past].min())
        worst = min(worst, float(after[past].min()))
    assert worst > 0.3  # measured 0.50 (−60°, a shell at a CTF zero; 0.55 at ±100 Å); median 0.91–0.99


def test_frc_of_an_image_with_itself_and_with_its_negative():
    img = torch.randn(64, 64, generator=torch.Generator().manual_seed(3))
    k, same = fourier_ring_correlation(img, img, 2.0)
    _, neg = fourier_ring_correlation(img, -img, 2.0)
    assert len(k) == 32 and float(k[-1]) < 0.25 and float(k[-1]) > 0.24
    torch.testing.assert_close(same, torch.ones(32, dtype=torch.float64))
    torch.testing.assert_close(neg, -torch.ones(32, dtype=torch.float64))
