"""Motion correction of tilt-series movies: one task per tilt series, one movie in memory at a time.

The task reads each movie (checked against the frames the mdoc promises), applies the gain
(rotated/flipped as asked), aligns the frames globally (hot pixels and X-ray hits masked) and
optionally by patches (``tomoforge.methods.preprocess.motion``), sums the chosen frame range (dose-weighted if
asked, with odd/even halves; hot pixels are left to the X-ray eraser), bins by Fourier cropping, and
writes the stacks, the per-frame shifts (a text table) and their plot (SVG) into the run's out/ folder.
One rfft per frame serves both the estimation and the sums.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import model_validator

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.io.movies import is_eer, movie_frame_count, read_gain, read_movie
from tomoforge.methods.binning import binned_pixel_size, binned_shape
from tomoforge.methods.preprocess import motion
from tomoforge.methods.preprocess.gain import (
    apply_gain,
    check_gain,
    check_gain_orientation,
    transform_gain,
)
from tomoforge.model import TiltImage, TiltSeries, TiltSeriesMovie
from tomoforge.model.quantities import DosePerTiltEA2
from tomoforge.protocols.preprocess.motion_plot import shifts_svg
from tomoforge.protocols.tilt_stacks import write_stack


class MotionParams(ProtocolParams):
    align_first: int = param(1, ge=1, help="first frame to align (1-based)")
    align_last: int = param(0, ge=0, help="last frame to align (0 = the last)")
    sum_first: int = param(1, ge=1, help="first frame to sum (1-based)")
    sum_last: int = param(0, ge=0, help="last frame to sum (0 = the last)")
    bfactor_A2: float = param(
        3000.0,
        ge=0,
        unit="Å²",
        help="B-factor weighting of the global alignment (at 3 Å/px, RELION's default "
        "150 px² is 1350 Å², MotionCor2's 500 px² is 4500 Å²)",
    )
    patches_x: int = param(1, ge=1, help="patches along x for local motion (1 with patches_y 1: global only)")
    patches_y: int = param(1, ge=1, help="patches along y for local motion")
    patch_bfactor_A2: float = param(1000.0, ge=0, unit="Å²", help="B-factor of the patch alignment")
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


def _range(first: int, last: int, n: int, movie: str) -> tuple[int, int]:
    """0-based inclusive frame range from 1-based params (last 0 = n)."""
    last = last or n
    if first > n or last > n:
        raise ValueError(f"{movie}: frame range {first}-{last} is beyond its {n} frames")
    return first - 1, last - 1


def correct_movie(
    frames: torch.Tensor,
    pixel_size_A: float,
    p: dict[str, Any],
    frame_dose_e_A2: float,
    pre_exposure_e_A2: float,
    voltage_kV: float,
    movie: str,
    defects: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Align and sum one movie (n, y, x) (modified in place); returns sums (binned), shifts (pixels), defects.

    One rfft of the frames serves the estimation (cropped to the alignment band, hot pixels masked)
    and the sums (phase ramps, dose weights, Fourier-crop binning), unless local patches are asked.
    ``defects``: the hot-pixel mask (y, x) to mask (None: found in this movie's sum, and returned).
    """
    n = frames.shape[0]
    shape = tuple(frames.shape[-2:])
    a0, a1 = _range(p["align_first"], p["align_last"], n, movie)
    s0, s1 = _range(p["sum_first"], p["sum_last"], n, movie)
    out_shape = binned_shape(shape, p["binning"])
    spectra = torch.fft.rfft2(frames)
    shifts = torch.zeros(n, 2)
    if a1 > a0:
        aligned = frames[a0 : a1 + 1]
        defects = motion.hot_pixel_mask(aligned.sum(0)) if defects is None else defects
        shifts[a0 : a1 + 1] = motion.estimate_global_shifts(
            aligned, pixel_size_A, p["bfactor_A2"], p["max_shift_A"], defects=defects, spectra=spectra[a0 : a1 + 1]
        )
        shifts[:a0] = shifts[a0]
        shifts[a1 + 1 :] = shifts[a1]
    sum_shifts: torch.Tensor | None = shifts
    local = None
    if (p["patches_x"] > 1 or p["patches_y"] > 1) and a1 > a0:
        motion.shift_frames_(frames, shifts, spectra)
        local = motion.estimate_local_motion(
            frames[a0 : a1 + 1], pixel_size_A, (p["patches_y"], p["patches_x"]), p["patch_bfactor_A2"], p["max_shift_A"]
        )
        local = _rescale_time(local, a1 - a0 + 1, n)
        local.n_frames, local.reference_frame = n, a0  # frame index t of the whole movie
        motion.apply_local_motion(frames, local)
        spectra, sum_shifts = torch.fft.rfft2(frames), None
    weights = None
    if p["dose_weighting"]:
        weights = motion.dose_weights(
            n,
            frame_dose_e_A2,
            pre_exposure_e_A2,
            out_shape,
            binned_pixel_size(pixel_size_A, shape, p["binning"]),
            voltage_kV,
        )
    sums = motion.aligned_sums(frames, sum_shifts, s0, s1, weights, out_shape, spectra)
    return {"sums": sums, "shifts": shifts, "local_rms_px": local.rms_fit_px if local else None, "defects": defects}


