"""The tilt axis angle from landmark tracks with the tilts held: a fast, robust line search (issue 16).

With the tilt angles fixed and one in-plane rotation for the series, the projection model is linear in
everything but the tilt axis angle α: rotated into the tilt-axis frame, a landmark j seen in view v sits at

    u = x_j cos β_v + z_j sin β_v + a_v  (across the axis),    w = y_j + b_v  (along it),

so for each candidate α the least-squares cost is two sparse linear solves whose normal matrices do not
depend on α (factorised once). The cost is scanned on a grid of α and the minimum refined by a parabola;
Tukey biweights on each observation, times a weight per track from its RMS residual, are then iterated
(robust to mistracked views and to tracks that do not follow one point). With ``uniform_radius_px`` the
weights are instead each observation's probability of being a true match under a mixture of a Gaussian (true
matches) and a uniform disk (matches of noise: a search about the model finds them anywhere in its disk, so
they follow the model; where they are most of the observations, as in layer tracks of a noisy series, the
Tukey weights' scale is theirs and a fit from a model kept half of its error, ``layer_tracks``).
``solve_fiducial_alignment`` fits the same model with every variable free and takes minutes for a thousand
tracks; this takes a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.sparse import csr_matrix, diags
from scipy.sparse.linalg import splu

from tomoforge.methods.align.transform import rotation_2d

RIDGE = 1e-6  # fixes the gauge (a common 3D translation of the points against the shifts)


@dataclass
class AxisFit:
    """The tilt axis angle found (degrees), the RMS residual at it (px) and the weight of each observation
    (NaN where none) of the last round."""

    tilt_axis_deg: float
    rms_px: float
    weights: np.ndarray  # (n_views, n_tracks)
    shifts_px: np.ndarray  # (n_views, 2) (x, y) where the points' centre lands, pixels from the image centre
    points_px: np.ndarray  # (n_tracks, 3) (x, y, z) of each landmark, pixels (x across the axis, y along it)
    residuals_px: np.ndarray  # (n_views, n_tracks, 2) observed − fitted (x, y), pixels (NaN where not seen)


def _designs(vi: np.ndarray, bj: np.ndarray, tilts_deg: np.ndarray, n: int, m: int) -> tuple[csr_matrix, csr_matrix]:
    k = len(vi)
    r = np.arange(k)
    b = np.deg2rad(tilts_deg)[vi]
    across = csr_matrix(
        (np.r_[np.cos(b), np.sin(b), np.ones(k)], (np.r_[r, r, r], np.r_[bj, m + bj, 2 * m + vi])), shape=(k, 2 * m + n)
    )
    along = csr_matrix((np.ones(2 * k), (np.r_[r, r], np.r_[bj, m + vi])), shape=(k, m + n))
    return across, along


def _solve(
    obs: np.ndarray, designs: tuple[csr_matrix, csr_matrix], weights: np.ndarray, angles_deg: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per angle: the (k, 2) residuals (across, along) of the weighted least-squares fit and its across and
    along parameter vectors."""
    solvers = []
    for a in designs:
        normal = (a.T @ diags(weights) @ a + RIDGE * diags(np.ones(a.shape[1]))).tocsc()
        solvers.append(splu(normal))
    out = []
    for angle in np.deg2rad(angles_deg):
        c, s = np.cos(angle), np.sin(angle)
        u = c * obs[:, 0] + s * obs[:, 1]
        w = -s * obs[:, 0] + c * obs[:, 1]
        params = [lu.solve(a.T @ (weights * y)) for y, a, lu in zip((u, w), designs, solvers)]
        res = [y - a @ q for y, a, q in zip((u, w), designs, params)]
        out.append((np.c_[res[0], res[1]], params[0], params[1]))
    return out


def _mixture_weights(
    lengths: np.ndarray, radius: float, share: float, sigma: float, steps: int = 10
) -> tuple[np.ndarray, float, float]:
    """Each observation's probability of being a true match: residual lengths as a mixture of an isotropic
    2D Gaussian (the matches, width ``sigma``, fraction ``share``) and a uniform spread over a disk of
    ``radius`` (the matches that are noise: a search about the model finds them anywhere in its disk), the
    share and the width refined by expectation-maximisation from the values given."""
    area = np.pi * radius**2
    for _ in range(steps):
        g = share * np.exp(-0.5 * (lengths / sigma) ** 2) / (2 * np.pi * sigma**2)
        post = g / (g + (1 - share) / area + 1e-300)
        share = float(np.clip(post.mean(), 1e-3, 1 - 1e-3))
        sigma = float(np.clip(np.sqrt(np.sum(post * lengths**2) / (2 * max(post.sum(), 1e-12))), 0.05, radius))
    return post + 1e-9, share, sigma


