"""filter-by-normals: keep the picks whose direction (the reference's z axis, R[:, 2]) lies within an angle of
a fixed direction, of the normal of an ellipsoid fitted to the picks of their group (a vesicle), or of the
normal (z axis) of the nearest point of a surface set (``tomoforge.methods.picking.normals``). The output holds
the input's item class with all its columns (a Particle set gives Particles)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import Coordinate3D
from tomoforge.protocols.picking.coordinate_sets import append_subset, read_coordinates


class FilterByNormalsParams(ProtocolParams):
    reference: Literal["direction", "ellipsoid", "surface"] = param(
        "direction",
        help="compare with 'direction', with an ellipsoid fitted to each group's picks, or with the nearest "
        "point of the 'surface' input",
    )
    direction: tuple[float, float, float] = param((0.0, 0.0, 1.0), help="x, y, z of the reference direction")
    max_angle_deg: float = param(..., ge=0, le=180, unit="°", help="largest angle kept")
    either_sign: bool = param(False, help="a normal of unknown sign: the angle to ±normal (then ≤ 90°)")
    max_distance_A: float = param(1e9, gt=0, unit="Å", help="surface: ignore surface points farther than this")


@dataclass(frozen=True, kw_only=True)
class NormalsJob:
    """The job of ``filter_by_normals_task``: one tomogram's picks (positions (n, 3) Å, rotations (n, 3, 3),
    groups (n,)), the surface points and their rotations where the reference is a surface, and the params."""

    positions_A: np.ndarray
    rotations: np.ndarray
    groups: np.ndarray
    surface_A: np.ndarray
    surface_rotations: np.ndarray
    params: FilterByNormalsParams


def filter_by_normals_task(job: NormalsJob) -> dict[str, np.ndarray]:
    """Task: ``kept`` (indices of the picks within the angle) and ``angle_deg`` (n,) of every pick (NaN where
    there is nothing to compare with: a group with no ellipsoid fit, no surface point near)."""
    from tomoforge.methods.picking import normals as nm

    params = job.params
    directions = nm.particle_directions(job.rotations)
    n = len(directions)
    if params.reference == "direction":
        if not np.linalg.norm(params.direction) > 0:
            raise ValueError("direction: (0, 0, 0) has no direction; give x, y, z of a non-zero vector")
        references = np.broadcast_to(np.asarray(params.direction, float), (n, 3))
    elif params.reference == "ellipsoid":
        labels, codes = np.unique(job.groups, return_inverse=True)
        matrices, centres, ok = nm.fit_ellipsoids(job.positions_A, codes)
        references = nm.ellipsoid_normals(job.positions_A, matrices, centres, codes)
        references[~ok[codes]] = np.nan
    else:
        normals = nm.particle_directions(job.surface_rotations)
        references, distance = nm.nearest_normals(job.positions_A, job.surface_A, normals)
        references[distance > params.max_distance_A] = np.nan
    with np.errstate(invalid="ignore"):
        angle = nm.angle_between_deg(directions, references, either_sign=params.either_sign)
    angle[np.isnan(references).any(axis=1)] = np.nan
    return {"kept": np.flatnonzero(angle <= params.max_angle_deg).astype(np.int64), "angle_deg": angle}


class FilterByNormals(Protocol):
    """Filter picks by orientation: their z axis within an angle of a direction or of the local surface normal."""

    name = "filter-by-normals"
    Params = FilterByNormalsParams
    inputs = {
        "coordinates": InputSpec(Coordinate3D, help="oriented picks"),
        "surface": InputSpec(Coordinate3D, help="reference=surface: points whose z axis is the normal", optional=True),
    }
    outputs = {"coordinates": Coordinate3D}
    outputs_like = {"coordinates": "coordinates"}  # a Particle set gives Particles, every column kept
    params: FilterByNormalsParams

    @cached_property
    def picks(self) -> dict[str, np.ndarray]:
        return read_coordinates(self.input("coordinates"))

    def tasks(self) -> Iterator[Task[NormalsJob]]:
        picks = self.picks
        surface = None
        if self.params.reference == "surface":
            if not self.has_input("surface"):
                raise ValueError("reference=surface needs the input 'surface' (points whose z axis is the normal)")
            surface = read_coordinates(self.input("surface"))
        unoriented = int(np.sum(~picks["has_orientation"]))
        if unoriented:
            self.log(f"{unoriented} picks without an orientation are left out")
        for name in np.unique(picks["tomogram"]):
            rows = np.flatnonzero((picks["tomogram"] == name) & picks["has_orientation"])
            on = np.flatnonzero(surface["tomogram"] == name) if surface is not None else np.zeros(0, np.int64)
            job = NormalsJob(
                positions_A=picks["position"][rows],
                rotations=picks["rotation"][rows],
                groups=picks["group"][rows],
                surface_A=surface["position"][on] if surface is not None else np.zeros((0, 3)),
                surface_rotations=surface["rotation"][on] if surface is not None else np.zeros((0, 3, 3)),
                params=self.params,
            )
            yield Task(filter_by_normals_task, job, key=str(name))

    def collect(self, task: Task[Any], result: dict[str, np.ndarray]) -> None:
        picks = self.picks
        candidates = np.flatnonzero((picks["tomogram"] == task.key) & picks["has_orientation"])
        rows = candidates[result["kept"]]
        append_subset(self.output("coordinates"), picks, rows, self.input("coordinates"))
        unknown = int(np.isnan(result["angle_deg"]).sum())
        self.log(
            f"{task.key}: {len(rows)} of {len(candidates)} oriented picks within {self.params.max_angle_deg:g}°"
            + (f" ({unknown} with no normal to compare with)" if unknown else "")
        )


__all__ = ["FilterByNormals", "FilterByNormalsParams", "NormalsJob", "filter_by_normals_task"]
