"""remove-duplicates: of the picks of one tomogram within a distance of each other, the best score is kept. The
output holds the input's item class with all its columns (a Particle set gives Particles)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import Coordinate3D
from tomoforge.protocols.picking.coordinate_sets import append_subset, read_coordinates


class RemoveDuplicatesParams(ProtocolParams):
    distance_A: float = param(..., gt=0, le=1e6, unit="Å", help="picks this close or closer are one particle")


@dataclass(frozen=True, kw_only=True)
class DuplicatesJob:
    """The job of ``remove_duplicates_task``: one tomogram's pick positions (n, 3) Å and scores (n,) (NaN:
    none), and the distance (Å)."""

    positions_A: np.ndarray
    scores: np.ndarray
    distance_A: float


def remove_duplicates_task(job: DuplicatesJob) -> dict[str, np.ndarray]:
    """Task: the indices (into the job's picks) of the picks kept, as ``{"kept": (k,) int64}``."""
    from tomoforge.methods.picking.duplicates import remove_duplicates

    keep = remove_duplicates(job.positions_A, job.distance_A, scores=job.scores)
    return {"kept": np.flatnonzero(keep).astype(np.int64)}


class RemoveDuplicates(Protocol):
    """Remove duplicate picks: within a distance, the best-scored pick of each tomogram is kept."""

    name = "remove-duplicates"
    Params = RemoveDuplicatesParams
    inputs = {"coordinates": InputSpec(Coordinate3D, help="picks (filter e.g. [score > 0.3])")}
    outputs = {"coordinates": Coordinate3D}
    outputs_like = {"coordinates": "coordinates"}  # a Particle set gives Particles, every column kept
    params: RemoveDuplicatesParams

    @cached_property
    def picks(self) -> dict[str, np.ndarray]:
        return read_coordinates(self.input("coordinates"))

    def tasks(self) -> Iterator[Task[DuplicatesJob]]:
        picks = self.picks
        for name in np.unique(picks["tomogram"]):
            rows = np.flatnonzero(picks["tomogram"] == name)
            job = DuplicatesJob(
                positions_A=picks["position"][rows], scores=picks["score"][rows], distance_A=self.params.distance_A
            )
            yield Task(remove_duplicates_task, job, key=str(name))

    def collect(self, task: Task[Any], result: dict[str, np.ndarray]) -> None:
        picks = self.picks
        rows = np.flatnonzero(picks["tomogram"] == task.key)[result["kept"]]
        append_subset(self.output("coordinates"), picks, rows, self.input("coordinates"))
        self.log(f"{task.key}: {len(rows)} of {int(np.sum(picks['tomogram'] == task.key))} picks kept")


__all__ = ["DuplicatesJob", "RemoveDuplicates", "RemoveDuplicatesParams", "remove_duplicates_task"]
