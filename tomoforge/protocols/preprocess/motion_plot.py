"""Motion plots: the per-frame trajectories as a plain SVG (one panel per tilt movie, no plotting
dependency), and the drift per tilt as a line plot (PNG and interactive)."""

from __future__ import annotations

import math
from html import escape

from tomoforge.io.plot_data import LinePlot, Series

PANEL = 160  # px per panel
COLUMNS = 8


def shifts_svg(names: list[str], shifts_A: list[list[tuple[float, float]]]) -> str:
    """One small panel per movie: the (x, y) trajectory in Å, first frame marked, common scale."""
    extent = max([abs(v) for s in shifts_A for xy in s for v in xy] + [1.0])
    rows = (len(names) + COLUMNS - 1) // COLUMNS
    width, height = COLUMNS * PANEL, rows * PANEL + 20
    half = PANEL / 2 - 12
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="9" '
        f'font-family="sans-serif">',
        f'<text x="4" y="12">per-frame shifts; panel half-width = {extent:.2f} Å</text>',
    ]
    for k, (name, shifts) in enumerate(zip(names, shifts_A)):
        cx = (k % COLUMNS) * PANEL + PANEL / 2
        cy = 20 + (k // COLUMNS) * PANEL + PANEL / 2
        parts.append(
            f'<rect x="{cx - PANEL / 2 + 2}" y="{cy - PANEL / 2 + 2}" width="{PANEL - 4}" '
            f'height="{PANEL - 4}" fill="none" stroke="#ccc"/>'
        )
        parts.append(f'<text x="{cx - PANEL / 2 + 5}" y="{cy - PANEL / 2 + 12}">{escape(name)}</text>')
        points = [(cx + x / extent * half, cy - y / extent * half) for x, y in shifts]
        if points:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="#1f77b4"/>')
            parts.append(f'<circle cx="{points[0][0]:.1f}" cy="{points[0][1]:.1f}" r="2.5" fill="#d62728"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def drift_plot(name: str, tilt_angles_deg: list[float], shifts_A: list[list[tuple[float, float]]]) -> LinePlot:
    """Per movie, against its tilt angle: the path its frames travelled and their largest distance from the
    first frame (Å)."""
    order = sorted(range(len(tilt_angles_deg)), key=lambda i: tilt_angles_deg[i])
    path, furthest = [], []
    for i in order:
        steps = zip(shifts_A[i][:-1], shifts_A[i][1:])
        path.append(sum(math.dist(a, b) for a, b in steps))
        first = shifts_A[i][0] if shifts_A[i] else (0.0, 0.0)
        furthest.append(max((math.dist(first, s) for s in shifts_A[i]), default=0.0))
    tilts = [tilt_angles_deg[i] for i in order]
    return LinePlot(
        title=f"{name}: beam-induced motion per tilt",
        x_label="tilt angle (°)",
        y_label="drift (Å)",
        series=[
            Series(name="path length", x=tilts, y=path),
            Series(name="largest distance from frame 1", x=tilts, y=furthest),
        ],
    )