def fit_tilt_axis(
    tracks_px: ArrayLike,
    tilts_deg: ArrayLike,
    start_deg: float,
    *,
    half_range_deg: float = 2.0,
    step_deg: float = 0.05,
    rounds: int = 5,
    tukey: float = 4.685,
    hold_axis: bool = False,
    uniform_radius_px: float | None = None,
) -> AxisFit:
    """The tilt axis angle that best explains landmark tracks with the tilts held (see the module docstring).

    Parameters
    ----------
    tracks_px
        (n_views, n_tracks, 2) (x, y) positions, pixels from the image centre, NaN = not seen.
    tilts_deg
        (n_views,) tilt angles, degrees (a common offset does not matter: it is a rotation of the specimen).
    start_deg
        The angle the scan is centred on, degrees (from image Y, counter-clockwise).
    half_range_deg, step_deg
        The scan: ``start_deg`` ± ``half_range_deg`` in steps of ``step_deg``.
    rounds
        Rounds of reweighting (1: plain least squares).
    tukey
        Tukey biweight cut-off, in robust standard deviations of the residual lengths.
    uniform_radius_px
        Weigh by the mixture (module docstring) whose matches of noise spread over a disk of this radius
        (pixels; about the search radius of the tracking) instead of by Tukey biweights; None: Tukey.
    hold_axis
        Keep ``start_deg`` (fit the points and shifts only), reweighting as for the axis.

    Returns
    -------
    AxisFit
    """
    t = np.asarray(tracks_px, dtype=float)
    n, m, _ = t.shape
    seen = np.all(np.isfinite(t), axis=-1)
    vi, bj = np.nonzero(seen)
    if len(vi) < 3 * n // 2 + 3:
        raise ValueError(f"{len(vi)} observations in {n} views: too few to fit a tilt axis")
    obs = t[vi, bj]
    designs = _designs(vi, bj, np.asarray(tilts_deg, dtype=float), n, m)
    angles = start_deg + np.arange(-half_range_deg, half_range_deg + step_deg / 2, step_deg)
    weights = np.ones(len(vi))
    best = float(start_deg)
    share, sigma = 0.5, 0.5 * (uniform_radius_px or 1.0)
    rounds = max(1, rounds)
    for r in range(rounds):
        if not hold_axis:
            res = _solve(obs, designs, weights, angles)
            cost = np.array([np.sum(weights * np.sum(q[0] ** 2, axis=1)) for q in res])
            i = int(np.clip(np.argmin(cost), 1, len(cost) - 2))
            curve = cost[i - 1] - 2 * cost[i] + cost[i + 1]
            best = float(angles[i] + (step_deg * 0.5 * (cost[i - 1] - cost[i + 1]) / curve if curve > 0 else 0.0))
        final, across, along = _solve(obs, designs, weights, np.array([best]))[0]
        lengths = np.linalg.norm(final, axis=1)
        if r == rounds - 1:
            break
        if uniform_radius_px is not None:
            weights, share, sigma = _mixture_weights(lengths, uniform_radius_px, share, sigma)
            continue
        sd = max(1.4826 * float(np.median(lengths)), 1e-9)
        weights = np.clip(1 - (lengths / (tukey * sd)) ** 2, 0, None) ** 2
        count = np.bincount(bj, minlength=m)
        per_track = np.sqrt(np.bincount(bj, lengths**2, minlength=m) / np.maximum(count, 1))
        typical = float(np.median(per_track[count > 0]))
        weights = weights * np.clip(1 - (per_track[bj] / (3 * typical)) ** 2, 0, None) ** 2 + 1e-9
    full = np.full((n, m), np.nan)
    full[vi, bj] = weights
    rms = float(np.sqrt(np.sum(weights * lengths**2) / np.sum(weights)))
    # where the specimen centre (the points' mean, the gauge) lands in each view: (a_v, b_v) turned back
    rot = rotation_2d(best)
    shifts = np.c_[across[2 * m :], along[m:]] @ rot.T
    residuals = np.full((n, m, 2), np.nan)
    residuals[vi, bj] = final @ rot.T
    points = np.c_[across[:m], along[:m], across[m : 2 * m]]
    return AxisFit(
        tilt_axis_deg=best, rms_px=rms, weights=full, shifts_px=shifts, points_px=points, residuals_px=residuals
    )


__all__ = ["AxisFit", "fit_tilt_axis"]
