"""Euler angles <-> rotation matrices (the only place tomoforge handles Euler angles).

tomoforge's rotation R maps reference to tomogram: x_tomogram = R · x_reference + t; its columns
are the reference axes seen in the tomogram.

RELION (rot, tilt, psi), ZYZ: R = Rz(-psi)... written out, R = (Rz(rot) · Ry(tilt) · Rz(psi))ᵀ,
i.e. ``scipy.spatial.transform.Rotation.from_euler('ZYZ', [rot, tilt, psi], degrees=True).inv()``.
This is how RELION 5 itself converts particle orientations (src/tomography_python_programs/
get_particle_poses/filaments.py: ``R.from_matrix(orientations).inv().as_euler('ZYZ')``) and
equals RELION's ``Euler_angles2matrix`` A. Example: rot = 90 alone gives
R = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]] (the reference x axis lies along tomogram −y).

Dynamo (tdrot, tilt, narot): eulerangles' 'dynamo' convention (extrinsic ZXZ, right-handed,
passive like RELION's), R = (Rz(narot) · Rx(tilt) · Rz(tdrot))ᵀ, which makes
``eulerangles.convert_eulers(.., 'dynamo', 'relion')`` (used by teamtomo's dynamo2relion) give the
same R; equivalently rot = narot − 90, tilt = tilt, psi = tdrot + 90.
"""

from __future__ import annotations

import numpy as np
from eulerangles import euler2matrix, matrix2euler
from numpy.typing import ArrayLike


def _angles(*angles: ArrayLike) -> np.ndarray:
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in angles])
    return np.stack(arrays, axis=-1)


def _to_matrix(eulers: np.ndarray, axes: str, intrinsic: bool) -> np.ndarray:
    flat = eulers.reshape(-1, 3)
    passive = euler2matrix(flat, axes=axes, intrinsic=intrinsic, right_handed_rotation=True)
    matrices = np.swapaxes(np.asarray(passive, dtype=float).reshape(-1, 3, 3), -1, -2)
    return matrices.reshape(eulers.shape[:-1] + (3, 3))


def _to_euler(matrices: np.ndarray, axes: str, intrinsic: bool) -> np.ndarray:
    matrices = np.asarray(matrices, dtype=float)
    if matrices.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must have shape (..., 3, 3), got {matrices.shape}")
    flat = np.swapaxes(matrices.reshape(-1, 3, 3), -1, -2)
    eulers = np.asarray(
        matrix2euler(flat, axes=axes, intrinsic=intrinsic, right_handed_rotation=True), dtype=float
    ).reshape(-1, 3)
    # eulerangles 1.0 returns angles that do not give the matrix back for about 1 rotation in 10,000 (e.g. Dynamo
    # tdrot −139.17, tilt 168.87, narot −179.99 came back as 40.82, 168.87, 0); those rows are taken from scipy,
    # whose from_euler(seq, angles) equals the passive matrix Rᵀ (upper-case seq: intrinsic)
    wrong = np.abs(_to_matrix(eulers, axes, intrinsic) - matrices.reshape(-1, 3, 3)).max(axis=(1, 2)) > 1e-9
    if wrong.any():
        from scipy.spatial.transform import Rotation

        seq = axes.upper() if intrinsic else axes.lower()
        eulers[wrong] = Rotation.from_matrix(flat[wrong]).as_euler(seq, degrees=True)
    return eulers.reshape(matrices.shape[:-2] + (3,))


def relion_euler_to_matrix(rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike) -> np.ndarray:
    """RELION rot/tilt/psi (degrees, scalars or arrays) -> R (…, 3, 3), reference -> tomogram."""
    return _to_matrix(_angles(rot, tilt, psi), "zyz", intrinsic=True)


def matrix_to_relion_euler(R: np.ndarray) -> np.ndarray:
    """R (…, 3, 3), reference -> tomogram, to RELION (rot, tilt, psi) in degrees, (…, 3)."""
    return _to_euler(R, "zyz", intrinsic=True)


def dynamo_euler_to_matrix(tdrot: ArrayLike, tilt: ArrayLike, narot: ArrayLike) -> np.ndarray:
    """Dynamo tdrot/tilt/narot (degrees) -> R (…, 3, 3), reference -> tomogram."""
    return _to_matrix(_angles(tdrot, tilt, narot), "zxz", intrinsic=False)


def matrix_to_dynamo_euler(R: np.ndarray) -> np.ndarray:
    """R (…, 3, 3), reference -> tomogram, to Dynamo (tdrot, tilt, narot) in degrees, (…, 3)."""
    return _to_euler(R, "zxz", intrinsic=False)


__all__ = [
    "dynamo_euler_to_matrix",
    "matrix_to_dynamo_euler",
    "matrix_to_relion_euler",
    "relion_euler_to_matrix",
]
