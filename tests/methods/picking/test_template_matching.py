"""Template matching against known answers: brute-force LNCC, a synthetic tomogram with known particles (all
found, within a voxel, orientations within the step), weighted template beats the binary wedge, tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.methods.picking import synthetic
from tomoforge.methods.picking.angles import angular_sampling
from tomoforge.methods.picking.peaks import edge_mask, false_positive_threshold, find_peaks, score_statistics
from tomoforge.methods.picking.template_matching import (
    MatchResult,
    is_rotation_invariant,
    match_template,
    phase_randomised,
    rotate_volumes,
)
from tomoforge.methods.picking.template_weighting import TiltWeighting, tilt_weight
from tomoforge.methods.rotations import random_rotations, rotation_about_z
from tomoforge.simulate.accuracy import match_picks

STEP = 25.0
SHAPE = (34, 40, 40)
EDGE = synthetic.BOX // 2 + 1


def brute_force_lncc(tomo: np.ndarray, t: np.ndarray, m: np.ndarray, centre: tuple[int, int, int]) -> float:
    """The masked Pearson correlation of the box of ``tomo`` centred on ``centre`` with ``t`` (weights ``m``)."""
    n = t.shape[0]
    box = tomo[tuple(slice(c - n // 2, c - n // 2 + n) for c in centre)]
    mt, mb = (m * t).sum() / m.sum(), (m * box).sum() / m.sum()
    return float((m * (t - mt) * (box - mb)).sum() / np.sqrt((m * (t - mt) ** 2).sum() * (m * (box - mb) ** 2).sum()))


@pytest.mark.parametrize("spherical", [True, False])
def test_fft_lncc_equals_brute_force(spherical: bool) -> None:
    rng = np.random.default_rng(1)
    tomo = rng.normal(size=(24, 28, 30)).astype(np.float32)
    n = 9
    t = rng.normal(size=(n, n, n)).astype(np.float32)
    rot = random_rotations(3, rng)
    a = np.arange(n) - n // 2
    z, y, x = np.meshgrid(a, a, a, indexing="ij")
    r2 = x * x + y * y + z * z
    m = np.clip(4.5 - np.sqrt(r2), 0, 1) if spherical else (rng.uniform(size=(n, n, n)) > 0.3).astype(float)
    m = m.astype(np.float32)
    assert is_rotation_invariant(torch.as_tensor(m)) is spherical
    res = match_template(tomo, t, rot, mask=m, protein_dark=False)
    turned_t = rotate_volumes(torch.as_tensor(t), torch.as_tensor(rot)).numpy()
    turned_m = rotate_volumes(torch.as_tensor(m), torch.as_tensor(rot)).numpy().clip(0, 1) if not spherical else [m] * 3
    for centre in [(10, 12, 14), (5, 6, 7), (15, 20, 20)]:
        scores = [brute_force_lncc(tomo, turned_t[k], turned_m[k], centre) for k in range(3)]
        assert res.scores[centre] == pytest.approx(max(scores), abs=2e-5)
        assert res.best_rotation[centre] == int(np.argmax(scores))


def test_rotation_is_active_about_the_centre() -> None:
    # a point at x = +3 from the centre, turned 90° about z, lands at y = +3
    v = torch.zeros(9, 9, 9)
    v[4, 4, 7] = 1.0
    out = rotate_volumes(v, torch.as_tensor(rotation_about_z(90.0))[None])[0]
    assert float(out[4, 7, 4]) == pytest.approx(1.0, abs=1e-5)


def test_phase_randomised_keeps_the_amplitudes() -> None:
    t = torch.as_tensor(synthetic.template())
    r = phase_randomised(t, seed=2)
    ratio = torch.fft.rfftn(r).abs() / torch.fft.rfftn(t).abs().clamp(min=1e-6)
    strong = torch.fft.rfftn(t).abs() > 1e-3 * torch.fft.rfftn(t).abs().max()
    assert float(ratio[strong].std() / ratio[strong].mean()) < 1e-3
    # its phases are random: over seeds, its correlation with the template averages out
    corr = [np.corrcoef(phase_randomised(t, seed=s).numpy().ravel(), t.numpy().ravel())[0, 1] for s in range(12)]
    assert abs(float(np.mean(corr))) < 0.12


@pytest.fixture(scope="module")
def scene() -> synthetic.Synthetic:
    return synthetic.tomogram(SHAPE, spacing=15, noise_sd=1.0, seed=4)


@pytest.fixture(scope="module")
def rotations() -> np.ndarray:
    return angular_sampling(STEP)


def run(scene: synthetic.Synthetic, rotations: np.ndarray, weighting: TiltWeighting) -> MatchResult:
    box = (synthetic.BOX,) * 3
    return match_template(
        scene.volume, synthetic.template(), rotations, template_weight=tilt_weight(box, synthetic.PIXEL_A, weighting)
    )


@pytest.fixture(scope="module")
def weighted(scene: synthetic.Synthetic, rotations: np.ndarray) -> MatchResult:
    return run(scene, rotations, synthetic.WEIGHTING)


def true_peak_snr(result: MatchResult, scene: synthetic.Synthetic) -> float:
    """Median score at the true positions over the SD of the score map away from the edges."""
    _, sd = score_statistics(result.scores, edge_mask(result.scores.shape, EDGE))
    return float(np.median(result.scores[tuple(scene.positions_zyx.T)]) / sd)


def test_finds_every_particle_with_its_orientation(
    weighted: MatchResult, scene: synthetic.Synthetic, rotations: np.ndarray
) -> None:
    inner = edge_mask(weighted.scores.shape, EDGE)
    _, sd = score_statistics(weighted.scores, inner)
    threshold = false_positive_threshold(sd, int(inner.sum()), len(rotations), 1.0)
    peaks = find_peaks(weighted.scores, threshold=threshold, min_distance_px=8, edge_px=EDGE)
    found_rot = rotations[weighted.best_rotation[tuple(peaks.positions_zyx.T)]]
    match = match_picks(
        peaks.positions_zyx[:, ::-1] * synthetic.PIXEL_A,
        scene.positions_zyx[:, ::-1] * synthetic.PIXEL_A,
        2.0 * synthetic.PIXEL_A,
        pick_rotations=found_rot,
        true_rotations=scene.rotations,
    )
    assert len(scene.positions_zyx) == 8
    assert match.f1 == 1.0
    assert match.position_error_A.max() <= synthetic.PIXEL_A  # within a voxel
    # the nearest of the searched rotations lies within the covering radius (< STEP) of the truth
    assert match.median_orientation_error_deg < 0.6 * STEP
    assert match.orientation_error_deg.max() < STEP


def test_weighted_template_beats_the_binary_wedge(scene: synthetic.Synthetic, rotations: np.ndarray) -> None:
    # the same third of the rotations for both (the comparison needs no full search)
    some = rotations[::3]
    weighted = run(scene, some, synthetic.WEIGHTING)
    binary = run(scene, some, TiltWeighting(tilt_angles_deg=synthetic.WEIGHTING.tilt_angles_deg))
    snr_weighted, snr_binary = true_peak_snr(weighted, scene), true_peak_snr(binary, scene)
    assert snr_weighted > snr_binary * 1.05, (snr_weighted, snr_binary)


def test_tiles_give_the_same_scores_inside(scene: synthetic.Synthetic, rotations: np.ndarray) -> None:
    few = rotations[:4]
    whole = match_template(scene.volume, synthetic.template(), few)
    tiled = match_template(scene.volume, synthetic.template(), few, memory_budget_bytes=2_400_000, batch=1)
    assert whole.n_tiles == 1 and tiled.n_tiles > 4
    inner = edge_mask(SHAPE, synthetic.BOX // 2 + 1)
    np.testing.assert_allclose(tiled.scores[inner], whole.scores[inner], atol=2e-4)
    assert np.mean(tiled.best_rotation[inner] == whole.best_rotation[inner]) > 0.999


def test_background_correction_subtracts_the_noise_score(scene: synthetic.Synthetic, rotations: np.ndarray) -> None:
    few = rotations[:24]
    plain = match_template(scene.volume, synthetic.template(), few)
    corrected = match_template(scene.volume, synthetic.template(), few, background_correction=True)
    assert corrected.noise_scores is not None
    np.testing.assert_allclose(corrected.scores, plain.scores - corrected.noise_scores, atol=1e-6)
    # the random-phase template does not find the particles: its score there is well below the template's
    at = tuple(scene.positions_zyx.T)
    assert np.median(corrected.noise_scores[at]) < 0.6 * np.median(plain.scores[at])


def _low_pass(shape: tuple[int, int, int]) -> torch.Tensor:
    """A Gaussian low-pass on the rfft grid of ``shape`` (σ = 0.2 cycles/voxel)."""
    kz, ky = (torch.fft.fftfreq(s) for s in shape[:2])
    kx = torch.fft.rfftfreq(shape[2])
    k2 = kz[:, None, None] ** 2 + ky[None, :, None] ** 2 + kx[None, None, :] ** 2
    return torch.exp(-k2 / (2 * 0.2**2))


def _band_limit(shape: tuple[int, int, int]) -> torch.Tensor:
    """1 inside the sphere |k| ≤ 0.3 cycles/voxel, 0 outside (the columns the two-pass path skips)."""
    kz, ky = (torch.fft.fftfreq(s) for s in shape[:2])
    kx = torch.fft.rfftfreq(shape[2])
    k2 = kz[:, None, None] ** 2 + ky[None, :, None] ** 2 + kx[None, None, :] ** 2
    return (k2 <= 0.3**2).to(torch.float32)


@pytest.mark.parametrize(("spherical", "radial"), [(True, _low_pass), (False, _low_pass), (True, _band_limit)])
def test_fft_libraries_give_the_same_scores(spherical: bool, radial, monkeypatch: pytest.MonkeyPatch) -> None:
    # scipy's transforms into kept buffers (the CPU default: two cached passes per rotation, skipping the zero
    # columns of a band-limited spectrum), scipy's public functions (the fallback) and torch's
    from tomoforge.methods.picking import correlation

    rng = np.random.default_rng(3)
    tomo = rng.normal(size=(20, 26, 30)).astype(np.float32)
    n = 9
    t = rng.normal(size=(n, n, n)).astype(np.float32)
    m = None if spherical else (rng.uniform(size=(n, n, n)) > 0.3).astype(np.float32)
    rot = random_rotations(5, rng)
    kw = {"mask": m, "radial_filter": radial, "protein_dark": False, "batch": 2}
    buffered = match_template(tomo, t, rot, **kw)
    by_torch = match_template(tomo, t, rot, fft_library="torch", **kw)
    monkeypatch.setattr(correlation, "_pocketfft", lambda: None)
    public = match_template(tomo, t, rot, fft_library="scipy", **kw)
    inner = edge_mask(tomo.shape, n // 2 + 1)
    assert float(np.abs(buffered.scores[inner]).max()) > 0.3  # scores worth comparing
    for other in (by_torch, public):
        np.testing.assert_allclose(other.scores[inner], buffered.scores[inner], atol=2e-5)
        assert np.mean(other.best_rotation[inner] == buffered.best_rotation[inner]) > 0.999
    with pytest.raises(ValueError, match="fft_library"):
        match_template(tomo, t, rot, fft_library="fftw")


def test_best_score_keeps_the_first_of_equal_scores() -> None:
    from tomoforge.methods.picking.correlation import BestScore

    tracker = BestScore((4,), torch.device("cpu"))
    for k, s in enumerate([[0.1, 0.5, -1.0, 0.2], [0.3, 0.5, -2.0, 0.1], [0.2, 0.6, -1.5, 0.2]]):
        tracker.update(torch.tensor(s), k)
    assert tracker.best.tolist() == pytest.approx([0.3, 0.6, -1.0, 0.2])
    assert tracker.index.tolist() == [1, 2, 0, 0]


def test_the_two_pass_update_equals_the_transforms_and_skips_zero_columns() -> None:
    from tomoforge.methods.picking.correlation import BestScore, TileCorrelator

    rng = np.random.default_rng(5)
    shape, n = (24, 32, 40), 7
    tile = torch.from_numpy(rng.normal(size=shape).astype(np.float32))
    search = TileCorrelator(tile, _band_limit(shape), n, scipy_fft=True)
    one, two = BestScore(shape, tile.device), BestScore(shape, tile.device)
    for k in range(4):
        box = torch.from_numpy(rng.normal(size=(n, n, n)).astype(np.float32))
        one.update(search.correlate(search.box_spectrum(box)), k)
        search.update_best(box, two, k)
        search.update_best(box, two, k + 10)  # an equal score keeps the first rotation
    np.testing.assert_allclose(two.best.numpy(), one.best.numpy(), atol=1e-5 * float(one.best.abs().max()))
    assert float(np.mean(two.index.numpy() == one.index.numpy())) > 0.999
    fused = search._fused
    assert fused is not None
    # |k| ≤ 0.3 leaves the (kz, kx) columns with kz² + kx² ≤ 0.09: x frequencies below 13 of 21 at kz = 0
    assert fused.kx_stop == 13 and max(fused.stops) == 13 and min(fused.stops) < 10
    search.close()
