"""Line plots of a run: drawn as a PNG (matplotlib, non-interactive backend) and kept as plot data beside
it (``tomoforge/io/plot_data.py``), which the web interface draws interactively. One function for both,
so that the image and the interactive plot cannot disagree."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from tomoforge.io.atomic import atomic_path
from tomoforge.io.plot_data import LinePlot, write_plot_data

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the non-interactive Agg backend (imported here: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_line_plot(png: str | os.PathLike[str], plot: LinePlot, *, size_in: tuple[float, float] = (8, 4.5)) -> Path:
    """Draw ``plot`` into the PNG ``png`` and write its plot data beside it; returns the PNG's path."""
    plt = pyplot()
    fig, left = plt.subplots(figsize=size_in)
    right = left.twinx() if any(s.axis == "right" for s in plot.series) else None
    for k, series in enumerate(plot.series):
        ax = right if series.axis == "right" and right is not None else left
        colour = series.colour or PALETTE[k % len(PALETTE)]
        x = [xv for xv, yv in zip(series.x, series.y) if yv is not None]
        y = [yv for yv in series.y if yv is not None]
        hollow = [h for h, yv in zip(series.hollow or [False] * len(series.x), series.y) if yv is not None]
        if series.style != "points":
            ax.plot(x, y, "-", color=colour, lw=1, label=series.name)
        if series.style != "line":
            filled = [(a, b) for a, b, h in zip(x, y, hollow) if not h]
            opened = [(a, b) for a, b, h in zip(x, y, hollow) if h]
            label = series.name if series.style == "points" else None
            for points, face, tag in ((filled, colour, label), (opened, "none", None)):
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, "o", color=colour, mfc=face, ms=3.5, ls="none", label=tag)
    for marker in plot.markers:
        draw = left.axvline if marker.axis == "x" else left.axhline
        draw(marker.value, color="#555", ls="--", lw=0.8, label=marker.label or None)
    if plot.log_y:
        left.set_yscale("log")
    left.set_xlabel(plot.x_label)
    left.set_ylabel(plot.y_label)
    left.legend(loc="upper left", fontsize=7)
    if right is not None:
        right.set_ylabel(plot.y2_label)
        right.legend(loc="upper right", fontsize=7)
    left.set_title(plot.title, fontsize=9)
    fig.tight_layout()
    png = Path(png)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    write_plot_data(png, plot)
    return png


__all__ = ["pyplot", "save_line_plot"]
