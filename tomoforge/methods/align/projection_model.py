"""The projection model of a tilt series: where a 3D specimen point lands in each view.

RELION 5's model (Burt et al. 2024), per view i, for a point X = (x, y, z) in Å from the
specimen (tomogram) centre:

    u_i = m_i · [Rz(ZRot_i) · Ry(YTilt_i) · Rx(XTilt_i) · X]_(x, y) + (XShift_i, YShift_i)

u_i is in Å from the image centre (pixel index n // 2 along x and y), m_i a relative
magnification (1 = nominal). ZRot is the tilt-axis angle of the view: from the image Y axis,
counter-clockwise positive (SerialEM/IMOD). The shift is where the specimen centre lands.

Hand assumption: Ry(β) maps (x, z) to (cos β·x + sin β·z, …), i.e. at a positive tilt a point
above the specimen mid-plane (z > 0, towards the source) moves towards +x of the tilt-axis
frame (RELION 5 / tomoforge.methods.rotations). The projected positions cannot tell this hand
from its mirror (β → −β, z → −z; or ZRot → ZRot + 180°): that needs the defocus gradient.

``ProjectionModel`` is the one definition used by alignment, CTF and reconstruction; a tilt series' model
(unset YTilt / ZRot read as the nominal tilt / tilt axis) is built only by ``TiltSeries.projection_model``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def rotation_matrices(tilt_deg: ArrayLike, z_rot_deg: ArrayLike, x_tilt_deg: ArrayLike = 0.0) -> np.ndarray:
    """(n, 3, 3) Rz(ZRot) · Ry(YTilt) · Rx(XTilt) for arrays of angles (degrees)."""
    t, z, x = np.broadcast_arrays(*(np.deg2rad(np.asarray(a, dtype=float)) for a in (tilt_deg, z_rot_deg, x_tilt_deg)))
    t, z, x = (np.atleast_1d(a) for a in (t, z, x))
    ct, st, cz, sz, cx, sx = np.cos(t), np.sin(t), np.cos(z), np.sin(z), np.cos(x), np.sin(x)
    one, zero = np.ones_like(t), np.zeros_like(t)
    rz = np.stack([np.stack([cz, -sz, zero], -1), np.stack([sz, cz, zero], -1), np.stack([zero, zero, one], -1)], -2)
    ry = np.stack([np.stack([ct, zero, st], -1), np.stack([zero, one, zero], -1), np.stack([-st, zero, ct], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cx, -sx], -1), np.stack([zero, sx, cx], -1)], -2)
    return rz @ ry @ rx


class ProjectionModel:
    """Per-view projection model of a tilt series (RELION 5): the one definition every step uses.

    Parameters
    ----------
    tilt_deg
        YTilt of each view (the tilt angle), degrees.
    z_rot_deg
        ZRot of each view (the tilt axis angle: from the image Y axis, counter-clockwise positive),
        degrees; a scalar is used for every view.
    shift_A
        (n, 2) (XShift, YShift): where the specimen centre lands, Å from the image centre.
    x_tilt_deg
        XTilt of each view, degrees (default 0).
    magnification
        Relative magnification of each view (default 1).
    """

    tilt_deg: np.ndarray
    z_rot_deg: np.ndarray
    shift_A: np.ndarray  # (n, 2): (XShift, YShift)
    x_tilt_deg: np.ndarray
    magnification: np.ndarray

    def __init__(
        self,
        tilt_deg: ArrayLike,
        z_rot_deg: ArrayLike,
        shift_A: ArrayLike,
        x_tilt_deg: ArrayLike | None = None,
        magnification: ArrayLike | None = None,
    ) -> None:
        self.tilt_deg = np.atleast_1d(np.asarray(tilt_deg, dtype=np.float64)).ravel()
        n = len(self.tilt_deg)
        self.z_rot_deg = np.broadcast_to(np.asarray(z_rot_deg, dtype=np.float64), (n,)).copy()
        self.shift_A = np.broadcast_to(np.asarray(shift_A, dtype=np.float64).reshape(-1, 2), (n, 2)).copy()
        self.x_tilt_deg = (
            np.zeros(n)
            if x_tilt_deg is None
            else np.broadcast_to(np.asarray(x_tilt_deg, dtype=np.float64), (n,)).copy()
        )
        self.magnification = (
            np.ones(n)
            if magnification is None
            else np.broadcast_to(np.asarray(magnification, dtype=np.float64), (n,)).copy()
        )

    def __repr__(self) -> str:
        return (
            f"ProjectionModel(tilt_deg={self.tilt_deg!r}, z_rot_deg={self.z_rot_deg!r}, shift_A={self.shift_A!r}, "
            f"x_tilt_deg={self.x_tilt_deg!r}, magnification={self.magnification!r})"
        )

    @property
    def n_views(self) -> int:
        """Number of views."""
        return len(self.tilt_deg)

    def matrices(self) -> np.ndarray:
        """(n, 2, 3) maps from specimen (x, y, z) to image (x, y), magnification included."""
        return (
            rotation_matrices(self.tilt_deg, self.z_rot_deg, self.x_tilt_deg)[:, :2, :]
            * self.magnification[:, None, None]
        )

    def project(self, points_A: np.ndarray) -> np.ndarray:
        """(n_views, n_points, 2) image positions in Å from the image centre of (m, 3) points in Å."""
        points = np.asarray(points_A, dtype=np.float64).reshape(-1, 3)
        return np.einsum("nab,mb->nma", self.matrices(), points) + self.shift_A[:, None, :]

    def project_px(self, points_A: np.ndarray, pixel_size_A: float) -> np.ndarray:
        """As ``project``, in pixels from the image centre."""
        return self.project(points_A) / float(pixel_size_A)

    def _with(self, **changes: np.ndarray) -> ProjectionModel:
        values = {
            "tilt_deg": self.tilt_deg,
            "z_rot_deg": self.z_rot_deg,
            "shift_A": self.shift_A,
            "x_tilt_deg": self.x_tilt_deg,
            "magnification": self.magnification,
            **changes,
        }
        return ProjectionModel(
            values["tilt_deg"], values["z_rot_deg"], values["shift_A"], values["x_tilt_deg"], values["magnification"]
        )

    def subset(self, views: np.ndarray | list[int] | slice) -> ProjectionModel:
        """The model of the views indexed by ``views`` (indices or a boolean mask)."""
        return ProjectionModel(
            self.tilt_deg[views],
            self.z_rot_deg[views],
            self.shift_A[views],
            self.x_tilt_deg[views],
            self.magnification[views],
        )

    def scaled_shifts(self, factor: float) -> ProjectionModel:
        """The same model with shifts multiplied by ``factor`` (e.g. a pixel-size change)."""
        return self._with(shift_A=self.shift_A * factor)

    def with_offsets(self, tilt_offset_deg: float = 0.0, axis_offset_deg: float = 0.0) -> ProjectionModel:
        """The same views with ``tilt_offset_deg`` added to every YTilt and ``axis_offset_deg`` to every ZRot."""
        return self._with(tilt_deg=self.tilt_deg + tilt_offset_deg, z_rot_deg=self.z_rot_deg + axis_offset_deg)

    def check_reconstructable(self, max_tilt_deg: float = 89.0, max_x_tilt_deg: float = 45.0) -> None:
        """Raise ValueError unless a tomogram can be back-projected with this model: |YTilt| < ``max_tilt_deg``,
        |XTilt| < ``max_x_tilt_deg`` and magnification 1 (the back-projector does not scale the views)."""
        steep = np.abs(self.tilt_deg) >= max_tilt_deg
        if np.any(steep):
            raise ValueError(f"tilt angles must be within ±{max_tilt_deg:g}°, got {self.tilt_deg[steep]}")
        steep = np.abs(self.x_tilt_deg) >= max_x_tilt_deg
        if np.any(steep):
            raise ValueError(f"x-tilts must be within ±{max_x_tilt_deg:g}°, got {self.x_tilt_deg[steep]}")
        if not np.allclose(self.magnification, 1.0):
            raise ValueError(
                "the reconstruction needs views of magnification 1, got "
                f"{self.magnification[~np.isclose(self.magnification, 1.0)]}"
            )


def remove_common_translation(displacement: np.ndarray) -> np.ndarray:
    """Subtract the mean over all views and points from (n, m, 2) displacements."""
    d = np.asarray(displacement, dtype=float)
    return d - np.nanmean(d.reshape(-1, 2), axis=0)


def _without_translation(model: ProjectionModel, diff: np.ndarray) -> np.ndarray:
    """(n, m, 2) differences minus the best single 3D translation seen through ``model``."""
    a = model.matrices()  # (n, 2, 3)
    lhs = np.repeat(a, diff.shape[1], axis=0).reshape(-1, 3)
    t, *_ = np.linalg.lstsq(lhs, diff.reshape(-1), rcond=None)
    return diff - np.einsum("nab,b->na", a, t)[:, None, :]


def reprojection_difference(
    model_a: ProjectionModel,
    model_b: ProjectionModel,
    points_A: np.ndarray,
    *,
    remove_translation: bool = True,
    remove_tilt_offset: bool = False,
) -> np.ndarray:
    """(n, m, 2) differences (Å) between where two models put the same 3D points.

    With ``remove_translation`` the best single 3D translation of the specimen (the free gauge of
    any alignment: moving the tomogram centre) is removed first, by least squares. With
    ``remove_tilt_offset`` also the best rotation of the specimen about the tilt axis (Y): adding
    δ to every tilt and turning the specimen by −δ about Y projects the same, so a common tilt
    offset is free as well (an alignment fixes it by a convention, e.g. levelling the beads).
    """
    points = np.asarray(points_A, dtype=float).reshape(-1, 3)
    target = model_b.project(points)

    def difference(delta_deg: float) -> np.ndarray:
        from tomoforge.methods.rotations import rotation_about_y

        turned = points @ rotation_about_y(delta_deg).T
        diff = model_a.project(turned) - target
        return _without_translation(model_a, diff) if remove_translation else diff

    if not remove_tilt_offset:
        return difference(0.0)
    from scipy.optimize import minimize_scalar

    best = minimize_scalar(
        lambda d: float(np.sum(difference(d) ** 2)), bounds=(-10.0, 10.0), method="bounded", options={"xatol": 1e-4}
    )
    return difference(float(best.x))


def rms(values: np.ndarray) -> float:
    """Root mean square length of (…, 2) vectors, ignoring NaN."""
    v = np.asarray(values, dtype=float)
    return float(np.sqrt(np.nanmean(np.sum(v**2, axis=-1))))


__all__ = ["ProjectionModel", "remove_common_translation", "reprojection_difference", "rms", "rotation_matrices"]
