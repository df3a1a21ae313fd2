"""The work of the motion-correction task: read, gain-correct, align and sum the movies of one tilt series.

``correct_series`` (what ``motion.motion_correct_task`` runs) imports torch and the methods at module level;
the protocol module imports this one only inside its task function.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tomoforge.io.movies import is_eer, movie_frame_count, read_gain, read_movie
from tomoforge.methods.binning import binned_pixel_size, binned_shape
from tomoforge.methods.preprocess import motion
from tomoforge.methods.preprocess.gain import apply_gain, check_gain, check_gain_orientation, transform_gain
from tomoforge.protocols.plotting import save_line_plot
from tomoforge.protocols.preprocess.motion_plot import drift_plot, shifts_svg
from tomoforge.protocols.tilt_stacks import write_stack

if TYPE_CHECKING:
    from tomoforge.protocols.preprocess.motion import MotionJob, MotionParams, MovieSource


def _range(first: int, last: int, n: int, movie: str) -> tuple[int, int]:
    """0-based inclusive frame range from 1-based params (last 0 = n)."""
    last = last or n
    if first > n or last > n:
        raise ValueError(f"{movie}: frame range {first}-{last} is beyond its {n} frames")
    return first - 1, last - 1


def correct_movie(
    frames: torch.Tensor,
    pixel_size_A: float,
    p: MotionParams,
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
    shape = (frames.shape[-2], frames.shape[-1])
    a0, a1 = _range(p.align_first, p.align_last, n, movie)
    s0, s1 = _range(p.sum_first, p.sum_last, n, movie)
    out_shape = binned_shape(shape, p.binning)
    spectra = torch.fft.rfft2(frames)
    shifts = torch.zeros(n, 2)
    if a1 > a0:
        aligned = frames[a0 : a1 + 1]
        defects = motion.hot_pixel_mask(aligned.sum(0)) if defects is None else defects
        shifts[a0 : a1 + 1] = motion.estimate_global_shifts(
            aligned,
            pixel_size_A,
            bfactor_A2=p.bfactor_A2,
            max_shift_A=p.max_shift_A,
            defects=defects,
            spectra=spectra[a0 : a1 + 1],
        )
        shifts[:a0] = shifts[a0]
        shifts[a1 + 1 :] = shifts[a1]
    sum_shifts: torch.Tensor | None = shifts
    local = None
    if (p.patches_x > 1 or p.patches_y > 1) and a1 > a0:
        motion.shift_frames_(frames, shifts, spectra=spectra)
        local = motion.estimate_local_motion(
            frames[a0 : a1 + 1],
            pixel_size_A,
            patches=(p.patches_y, p.patches_x),
            bfactor_A2=p.patch_bfactor_A2,
            max_shift_A=p.max_shift_A,
        )
        local = _rescale_time(local, a1 - a0 + 1, n)
        local.n_frames, local.reference_frame = n, a0  # frame index t of the whole movie
        motion.apply_local_motion(frames, local)
        spectra, sum_shifts = torch.fft.rfft2(frames), None
    weights = None
    if p.dose_weighting:
        weights = motion.dose_weights(
            n,
            frame_dose_e_A2,
            pre_exposure_e_A2,
            out_shape,
            binned_pixel_size(pixel_size_A, shape, p.binning),
            voltage_kV=voltage_kV,
        )
    sums = motion.aligned_sums(
        frames, sum_shifts, first=s0, last=s1, weights=weights, out_shape=out_shape, spectra=spectra
    )
    return {"sums": sums, "shifts": shifts, "local_rms_px": local.rms_fit_px if local else None, "defects": defects}


def _rescale_time(model: motion.LocalMotion, n_fitted: int, n_total: int) -> motion.LocalMotion:
    """The model was fitted with t = (frame − ref) / (n_fitted − 1); express it for the whole movie."""
    r = (n_total - 1) / max(n_fitted - 1, 1)
    c = model.coefficients.clone().reshape(3, 6, 2)
    for power in range(3):
        c[power] *= r ** (power + 1)
    model.coefficients = c.reshape(18, 2)
    return model


def _read_frames(m: MovieSource, pixel_size_A: float, p: MotionParams) -> tuple[torch.Tensor, float, int]:
    """(frames as read, e.g. int16 counts; dose per frame e/Å²; upsampling) of one movie (EER: grouped)."""
    if not is_eer(m.file):
        return torch.from_numpy(read_movie(m.file, m.n_frames, dtype=None)), m.frame_dose_e_A2, 1
    fractions = movie_frame_count(m.file)
    group = p.eer_fractions_per_frame
    if not group:
        if not m.dose_e_A2 > 0:
            raise ValueError(f"{m.file}: EER movie without a dose in the metadata: set eer_fractions_per_frame")
        group = max(1, round(p.eer_frame_dose_e_A2 * fractions / m.dose_e_A2))
    frames = read_movie(m.file, m.n_frames, dtype=None, eer_fractions_per_frame=group, eer_upsampling=p.eer_upsampling)
    dose = m.dose_e_A2 if m.dose_e_A2 > 0 else m.frame_dose_e_A2 * m.n_frames
    return torch.from_numpy(frames), dose * group / fractions, p.eer_upsampling


def _upsampled(gain: torch.Tensor, frame_shape: tuple[int, int], factor: int) -> torch.Tensor:
    """A physical-pixel gain repeated onto EER frames upsampled by ``factor`` (if it has the physical size)."""
    if factor > 1 and (gain.shape[0] * factor, gain.shape[1] * factor) == tuple(frame_shape):
        return gain.repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    return gain


def _load(
    m: MovieSource, pixel_size_A: float, gain: torch.Tensor | None, gain_file: str, p: MotionParams, first: bool
) -> tuple[torch.Tensor, float, int]:
    """(float32 gain-corrected frames, dose per frame e/Å², upsampling) of one movie; checks the gain's
    orientation on the first movie of the tilt series (a square detector hides a rotated gain)."""
    frames, frame_dose, upsampling = _read_frames(m, pixel_size_A, p)
    if gain is None:
        return frames.to(torch.float32), frame_dose, upsampling
    name = f"{gain_file} (for movie {m.file})"
    movie_gain = _upsampled(gain, (frames.shape[-2], frames.shape[-1]), upsampling)
    if first:
        check_gain(movie_gain, tuple(frames.shape[-2:]), name=name)
        check_gain_orientation(frames.sum(0, dtype=torch.float32), movie_gain, name=name)
    return apply_gain(frames, movie_gain, name=name), frame_dose, upsampling


def correct_series(job: MotionJob) -> dict[str, Any]:
    """Motion-correct every movie of one tilt series (``movies`` sorted by tilt angle).

    Writes ``job.out_base``.mrc
    (+ _ODD/_EVN), ``job.out_base``_shifts.txt, ``job.out_base``_shifts.svg and ``_drift.png``; returns their paths, the shifts in Å
    and the output pixel size. The next movie is read (and gain-corrected) while one is aligned, and the
    stacks are written side by side: two movies are in memory at a time.
    """
    movies, out_base, pixel_size_A, voltage_kV = job.movies, job.out_base, job.pixel_size_A, job.voltage_kV
    gain_file, params = job.gain_file, job.params
    gain = None
    if gain_file:
        gain = transform_gain(read_gain(gain_file), rotate_deg=params.gain_rotate_deg, flip=params.gain_flip)
    stacks: dict[str, np.ndarray] = {}  # kind → (n_movies, y, x), filled movie by movie
    shifts_A, local_rms = [], []
    frame_shape: tuple[int, int] = (0, 0)
    movie_pixel = pixel_size_A
    defects = None  # hot pixels are fixed on the detector: found in the first movie, masked in all
    with ThreadPoolExecutor(max_workers=3) as pool:
        pending: Future[tuple[torch.Tensor, float, int]] | None = None
        if movies:
            pending = pool.submit(_load, movies[0], pixel_size_A, gain, gain_file, params, True)
        for i, m in enumerate(movies):
            assert pending is not None  # submitted for movie i before
            frames, frame_dose, upsampling = pending.result()
            if i + 1 < len(movies):
                pending = pool.submit(_load, movies[i + 1], pixel_size_A, gain, gain_file, params, False)
            movie_pixel = pixel_size_A / upsampling
            if frame_shape != (0, 0) and tuple(frames.shape[-2:]) != frame_shape:
                raise ValueError(f"{m.file}: frames of {tuple(frames.shape[-2:])} px, the others {frame_shape}")
            frame_shape = (frames.shape[-2], frames.shape[-1])
            out = correct_movie(
                frames, movie_pixel, params, frame_dose, m.pre_exposure_e_A2, voltage_kV, m.file, defects
            )
            del frames
            defects = out["defects"]
            sums = {"file": out["sums"].total, "odd_file": out["sums"].odd, "even_file": out["sums"].even}
            for kind in ("file", "odd_file", "even_file")[: 3 if params.odd_even else 1]:
                if kind not in stacks:
                    stacks[kind] = np.empty((len(movies), *sums[kind].shape), np.float32)
                stacks[kind][i] = sums[kind].numpy()
            shifts_A.append([(float(x) * movie_pixel, float(y) * movie_pixel) for y, x in out["shifts"].tolist()])
            local_rms.append(out["local_rms_px"])
        new_pixel = binned_pixel_size(movie_pixel, frame_shape, params.binning)
        writes = {kind: pool.submit(write_stack, out_base, kind, data, new_pixel) for kind, data in stacks.items()}
        files = {kind: w.result() for kind, w in writes.items()}
    table = Path(f"{out_base}_shifts.txt")
    lines = ["# movie  frame  shift_x_A  shift_y_A  (frame content displaced by +shift; frame 1 = 0)"]
    for m, s in zip(movies, shifts_A):
        lines += [f"{Path(m.file).name} {i + 1} {x:.3f} {y:.3f}" for i, (x, y) in enumerate(s)]
    table.write_text("\n".join(lines) + "\n")
    plot = Path(f"{out_base}_shifts.svg")
    plot.write_text(shifts_svg([Path(m.file).name for m in movies], shifts_A))
    name = Path(out_base).name
    save_line_plot(f"{out_base}_drift.png", drift_plot(name, [m.tilt_angle_deg for m in movies], shifts_A))
    return {
        "stacks": files,
        "shifts_A": shifts_A,
        "pixel_size_A": new_pixel,
        "table": str(table),
        "plot": str(plot),
        "local_rms_px": local_rms,
    }
