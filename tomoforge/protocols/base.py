"""Bases for protocols: ``PerTiltSeries``, one task per input tilt series that writes new stacks.

A new per-tilt-series protocol subclasses it and gives its params, ``task_for`` (the one task of a tilt
series) and, when its output differs from a plain restack, ``output_series``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, ClassVar, cast

from pydantic import BaseModel

from tomoforge.engine import InputSpec, Protocol, Task
from tomoforge.engine.sets import origin_of
from tomoforge.model import TiltSeries
from tomoforge.protocols.tilt_stacks import image_sources, restack

TILT_SERIES_INPUT = {"tilt_series": InputSpec(TiltSeries, help="tilt series to process")}


class PerTiltSeries(Protocol):
    """One task per input tilt series; the task returns {'stacks': {...}, 'per_image': [...], ...}."""

    outputs: ClassVar[dict[str, type[BaseModel]]] = {"tilt_series": TiltSeries}
    inputs = TILT_SERIES_INPUT

    def task_for(self, ts: TiltSeries, sources: dict[str, list[tuple[str, int]]], out_base: str) -> Task[Any]:
        raise NotImplementedError

    def tasks(self) -> Iterator[Task[Any]]:
        series = self.input("tilt_series")
        for item in series:
            ts = cast(TiltSeries, item)  # the input is declared InputSpec(TiltSeries)
            task = self.task_for(ts, image_sources(ts, self.absolute), str(self.out_path(ts.name)))
            yield replace(task, key=ts.name, origin=(origin_of(series, ts.name),), item=ts)  # a Task is frozen

    def output_series(self, ts: TiltSeries, result: dict[str, Any]) -> TiltSeries:
        return restack(ts, result, self.relative)

    def collect(self, task: Task[Any], result: Any) -> None:
        ts = cast(TiltSeries, task.item if task.item is not None else self.input("tilt_series").get(task.key))
        self.emit("tilt_series", self.output_series(ts, result), task)
