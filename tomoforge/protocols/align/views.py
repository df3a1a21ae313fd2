"""What the alignment protocols share: the included views of a tilt series as a task reads them, one task
per tilt series (or a refusal when every view is excluded), and a solved alignment put back on the series.

The alignment is attached to each tilt image as RELION 5 stores it (YTilt, ZRot, X/YShift in Å; see
tomoforge.methods.align.projection_model), never applied to the pixels. Only included views are aligned;
excluded ones keep what they had.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from tomoforge.engine import Task
from tomoforge.engine.sets import origin_of
from tomoforge.model import TiltImage, TiltSeries
from tomoforge.protocols.refuse import Refusal, no_view_message, refuse
from tomoforge.protocols.tilt_stacks import image_sources

if TYPE_CHECKING:
    import numpy as np

    from tomoforge.engine.sets import ItemSet

J = TypeVar("J")


@dataclass(frozen=True, kw_only=True)
class ViewGeometry:
    """The included views of a tilt series, in their stored order, as a task reads them."""

    sources: list[tuple[str, int]]  # (absolute image file, section) per view
    tilts_deg: list[float]  # nominal tilt angles
    orders: list[int]  # acquisition orders
    axis_deg: float  # tilt axis angle (from image Y, counter-clockwise)
    shifts_A: list[list[float]]  # current (x, y) shifts, Å
    pixel_size_A: float  # of the images, before any binning


def each_series(items: ItemSet) -> Iterator[TiltSeries]:
    """The tilt series of an input declared ``InputSpec(TiltSeries)``."""
    for item in items:
        yield cast(TiltSeries, item)


def series_named(items: ItemSet, name: str) -> TiltSeries:
    """The tilt series ``name`` of an input declared ``InputSpec(TiltSeries)``."""
    return cast(TiltSeries, items.get(name))


def included(ts: TiltSeries) -> list[TiltImage]:
    """The included tilt images, in their stored order."""
    return [t for t in ts.tilt_images if not t.excluded]


def axis_of(ts: TiltSeries, override: float | None) -> float:
    """The tilt axis angle (degrees) an alignment starts from: ``override``, else the acquisition's."""
    return ts.acquisition.tilt_axis_angle_deg if override is None else float(override)


def view_geometry(ts: TiltSeries, absolute: Callable[[str], Path], axis_override: float | None) -> ViewGeometry:
    """The included views of ``ts`` (image files made absolute by ``absolute``)."""
    files = image_sources(ts, absolute)["file"]
    pairs = [(t, f) for t, f in zip(ts.tilt_images, files) if not t.excluded]
    return ViewGeometry(
        sources=[f for _, f in pairs],
        tilts_deg=[t.tilt_angle_deg for t, _ in pairs],
        orders=[t.acquisition_order for t, _ in pairs],
        axis_deg=axis_of(ts, axis_override),
        shifts_A=[[t.x_shift_A, t.y_shift_A] for t, _ in pairs],
        pixel_size_A=ts.acquisition.pixel_size_A,
    )


def refusal(ts: TiltSeries, what: str, origin: tuple[str, ...]) -> Task[Refusal]:
    """The failing task of a tilt series with no included view (``what``: the step's work)."""
    return Task(refuse, Refusal(message=no_view_message(ts.name, what)), key=ts.name, origin=origin)


def series_tasks(
    series: ItemSet, what: str, fn: Callable[[J], Any], job: Callable[[TiltSeries], J]
) -> Iterator[Task[Any]]:
    """One task per tilt series of ``series``: ``fn(job(ts))``, or a refusal for a series whose every view
    is excluded."""
    for ts in each_series(series):
        origin = (origin_of(series, ts.name),)
        if not included(ts):
            yield refusal(ts, what, origin)
        else:
            yield Task(fn, job(ts), key=ts.name, origin=origin)


def with_alignment(ts: TiltSeries, values: dict[int, dict[str, Any]], **changes: Any) -> TiltSeries:
    """A copy of ``ts`` with tilt-image fields replaced per acquisition order, marked aligned."""
    images = [t.model_copy(update=values.get(t.acquisition_order, {})) for t in ts.tilt_images]
    return ts.model_copy(update={"tilt_images": images, "aligned": True, **changes})


def with_solution(ts: TiltSeries, result: dict[str, Any]) -> TiltSeries:
    """``ts`` with a solved projection model on its included views: ``result``'s ``y_tilt_deg``,
    ``z_rot_deg`` (degrees) and ``shifts_A`` ((x, y), Å), one entry per included view in stored order."""
    values = {
        t.acquisition_order: {"y_tilt_deg": y, "z_rot_deg": z, "x_shift_A": s[0], "y_shift_A": s[1]}
        for t, y, z, s in zip(included(ts), result["y_tilt_deg"], result["z_rot_deg"], result["shifts_A"])
    }
    return with_alignment(ts, values)


def write_view_residuals(
    path: str, v: ViewGeometry, residual_A: list[float], score: list[float], *, what: str = "projection matching"
) -> None:
    """A table of the projection-matching residual of each view (tab-separated, one header line):
    acquisition order, nominal tilt (°), residual (Å: the last correction against the reprojection of
    the other views) and the correlation with that reprojection; and the same against the tilt angle as a
    plot beside it (``NAME.png`` and its plot data, drawn interactively on the run page)."""
    from tomoforge.io.plot_data import LinePlot, Series
    from tomoforge.protocols.plotting import save_line_plot

    lines = ["acquisition_order\ttilt_deg\tresidual_A\tscore"]
    lines += [f"{o}\t{t:.2f}\t{r:.2f}\t{s:.4f}" for o, t, r, s in zip(v.orders, v.tilts_deg, residual_A, score)]
    Path(path).write_text("\n".join(lines) + "\n")
    ordered = sorted(zip(v.tilts_deg, residual_A, score))
    tilts = [float(t) for t, _, _ in ordered]
    plot = LinePlot(
        title=f"{Path(path).stem}: {what} per view",
        x_label="tilt angle (°)",
        y_label="residual (Å)",
        y2_label="correlation with the reprojection" if what == "projection matching" else "mean correlation",
        series=[
            Series(name="residual", x=tilts, y=[float(r) for _, r, _ in ordered]),
            Series(name="correlation", x=tilts, y=[float(c) for _, _, c in ordered], axis="right"),
        ],
    )
    save_line_plot(Path(path).with_suffix(".png"), plot)


def stored_axis(ts: TiltSeries, override: float | None) -> float:
    """The tilt axis an alignment refines: ``override``, else the mean ZRot an earlier alignment stored on the
    included views, else the acquisition's."""
    stored = [t.z_rot_deg for t in included(ts) if t.z_rot_deg is not None]
    if override is None and stored:
        return float(sum(stored) / len(stored))
    return axis_of(ts, override)


def load_binned(sources: list[tuple[str, int]], binning: float) -> np.ndarray:
    """The (n, y, x) images named by (file, section) pairs, Fourier-binned by ``binning``."""
    from tomoforge.methods.binning import bin_images
    from tomoforge.protocols.tilt_stacks import read_images

    return bin_images(read_images(sources), binning).numpy()


__all__ = [
    "ViewGeometry",
    "axis_of",
    "each_series",
    "included",
    "load_binned",
    "refusal",
    "series_named",
    "series_tasks",
    "stored_axis",
    "view_geometry",
    "with_alignment",
    "with_solution",
    "write_view_residuals",
]
