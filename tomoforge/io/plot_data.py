"""Plot data: what a run's line plot shows, kept as JSON beside its PNG (``NAME.png`` + ``NAME.plot.json``)
so that the web interface can draw it interactively (hover values, zoom, series on and off).

A plot has a title, axis labels, series of (x, y) points on the left or right y axis, and labelled
marker lines (a threshold, a resolution). ``y`` may hold ``None`` where a value is missing (a NaN or an
infinity given there becomes ``None``). The file is
data: it is read by validation, never executed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tomoforge.errors import describe_validation_error
from tomoforge.io.atomic import atomic_path
from tomoforge.io.errors import format_error

PLOT_SUFFIX = ".plot.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Series(_Strict):
    """One curve: points (x, y), drawn as a line, points or both; ``hollow`` marks points drawn open
    (e.g. excluded tilts)."""

    name: str
    x: list[float]
    y: list[float | None]
    axis: Literal["left", "right"] = "left"
    style: Literal["line", "points", "line+points"] = "line+points"
    colour: str = Field("", pattern=r"^(#[0-9a-fA-F]{6})?$", description="#rrggbb, or '' for the palette's next")
    hollow: list[bool] | None = None

    @field_validator("y", mode="before")
    @classmethod
    def _missing_where_not_finite(cls, value: Any) -> Any:
        """A value that is not a finite number (NaN, ±inf: an empty shell, a log of 0) is a missing point."""
        if isinstance(value, (list, tuple)):
            return [v if not isinstance(v, (int, float)) or math.isfinite(v) else None for v in value]
        return value

    @model_validator(mode="after")
    def _same_length(self) -> Series:
        if len(self.y) != len(self.x) or (self.hollow is not None and len(self.hollow) != len(self.x)):
            raise ValueError(f"series {self.name!r}: x, y (and hollow) differ in length")
        return self


class Marker(_Strict):
    """A labelled line across the plot at ``value`` on the x axis (``axis='x'``) or the left y axis."""

    value: float
    label: str = ""
    axis: Literal["x", "y"] = "x"


class LinePlot(_Strict):
    """A plot of one or more series against a shared x axis; ``log_y`` draws the left axis logarithmic."""

    title: str
    x_label: str
    y_label: str
    y2_label: str = ""
    series: list[Series] = Field(min_length=1)
    markers: list[Marker] = []
    log_y: bool = False


def plot_data_path(png: str | os.PathLike[str]) -> Path:
    """The plot data beside a plot image: ``NAME.png`` -> ``NAME.plot.json``."""
    png = Path(png)
    return png.with_name(png.stem + PLOT_SUFFIX)


def write_plot_data(png: str | os.PathLike[str], plot: LinePlot) -> Path:
    """Write the data of the plot image ``png`` beside it (whole or not at all); returns its path."""
    target = plot_data_path(png)
    with atomic_path(target) as tmp:
        tmp.write_text(plot.model_dump_json(exclude_defaults=True), encoding="utf-8")
    return target


def read_plot_data(path: str | os.PathLike[str]) -> LinePlot:
    """A ``.plot.json`` file as a ``LinePlot``; anything else is a ``FormatError`` naming the file."""
    try:
        return LinePlot.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise format_error(path, f"not plot data: {describe_validation_error(exc)}") from None
    except (OSError, ValueError) as exc:
        raise format_error(path, f"not plot data ({exc})") from None


__all__ = ["PLOT_SUFFIX", "LinePlot", "Marker", "Series", "plot_data_path", "read_plot_data", "write_plot_data"]