def _rescale_time(model: motion.LocalMotion, n_fitted: int, n_total: int) -> motion.LocalMotion:
    """The model was fitted with t = (frame − ref) / (n_fitted − 1); express it for the whole movie."""
    r = (n_total - 1) / max(n_fitted - 1, 1)
    c = model.coefficients.clone().reshape(3, 6, 2)
    for power in range(3):
        c[power] *= r ** (power + 1)
    model.coefficients = c.reshape(18, 2)
    return model


def _read_frames(m: dict[str, Any], pixel_size_A: float, p: dict[str, Any]) -> tuple[torch.Tensor, float, int]:
    """(frames as read, e.g. int16 counts; dose per frame e/Å²; upsampling) of one movie (EER: grouped)."""
    if not is_eer(m["file"]):
        return torch.from_numpy(read_movie(m["file"], m["n_frames"], dtype=None)), m["frame_dose"], 1
    fractions = movie_frame_count(m["file"])
    group = p["eer_fractions_per_frame"]
    if not group:
        if not m.get("dose", 0) > 0:
            raise ValueError(f"{m['file']}: EER movie without a dose in the metadata: set eer_fractions_per_frame")
        group = max(1, round(p["eer_frame_dose_e_A2"] * fractions / m["dose"]))
    frames = read_movie(
        m["file"], m["n_frames"], dtype=None, eer_fractions_per_frame=group, eer_upsampling=p["eer_upsampling"]
    )
    dose = m["dose"] if m.get("dose", 0) > 0 else m["frame_dose"] * m["n_frames"]
    return torch.from_numpy(frames), dose * group / fractions, p["eer_upsampling"]


def _upsampled(gain: torch.Tensor, frame_shape: tuple[int, int], factor: int) -> torch.Tensor:
    """A physical-pixel gain repeated onto EER frames upsampled by ``factor`` (if it has the physical size)."""
    if factor > 1 and (gain.shape[0] * factor, gain.shape[1] * factor) == tuple(frame_shape):
        return gain.repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    return gain


def _load(
    m: dict[str, Any], pixel_size_A: float, gain: torch.Tensor | None, gain_file: str, p: dict[str, Any], first: bool
) -> tuple[torch.Tensor, float, int]:
    """(float32 gain-corrected frames, dose per frame e/Å², upsampling) of one movie; checks the gain's
    orientation on the first movie of the tilt series (a square detector hides a rotated gain)."""
    frames, frame_dose, upsampling = _read_frames(m, pixel_size_A, p)
    if gain is None:
        return frames.to(torch.float32), frame_dose, upsampling
    name = f"{gain_file} (for movie {m['file']})"
    movie_gain = _upsampled(gain, tuple(frames.shape[-2:]), upsampling)
    if first:
        check_gain(movie_gain, tuple(frames.shape[-2:]), name)
        check_gain_orientation(frames.sum(0, dtype=torch.float32), movie_gain, name)
    return apply_gain(frames, movie_gain, name=name), frame_dose, upsampling


