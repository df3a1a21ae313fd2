"""A synthetic tomogram for the template-matching tests: copies of an asymmetric template at known positions and
rotations, seen through a tilt series' weighting (wedge, CTF, dose), protein dark, with white noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tomoforge.methods.picking.template_matching import rotate_volumes
from tomoforge.methods.picking.template_weighting import TiltWeighting, tilt_weight
from tomoforge.methods.rotations import random_rotations

PIXEL_A = 10.0
BOX = 16
# blob centres (x, y, z voxels from the centre) and amplitudes: no symmetry, so orientations are defined
BLOBS = (
    (0.0, 0.0, 0.0, 1.0),
    (4.0, 0.0, 0.0, 0.8),
    (0.0, 3.0, 1.0, 0.6),
    (-2.0, -2.0, 3.0, 0.5),
    (1.0, -3.5, -2.5, 0.7),
    (-3.5, 1.5, -1.5, 0.9),
)
WEIGHTING = TiltWeighting(
    tilt_angles_deg=tuple(float(a) for a in np.arange(-60.0, 61.0, 3.0)),
    doses_e_A2=tuple(3.0 * i for i in range(1, 42)),
    defocus_A=(30000.0,) * 41,
)


def template(n: int = BOX, sigma_px: float = 1.3) -> np.ndarray:
    """(n, n, n) float32: Gaussian blobs, bright, centred on voxel n // 2."""
    a = np.arange(n) - n // 2
    z, y, x = np.meshgrid(a, a, a, indexing="ij")
    out = np.zeros((n, n, n))
    for bx, by, bz, amp in BLOBS:
        out += amp * np.exp(-((x - bx) ** 2 + (y - by) ** 2 + (z - bz) ** 2) / (2 * sigma_px**2))
    return out.astype(np.float32)


@dataclass
class Synthetic:
    volume: np.ndarray  # (z, y, x)
    positions_zyx: np.ndarray  # (k, 3) voxel indices
    rotations: np.ndarray  # (k, 3, 3)


def tomogram(
    shape: tuple[int, int, int] = (48, 64, 64),
    *,
    spacing: int = 20,
    noise_sd: float = 1.0,
    seed: int = 0,
    weighting: TiltWeighting = WEIGHTING,
) -> Synthetic:
    """Particles on a jittered grid ``spacing`` voxels apart, at least BOX // 2 + 1 from the faces; the volume is
    the sum of the rotated templates filtered by the tilt weight, negated (protein dark), scaled to SD 1 inside
    the particles' boxes, plus white noise of ``noise_sd``."""
    rng = np.random.default_rng(seed)
    t = torch.as_tensor(template())
    lo = BOX // 2 + 1
    grids = [np.arange(lo, s - lo + 1, spacing) for s in shape]
    centres = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)
    centres = centres + rng.integers(-2, 3, size=centres.shape)
    centres = np.clip(centres, lo, np.array(shape) - lo - 1)
    rotations = random_rotations(len(centres), rng)
    turned = rotate_volumes(t, torch.as_tensor(rotations)).numpy()
    clean = np.zeros(shape, dtype=np.float32)
    for (cz, cy, cx), box in zip(centres, turned):  # a few particles: placed one by one
        clean[cz - BOX // 2 : cz + BOX // 2, cy - BOX // 2 : cy + BOX // 2, cx - BOX // 2 : cx + BOX // 2] += box
    weight = tilt_weight(shape, PIXEL_A, weighting)
    filtered = -torch.fft.irfftn(torch.fft.rfftn(torch.as_tensor(clean)) * weight, s=shape).numpy()
    signal_sd = filtered[np.abs(clean) > 0.05].std()
    volume = filtered / signal_sd + rng.normal(scale=noise_sd, size=shape)
    return Synthetic(volume.astype(np.float32), centres, rotations)
