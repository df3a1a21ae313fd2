"""Rotation matrices (right-handed, active: x' = R @ x, vectors ordered (x, y, z)).

Angles are in degrees at every interface. Volumes are stored (z, y, x) but every rotation
here acts on (x, y, z) coordinate vectors; convert with ``xyz_to_zyx_matrix`` where needed.
"""

from __future__ import annotations

import numpy as np


def rotation_about_x(angle_deg: float) -> np.ndarray:
    """3x3 rotation by ``angle_deg`` about the x axis (counter-clockwise looking down +x)."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rotation_about_y(angle_deg: float) -> np.ndarray:
    """3x3 rotation by ``angle_deg`` about the y axis: x' = cos·x + sin·z (the tilt rotation)."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def rotation_about_z(angle_deg: float) -> np.ndarray:
    """3x3 rotation by ``angle_deg`` about z: counter-clockwise in the (x, y) image plane."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def rotation_about_axis(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """3x3 rotation by ``angle_deg`` about the unit vector ``axis`` (x, y, z) (Rodrigues)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    a = np.deg2rad(angle_deg)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotations uniformly distributed on SO(3) (from uniform unit quaternions)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return quaternions_to_matrices(q)


def quaternions_to_matrices(q: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotation matrices from (n, 4) unit quaternions (w, x, y, z)."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def matrices_to_quaternions(matrices: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z), w ≥ 0, of rotation matrices; shape (..., 3, 3) -> (..., 4).

    Each is computed from the largest of the four diagonal combinations (Shepperd's method), so the
    round trip through ``quaternions_to_matrices`` is exact to float64 rounding.
    """
    m = np.asarray(matrices, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    candidates = np.stack(
        [
            np.stack(
                [1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
            ),
            np.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + m00 - m11 - m22,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            np.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 - m00 + m11 - m22,
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            np.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 - m00 - m11 + m22,
                ],
                -1,
            ),
        ],
        -2,
    )  # (..., 4 candidates, 4 components): candidate i is 4 q_i q
    best = np.argmax(np.stack([trace, m00, m11, m22], -1), axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def rotation_aligning_z_to(normal: np.ndarray) -> np.ndarray:
    """3x3 rotation R with R @ (0, 0, 1) = ``normal`` (unit), the shortest such rotation."""
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, n)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return np.eye(3) if n[2] > 0 else rotation_about_x(180.0)
    return rotation_about_axis(axis, np.rad2deg(np.arctan2(s, float(z @ n))))


def xyz_to_zyx_matrix(r_xyz: np.ndarray) -> np.ndarray:
    """The same rotation acting on (z, y, x)-ordered vectors (reverse rows and columns)."""
    return np.asarray(r_xyz)[..., ::-1, ::-1].copy()


def tilt_projection_matrix(tilt_deg: float, z_rot_deg: float = 0.0, x_tilt_deg: float = 0.0) -> np.ndarray:
    """RELION 5 projection rotation Rz(ZRot) · Ry(YTilt) · Rx(XTilt) acting on tomogram (x, y, z).

    Row 0 and 1 give the image position (Å from the image centre, before XShift/YShift);
    row 2 gives the height along the beam (towards the source positive).
    """
    return rotation_about_z(z_rot_deg) @ rotation_about_y(tilt_deg) @ rotation_about_x(x_tilt_deg)
