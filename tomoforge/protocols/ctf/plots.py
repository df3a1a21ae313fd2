"""PNG plots of a CTF estimation (matplotlib, non-interactive backend): defocus and fit resolution
against tilt angle, and the per-tilt spectra with the fitted model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType

import numpy as np


def _pyplot() -> ModuleType:
    """matplotlib.pyplot on the non-interactive Agg backend (imported here: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def defocus_plot(
    path: str,
    name: str,
    tilt_angles_deg: Sequence[float],
    defocus_u_A: Sequence[float],
    defocus_v_A: Sequence[float],
    fit_resolution_A: Sequence[float],
    excluded: Sequence[bool],
    hand_message: str = "",
) -> str:
    """Defocus U, V (µm, left axis) and fit resolution (Å, right axis) against the tilt angle; excluded
    tilts hollow. Returns ``path``."""
    plt = _pyplot()
    order = np.argsort(tilt_angles_deg)
    tilt = np.asarray(tilt_angles_deg, float)[order]
    u, v = np.asarray(defocus_u_A, float)[order] / 1e4, np.asarray(defocus_v_A, float)[order] / 1e4
    res = np.asarray(fit_resolution_A, float)[order]
    excl = np.asarray(excluded, bool)[order]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(tilt, 0.5 * (u + v), "-", color="#1f77b4", lw=1, label="mean defocus")
    for values, marker, label in ((u, "^", "defocus U"), (v, "v", "defocus V")):
        ax.plot(tilt[~excl], values[~excl], marker, color="#1f77b4", ms=4, ls="none", label=label)
        ax.plot(tilt[excl], values[excl], marker, color="#1f77b4", ms=4, ls="none", mfc="none")
    ax.set_xlabel("tilt angle (°)")
    ax.set_ylabel("defocus (µm, underfocus positive)", color="#1f77b4")
    right = ax.twinx()
    right.plot(tilt, res, "o-", color="#d62728", ms=3, lw=0.8, label="fit resolution")
    right.set_ylabel("fit resolution (Å)", color="#d62728")
    title = f"{name}: CTF per tilt"
    if hand_message:
        title += f"\n{hand_message}"
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    right.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def spectra_plot(
    path: str,
    name: str,
    images: np.ndarray,
    tilt_angles_deg: Sequence[float],
    defocus_A: Sequence[float],
    fit_resolution_A: Sequence[float],
    columns: int = 8,
) -> str:
    """A grid of the per-tilt diagnostic spectra (data left, model right), sorted by tilt angle."""
    plt = _pyplot()
    order = np.argsort(tilt_angles_deg)
    rows = max(1, math.ceil(len(order) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), order):
        ax.imshow(images[i], cmap="gray", vmin=-3, vmax=3, interpolation="nearest")
        ax.set_title(f"{tilt_angles_deg[i]:+.0f}° {defocus_A[i] / 1e4:.2f} µm\n{fit_resolution_A[i]:.1f} Å", fontsize=6)
    fig.suptitle(f"{name}: spectra (left) and fitted CTF (right)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
