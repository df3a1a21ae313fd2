"""Writers for what a microscope leaves on disk: frame movies (MRC or TIFF) and the tilt-series mdoc."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import tifffile

from tomoforge.io.mdoc import Mdoc, write_mdoc
from tomoforge.io.mrc import write_mrc
from tomoforge.simulate.acquisition import TiltTruth
from tomoforge.simulate.config import SimulationConfig

START_TIME = datetime(2024, 1, 15, 10, 0, 0)
SECONDS_PER_TILT = 40


def movie_name(series: str, index: int, nominal_tilt_deg: float, fmt: str) -> str:
    """SerialEM-style frame file name: TS_01_003_-3.0.mrc (index = acquisition order − 1)."""
    return f"{series}_{index:03d}_{nominal_tilt_deg:.1f}.{'tif' if fmt == 'tiff' else 'mrc'}"


def write_movie(path: Path, frames: np.ndarray, pixel_size_A: float, fmt: str) -> Path:
    """Frames (n, y, x) of counts as int16 MRC (nz = frames) or uint16 TIFF (one page per frame)."""
    if fmt == "tiff":
        path.parent.mkdir(parents=True, exist_ok=True)
        data = np.clip(frames, 0, 65535).astype(np.uint16)
        res = 1e8 / pixel_size_A  # pixels per cm
        tifffile.imwrite(
            path, data, photometric="minisblack", compression="zlib", resolution=(res, res), resolutionunit="CENTIMETER"
        )
        return path
    return write_mrc(path, np.clip(frames, -32768, 32767).astype(np.int16), pixel_size_A, overwrite=True)


def _datetime(i: int, flavour: str) -> str:
    t = START_TIME + timedelta(seconds=SECONDS_PER_TILT * i)
    # SerialEM writes day-month-year; Tomography 5 writes year-month-day (see io.mdoc.parse_mdoc_datetime)
    return t.strftime("%y-%b-%d  %H:%M:%S" if flavour == "tomo5" else "%d-%b-%y  %H:%M:%S")


def build_mdoc(
    series: str,
    tilts: list[TiltTruth],
    movies: list[str],
    cfg: SimulationConfig,
    frame_pixel_A: float,
    frame_shape: tuple[int, int],
    seed: int,
) -> Mdoc:
    """The tilt-series mdoc: one [ZValue] section per tilt in stored (= acquisition) order, nominal
    angles, per-tilt dose, target defocus (µm, negative = underfocus), frames and DateTime."""
    acq, det = cfg.acquisition, cfg.detector
    flavour = det.mdoc_flavour
    header = {
        "PixelSpacing": frame_pixel_A,
        "Voltage": int(acq.voltage_kV),
        "ImageFile": f"{series}.mrc",
        "ImageSize": (float(frame_shape[1]), float(frame_shape[0])),
        "DataMode": 1,
    }
    if flavour == "tomo5":
        titles = [
            f"Tomography: tomoforge simulator (seed {seed})    {_datetime(0, flavour)}",
            f"TiltAxisAngle = {acq.tilt_axis_angle_deg:.2f} Binning = 1 SpotSize = 7",
        ]
    else:
        titles = [
            f"SerialEM: tomoforge simulator (seed {seed})    {_datetime(0, flavour)}",
            f"    Tilt axis angle = {acq.tilt_axis_angle_deg:.1f}, binning = 1  spot = 8  camera = 0",
        ]
    sections = []
    for i, (t, movie) in enumerate(zip(tilts, movies)):
        sections.append(
            {
                "TiltAngle": float(t.nominal_tilt_deg),
                "StagePosition": (0.0, 0.0),
                "StageZ": 0.0,
                "Magnification": 64000,
                "Intensity": 0.1,
                "ExposureDose": float(t.dose),
                "PixelSpacing": frame_pixel_A,
                "SpotSize": 8,
                "Defocus": round(-t.target_defocus_A / 1e4, 4),
                "ImageShift": (0.0, 0.0),
                "RotationAngle": float(acq.tilt_axis_angle_deg),
                "ExposureTime": acq.exposure_time_s,
                "Binning": 1,
                "CameraIndex": 0,
                "DividedBy2": 0,
                "MagIndex": 30,
                "TargetDefocus": round(-t.target_defocus_A / 1e4, 4),
                "PriorRecordDose": float(t.pre_exposure),
                "SubFramePath": movie,
                "NumSubFrames": acq.frames_per_tilt,
                "FrameDosesAndNumber": (t.dose / acq.frames_per_tilt, float(acq.frames_per_tilt)),
                "DateTime": _datetime(i, flavour),
            }
        )
    return Mdoc(path=None, header=header, titles=titles, sections=sections, section_key="ZValue")


def write_tilt_series_mdoc(path: Path, mdoc: Mdoc) -> Path:
    """Write the mdoc (replacing an earlier one)."""
    return write_mdoc(mdoc, path, overwrite=True)
