"""Average subtomograms ("apply alignment and average"): each particle's subtomogram turned into the reference
frame by its rotation and averaged per half set with its 3D weight (``methods/sta/averaging.py``); the half
maps and the map are written as one Volume. Particles without a half set are split by the parity of their
number (logged), so that the half maps stay independent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import Volume
from tomoforge.model.coordinates import Particle
from tomoforge.protocols.refuse import Refusal, refuse


class AverageParams(ProtocolParams):
    wiener_constant: float = param(
        0.01, ge=0, le=10, help="regularises frequencies few particles measured (a fraction of the mean Σ weight²)"
    )
    use_weights: bool = param(True, help="use each subtomogram's 3D weight where it has one")
    weighting: Literal["auto", "transfer", "ctf2"] = param(
        "auto",
        help="what the 3D weights are: transfer (the data is the map seen through W, extract-subtomograms' "
        "wedge/CTF/dose weight: Σ W·data / Σ W²) or ctf2 (CTF-premultiplied data with its Σ CTF² weight, RELION's "
        "pseudo-subtomograms: Σ data / Σ CTF², both rotated into one grid); auto: ctf2 for particles made by "
        "extract-pseudo-subtomograms output=3d weight_3d=ctf2, else transfer",
    )
    fine_grid: bool = param(
        True, help="average on the padded box's Fourier grid (exact); off: the box's own, ~2x faster, aliases wrap in"
    )
    nyquist_sphere: bool = param(
        False, help="average only within the box's Nyquist sphere (as RELION; ~1.4x faster), the cube's corners 0"
    )
    name: str = param("average", min_length=1, help="name of the output map")


@dataclass(frozen=True, kw_only=True)
class AverageJob:
    """The job of ``average_task``: the subtomogram files, their weight files ('' = none), rotations (x_tomo =
    R x_ref) and half sets, where to write (a base path) and the params."""

    files: list[str]
    weight_files: list[str]
    rotations: list[list[list[float]]]
    half_sets: list[int]
    out_base: str
    params: AverageParams
    premultiplied: bool = False


class ParticleFiles:
    """Subtomogram files seen as one (m, n, n, n) float32 array that is read only where sliced (a batch at a
    time), so averaging never holds every particle in memory."""

    def __init__(self, files: list[str]) -> None:
        from tomoforge.io.mrc import open_mrc_mmap

        self.files = files
        with open_mrc_mmap(files[0]) as first:
            self.shape = (len(files), *first.shape)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: slice) -> np.ndarray:
        from tomoforge.io.mrc import read_mrc

        return np.stack([read_mrc(f) for f in self.files[index]]).astype(np.float32)


def average_task(job: AverageJob) -> dict[str, Any]:
    """Task: read the subtomograms, average them per half set; write ``_half1``, ``_half2`` and the map."""
    import torch

    from tomoforge.io.mrc import read_mrc, read_voxel_size, write_mrc
    from tomoforge.methods.sta.averaging import average_subtomograms

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    volumes = ParticleFiles(job.files)  # read batch by batch, not all at once
    pixel = read_voxel_size(job.files[0])
    weights, index = None, None
    if job.params.use_weights and all(job.weight_files):
        unique = sorted(set(job.weight_files))
        position = {f: i for i, f in enumerate(unique)}
        weights = np.stack([read_mrc(f) for f in unique]).astype(np.float32)
        index = [position[f] for f in job.weight_files]
    result = average_subtomograms(
        volumes,
        np.asarray(job.rotations),
        np.asarray(job.half_sets),
        weights=weights,
        weight_index=index,
        premultiplied=job.premultiplied,
        wiener_constant=job.params.wiener_constant,
        fine_grid=job.params.fine_grid,
        nyquist_sphere=job.params.nyquist_sphere,
        device=device,
    )
    files = {}
    for kind, vol in (("file", result.full), ("half1_file", result.half1), ("half2_file", result.half2)):
        suffix = "" if kind == "file" else "_" + kind.removesuffix("_file")
        files[kind] = str(write_mrc(f"{job.out_base}{suffix}.mrc", vol.cpu().numpy(), pixel, overwrite=True))
    return {**files, "pixel_size_A": pixel, "counts": list(result.counts), "weighted": weights is not None}


class AverageSubtomograms(Protocol):
    """Average subtomograms: apply the particles' orientations and average per half set (half maps and map)."""

    name = "average-subtomograms"
    Params = AverageParams
    inputs: ClassVar = {"particles": InputSpec(Particle, help="extracted subtomograms with their orientations")}
    outputs: ClassVar = {"average": Volume}
    streaming = False

    def tasks(self) -> Iterator[Task[Any]]:
        p: AverageParams = self.params
        cols = self.input("particles").arrays("number", "file", "weight_file", "rotation", "half_set")
        missing = cols["number"][cols["file"] == ""].tolist()
        if not len(cols["number"]) or missing:
            why = (
                f"particle(s) {missing[:5]} have no subtomogram file: run extract-subtomograms first"
                if missing
                else "the particle set is empty"
            )
            yield Task(refuse, Refusal(message=why), key=p.name)
            return
        halves = np.asarray(cols["half_set"], dtype=int)
        unset = halves == 0
        if unset.any():
            halves[unset] = 1 + np.asarray(cols["number"])[unset] % 2
            self.log(f"{int(unset.sum())} particle(s) without a half set split by the parity of their number")
        premultiplied = self._ctf2_weights()
        job = AverageJob(
            files=[str(self.absolute(f)) for f in cols["file"]],
            weight_files=[str(self.absolute(f)) if f else "" for f in cols["weight_file"]],
            rotations=np.asarray(cols["rotation"], dtype=float).reshape(-1, 3, 3).tolist(),
            half_sets=halves.tolist(),
            out_base=str(self.out_path(p.name)),
            params=p,
            premultiplied=premultiplied,
        )
        yield Task(average_task, job, key=p.name)

    def _ctf2_weights(self) -> bool:
        """Whether the weights are Σ CTF² of CTF-premultiplied data (``weighting``; auto: from the run that made
        the particles, extract-pseudo-subtomograms with output=3d and weight_3d=ctf2)."""
        import json

        p: AverageParams = self.params
        if p.weighting != "auto":
            return p.weighting == "ctf2"
        row = self.context.project.run(self.input("particles").run_id)
        made = json.loads(row["params"]) if row["protocol"] == "extract-pseudo-subtomograms" else {}
        ctf2 = made.get("output") == "3d" and made.get("weight_3d") == "ctf2"
        self.log(f"weights read as {'Σ CTF² of premultiplied data' if ctf2 else 'transfer'} (run {row['id']})")
        return bool(ctf2)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        p: AverageParams = self.params
        self.emit(
            "average",
            Volume(
                name=p.name,
                file=self.relative(result["file"]),
                half1_file=self.relative(result["half1_file"]),
                half2_file=self.relative(result["half2_file"]),
                pixel_size_A=result["pixel_size_A"],
            ),
            task,
        )
        n1, n2 = result["counts"]
        self.log(f"{p.name}: {n1} + {n2} particles (half 1 + 2){', weighted' if result['weighted'] else ''}")


__all__ = ["AverageJob", "AverageParams", "AverageSubtomograms", "ParticleFiles", "average_task"]
