"""Motion correction of tilt-series movies: one task per tilt series, one movie in memory at a time.

The task reads each movie (checked against the frames the mdoc promises), applies the gain
(rotated/flipped as asked), aligns the frames globally (hot pixels and X-ray hits masked) and
optionally by patches (``tomoforge.methods.preprocess.motion``), sums the chosen frame range (dose-weighted if
asked, with odd/even halves; hot pixels are left to the X-ray eraser), bins by Fourier cropping, and
writes the stacks, the per-frame shifts (a text table) and their plot (SVG) into the run's out/ folder.
One rfft per frame serves both the estimation and the sums.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import model_validator

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.methods.preprocess.settings import GLOBAL_BFACTOR_A2, PATCH_BFACTOR_A2
from tomoforge.model import TiltImage, TiltSeries, TiltSeriesMovie
from tomoforge.model.quantities import DosePerTiltEA2


class MotionParams(ProtocolParams):
    align_first: int = param(1, ge=1, help="first frame to align (1-based)")
    align_last: int = param(0, ge=0, help="last frame to align (0 = the last)")
    sum_first: int = param(1, ge=1, help="first frame to sum (1-based)")
    sum_last: int = param(0, ge=0, help="last frame to sum (0 = the last)")
    bfactor_A2: float = param(
        GLOBAL_BFACTOR_A2,
        ge=0,
        unit="Å²",
        help="B-factor weighting of the global alignment (at 3 Å/px, RELION's default "
        "150 px² is 1350 Å², MotionCor2's 500 px² is 4500 Å²)",
    )
    patches_x: int = param(1, ge=1, help="patches along x for local motion (1 with patches_y 1: global only)")
    patches_y: int = param(1, ge=1, help="patches along y for local motion")
    patch_bfactor_A2: float = param(PATCH_BFACTOR_A2, ge=0, unit="Å²", help="B-factor of the patch alignment")
    max_shift_A: float | None = param(None, gt=0, unit="Å", help="largest shift searched (None: any)")
    binning: float = param(1.0, ge=1, help="Fourier-crop binning of the sums (2 for super-resolution)")
    gain_file: str = param("", help="gain reference ('' = the one given at import, if any)")
    gain_rotate_deg: Literal[0, 90, 180, 270] = param(0, unit="deg", help="rotate the gain (CCW) first")
    gain_flip: Literal["none", "x", "y"] = param("none", help="then flip it left-right (x) or up-down (y)")
    eer_fractions_per_frame: int = param(
        0, ge=0, help="EER: fractions summed into one frame (0: as many as give eer_frame_dose_e_A2)"
    )
    eer_frame_dose_e_A2: DosePerTiltEA2 = param(
        0.5, gt=0, unit="e/Å²", help="EER: dose per frame when grouping by dose"
    )
    eer_upsampling: Literal[1, 2, 4] = param(
        1, help="EER: 1 = physical pixels (4K), 2 = 8K, 4 = 16K (pixel size / 2, / 4)"
    )
    dose_weighting: bool = param(False, help="weight frames by their exposure (Grant & Grigorieff 2015)")
    odd_even: bool = param(True, help="also write the sums of the odd and of the even frames")

    @model_validator(mode="after")
    def _ranges(self) -> MotionParams:
        for first, last in (("align_first", "align_last"), ("sum_first", "sum_last")):
            if getattr(self, last) and getattr(self, last) < getattr(self, first):
                raise ValueError(f"{last} ({getattr(self, last)}) is before {first} ({getattr(self, first)})")
        return self


@dataclass(frozen=True, kw_only=True)
class MovieSource:
    """One movie of a tilt series: its file, frame count, doses (e/Å²: per frame, before it, of the tilt) and
    nominal tilt angle (°)."""

    file: str
    tilt_angle_deg: float = 0.0
    n_frames: int
    frame_dose_e_A2: float
    pre_exposure_e_A2: float
    dose_e_A2: float


@dataclass(frozen=True, kw_only=True)
class MotionJob:
    """A tilt series to motion-correct: its movies (sorted by tilt angle), the output base path, the pixel
    size (Å) and voltage (kV) of the acquisition, the gain file ('' = none) and the protocol's params."""

    movies: tuple[MovieSource, ...]
    out_base: str
    pixel_size_A: float
    voltage_kV: float
    gain_file: str
    params: MotionParams


