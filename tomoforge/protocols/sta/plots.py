"""PNG plots of subtomogram averaging: FSC curves and the Guinier plot (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import numpy as np


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fsc_plot(path: str, title: str, frequency: np.ndarray, curves: Sequence[tuple[str, np.ndarray]]) -> str:
    """FSC curves (label, correlation per shell) against spatial frequency (1/Å), with 0.143 and 0.5 lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves:
        ax.plot(frequency, values, label=label)
    for level in (0.143, 0.5):
        ax.axhline(level, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.05)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def guinier_plot(
    path: str, title: str, k2: np.ndarray, ln_amplitude: np.ndarray, fit_range: tuple[float, float], bfactor: float
) -> str:
    """ln amplitude against k² (1/Å²), the fitted range shaded, the B-factor in the title."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(k2[1:], ln_amplitude[1:], ".-")
    ax.axvspan(*fit_range, color="orange", alpha=0.2, label="fit")
    ax.set_xlabel("k² (1/Å²)")
    ax.set_ylabel("ln |F|")
    ax.set_title(f"{title}: B = {bfactor:.0f} Å²")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
