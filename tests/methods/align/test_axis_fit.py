"""The tilt axis from tracks with the tilts held (``axis_fit.fit_tilt_axis``), against a known model."""

from __future__ import annotations

import numpy as np

from tomoforge.methods.align.axis_fit import fit_tilt_axis
from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.align.transform import rotation_2d


def tracks(axis_deg: float, *, noise_px: float, bad_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, m, 2) positions of 300 random points in a 100 px slab under 41 tilts ±60° (offset 0.8° unknown to
    the fit), Gaussian noise, a fraction of the observations 6 px off, 10% of them missing."""
    rng = np.random.default_rng(seed)
    nominal = np.arange(-60.0, 61.0, 3.0)
    shifts = rng.normal(0, 5, (len(nominal), 2))
    truth = ProjectionModel(nominal + 0.8, axis_deg, shifts)
    points = np.c_[rng.uniform(-100, 100, (300, 2)), rng.uniform(-50, 50, 300)]
    obs = truth.project(points) + rng.normal(0, noise_px, (len(nominal), 300, 2))
    bad = rng.random(obs.shape[:2]) < bad_fraction
    obs[bad] += rng.choice([-6.0, 6.0], size=(int(bad.sum()), 2))
    obs[rng.random(obs.shape[:2]) < 0.1] = np.nan
    return obs, nominal


def test_fit_tilt_axis_finds_the_axis_of_noisy_tracks():
    obs, nominal = tracks(85.3, noise_px=0.3, bad_fraction=0.0)
    fit = fit_tilt_axis(obs, nominal, 84.5, rounds=1)
    # 0.3 px noise on points up to 140 px from the axis: measured 0.010° off
    assert abs(fit.tilt_axis_deg - 85.3) < 0.03, fit.tilt_axis_deg
    assert 0.3 < fit.rms_px < 0.5  # the noise's 2D length (0.3·√2 less the fitted share): measured 0.41


def test_fit_tilt_axis_reweighting_removes_mistracked_observations():
    obs, nominal = tracks(85.3, noise_px=0.3, bad_fraction=0.05, seed=1)
    plain = fit_tilt_axis(obs, nominal, 84.5, rounds=1)
    robust = fit_tilt_axis(obs, nominal, 84.5, rounds=5)
    # 5% of the observations 6 px off: plain least squares measured 0.038° off, reweighted 0.003°
    assert abs(robust.tilt_axis_deg - 85.3) < 0.02, robust.tilt_axis_deg
    assert abs(robust.tilt_axis_deg - 85.3) <= abs(plain.tilt_axis_deg - 85.3)
    w = robust.weights[np.isfinite(robust.weights)]
    assert np.mean(w < 0.05) > 0.03  # the bad 5% weighted out (measured 5.3%)


def test_fit_tilt_axis_with_the_axis_held_gives_the_shifts():
    obs, nominal = tracks(85.3, noise_px=0.3, bad_fraction=0.05, seed=2)
    fit = fit_tilt_axis(obs, nominal, 85.3, hold_axis=True)
    assert fit.tilt_axis_deg == 85.3
    truth = ProjectionModel(nominal + 0.8, 85.3, np.random.default_rng(2).normal(0, 5, (len(nominal), 2)))
    # the shifts against the truth's, the free 3D translation (the gauge) removed: measured 0.027 px RMS, worst 0.056
    a = truth.matrices()
    e = fit.shifts_px - truth.shift_A
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    err = np.linalg.norm(e - a @ t, axis=1)
    print("shifts with the axis held:", np.sqrt(np.mean(err**2)), err.max())
    assert np.sqrt(np.mean(err**2)) < 0.1 and err.max() < 0.3


def test_fit_tilt_axis_mixture_does_not_follow_matches_of_noise():
    """60% of the observations are matches of noise: anywhere in a 4 px disk about where a model 0.3° and
    ~1 px per view off puts the point (as a search about that model finds them); the rest the truth + 0.4 px.
    Tukey weights keep about half of the model's errors; the mixture's weights (uniform_radius_px) do not."""
    rng = np.random.default_rng(0)
    nominal = np.arange(-60.0, 61.0, 3.0)
    n = len(nominal)
    shifts, error = rng.normal(0, 5, (n, 2)), rng.normal(0, 1.0, (n, 2))
    truth = ProjectionModel(nominal, 85.0, shifts)
    model = ProjectionModel(nominal, 85.3, shifts + error)
    points = np.c_[rng.uniform(-100, 100, (400, 2)), rng.uniform(-50, 50, 400)]
    obs = truth.project(points) + rng.normal(0, 0.4, (n, 400, 2))
    noise = rng.random((n, 400)) < 0.6
    r, t = 4.0 * np.sqrt(rng.random(noise.sum())), rng.uniform(0, 2 * np.pi, noise.sum())
    obs[noise] = model.project(points)[noise] + np.c_[r * np.cos(t), r * np.sin(t)]
    b = np.deg2rad(nominal)
    basis = np.c_[np.cos(b), np.sin(b)]

    def kept(fit_shifts: np.ndarray) -> float:
        """The share of the model's shift errors in the fitted shifts (the free 3D translation removed)."""
        e, m = (fit_shifts - shifts) @ rotation_2d(85.0), error @ rotation_2d(85.0)
        for a in (e, m):
            a[:, 0] -= basis @ np.linalg.lstsq(basis, a[:, 0], rcond=None)[0]
            a[:, 1] -= a[:, 1].mean()
        return float(np.sum(e * m) / np.sum(m * m))

    tukey = fit_tilt_axis(obs, nominal, 85.3, hold_axis=True)
    mixture = fit_tilt_axis(obs, nominal, 85.3, hold_axis=True, uniform_radius_px=5.0)
    # measured: Tukey kept 0.55 of the errors, the mixture 0.04
    assert kept(tukey.shifts_px) > 0.35
    assert kept(mixture.shifts_px) < 0.15
    # the axis from the model's 0.3° off: Tukey 0.20° off, the mixture 0.02°
    assert abs(fit_tilt_axis(obs, nominal, 85.3).tilt_axis_deg - 85.0) > 0.1
    assert abs(fit_tilt_axis(obs, nominal, 85.3, uniform_radius_px=5.0).tilt_axis_deg - 85.0) < 0.06