def motion_correct_task(job: MotionJob) -> dict[str, Any]:
    """Task: motion-correct every movie of one tilt series (``motion_series.correct_series``).

    Writes ``out_base``.mrc (+ _ODD/_EVN), ``out_base``_shifts.txt, ``out_base``_shifts.svg and the drift plot
    ``out_base``_drift.png (+ its plot data); returns their
    paths, the shifts in Å and the output pixel size.
    """
    from tomoforge.protocols.preprocess.motion_series import correct_series

    return correct_series(job)


class MotionCorrection(Protocol):
    """Motion correction: align tilt-series movie frames (global + local patches) and sum them."""

    name = "motion-correction"
    citations = ("zheng2017", "grant2015")
    Params = MotionParams
    inputs = {"tilt_series": InputSpec(TiltSeriesMovie, help="tilt-series movies (from the movie import)")}
    outputs = {"tilt_series": TiltSeries}

    params: MotionParams

    def tasks(self) -> Iterator[Task[MotionJob]]:
        series = self.input("tilt_series")
        for item in series:
            ts = cast(TiltSeriesMovie, item)  # the input is declared InputSpec(TiltSeriesMovie)
            movies = tuple(
                MovieSource(
                    file=str(self.absolute(t.file)),
                    n_frames=t.n_frames,
                    frame_dose_e_A2=t.frame_dose_e_A2,
                    pre_exposure_e_A2=max(t.accumulated_dose_e_A2 - t.dose_e_A2, 0.0),
                    dose_e_A2=t.dose_e_A2,
                    tilt_angle_deg=t.tilt_angle_deg,
                )
                for t in ts.tilt_images
            )
            gain = self.params.gain_file or ts.acquisition.gain_file
            job = MotionJob(
                movies=movies,
                out_base=str(self.out_path(ts.name)),
                pixel_size_A=ts.acquisition.pixel_size_A,
                voltage_kV=ts.acquisition.voltage_kV,
                gain_file=str(self.absolute(gain)) if gain else "",
                params=self.params,
            )
            yield Task(motion_correct_task, job, key=ts.name, origin=(origin_of(series, ts.name),), item=ts)

    def collect(self, task: Task[MotionJob], result: dict[str, Any]) -> None:
        ts = cast(TiltSeriesMovie, task.item)
        stacks = {k: self.relative(v) for k, v in result["stacks"].items()}
        images = []
        for i, (t, shifts) in enumerate(zip(ts.tilt_images, result["shifts_A"])):
            fields = t.model_dump(exclude={"n_frames", "frame_dose_e_A2"})
            fields.update(
                file=stacks["file"],
                index=i,
                odd_file=stacks.get("odd_file", ""),
                even_file=stacks.get("even_file", ""),
                frame_shifts_A=shifts,
            )
            images.append(TiltImage(**fields))
        acquisition = ts.acquisition.model_copy(update={"pixel_size_A": result["pixel_size_A"]})
        self.log(f"{ts.name}: shifts in {self.relative(result['table'])}, plot {self.relative(result['plot'])}")
        self.emit(
            "tilt_series",
            TiltSeries(
                name=ts.name,
                acquisition=acquisition,
                tilt_images=images,
                source_file=ts.source_file,
                stack_file=stacks["file"],
                odd_stack_file=stacks.get("odd_file", ""),
                even_stack_file=stacks.get("even_file", ""),
                dose_weighted=self.params.dose_weighting,
            ),
            task,
        )
