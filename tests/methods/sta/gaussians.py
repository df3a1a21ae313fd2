"""A map made of Gaussian blobs, whose projections along any direction are known in closed form.

A blob a · exp(−|x − c|² / 2σ²) rotated by R projects along z to a · σ√(2π) · exp(−|u − (R c)_xy|² / 2σ²):
views with an exact answer, made without the projector under test.
"""

from __future__ import annotations

import numpy as np


class GaussianMap:
    """``count`` blobs of width ``sigma`` (px) inside ``radius`` (px) of the centre of a ``box``³ map."""

    def __init__(self, box: int, *, count: int = 20, sigma: float = 1.3, radius: float = 7.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        points = rng.uniform(-1, 1, (20 * count, 3))
        self.box, self.sigma = box, sigma
        self.centres = points[np.linalg.norm(points, axis=1) < 1][:count] * radius
        self.amplitudes = rng.uniform(0.5, 1.5, len(self.centres))

    def symmetrised(self, operators: np.ndarray) -> GaussianMap:
        """The same blobs placed by every operator G (x -> G x): a map with that symmetry."""
        out = GaussianMap.__new__(GaussianMap)
        out.box, out.sigma = self.box, self.sigma
        out.centres = np.einsum("gij,cj->gci", operators, self.centres).reshape(-1, 3)
        out.amplitudes = np.tile(self.amplitudes, len(operators))
        return out

    def volume(self) -> np.ndarray:
        """The map (z, y, x), centre at voxel box // 2."""
        g = np.arange(self.box) - self.box // 2
        d2 = sum(
            (axis[None] - self.centres[:, i, None, None, None]) ** 2
            for i, axis in enumerate(np.meshgrid(g, g, g, indexing="ij")[::-1])
        )
        return np.einsum("c,cxyz->xyz", self.amplitudes, np.exp(-d2 / (2 * self.sigma**2)))

    def views(self, rotations: np.ndarray, box: int | None = None) -> np.ndarray:
        """Projections (n, box, box) along z of the map rotated by each R (sums over voxels)."""
        box = box or self.box
        g = np.arange(box) - box // 2
        p = np.einsum("nij,cj->nci", rotations, self.centres)[..., :2]
        yy, xx = np.meshgrid(g, g, indexing="ij")
        d2 = (xx - p[..., 0, None, None]) ** 2 + (yy - p[..., 1, None, None]) ** 2
        scale = self.amplitudes[None, :, None, None] * self.sigma * np.sqrt(2 * np.pi)
        return (scale * np.exp(-d2 / (2 * self.sigma**2))).sum(1)