def motion_correct_task(
    movies: list[dict[str, Any]],
    out_base: str,
    pixel_size_A: float,
    voltage_kV: float,
    gain_file: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Task: motion-correct every movie of one tilt series (``movies`` sorted by tilt angle).

    Each movie: {"file", "n_frames", "frame_dose", "pre_exposure", "dose"} (e/Å²). Writes ``out_base``.mrc
    (+ _ODD/_EVN), ``out_base``_shifts.txt and ``out_base``_shifts.svg; returns their paths, the shifts in Å
    and the output pixel size. The next movie is read (and gain-corrected) while one is aligned, and the
    stacks are written side by side: two movies are in memory at a time.
    """
    gain = None
    if gain_file:
        gain = transform_gain(read_gain(gain_file), params["gain_rotate_deg"], params["gain_flip"])
    stacks: dict[str, np.ndarray] = {}  # kind → (n_movies, y, x), filled movie by movie
    shifts_A, local_rms = [], []
    frame_shape: tuple[int, int] = (0, 0)
    movie_pixel = pixel_size_A
    defects = None  # hot pixels are fixed on the detector: found in the first movie, masked in all
    with ThreadPoolExecutor(max_workers=3) as pool:
        pending = pool.submit(_load, movies[0], pixel_size_A, gain, gain_file, params, True) if movies else None
        for i, m in enumerate(movies):
            frames, frame_dose, upsampling = pending.result()
            if i + 1 < len(movies):
                pending = pool.submit(_load, movies[i + 1], pixel_size_A, gain, gain_file, params, False)
            movie_pixel = pixel_size_A / upsampling
            if frame_shape != (0, 0) and tuple(frames.shape[-2:]) != frame_shape:
                raise ValueError(f"{m['file']}: frames of {tuple(frames.shape[-2:])} px, the others {frame_shape}")
            frame_shape = tuple(frames.shape[-2:])
            out = correct_movie(
                frames, movie_pixel, params, frame_dose, m["pre_exposure"], voltage_kV, m["file"], defects
            )
            del frames
            defects = out["defects"]
            sums = {"file": out["sums"].total, "odd_file": out["sums"].odd, "even_file": out["sums"].even}
            for kind in ("file", "odd_file", "even_file")[: 3 if params["odd_even"] else 1]:
                if kind not in stacks:
                    stacks[kind] = np.empty((len(movies), *sums[kind].shape), np.float32)
                stacks[kind][i] = sums[kind].numpy()
            shifts_A.append([(float(x) * movie_pixel, float(y) * movie_pixel) for y, x in out["shifts"].tolist()])
            local_rms.append(out["local_rms_px"])
        new_pixel = binned_pixel_size(movie_pixel, frame_shape, params["binning"])
        writes = {kind: pool.submit(write_stack, out_base, kind, data, new_pixel) for kind, data in stacks.items()}
        files = {kind: w.result() for kind, w in writes.items()}
    table = Path(f"{out_base}_shifts.txt")
    lines = ["# movie  frame  shift_x_A  shift_y_A  (frame content displaced by +shift; frame 1 = 0)"]
    for m, s in zip(movies, shifts_A):
        lines += [f"{Path(m['file']).name} {i + 1} {x:.3f} {y:.3f}" for i, (x, y) in enumerate(s)]
    table.write_text("\n".join(lines) + "\n")
    plot = Path(f"{out_base}_shifts.svg")
    plot.write_text(shifts_svg([Path(m["file"]).name for m in movies], shifts_A))
    return {
        "stacks": files,
        "shifts_A": shifts_A,
        "pixel_size_A": new_pixel,
        "table": str(table),
        "plot": str(plot),
        "local_rms_px": local_rms,
    }


class MotionCorrection(Protocol):
    """Motion correction: align tilt-series movie frames (global + local patches) and sum them."""

    name = "motion-correction"
    citations = ("zheng2017", "grant2015")
    Params = MotionParams
    inputs = {"tilt_series": InputSpec(TiltSeriesMovie, help="tilt-series movies (from the movie import)")}
    outputs = {"tilt_series": TiltSeries}

    def tasks(self):
        series = self.input("tilt_series")
        params = self.params.model_dump()
        for ts in series:
            movies = [
                {
                    "file": str(self.absolute(t.file)),
                    "n_frames": t.n_frames,
                    "frame_dose": t.frame_dose_e_A2,
                    "pre_exposure": max(t.accumulated_dose_e_A2 - t.dose_e_A2, 0.0),
                    "dose": t.dose_e_A2,
                }
                for t in ts.tilt_images
            ]
            gain = self.params.gain_file or ts.acquisition.gain_file
            yield Task(
                motion_correct_task,
                (
                    movies,
                    str(self.out_path(ts.name)),
                    ts.acquisition.pixel_size_A,
                    ts.acquisition.voltage_kV,
                    str(self.absolute(gain)) if gain else "",
                    params,
                ),
                key=ts.name,
                origin=(origin_of(series, ts.name),),
                item=ts,
            )

    def collect(self, task, result):
        ts: TiltSeriesMovie = task.item
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
