"""Extraction: particles land at the box centre, defocus at their height, binning does not move them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoforge.methods.align.projection_model import rotation_matrices
from tomoforge.methods.ctf.settings import Optics
from tomoforge.methods.ctf.transfer import ctf_2d
from tomoforge.methods.fourier import fourier_crop
from tomoforge.methods.sta.extraction import (
    batched_ctf,
    extract_particle_views,
    extract_subtomograms,
    project_particles,
    source_box,
    subtomogram_weights,
)

PIXEL = 2.0
TILTS = np.arange(-45.0, 46.0, 15.0)
Z_ROT = 85.3


def blob_centre(boxes: torch.Tensor, ndim: int) -> np.ndarray:
    """(…, ndim) centre (array order) of a symmetric blob in each periodic box, from the phase of the
    first Fourier coefficient along each axis."""
    n = boxes.shape[-1]
    spec = torch.fft.fftn(boxes.to(torch.float64), dim=tuple(range(-ndim, 0)))
    out = []
    for axis in range(ndim):
        index = [0] * ndim
        index[axis] = 1
        phase = torch.angle(spec[(Ellipsis, *index)]).numpy()
        out.append(np.mod(-phase * n / (2 * np.pi), n))
    return np.stack(out, axis=-1)


def gaussian_images(centres_yx: np.ndarray, shape: tuple[int, int], sigma: float, amplitude: float) -> np.ndarray:
    """(v, Y, X) images with a Gaussian at each (v, m, 2) centre (pixels, array order)."""
    y = np.arange(shape[0])[None, None, :, None]
    x = np.arange(shape[1])[None, None, None, :]
    cy, cx = centres_yx[..., 0, None, None], centres_yx[..., 1, None, None]
    return (amplitude * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))).sum(axis=1)


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(3)
    v = len(TILTS)
    r = rotation_matrices(TILTS, Z_ROT + rng.normal(0, 0.5, v), rng.normal(0, 1.0, v))
    shifts = rng.normal(0, 8.0, (v, 2))
    particles = np.array([[70.3, -80.7, 35.2], [-80.1, 70.6, -25.9], [5.5, 8.2, 0.4]])
    uv, height = project_particles(particles, r, shifts)
    shape = (176, 176)
    centres = uv.transpose(1, 0, 2)[..., ::-1] / PIXEL + np.array(shape) // 2  # (v, m, 2) (y, x)
    images = gaussian_images(centres, shape, sigma=2.0, amplitude=-1.0)
    return r, shifts, particles, images, height


def test_every_view_of_a_particle_is_centred_within_5_hundredths_of_a_pixel(series):
    r, shifts, particles, images, _ = series
    out = extract_particle_views(
        images, particles, view_matrices=r, shifts_A=shifts, pixel_size_A=PIXEL, box=32, normalise=False
    )
    assert out.views.shape == (3, len(TILTS), 32, 32) and out.pixel_size_A == PIXEL
    error = blob_centre(-out.views, 2) - 16
    assert np.abs(error).max() < 0.05


def test_binned_views_stay_centred_and_match_the_rescaled_unbinned_ones(series):
    r, shifts, particles, images, _ = series
    kwargs = {"view_matrices": r, "shifts_A": shifts, "pixel_size_A": PIXEL, "normalise": False}
    bin1 = extract_particle_views(images, particles, box=32, **kwargs).views
    bin2 = extract_particle_views(images, particles, box=16, binning=2.0, **kwargs)
    assert bin2.pixel_size_A == 2 * PIXEL
    assert np.abs(blob_centre(-bin2.views, 2) - 8).max() < 0.05
    rescaled = fourier_crop(bin1, (16, 16))
    r_corr = np.corrcoef(rescaled.reshape(-1).numpy(), bin2.views.reshape(-1).numpy())[0, 1]
    assert r_corr > 0.999


def test_defocus_per_view_is_the_height_along_the_beam(series):
    r, shifts, particles, images, height = series
    defocus = np.tile([[20000.0, 19000.0, 30.0]], (len(TILTS), 1))
    out = extract_particle_views(
        images, particles, view_matrices=r, shifts_A=shifts, pixel_size_A=PIXEL, box=32, defocus_A=defocus
    )
    # a point (x, y, z) tilted by β about y (XTilt ~ 0) sits −x sin β + z cos β above the mid-plane: XTilt's
    # small rotation changes that by y sin(XTilt) cos β + z (cos XTilt − 1) cos β
    b = np.deg2rad(TILTS)
    xt = np.arcsin(r[:, 2, 1] / np.cos(b))  # XTilt of each view from the matrix's z row
    x, y, z = particles.T[..., None]
    expected = -x * np.sin(b) + (y * np.sin(xt) + z * np.cos(xt)) * np.cos(b)
    assert np.allclose(out.defocus_A[..., 0] - 20000.0, expected, atol=1e-6)
    assert np.allclose(out.defocus_A[..., 1] - 19000.0, expected, atol=1e-6)
    assert np.allclose(out.defocus_A[..., 2], 30.0) and np.allclose(expected, height)


def test_premultiplied_views_equal_the_views_filtered_by_the_ctf_at_their_defocus(series):
    r, shifts, particles, images, _ = series
    defocus = np.tile([[25000.0, 23000.0, 40.0]], (len(TILTS), 1))
    optics = Optics(300.0, 2.7, 0.07)
    common = {"view_matrices": r, "shifts_A": shifts, "pixel_size_A": PIXEL, "box": 32, "normalise": False}
    plain = extract_particle_views(images, particles, **common).views
    multiplied = extract_particle_views(images, particles, defocus_A=defocus, optics=optics, **common)
    p, v = 1, 2  # one particle's view, filtered by transfer.ctf_2d at the defocus the extraction reports
    u_A, v_A, angle = multiplied.defocus_A[p, v]
    ctf = ctf_2d((32, 32), PIXEL, u_A, v_A, angle, voltage_kV=300.0, cs_mm=2.7, amplitude_contrast=0.07)
    expected = torch.fft.irfft2(torch.fft.rfft2(plain[p, v]) * ctf, s=(32, 32))
    assert torch.allclose(multiplied.views[p, v], expected, atol=1e-4 * float(expected.abs().max()))
    assert multiplied.views[p, v, 16, 16] > 0  # a dark particle is bright once multiplied by the CTF


def test_cropped_box_keeps_the_centre_and_dose_attenuates(series):
    r, shifts, particles, images, _ = series
    common = {"view_matrices": r, "shifts_A": shifts, "pixel_size_A": PIXEL, "box": 32, "normalise": False}
    full = extract_particle_views(images, particles, **common).views
    cropped = extract_particle_views(images, particles, cropped_box=20, **common).views
    assert torch.allclose(cropped, full[..., 6:26, 6:26])
    dosed = extract_particle_views(images, particles, dose_e_A2=np.linspace(3, 120, len(TILTS)), **common).views
    energy = (dosed**2).sum(dim=(0, 2, 3)) / (full**2).sum(dim=(0, 2, 3))
    assert (energy < 1).all() and (np.diff(energy.numpy()) < 0).all()  # more dose, less signal


def gaussian_tomogram(shape, centres_zyx, sigma):
    z, y, x = (np.arange(n)[:, None, None, None] for n in shape)
    grid = [np.moveaxis(a, 0, i) for i, a in enumerate((z, y, x))]
    vol = np.zeros(shape)
    for c in centres_zyx:
        vol += np.exp(-sum((g[..., 0] - ci) ** 2 for g, ci in zip(grid, c)) / (2 * sigma**2))
    return vol.astype(np.float32)


def test_subtomograms_are_centred_and_re_extraction_at_bin_2_agrees():
    rng = np.random.default_rng(5)
    shape = (48, 64, 128)
    positions = np.array([[-90.0, 20, -10], [-30, -20, 15], [30, 25, 5], [90, -15, -20]])  # Å, x y z
    positions += rng.uniform(-1, 1, (4, 3))
    centres = positions[:, ::-1] / PIXEL + np.array(shape) // 2
    tomo = gaussian_tomogram(shape, centres, 2.5)
    bin1 = extract_subtomograms(tomo, positions, pixel_size_A=PIXEL, box=24, normalise=False)
    assert np.abs(blob_centre(bin1.boxes, 3) - 12).max() < 0.05
    binned = fourier_crop(torch.as_tensor(tomo), (24, 32, 64)).numpy()
    bin2 = extract_subtomograms(binned, positions, pixel_size_A=2 * PIXEL, box=12, normalise=False)
    assert np.abs(blob_centre(bin2.boxes, 3) - 6).max() < 0.05
    direct = extract_subtomograms(tomo, positions, pixel_size_A=PIXEL, box=12, output_pixel_size_A=4.0)
    assert direct.pixel_size_A == 4.0 and np.abs(blob_centre(direct.boxes, 3) - 6).max() < 0.05
    a = fourier_crop(bin1.boxes, (12, 12, 12)).reshape(-1).numpy()
    assert np.corrcoef(a, bin2.boxes.reshape(-1).numpy())[0, 1] > 0.999
    inverted = extract_subtomograms(tomo, positions, pixel_size_A=PIXEL, box=24, invert=True)
    assert (inverted.boxes[:, 12, 12, 12] < 0).all() and np.allclose(inverted.boxes.std(dim=(1, 2, 3)), 1, atol=1e-3)


def test_source_box_gives_the_exact_pixel():
    assert source_box(64, 1.35, 5.4) == (256, 5.4)
    n, pixel = source_box(50, 2.0, 3.0)
    assert n == 75 and pixel == 3.0


def test_weights_hold_the_missing_wedge_dose_and_ctf():
    box = 32
    r = rotation_matrices(np.arange(-60.0, 61.0, 3.0), 0.0)
    w = subtomogram_weights(box, 4.0, r)[0]
    # at z-frequency 8 and x-frequency 2 (angle 76° from the specimen plane: in the wedge) nothing was measured;
    # at x-frequency 8, z-frequency 2 (14°) about 1 / (3° in radians · k) slices cross each voxel
    assert w[8, 0, 2] == 0
    assert w[2, 0, 8] == pytest.approx(1 / (np.deg2rad(3.0) * np.hypot(8, 2)), rel=0.25)
    assert w[0, 5, 0] == pytest.approx(len(r), rel=1e-6)  # frequencies along the tilt axis are in every view
    doses = np.arange(len(r)) * 3.0
    wd = subtomogram_weights(box, 4.0, r, dose_e_A2=doses)[0]
    assert (wd <= w + 1e-6).all() and wd[0, 12, 0] < 0.5 * w[0, 12, 0]
    df = np.tile([20000.0, 20000.0, 0.0], (2, len(r), 1))
    df[1, :, :2] += 5000.0
    wc = subtomogram_weights(box, 4.0, r, defocus_A=df)
    assert wc.shape == (2, box, box, box // 2 + 1) and (wc <= w + 1e-5).all()
    assert not torch.allclose(wc[0], wc[1])  # each particle's defocus gives its own weight


def test_weight_of_one_astigmatic_view_is_its_slice_times_the_ctf_there():
    """One view tilted 30°: each voxel's weight is the slice profile times |CTF| at the voxel's image frequency
    and the particle's own (astigmatic) defocus, computed here point by point with ``batched_ctf``."""
    box, pixel = 24, 3.0
    r = rotation_matrices(np.array([30.0]), 80.0)
    df = np.array([[[21000.0, 19500.0, 35.0]], [[15000.0, 16000.0, 120.0]]])  # (2 particles, 1 view, 3)
    optics = Optics()
    w = subtomogram_weights(box, pixel, r, defocus_A=df, optics=optics).numpy()
    kz, ky, kx = np.meshgrid(
        np.fft.fftfreq(box, pixel), np.fft.fftfreq(box, pixel), np.fft.rfftfreq(box, pixel), indexing="ij"
    )
    kv = np.stack([kx, ky, kz], -1) @ r[0].T  # the frequency in the view's frame
    profile = np.clip(1 - np.abs(kv[..., 2]) * box * pixel, 0, None)
    for p in range(2):
        d = torch.as_tensor(df[p, 0])
        ctf = batched_ctf(torch.as_tensor(kv[..., 0]), torch.as_tensor(kv[..., 1]), d[0], d[1], d[2], optics).numpy()
        np.testing.assert_allclose(w[p], profile * np.abs(ctf), atol=2e-4)
    assert np.count_nonzero(profile) > box * box  # the slice, not a few voxels, was compared


@pytest.mark.parametrize("n", [8, 9])
def test_the_half_spectrum_shift_equals_the_full_recentring(n):
    """Boxes that keep their size are shifted on the rfft half: the same as ``recentre_spectrum`` on the full one."""
    from tomoforge.methods.sta.extraction import _shift_half, recentre_spectrum

    gen = torch.Generator().manual_seed(n)
    x = torch.randn(3, n, n, n, generator=gen)
    offset = torch.rand(3, 3, generator=gen) - 0.5
    full = torch.fft.ifftn(recentre_spectrum(torch.fft.fftn(x, dim=(-3, -2, -1)), offset, n), dim=(-3, -2, -1)).real
    assert torch.allclose(_shift_half(x, offset), full.to(torch.float32), atol=1e-5)
