"""Plots of subtomogram averaging: FSC curves and the Guinier plot, as PNG with their plot data beside them
(``protocols/plotting.save_line_plot``: the web interface draws them interactively)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomoforge.io.plot_data import LinePlot, Marker, Series
from tomoforge.protocols.plotting import save_line_plot


def fsc_plot(path: str, title: str, frequency: np.ndarray, curves: Sequence[tuple[str, np.ndarray]]) -> str:
    """FSC curves (label, correlation per shell) against spatial frequency (1/Å), with 0.143 and 0.5 lines."""
    x = [float(f) for f in frequency]
    plot = LinePlot(
        title=title,
        x_label="spatial frequency (1/Å)",
        y_label="FSC",
        series=[Series(name=label, x=x, y=[float(v) for v in values], style="line") for label, values in curves],
        markers=[Marker(value=0.143, label="0.143", axis="y"), Marker(value=0.5, label="0.5", axis="y")],
    )
    save_line_plot(path, plot, size_in=(6, 4))
    return path


def guinier_plot(
    path: str, title: str, k2: np.ndarray, ln_amplitude: np.ndarray, fit_range: tuple[float, float], bfactor: float
) -> str:
    """ln amplitude against k² (1/Å²), the fitted range marked, the B-factor in the title."""
    plot = LinePlot(
        title=f"{title}: B = {bfactor:.0f} Å²",
        x_label="k² (1/Å²)",
        y_label="ln |F|",
        series=[Series(name="ln |F|", x=[float(v) for v in k2[1:]], y=[float(v) for v in ln_amplitude[1:]])],
        markers=[
            Marker(value=float(fit_range[0]), label="fit from"),
            Marker(value=float(fit_range[1]), label="fit to"),
        ],
    )
    save_line_plot(path, plot, size_in=(6, 4))
    return path
