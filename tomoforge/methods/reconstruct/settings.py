"""Defaults of the reconstruction methods, in one place and free of torch, so that a protocol module can
show them as its parameters' defaults without importing the science."""

from __future__ import annotations

RADIAL_CUTOFF = 0.35
"""WBP: the ramp goes up to this (cycles/px; IMOD RADIAL)."""
RADIAL_FALLOFF = 0.035
"""WBP: standard deviation of the Gaussian fall-off beyond the cut-off (cycles/px)."""
SIRT_LIKE_ITERATIONS = 0
"""WBP: SIRT-like filter equivalent to this many SIRT iterations (0: off)."""
OVERSAMPLING = 1
"""Lines upsampled by this before the voxels interpolate them."""
SIRT_ITERATIONS = 10
"""SIRT: iterations from zero."""
SIRT_RELAXATION = 1.0
"""SIRT: relaxation λ."""
MEMORY_GB = 4.0
"""Memory (GB) for the projector and the blocks of rows."""

__all__ = [
    "MEMORY_GB",
    "OVERSAMPLING",
    "RADIAL_CUTOFF",
    "RADIAL_FALLOFF",
    "SIRT_ITERATIONS",
    "SIRT_LIKE_ITERATIONS",
    "SIRT_RELAXATION",
]
