"""Plots of a CTF estimation: defocus and fit resolution against tilt angle (a line plot: PNG and plot data),
and the per-tilt spectra with the fitted model (a PNG grid)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tomoforge.io.plot_data import LinePlot, Series
from tomoforge.protocols.plotting import pyplot, save_line_plot


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
    tilts hollow. Written as a PNG with its plot data (drawn interactively on the run page). Returns ``path``."""
    order = np.argsort(tilt_angles_deg)
    tilt = [float(t) for t in np.asarray(tilt_angles_deg, float)[order]]
    u, v = np.asarray(defocus_u_A, float)[order] / 1e4, np.asarray(defocus_v_A, float)[order] / 1e4
    hollow = [bool(e) for e in np.asarray(excluded, bool)[order]]
    blue, red = "#1f77b4", "#d62728"
    title = f"{name}: CTF per tilt" + (f"; {hand_message}" if hand_message else "")
    plot = LinePlot(
        title=title,
        x_label="tilt angle (°)",
        y_label="defocus (µm, underfocus positive)",
        y2_label="fit resolution (Å)",
        series=[
            Series(name="mean defocus", x=tilt, y=[float(m) for m in 0.5 * (u + v)], style="line", colour=blue),
            Series(name="defocus U", x=tilt, y=[float(d) for d in u], style="points", colour=blue, hollow=hollow),
            Series(name="defocus V", x=tilt, y=[float(d) for d in v], style="points", colour="#17becf", hollow=hollow),
            Series(
                name="fit resolution",
                x=tilt,
                y=[float(r) for r in np.asarray(fit_resolution_A, float)[order]],
                axis="right",
                colour=red,
            ),
        ],
    )
    save_line_plot(path, plot)
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
    plt = pyplot()
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
