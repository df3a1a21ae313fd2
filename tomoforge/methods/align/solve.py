"""Least-squares fiducial alignment: the projection model from 2D bead positions (IMOD tiltalign).

Unknowns: the 3D bead positions, per-view shifts, the in-plane rotation (one angle, grouped or
per view), tilt-angle increments (grouped, the reference view's pinned: a common tilt offset is a
rotation of the specimen about the tilt axis and cannot be seen in projections), and optionally a
grouped relative magnification (reference view = 1). Grouped variables are interpolated linearly
between group nodes along the views sorted by tilt (IMOD's grouping). Robust to mistracked
beads: a soft-L1 fit first, then points and beads with outlying residuals are dropped and the
model refitted with plain least squares. The free tilt offset is then chosen so that the beads
lie level (``level=True``, as tiltalign's surface analysis suggests), or kept as given.

All positions are in pixels from the image centre; the model follows projection_model (and its
hand assumption).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import lsqr

from tomoforge.errors import UserError
from tomoforge.methods.align.projection_model import ProjectionModel, rotation_matrices

Grouping = Literal["fixed", "single", "grouped", "per_view"]

MIN_LANDMARKS = 3  # beads (or patches) the projection model needs, each seen in MIN_VIEWS views at least
MIN_VIEWS = 3


class TooFewLandmarksError(UserError, ValueError):
    """Too few landmarks (or views holding them) to solve a projection model; the message says what to try."""


def check_landmarks(positions_px: np.ndarray, *, what: str = "beads", advice: str = "") -> None:
    """Raise ``TooFewLandmarksError`` unless at least ``MIN_LANDMARKS`` of the (n_views, n, 2) positions (NaN =
    not seen) are seen in ``MIN_VIEWS`` views or more and ``MIN_VIEWS`` views see one of them; ``advice`` is
    appended to the message."""
    seen = np.all(np.isfinite(np.asarray(positions_px, dtype=float)), axis=-1)  # (n_views, n)
    enough = seen.sum(axis=0) >= MIN_VIEWS
    views = int(seen[:, enough].any(axis=1).sum())
    if enough.sum() >= MIN_LANDMARKS and views >= MIN_VIEWS:
        return
    text = (
        f"{int(enough.sum())} {what} seen in {MIN_VIEWS} views or more (of {seen.shape[1]} {what}, "
        f"{seen.shape[0]} views), in {views} view(s); a projection model needs {MIN_LANDMARKS} {what} "
        f"in {MIN_VIEWS} views at least"
    )
    raise TooFewLandmarksError(f"{text}{'; ' + advice if advice else ''}")


def group_matrix(tilts_deg: np.ndarray, mode: Grouping, *, group_size: int = 5) -> np.ndarray:
    """(n, k) linear interpolation weights from k group nodes to the n views (sorted by tilt).

    fixed: k = 0; single: one value for all; per_view: identity; grouped: nodes every
    ``group_size`` views along the tilt order, linear in between.
    """
    n = len(tilts_deg)
    if mode == "fixed":
        return np.zeros((n, 0))
    if mode == "single":
        return np.ones((n, 1))
    order = np.argsort(tilts_deg, kind="stable")
    rank = np.empty(n, dtype=float)
    rank[order] = np.arange(n)
    if mode == "per_view" or group_size <= 1:
        return np.eye(n)
    k = max(2, int(round((n - 1) / group_size)) + 1)
    nodes = np.linspace(0, n - 1, k)
    weights = np.zeros((n, k))
    idx = np.clip(np.searchsorted(nodes, rank, side="right") - 1, 0, k - 2)
    frac = (rank - nodes[idx]) / (nodes[idx + 1] - nodes[idx])
    weights[np.arange(n), idx] = 1 - frac
    weights[np.arange(n), idx + 1] = frac
    return weights


@dataclass
class FiducialSolution:
    """The fitted model and its diagnostics (pixels at the sampling of the input positions)."""

    model: ProjectionModel  # shifts in Å
    points_px: np.ndarray  # (m, 3) bead positions, pixels from the specimen centre (NaN: dropped)
    residuals_px: np.ndarray  # (n, m, 2) observed − predicted (NaN where no observation)
    used: np.ndarray  # (n, m) bool: observation kept in the final fit
    dropped_beads: np.ndarray  # indices of beads judged mistracked and left out
    rms_px: float  # over the kept observations
    view_rms_px: np.ndarray  # (n,)
    bead_rms_px: np.ndarray  # (m,)
    tilt_axis_deg: float  # mean in-plane rotation (the refined tilt axis angle)
    tilt_offset_deg: float  # mean (fitted − nominal) tilt angle
    x_tilt_level_deg: float  # rotation about X that would make the beads level (reported, not applied)
    surface: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # (m,) 0 bottom, 1 top, -1 one surface
    unobserved_views: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # views with no kept observation
    view_matching_px: np.ndarray | None = None  # (n,) projection-matching residual per view, where refined so
    view_matching_score: np.ndarray | None = None  # (n,) correlation with the reprojection of the other views

    def gap_free_px(self, pixel_size_A: float) -> np.ndarray:
        """(n, m, 2) positions the model puts every bead at, in every view (pixels)."""
        return self.model.project(self.points_px * pixel_size_A) / pixel_size_A


class _Layout:
    """Parameter vector layout: X (m, 3), shifts (n, 2), rotation, tilt, magnification nodes."""

    def __init__(self, n: int, m: int, g_rot: np.ndarray, g_tilt: np.ndarray, g_mag: np.ndarray, ref: int):
        self.n, self.m, self.ref = n, m, ref
        self.g_rot, self.g_tilt, self.g_mag = g_rot, g_tilt - g_tilt[ref], g_mag - g_mag[ref]
        sizes = [3 * m, 2 * n, g_rot.shape[1], g_tilt.shape[1], g_mag.shape[1]]
        self.bounds = np.cumsum([0] + sizes)

    def split(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        b = self.bounds
        return (
            p[b[0] : b[1]].reshape(self.m, 3),
            p[b[1] : b[2]].reshape(self.n, 2),
            p[b[2] : b[3]],
            p[b[3] : b[4]],
            p[b[4] : b[5]],
        )

    def angles(
        self, p: np.ndarray, axis_deg: np.ndarray, tilts_deg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _, _, r, t, g = self.split(p)
        return axis_deg + self.g_rot @ r, tilts_deg + self.g_tilt @ t, 1.0 + self.g_mag @ g


def _predict(layout: _Layout, p: np.ndarray, axis_deg: np.ndarray, tilts_deg: np.ndarray) -> np.ndarray:
    points, shifts, *_ = layout.split(p)
    z_rot, tilt, mag = layout.angles(p, axis_deg, tilts_deg)
    a = rotation_matrices(tilt, z_rot)[:, :2, :] * mag[:, None, None]
    return np.einsum("nab,mb->nma", a, points) + shifts[:, None, :]


def _jacobian(
    layout: _Layout, p: np.ndarray, axis_deg: np.ndarray, tilts_deg: np.ndarray, vi: np.ndarray, bj: np.ndarray
) -> csr_matrix:
    """Sparse Jacobian of the residuals (2 rows per observation (vi, bj), then 3 rows of the mean
    point) with respect to the parameters: analytic, vectorised (rotations enter through their
    group nodes; angles in degrees)."""
    points = layout.split(p)[0]
    z_rot, tilt, mag = layout.angles(p, axis_deg, tilts_deg)
    z, t = np.deg2rad(z_rot), np.deg2rad(tilt)
    cz, sz, ct, st = np.cos(z), np.sin(z), np.cos(t), np.sin(t)
    zero, one = np.zeros_like(z), np.ones_like(z)
    rz = np.stack([np.stack([cz, -sz, zero], -1), np.stack([sz, cz, zero], -1), np.stack([zero, zero, one], -1)], -2)
    ry = np.stack([np.stack([ct, zero, st], -1), np.stack([zero, one, zero], -1), np.stack([-st, zero, ct], -1)], -2)
    drz = np.stack([np.stack([-sz, -cz, zero], -1), np.stack([cz, -sz, zero], -1), np.stack([zero] * 3, -1)], -2)
    dry = np.stack([np.stack([-st, zero, ct], -1), np.stack([zero] * 3, -1), np.stack([-ct, zero, -st], -1)], -2)
    k = len(vi)
    x = points[bj]  # (k, 3)
    m = mag[vi, None]
    proj = (rz @ ry)[vi, :2]  # (k, 2, 3)
    d_point = m[..., None] * proj  # (k, 2, 3)
    d_rot = m * np.einsum("kab,kb->ka", (drz @ ry)[vi, :2], x) * (np.pi / 180)  # (k, 2)
    d_tilt = m * np.einsum("kab,kb->ka", (rz @ dry)[vi, :2], x) * (np.pi / 180)
    d_mag = np.einsum("kab,kb->ka", proj, x)
    rows, cols, vals = [], [], []
    row = 2 * np.arange(k)[:, None] + np.arange(2)[None, :]  # (k, 2)
    b0 = layout.bounds

    def add(r: np.ndarray, c: ArrayLike, v: ArrayLike) -> None:
        rows.append(r.ravel())
        cols.append(np.broadcast_to(c, r.shape).ravel())
        vals.append(np.broadcast_to(v, r.shape).ravel())

    for d in range(3):
        add(row, 3 * bj[:, None] + d, d_point[..., d])
    add(row, b0[1] + 2 * vi[:, None] + np.arange(2)[None, :], 1.0)
    for deriv, g, start in ((d_rot, layout.g_rot, b0[2]), (d_tilt, layout.g_tilt, b0[3]), (d_mag, layout.g_mag, b0[4])):
        for node in np.unique(np.nonzero(g)[1]):
            weight = g[:, node][vi]  # (k,)
            hit = weight != 0
            add(row[hit], start + node, deriv[hit] * weight[hit, None])
    mean_rows = np.repeat(2 * k + np.arange(3)[:, None], layout.m, axis=1)
    add(mean_rows, 3 * np.arange(layout.m)[None, :] + np.arange(3)[:, None], 1.0 / layout.m)
    return csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * k + 3, int(b0[-1]))
    )


def _linear_start(
    obs: np.ndarray, mask: np.ndarray, tilts_deg: np.ndarray, axis_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """3D points and shifts by linear least squares with the angles fixed (mean point at 0)."""
    n, m = mask.shape
    a = rotation_matrices(tilts_deg, axis_deg)[:, :2, :]
    vi, bj = np.nonzero(mask)
    k = len(vi)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for c in range(2):
        r = 2 * np.arange(k) + c
        for d in range(3):
            rows.append(r)
            cols.append(3 * bj + d)
            vals.append(a[vi, c, d])
        rows.append(r)
        cols.append(3 * m + 2 * vi + c)
        vals.append(np.ones(k))
    for d in range(3):
        rows.append(np.full(m, 2 * k + d))
        cols.append(3 * np.arange(m) + d)
        vals.append(np.ones(m))
    lhs = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * k + 3, 3 * m + 2 * n)
    )
    rhs = np.zeros(2 * k + 3)
    rhs[0 : 2 * k : 2], rhs[1 : 2 * k : 2] = obs[vi, bj, 0], obs[vi, bj, 1]
    sol = lsqr(lhs, rhs, atol=1e-12, btol=1e-12, iter_lim=20 * (3 * m + 2 * n))[0]
    return sol[: 3 * m].reshape(m, 3), sol[3 * m :].reshape(n, 2)


def _surface_labels(p: np.ndarray) -> np.ndarray | None:
    """Beads on two parallel surfaces: the labels (0 below, 1 above) of the split with the widest gap between
    two groups of two beads or more, more than 3 spreads of the groups' heights, over planes within 45° of
    level, kept if the two groups lie on parallel planes whose distance is over 10 of its standard errors
    (and 3 spreads about them); None when no split does (one surface).

    The split is searched over the plane's slopes because the solution's frame may be tilted (the tilt offset
    is free): in a frame tilted by 14°, beads 1200 Å apart on one surface differ in height by 300 Å, and the
    split by height alone fails."""
    if len(p) < 4:
        return None
    slopes = np.tan(np.deg2rad(np.arange(-45.0, 45.01, 0.5)))
    a, b = (v.ravel() for v in np.meshgrid(slopes, slopes, indexing="ij"))
    heights = p[None, :, 2] - a[:, None] * p[None, :, 0] - b[:, None] * p[None, :, 1]  # (candidates, beads)
    order = np.sort(heights, axis=1)
    k = len(p)
    cut = np.arange(2, k - 1)  # groups order[:cut], order[cut:], each of two beads or more
    gaps = order[:, cut] - order[:, cut - 1]
    total, total2 = np.cumsum(order, axis=1), np.cumsum(order**2, axis=1)
    n_low, n_high = cut, k - cut
    low_mean = total[:, cut - 1] / n_low
    low_var = total2[:, cut - 1] / n_low - low_mean**2
    high_mean = (total[:, -1:] - total[:, cut - 1]) / n_high
    high_var = (total2[:, -1:] - total2[:, cut - 1]) / n_high - high_mean**2
    spread = np.sqrt(np.maximum(np.maximum(low_var, high_var), 1e-12))
    score = gaps / spread
    best = np.unravel_index(int(np.argmax(score)), score.shape)
    if score[best] <= 3:
        return None
    h = heights[best[0]]
    labels = (h > 0.5 * (order[best[0], cut[best[1]] - 1] + order[best[0], cut[best[1]]])).astype(int)
    # Two surfaces, not one surface whose beads fall apart sideways: planes of one slope and their own
    # offsets must lie apart by more than 3 times the beads' spread about them.
    design = np.column_stack([p[:, 0], p[:, 1], labels == 0, labels == 1]).astype(float)
    coef, *_ = np.linalg.lstsq(design, p[:, 2], rcond=None)
    residual = p[:, 2] - design @ coef
    variance = max(float(residual @ residual) / max(k - 4, 1), 1e-12)
    contrast = np.array([0.0, 0.0, -1.0, 1.0])
    standard_error = np.sqrt(variance * contrast @ np.linalg.pinv(design.T @ design) @ contrast)
    if abs(coef[3] - coef[2]) <= max(10 * standard_error, 3 * np.sqrt(variance)):
        return None
    return labels


def _level_angles(points: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Rotations about Y and X (degrees) that make the beads' plane(s) level, and surface labels.

    One plane through all beads, or two parallel planes when the beads split into two groups of two beads
    or more (beads on both ice surfaces; ``_surface_labels``). Each group is centred on its own, so that
    a split of beads on one plane keeps its slope (one plane through 3 + 2 beads on surfaces 200 Å apart
    was tilted by tens of degrees).
    """
    p = points - points.mean(axis=0)
    labels = -np.ones(len(p), dtype=int)
    split = _surface_labels(p)
    if split is not None:
        labels = split
        p = p.copy()
        for group in (0, 1):
            p[split == group] -= p[split == group].mean(axis=0)
    # Plane z = a x + b y through the centred points.
    coef, *_ = np.linalg.lstsq(p[:, :2], p[:, 2], rcond=None)
    normal = np.array([-coef[0], -coef[1], 1.0])
    normal /= np.linalg.norm(normal)
    about_y = -np.rad2deg(np.arctan2(normal[0], normal[2]))
    about_x = np.rad2deg(np.arctan2(normal[1], normal[2]))
    return float(about_y), float(about_x), labels


