"""Gain references: rotate/flip to the orientation of the frames, and apply (multiply).

Rotations are counter-clockwise in the displayed image (y axis up as MRC viewers show it), in
steps of 90°, applied before the flip (RELION's --gain_rot / --gain_flip order).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from tomoforge.errors import UserError
from tomoforge.methods.fourier import as_tensor

Flip = Literal["none", "x", "y"]


class GainError(UserError, ValueError):
    """A gain reference that does not fit the frames (size or orientation)."""


def transform_gain(gain: torch.Tensor | np.ndarray, *, rotate_deg: int = 0, flip: Flip = "none") -> torch.Tensor:
    """The gain rotated by ``rotate_deg`` then flipped.

    Parameters
    ----------
    gain : torch.Tensor or numpy.ndarray, (y, x)
        Gain reference (multiplier per pixel, unitless).
    rotate_deg : {0, 90, 180, 270}
        Counter-clockwise rotation (degrees, y up).
    flip : {"none", "x", "y"}
        Then mirror left-right (x → −x) or up-down.

    Returns
    -------
    torch.Tensor, float32, (y, x) or (x, y) when turned by 90° or 270°
    """
    g = as_tensor(gain)
    if rotate_deg % 90:
        raise GainError(f"gain rotation must be a multiple of 90°, got {rotate_deg}")
    g = torch.rot90(g, k=(rotate_deg // 90) % 4, dims=(0, 1))  # dims (y, x): CCW with y up
    if flip == "x":
        g = torch.flip(g, dims=(1,))
    elif flip == "y":
        g = torch.flip(g, dims=(0,))
    elif flip != "none":
        raise GainError(f"gain flip must be none, x or y, got {flip!r}")
    return g


def check_gain(gain: torch.Tensor, frame_shape: tuple[int, ...], *, name: str = "gain") -> None:
    """GainError naming ``name`` unless the gain has the frames' shape (with a hint when rotated)."""
    shape = tuple(gain.shape)
    if shape == tuple(frame_shape):
        return
    hint = ""
    if shape == tuple(frame_shape)[::-1]:
        hint = " (it looks rotated by 90°: set the gain rotation)"
    elif len(shape) == 2 and shape[0] * 2 == frame_shape[0] and shape[1] * 2 == frame_shape[1]:
        hint = " (half the size: a counting-mode gain for super-resolution frames?)"
    raise GainError(f"{name}: shape {shape} does not match the frames {tuple(frame_shape)}{hint}")


def apply_gain(
    frames: torch.Tensor | np.ndarray, gain: torch.Tensor | np.ndarray, *, name: str = "gain"
) -> torch.Tensor:
    """Frames (n, y, x) multiplied by the gain (y, x): float32 (checked; non-finite gain values → 0).

    Integer frames (counts) are multiplied as they are, in one pass (on the CPU through numpy, which
    converts and multiplies in one loop, ~4× faster than torch's mixed-type product).
    """
    f = frames if isinstance(frames, torch.Tensor) else torch.as_tensor(np.asarray(frames))
    g = as_tensor(gain, device=f.device)
    check_gain(g, tuple(f.shape[-2:]), name=name)
    g = torch.where(torch.isfinite(g), g, torch.zeros_like(g))
    if f.device.type == "cpu" and not f.is_complex():
        return torch.from_numpy(np.multiply(f.numpy(), g.numpy(), dtype=np.float32))
    return (f * g).to(torch.float32)


def gain_orientation_score(frames_sum: torch.Tensor | np.ndarray, gain: torch.Tensor | np.ndarray) -> float:
    """Correlation of the gain's inverse with a long frame sum (higher = better orientation).

    A flat-field sum of many frames shows the detector's response, i.e. ∝ 1/gain; use this to pick
    the rotation/flip whose gain best explains the sum.
    """
    s = as_tensor(frames_sum).flatten()
    g = as_tensor(gain).flatten()
    inv = torch.where(g > 0, 1.0 / g.clamp(min=1e-12), torch.zeros_like(g))
    s = s - s.mean()
    inv = inv - inv.mean()
    return float((s * inv).sum() / (s.norm() * inv.norm()).clamp(min=1e-12))


ORIENTATIONS = tuple((r, f) for r in (0, 90, 180, 270) for f in ("none", "x"))


def check_gain_orientation(
    frames_sum: torch.Tensor | np.ndarray, gain: torch.Tensor | np.ndarray, *, name: str = "gain"
) -> None:
    """GainError naming ``name`` when raw frames (their sum, y, x) fit the gain much better turned.

    Scores (``gain_orientation_score``, on a grid of ~65k pixels) the gain as given and in the 7 other
    rotations/flips of the detector; a clearly better one (above 8/√pixels, the score's noise, and more
    than twice the given one's) means the gain is mis-oriented, which a square detector would not reveal
    by its shape. A flat gain scores noise everywhere and passes.
    """
    s = as_tensor(frames_sum).cpu().numpy()
    g = as_tensor(gain).cpu().numpy()
    inverse = np.where(g > 0, 1.0 / np.clip(g, 1e-12, None), 0.0).astype(np.float32)
    step = max(1, int(np.sqrt(s.size / 65536)))
    sample = s[::step, ::step]
    scores = {}
    for rotate, flip in ORIENTATIONS:
        turned = np.rot90(inverse, rotate // 90)
        turned = turned[:, ::-1] if flip == "x" else turned
        if turned.shape == s.shape:
            scores[(rotate, flip)] = _correlation(sample, turned[::step, ::step])
    given = scores[(0, "none")]
    best = max(scores, key=lambda k: scores[k])
    if best != (0, "none") and scores[best] > 8 / np.sqrt(sample.size) and given < 0.5 * scores[best]:
        raise GainError(
            f"{name}: the frames do not fit its orientation (correlation {given:.3f} with their sum) but "
            f"fit it turned by a further {best[0]}° (counter-clockwise) then flipped {best[1]} "
            f"({scores[best]:.3f}): set the gain rotation/flip"
        )


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / max(float(np.sqrt((a * a).sum() * (b * b).sum())), 1e-12))
