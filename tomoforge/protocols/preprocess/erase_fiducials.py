"""Erase fiducials: gold beads painted over with their neighbourhood's background and noise, per tilt image.

One task per tilt series (``erase_task``) takes the beads of each view from the series' landmark model (a
fiducial-model or fiducial-alignment run, given as the optional ``landmark_models`` input) and/or detects
them (``tomoforge.methods.preprocess.fiducials.find_beads``), erases them from the stack and from its
odd/even halves at the same positions (``erase_beads``), and writes the new stacks. Detection (the default)
adds the beads a model did not track or left in a gap, and covers views it lacks (excluded views); a
detected bead within a diameter of a modelled one is the same bead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tomoforge.engine import InputSpec, ParamsError, ProtocolParams, Task, param
from tomoforge.methods.preprocess.settings import BEAD_DETECTION_DEFAULTS
from tomoforge.model import LandmarkModel
from tomoforge.model.quantities import BeadDiameterNM
from tomoforge.protocols.base import TILT_SERIES_INPUT, PerTiltSeries
from tomoforge.protocols.tilt_stacks import restack, transform_stacks

if TYPE_CHECKING:
    import numpy as np

    from tomoforge.model import TiltSeries


class EraseFiducialsParams(ProtocolParams):
    bead_diameter_nm: BeadDiameterNM | None = param(
        None, unit="nm", help="gold bead diameter (default: the landmark model's, else 10 nm)"
    )
    erase_scale: float = param(
        1.5, ge=1.0, le=4.0, help="erase a disk of this many bead radii (the bead, its fringe, the position's error)"
    )
    detect: bool = param(True, help="detect beads on every view (besides a landmark model's); False: the model's only")
    threshold_sd: float = param(
        BEAD_DETECTION_DEFAULTS.threshold_sd,
        gt=0,
        unit="SD",
        help="detection threshold (robust SD of the filtered image)",
    )
    polarity: Literal["dark", "bright"] = param("dark", help="beads are dark (raw images) or bright (inverted)")
    seed: int = param(0, ge=0, help="seed of the noise painted over the beads")


@dataclass(frozen=True, kw_only=True)
class EraseJob:
    """A tilt series to erase: its image sources ({kind: [(file, index)]}), the output base path, its pixel size
    (Å), its views' acquisition orders (stack order), the landmark table (path, pixel size Å; "" when none),
    the bead diameter (nm) and the params."""

    sources: dict[str, list[tuple[str, int]]]
    out_base: str
    pixel_size_A: float
    orders: list[int]
    landmarks_file: str
    landmarks_pixel_size_A: float
    bead_diameter_nm: float
    params: EraseFiducialsParams


def bead_positions(job: EraseJob, images: np.ndarray) -> np.ndarray:
    """(n, m, 2) (x, y) pixels from each image's centre of the beads to erase (NaN pads): the landmark
    model's, scaled to the images' pixel size, and (``detect``) those detected that the model lacks."""
    import numpy as np

    from tomoforge.methods.preprocess.fiducials import find_beads
    from tomoforge.protocols.align.landmarks import read_landmarks

    p = job.params
    n = len(images)
    model = np.full((n, 0, 2), np.nan)
    if job.landmarks_file:
        model = read_landmarks(job.landmarks_file, job.orders) * (job.landmarks_pixel_size_A / job.pixel_size_A)
    if not p.detect:
        return model
    diameter_px = job.bead_diameter_nm * 10.0 / job.pixel_size_A
    found = find_beads(images, diameter_px, threshold_sd=p.threshold_sd, polarity=-1 if p.polarity == "dark" else 1)
    if model.shape[1] and found.shape[1]:  # a bead both tracked and detected is erased once
        gap = np.linalg.norm(found[:, :, None] - model[:, None], axis=-1)
        same = (np.nan_to_num(gap, nan=np.inf) < diameter_px).any(axis=2)
        found[same] = np.nan
    return np.concatenate([model, found], axis=1)


def erase_task(job: EraseJob) -> dict[str, Any]:
    """Task: erase the beads of every image of the stack and its halves (the positions found on the full
    stack); per image, the number of beads erased."""
    import torch

    from tomoforge.methods.preprocess.fiducials import erase_beads

    radius_px = job.params.erase_scale * job.bead_diameter_nm * 5.0 / job.pixel_size_A
    found: list[np.ndarray] = []

    def run(images: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        if not found:  # the full stack comes first (transform_stacks): its beads serve the halves too
            found.append(bead_positions(job, images))
        result = erase_beads(torch.from_numpy(images), found[0], radius_px, seed=job.params.seed + len(found))
        found.append(found[0])
        return result.images.numpy(), [{"beads_erased": c} for c in result.counts]

    return transform_stacks(job.sources, job.out_base, job.pixel_size_A, run)


class EraseFiducials(PerTiltSeries):
    """Erase fiducials: gold beads (from a landmark model or detected) painted with local background and noise."""

    name = "erase-fiducials"
    label = "Erase fiducials"
    citations = ("kremer1996",)
    Params = EraseFiducialsParams
    inputs = {
        **TILT_SERIES_INPUT,
        "landmark_models": InputSpec(
            LandmarkModel, optional=True, help="bead positions of a fiducial-model or fiducial-alignment run"
        ),
    }
    params: EraseFiducialsParams

    def task_for(self, ts: TiltSeries, sources: dict[str, list[tuple[str, int]]], out_base: str) -> Task[EraseJob]:
        p = self.params
        if not p.detect and not self.has_input("landmark_models"):
            raise ParamsError(
                "erase-fiducials: detect is false and no landmark_models input is given: no bead to erase"
            )
        model: LandmarkModel | None = None
        if self.has_input("landmark_models"):
            models = self.input("landmark_models")
            if ts.name in models.keys():
                found = models.get(ts.name)
                assert isinstance(found, LandmarkModel)
                model = found
            else:
                self.log(f"{ts.name}: no landmark model; its beads are detected")
        diameter = p.bead_diameter_nm or (model.diameter_nm if model is not None else 10.0)
        job = EraseJob(
            sources=sources,
            out_base=out_base,
            pixel_size_A=ts.acquisition.pixel_size_A,
            orders=[t.acquisition_order for t in ts.tilt_images],
            landmarks_file=str(self.absolute(model.file)) if model is not None else "",
            landmarks_pixel_size_A=model.pixel_size_A if model is not None else 0.0,
            bead_diameter_nm=diameter,
            params=p,
        )
        return Task(erase_task, job, key=ts.name)

    def output_series(self, ts: TiltSeries, result: dict[str, Any]) -> TiltSeries:
        counts = [r.pop("beads_erased") for r in result["per_image"]]
        self.log(f"{ts.name}: beads erased per image {counts}")
        return restack(ts, result, self.relative)