def _centre_on_reference_view(
    points: np.ndarray,
    shifts: np.ndarray,
    dropped: np.ndarray,
    tilts_deg: np.ndarray,
    z_rot_deg: np.ndarray,
    mag: np.ndarray,
    ref: int,
    surface: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The same solution translated in 3D (points + t, shifts − A t: every prediction unchanged) so that the
    reference (least tilted) view has no shift and z = 0 lies midway between the two bead surfaces (their
    centroid when there is one surface): the tomogram's centre then projects onto that view's centre and
    sits in the middle of the specimen, wherever the beads happen to lie and however many each surface has.
    ``surface``: labels (0 bottom, 1 top) of the kept beads, or None."""
    a = rotation_matrices(tilts_deg, z_rot_deg)[:, :2, :] * mag[:, None, None]
    kept = points[~dropped] if (~dropped).any() else points
    t = np.zeros(3)
    if surface is not None and len(surface) == len(kept) and (surface == 0).any() and (surface == 1).any():
        t[2] = -0.5 * float(kept[surface == 0, 2].mean() + kept[surface == 1, 2].mean())
    else:
        t[2] = -float(np.mean(kept[:, 2]))
    t[:2] = np.linalg.solve(a[ref][:, :2], shifts[ref] - a[ref][:, 2] * t[2])
    return points + t, shifts - a @ t


def solve_fiducial_alignment(
    positions_px: np.ndarray,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    pixel_size_A: float = 1.0,
    *,
    rotation: Grouping = "single",
    tilt: Grouping = "grouped",
    magnification: Grouping = "fixed",
    group_size: int = 5,
    tilt_offset_deg: float = 0.0,
    level: bool = True,
    outlier_px: float = 2.0,
    outlier_sd: float = 4.0,
    prior_shifts_px: ArrayLike | None = None,
) -> FiducialSolution:
    """Fit the projection model to landmark positions (least squares, robust to mistracked beads).

    Parameters
    ----------
    positions_px
        (n_views, n_beads, 2) (x, y) positions, pixels from the image centre, NaN = not seen.
    tilts_deg
        (n_views,) nominal tilt angles, degrees.
    tilt_axis_deg
        Starting tilt axis angle, degrees from image Y, counter-clockwise.
    pixel_size_A
        Å per pixel of ``positions_px`` (the model's shifts are in Å).
    rotation, tilt, magnification
        How the in-plane rotation, the tilt angles and the relative magnification are solved (``Grouping``).
    group_size
        Views per group node of grouped variables.
    tilt_offset_deg
        Added to the nominal tilts before fitting, degrees.
    level
        Choose the free tilt offset that makes the beads level (else keep the nominal one).
    outlier_px, outlier_sd
        Observations off by more than max(``outlier_px``, ``outlier_sd`` × the robust residual spread) are
        dropped, and whole beads where more than a quarter are.
    prior_shifts_px
        (n_views, 2) shifts, pixels (e.g. the coarse alignment): a view left with no observation is not
        constrained by the fit and takes its prior shift, moved into this solution's gauge by the 3D
        translation that best maps the prior onto the solution over the observed views.

    Returns
    -------
    FiducialSolution
        The model (shifts in Å), the 3D points and residuals (pixels) and the fit's diagnostics; views left
        with no observation are listed in ``unobserved_views``.

    Raises
    ------
    TooFewLandmarksError
        Fewer than ``MIN_LANDMARKS`` beads seen in ``MIN_VIEWS`` views (before or after dropping outliers).
    """
    obs = np.asarray(positions_px, dtype=float)
    check_landmarks(obs)
    n, m, _ = obs.shape
    tilts = np.asarray(tilts_deg, dtype=float) + tilt_offset_deg
    axis = np.full(n, float(tilt_axis_deg))
    mask = np.all(np.isfinite(obs), axis=-1)
    ref = int(np.argmin(np.abs(tilts_deg)))
    layout = _Layout(
        n,
        m,
        group_matrix(tilts, rotation, group_size=group_size),
        group_matrix(tilts, tilt, group_size=group_size),
        group_matrix(tilts, magnification, group_size=group_size),
        ref,
    )
    dropped = np.zeros(m, dtype=bool)

    def fit(use: np.ndarray, p0: np.ndarray | None, loss: str) -> np.ndarray:
        vi, bj = np.nonzero(use)
        if p0 is None:
            pts, sh = _linear_start(obs, use, tilts, axis)
            p0 = np.zeros(int(layout.bounds[-1]))
            p0[: 3 * m], p0[3 * m : 3 * m + 2 * n] = pts.ravel(), sh.ravel()

        def residuals(p: np.ndarray) -> np.ndarray:
            pred = _predict(layout, p, axis, tilts)
            points = p[: 3 * m].reshape(m, 3)
            return np.concatenate([(pred[vi, bj] - obs[vi, bj]).ravel(), points.mean(axis=0)])

        result = least_squares(
            residuals,
            p0,
            jac=lambda q: _jacobian(layout, q, axis, tilts, vi, bj),
            loss=loss,
            f_scale=1.0,
            x_scale="jac",
            method="trf",
            tr_solver="lsmr",
            xtol=1e-10,
            ftol=1e-10,
            max_nfev=200,
        )
        return result.x

    use = mask.copy()
    p = fit(use, None, "soft_l1")
    for _ in range(3):
        res = np.linalg.norm(_predict(layout, p, axis, tilts) - obs, axis=-1)
        good = res[use]
        spread = 1.4826 * np.median(np.abs(good)) if good.size else 0.0
        limit = max(outlier_px, outlier_sd * spread)
        bad_point = mask & (res > limit)
        per_bead_bad = bad_point.sum(axis=0) / np.maximum(mask.sum(axis=0), 1)
        new_dropped = dropped | (per_bead_bad > 0.25) | (mask.sum(axis=0) < 3)
        new_use = mask & ~bad_point & ~new_dropped[None, :]
        if np.array_equal(new_use, use) and np.array_equal(new_dropped, dropped):
            break
        use, dropped = new_use, new_dropped
        p = fit(use, p, "linear")
    p = fit(use, p, "linear")
    check_landmarks(
        np.where(use[..., None], obs, np.nan),
        what="beads",
        advice=f"the others were outliers (off by more than {outlier_px:g} px, or mistracked in more than a "
        "quarter of their views): check the landmark model, or raise outlier_px",
    )

    points, shifts, *_ = layout.split(p)
    z_rot, tilt_fit, mag = layout.angles(p, axis, tilts)
    unobserved = ~use.any(axis=1)
    if prior_shifts_px is not None and unobserved.any() and (~unobserved).sum() >= 2:
        prior = np.asarray(prior_shifts_px, dtype=float).reshape(n, 2)
        a = rotation_matrices(tilt_fit, z_rot)[:, :2, :] * mag[:, None, None]
        t, *_ = np.linalg.lstsq(a[~unobserved].reshape(-1, 3), (prior - shifts)[~unobserved].ravel(), rcond=None)
        shifts = shifts.copy()
        shifts[unobserved] = prior[unobserved] - a[unobserved] @ t
    about_y, about_x, surface = _level_angles(points[~dropped]) if (~dropped).sum() >= 3 else (0.0, 0.0, None)
    if level:
        from tomoforge.methods.rotations import rotation_about_y

        points = points @ rotation_about_y(about_y).T
        tilt_fit = tilt_fit - about_y
        _, about_x, _ = _level_angles(points[~dropped])
    points, shifts = _centre_on_reference_view(points, shifts, dropped, tilt_fit, z_rot, mag, layout.ref, surface)
    labels = -np.ones(m, dtype=int)
    if surface is not None:
        labels[~dropped] = surface
    model = ProjectionModel(tilt_fit, z_rot, shifts * pixel_size_A, magnification=mag)
    pred = model.project(points * pixel_size_A) / pixel_size_A
    resid = np.where(mask[..., None], obs - pred, np.nan)
    kept = np.where(use[..., None], resid, np.nan)
    sq = np.sum(kept**2, axis=-1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a view or bead with nothing kept: NaN
        view_rms = np.sqrt(np.nanmean(sq, axis=1))
        bead_rms = np.sqrt(np.nanmean(np.where(mask, np.sum(resid**2, axis=-1), np.nan), axis=0))
    points_out = points.copy()
    points_out[dropped] = np.nan
    return FiducialSolution(
        model=model,
        points_px=points_out,
        residuals_px=resid,
        used=use,
        dropped_beads=np.nonzero(dropped)[0],
        rms_px=float(np.sqrt(np.nanmean(sq))),
        view_rms_px=view_rms,
        bead_rms_px=bead_rms,
        tilt_axis_deg=float(np.mean(z_rot)),
        tilt_offset_deg=float(np.mean(tilt_fit - np.asarray(tilts_deg))),
        x_tilt_level_deg=float(about_x),
        surface=labels,
        unobserved_views=np.nonzero(unobserved)[0],
    )


__all__ = [
    "MIN_LANDMARKS",
    "MIN_VIEWS",
    "TooFewLandmarksError",
    "check_landmarks",
    "group_matrix",
    "FiducialSolution",
    "solve_fiducial_alignment",
]
