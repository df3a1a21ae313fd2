"""Known maps for the STA tests: a chiral three-blob map drawn analytically at any rotation."""

from __future__ import annotations

import numpy as np

N = 24


def corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a).reshape(-1), np.asarray(b).reshape(-1))[0, 1])


BLOBS = (((4, 0, 0), 2.0, 1.0), ((0, 5, 1), 1.6, 0.8), ((-2, -1, 4), 1.3, 0.6))  # centre (x y z), SD, amplitude


def blobs(rotation: np.ndarray) -> np.ndarray:
    """The chiral three-blob map rotated by ``rotation`` (x y z) about voxel N // 2, drawn analytically."""
    z, y, x = np.meshgrid(*(np.arange(N) - N // 2,) * 3, indexing="ij")
    vol = np.zeros((N, N, N))
    for c, s, a in BLOBS:
        cx, cy, cz = rotation @ np.asarray(c, dtype=float)
        vol += a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * s * s))
    return vol.astype(np.float32)
