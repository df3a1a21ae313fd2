"""Importing tilt series without an mdoc: image stacks (.mrc/.st/.ali) with their tilt angles, or a
folder of one image per tilt named by a pattern.

A protocol of its own rather than more parameters of ``import-tilt-series``: that form is the mdoc's
(its pattern finds mdocs and every value can come from them), while here the tilt angles, the dose and
the acquisition order must be given, and are checked, as required parameters. The science is in
``stack_series`` (imported where it is used, so that this module loads without numpy's readers).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import model_validator

from tomoforge.engine import Protocol, ProtocolParams, Task, param
from tomoforge.model import TiltSeries
from tomoforge.model.quantities import (
    AmplitudeContrast,
    AngleDeg,
    DosePerTiltEA2,
    PixelSizeA,
    SphericalAberrationMM,
    TiltAngleDeg,
    TiltStepDeg,
    VoltageKV,
)
from tomoforge.protocols.imports.files import images_by_series, is_name_pattern, matching_files


class StackImportParams(ProtocolParams):
    """Where the stacks are, where their tilt angles come from, and what the stacks cannot say."""

    files_path: str = param(..., help="folder holding the stacks (or the images, one per tilt)")
    pattern: str = param(
        "*.mrc",
        help="stacks to import (*.mrc, *.st, *.ali), or a name pattern of one image per tilt with {TS} (tilt "
        "series), {TO} (acquisition order) and {TA} (tilt angle), e.g. {TS}_{TO}_{TA}.mrc or {TA}.mrc",
    )
    tilt_angles: Literal["auto", "tlt", "header", "start-step"] = param(
        "auto",
        help="tlt: the .rawtlt/.tlt beside each stack; header: the MRC's extended header (FEI, SerialEM); start-step: "
        "tilt_start_deg + i * tilt_step_deg; auto: tlt, else header (a name pattern: the {TA} of the names)",
    )
    tilt_start_deg: TiltAngleDeg | None = param(None, unit="deg", help="start-step: angle of the first section")
    tilt_step_deg: TiltStepDeg | None = param(None, unit="deg", help="start-step: angle between sections")
    order: Literal["dose-symmetric", "bidirectional", "continuous", "file"] = param(
        ...,
        help="acquisition scheme, for each view's accumulated dose; file: the stack's sections are in "
        "acquisition order (or the {TO} of the names)",
    )
    order_start_deg: TiltAngleDeg = param(0.0, unit="deg", help="dose-symmetric, bidirectional: first exposed tilt")
    first_direction: Literal["positive", "negative"] = param(
        "positive",
        help="side tilted to first after the start (dose-symmetric, bidirectional); continuous: positive "
        "tilts from the most negative angle up",
    )
    group_size: int = param(2, ge=1, le=100, help="dose-symmetric: tilts per group on one side (Hagen: 2)")
    dose_per_tilt_e_A2: DosePerTiltEA2 = param(..., unit="e/Å²", help="exposure of each tilt image")
    tilt_axis_angle_deg: AngleDeg = param(
        ..., unit="deg", help="tilt axis in the images, from Y, counter-clockwise (0 for an aligned .ali)"
    )
    pixel_size_A: PixelSizeA | None = param(None, unit="Å/px", help="override the header's pixel size")
    voltage_kV: VoltageKV = param(300.0, unit="kV", help="acceleration voltage")
    spherical_aberration_mm: SphericalAberrationMM = param(2.7, unit="mm", help="spherical aberration Cs")
    amplitude_contrast: AmplitudeContrast = param(0.1, unit="fraction", help="amplitude contrast")
    channel: int = param(
        0, ge=0, le=64, help="views sharing tilt angles (detector channels): import the k-th of each (0: none)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> StackImportParams:
        if self.tilt_angles == "start-step" and (self.tilt_start_deg is None or self.tilt_step_deg is None):
            raise ValueError("tilt_angles = start-step needs tilt_start_deg and tilt_step_deg")
        if is_name_pattern(self.pattern):
            if "{TA}" not in self.pattern:
                raise ValueError(f"pattern: {self.pattern!r} needs a {{TA}} (tilt angle) field")
            if self.tilt_angles != "auto":
                raise ValueError(f"tilt_angles = {self.tilt_angles}: a name pattern takes the angles from {{TA}}")
            if self.order == "file" and "{TO}" not in self.pattern:
                raise ValueError("order = file needs a {TO} (acquisition order) field in the name pattern")
        return self


@dataclass(frozen=True, kw_only=True)
class StackJob:
    """The job of ``import_stack_task``: a stack, or the images of one tilt series (file, {TO}, {TA})."""

    name: str
    stack: str = ""
    images: tuple[tuple[str, int | None, float], ...] = ()
    params: StackImportParams


def import_stack_task(job: StackJob) -> dict[str, Any]:
    """Task: a stack (or one image per tilt) -> its tilt series (the files are checked, nothing is written).

    Parameters
    ----------
    job : StackJob
        The stack or the images, and the import's params.

    Returns
    -------
    dict
        ``tilt_series``: the TiltSeries; ``warnings``: lines for the run log (headers read permissively).

    Raises
    ------
    ImportFileError
        A stack, tilt file or image that cannot be imported, or params that do not fit it (naming the file).
    """
    from tomoforge.protocols.imports.stack_series import tilt_series_from_images, tilt_series_from_stack

    if job.stack:
        ts, warnings = tilt_series_from_stack(Path(job.stack), job.params)
    else:
        ts, warnings = tilt_series_from_images(job.name, list(job.images), job.params)
    return {"tilt_series": ts, "warnings": warnings}


class ImportTiltSeriesStack(Protocol):
    """Import tilt series without an mdoc: stacks with their tilt angles (.rawtlt/.tlt, the FEI or
    SerialEM extended header, or start and step), or one image per tilt named by a pattern; the dose per tilt and the
    acquisition scheme given, so that each view's accumulated dose is right."""

    name = "import-tilt-series-stack"
    Params = StackImportParams
    outputs = {"tilt_series": TiltSeries}
    params: StackImportParams

    def tasks(self) -> Iterator[Task[StackJob]]:
        p = self.params
        if is_name_pattern(p.pattern):
            for name, images in images_by_series(p.files_path, p.pattern).items():
                yield Task(import_stack_task, StackJob(name=name, images=tuple(images), params=p), key=name)
            return
        for stack in matching_files(p.files_path, p.pattern):
            yield Task(import_stack_task, StackJob(name=stack.name, stack=str(stack), params=p), key=stack.name)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        ts: TiltSeries = result["tilt_series"]
        for line in result["warnings"]:
            self.log(f"WARNING: {line}")
        angles = [t.tilt_angle_deg for t in ts.tilt_images]
        self.log(
            f"{ts.name}: {len(angles)} tilts from {min(angles):g}° to {max(angles):g}° ({Path(ts.source_file).name}), "
            f"{ts.acquisition.pixel_size_A:g} Å/px, {self.params.order} order"
        )
        self.emit("tilt_series", ts, task)
