"""Map back: the average placed at every particle's position and orientation in a volume the size of its
tomogram (``methods/sta/map_back.py``), one per tomogram, and a PNG overlay: the tomogram's XY slice through
the particles' median height in grey, the placed map in colour where it is above half its maximum."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import Coordinate3D, Tomogram, Volume
from tomoforge.protocols.refuse import Refusal, refuse
from tomoforge.protocols.sta.extract import centres_A, read_coordinates


class MapBackParams(ProtocolParams):
    overlay: bool = param(True, help="write a PNG of the tomogram's slice with the placed map over it")


@dataclass(frozen=True, kw_only=True)
class MapBackJob:
    """The job of ``map_back_task``: the map (file), one tomogram (file, voxel Å, size z y x), its particles'
    centres (Å) and rotations, where to write (base path) and the params."""

    average_file: str
    tomogram_file: str
    pixel_size_A: float
    shape_zyx: tuple[int, int, int]
    centres_A: list[list[float]]
    rotations: list[list[list[float]]]
    out_base: str
    params: MapBackParams


def overlay_png(path: str, tomogram_slice: np.ndarray, placed_slice: np.ndarray, title: str) -> str:
    """An XY slice (y, x) of a tomogram in grey with the placed map's slice (above half the map's maximum
    there) in colour; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ny, nx = tomogram_slice.shape
    fig, ax = plt.subplots(figsize=(8, max(2.0, 8 * ny / max(nx, 1))))
    ax.imshow(tomogram_slice, cmap="gray", origin="lower")
    top = float(placed_slice.max())
    ax.imshow(
        np.ma.masked_less_equal(placed_slice, 0.5 * top if top > 0 else np.inf),
        cmap="autumn",
        alpha=0.6,
        origin="lower",
    )
    ax.set_title(title)
    ax.set_xlabel("x (voxel)")
    ax.set_ylabel("y (voxel)")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def map_back_task(job: MapBackJob) -> dict[str, Any]:
    """Task: place the map at one tomogram's particles; write ``{out_base}.mrc`` (and ``_overlay.png``)."""
    import torch

    from tomoforge.io.mrc import open_mrc_mmap, read_mrc, read_voxel_size, write_mrc
    from tomoforge.methods.sta.map_back import map_back

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    average = read_mrc(job.average_file)
    centres = np.asarray(job.centres_A, dtype=np.float64).reshape(-1, 3)
    placed = (
        map_back(
            average,
            centres,
            np.asarray(job.rotations),
            shape_zyx=job.shape_zyx,
            pixel_size_A=job.pixel_size_A,
            average_pixel_size_A=read_voxel_size(job.average_file),
            device=device,
        )
        .cpu()
        .numpy()
    )
    result = {"file": str(write_mrc(f"{job.out_base}.mrc", placed, job.pixel_size_A, overwrite=True))}
    if job.params.overlay:
        z = int(
            np.clip(
                round(float(np.median(centres[:, 2])) / job.pixel_size_A) + job.shape_zyx[0] // 2,
                0,
                job.shape_zyx[0] - 1,
            )
        )
        with open_mrc_mmap(job.tomogram_file) as data:
            tomogram_slice = np.asarray(data[z], dtype=np.float32)
        title = f"{len(centres)} particles, slice z = {z}"
        result["overlay"] = overlay_png(f"{job.out_base}_overlay.png", tomogram_slice, placed[z], title)
    return result


class MapBack(Protocol):
    """Map back: the average placed at every particle's position and orientation, with a tomogram overlay."""

    name = "map-back"
    Params = MapBackParams
    inputs: ClassVar = {
        "particles": InputSpec(Coordinate3D, help="particles (or oriented coordinates) to place the map at"),
        "average": InputSpec(Volume, help="the map to place (its first item)"),
        "tomograms": InputSpec(Tomogram, help="the tomograms the particles lie in (size, voxel, overlay)"),
    }
    outputs: ClassVar = {"tomograms": Tomogram}
    streaming = False

    def tasks(self) -> Iterator[Task[Any]]:
        columns = read_coordinates(self.input("particles"))
        maps = cast("list[Volume]", list(self.input("average")))
        tomograms = {t.name: t for t in cast("list[Tomogram]", list(self.input("tomograms")))}
        centres = centres_A(columns)
        for name in sorted(set(columns["tomogram"].tolist())):
            rows = np.flatnonzero(columns["tomogram"] == name)
            tomo = tomograms.get(name)
            if tomo is None or not maps:
                why = f"no input tomogram named {name!r}" if tomo is None else "the average input holds no map"
                yield Task(refuse, Refusal(message=f"{len(rows)} particles in {name!r}: {why}"), key=name)
                continue
            nx, ny, nz = tomo.size_xyz
            job = MapBackJob(
                average_file=str(self.absolute(maps[0].file)),
                tomogram_file=str(self.absolute(tomo.file)),
                pixel_size_A=tomo.pixel_size_A,
                shape_zyx=(nz, ny, nx),
                centres_A=centres[rows].tolist(),
                rotations=columns["rotation"][rows].tolist(),
                out_base=str(self.out_path(f"{name}_mapped")),
                params=self.params,
            )
            yield Task(map_back_task, job, key=name)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        tomo = cast(Tomogram, self.input("tomograms").get(task.key))
        self.emit(
            "tomograms",
            tomo.model_copy(
                update={
                    "file": self.relative(result["file"]),
                    "odd_file": "",
                    "even_file": "",
                    "source_file": tomo.file,
                }
            ),
            task,
        )
        if "overlay" in result:
            self.log(f"{task.key}: overlay {self.relative(result['overlay'])}")


__all__ = ["MapBack", "MapBackJob", "MapBackParams", "map_back_task"]
