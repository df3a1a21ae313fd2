"""The detector: MTF, gain reference, hot pixels, X-ray hits and counting (Poisson) noise.

Raw counts of a frame = Poisson(expected / gain) + hot-pixel counts + X-ray hits, so that
raw × gain (the gain reference, as SerialEM applies it) has the expected mean. The MTF (from a
RELION-style STAR, frequency in 1/pixel of the physical pixel) multiplies the signal spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import starfile
import torch
from scipy import ndimage

from tomoforge.methods.fourier import spatial_frequency_2d
from tomoforge.simulate.structures import resolve_data_file

MTF_FOLDER = "detector/ttsim3d_mtf"


def load_mtf(name: str, data_root: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(frequency in 1/physical pixel, MTF value) from a STAR file stem in the data folder or a path."""
    rel = name if name.endswith(".star") or "/" in name else f"{MTF_FOLDER}/{name}.star"
    path = resolve_data_file(rel, data_root, "detector.mtf")
    table = starfile.read(path)
    if isinstance(table, dict):
        table = next(iter(table.values()))
    return table["rlnResolutionInversePixel"].to_numpy(float), table["rlnMtfValue"].to_numpy(float)


def mtf_2d(shape: tuple[int, int], freq: np.ndarray, value: np.ndarray, super_resolution: bool = False) -> torch.Tensor:
    """The MTF on the rfft grid of an image of ``shape``; super-resolution pixels are half a physical one."""
    k = spatial_frequency_2d(shape, 0.5 if super_resolution else 1.0).numpy()
    return torch.from_numpy(np.interp(k, freq, value, right=value[-1]).astype(np.float32))


def gain_reference(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative gain (float32, mean ≈ 1): smooth variation, pixel-to-pixel spread, column pattern."""
    smooth = ndimage.gaussian_filter(rng.normal(size=shape), sigma=max(shape) / 16)
    smooth /= smooth.std() + 1e-12
    pixel = rng.normal(size=shape)
    columns = rng.normal(size=(1, shape[1]))
    g = 1 + sigma * (0.5 * smooth + 0.8 * pixel + 0.3 * columns)
    return np.clip(g, 0.5, 1.5).astype(np.float32)


@dataclass
class DetectorDefects:
    hot_pixels_yx: np.ndarray  # (n, 2)
    hot_pixel_counts: float
    xrays: list[dict] = field(default_factory=list)  # per hit: tilt, frame, y, x, counts


def hot_pixels(shape: tuple[int, int], count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 2) distinct (y, x) hot-pixel positions."""
    flat = rng.choice(shape[0] * shape[1], size=count, replace=False)
    return np.stack(np.unravel_index(flat, shape), axis=1)


def record_frame(
    expected: np.ndarray,
    gain: np.ndarray,
    defects: DetectorDefects,
    xrays_per_frame: float,
    xray_counts: tuple[float, float],
    rng: np.random.Generator,
    tilt: int,
    frame: int,
) -> np.ndarray:
    """Raw counts (int32) of one frame; X-ray hits (1–4 pixel clusters) are appended to ``defects``."""
    counts = rng.poisson(expected / gain).astype(np.int32)
    if len(defects.hot_pixels_yx):
        hy, hx = defects.hot_pixels_yx.T
        counts[hy, hx] += rng.poisson(defects.hot_pixel_counts, size=len(hy))
    ny, nx = counts.shape
    for _ in range(rng.poisson(xrays_per_frame)):
        y, x = int(rng.integers(1, ny - 1)), int(rng.integers(1, nx - 1))
        value = float(rng.uniform(*xray_counts))
        size = int(rng.integers(1, 5))
        pixels = [(y, x), (y, x + 1), (y + 1, x), (y + 1, x + 1)][:size]
        for py, px in pixels:
            counts[min(py, ny - 1), min(px, nx - 1)] += int(value)
        defects.xrays.append(
            {"tilt_index": tilt, "frame": frame, "y_px": y, "x_px": x, "pixels": size, "counts": int(value)}
        )
    return counts
