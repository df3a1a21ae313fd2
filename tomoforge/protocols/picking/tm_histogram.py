"""The score histogram of a template-matching run (PNG and its plot data)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def score_histogram(path: str, name: str, scores: np.ndarray, mean: float, sd: float, threshold: float) -> str:
    """PNG (and its plot data): the histogram of the scores (log counts), the normal distribution of the same mean
    and SD scaled to the count (what noise alone gives), and the threshold. Returns ``path``."""
    import numpy as np

    from tomoforge.io.plot_data import LinePlot, Marker, Series
    from tomoforge.protocols.plotting import save_line_plot

    values = scores[np.isfinite(scores)].ravel()
    counts, edges = np.histogram(values, bins=200)
    centres = 0.5 * (edges[1:] + edges[:-1])
    expected = (
        len(values) * (edges[1] - edges[0]) * np.exp(-0.5 * ((centres - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    )
    x = [float(c) for c in centres]
    plot = LinePlot(
        title=name,
        x_label="score (LNCC)",
        y_label="voxels",
        log_y=True,
        series=[
            Series(name="scores", x=x, y=[float(c) if c > 0 else None for c in counts], style="line", colour="#7f7f7f"),
            Series(
                name=f"noise N({mean:.3f}, {sd:.3f}²)",
                x=x,
                y=[float(e) if e >= 0.5 else None for e in expected],
                style="line",
                colour="#1f77b4",
            ),
        ],
        markers=[Marker(value=float(threshold), label=f"threshold {threshold:.3f}")],
    )
    save_line_plot(path, plot, size_in=(6, 4))
    return path
