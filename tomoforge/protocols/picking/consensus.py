"""picking-consensus: the particles that 2 to 4 pickers agree on (within a radius), positions averaged and
orientations combined modulo the reference's symmetry (``tomoforge.methods.picking.consensus``). The output holds
the first set's item class (Particles from Particles): each particle's other columns come from the first set
that chose it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import Coordinate3D
from tomoforge.protocols.picking.coordinate_sets import (
    addresses,
    append_coordinates,
    column_default,
    read_coordinates,
)

SETS = ("coordinates", "other", "third", "fourth")


class PickingConsensusParams(ProtocolParams):
    radius_A: float = param(..., gt=0, le=1e6, unit="Å", help="picks of different sets this close are one particle")
    keep: Literal["all", "any", "at-least"] = param(
        "all", help="keep a particle chosen by all sets, by any, or by at least min_sets"
    )
    min_sets: int = param(2, ge=1, le=4, help="with keep=at-least: how many sets must have chosen it")
    symmetry: str = param("C1", help="point group of the reference (Cn, Dn, T, O, I), for combining orientations")

    @field_validator("symmetry")
    @classmethod
    def _known(cls, value: str) -> str:
        from tomoforge.methods.symmetry import canonical_symmetry

        return canonical_symmetry(value)


@dataclass(frozen=True, kw_only=True)
class ConsensusJob:
    """The job of ``consensus_task``: one tomogram's picks of each set (positions (n_k, 3) Å, rotations
    (n_k, 3, 3), whether each is oriented, scores), and the params."""

    positions_A: list[np.ndarray]
    rotations: list[np.ndarray]
    oriented: list[np.ndarray]
    scores: list[np.ndarray]
    params: PickingConsensusParams


def consensus_task(job: ConsensusJob) -> dict[str, np.ndarray]:
    """Task: the particles kept, as arrays: ``members`` (m, K) index of each one's pick in each set (−1: none),
    ``position`` (m, 3) Å, ``rotation`` (m, 3, 3), ``has_orientation`` (m,), ``score`` (m,) the mean score of
    its picks (NaN where none has one)."""
    from tomoforge.methods.picking.consensus import mean_rotations, merge_picks

    params = job.params
    merged = merge_picks(job.positions_A, params.radius_A)
    n_sets = len(job.positions_A)
    needed = {"all": n_sets, "any": 1, "at-least": params.min_sets}[params.keep]
    keep = merged.votes >= needed
    members = merged.members[keep]
    present = members >= 0
    safe = np.where(present, members, 0)

    def gathered(arrays: list[np.ndarray], fill: Any) -> np.ndarray:
        stacked = [
            np.where(present[:, k].reshape((-1,) + (1,) * (a.ndim - 1)), a[safe[:, k]], fill)
            if len(a)
            else np.full((len(members),) + a.shape[1:], fill)
            for k, a in enumerate(arrays)
        ]
        return np.stack(stacked, axis=1)

    rotations = gathered([np.asarray(r, float).reshape(-1, 3, 3) for r in job.rotations], 0.0)
    oriented = gathered([np.asarray(o, bool) for o in job.oriented], False) & present
    scores = gathered([np.asarray(s, float) for s in job.scores], np.nan)
    has_orientation = np.asarray(oriented.any(axis=1), dtype=bool)
    rotation = np.broadcast_to(np.eye(3), (len(members), 3, 3)).copy()
    if has_orientation.any():
        rotation[has_orientation] = mean_rotations(
            rotations[has_orientation], oriented[has_orientation], symmetry=params.symmetry
        )
    valid = ~np.isnan(scores)
    score = np.where(valid.any(axis=1), np.nansum(scores, axis=1) / np.maximum(valid.sum(axis=1), 1), np.nan)
    return {
        "members": members,
        "position": merged.positions_A[keep],
        "rotation": rotation,
        "has_orientation": has_orientation,
        "score": score,
    }


class PickingConsensus(Protocol):
    """Consensus of 2-4 pickers: particles chosen by all, any or at least N sets, positions averaged."""

    name = "picking-consensus"
    Params = PickingConsensusParams
    inputs = {
        "coordinates": InputSpec(Coordinate3D, help="first picker's coordinates"),
        "other": InputSpec(Coordinate3D, help="second picker's coordinates"),
        "third": InputSpec(Coordinate3D, help="third picker's coordinates", optional=True),
        "fourth": InputSpec(Coordinate3D, help="fourth picker's coordinates", optional=True),
    }
    outputs = {"coordinates": Coordinate3D}
    outputs_like = {"coordinates": "coordinates"}  # a Particle set gives Particles, every column kept
    params: PickingConsensusParams

    @cached_property
    def sets(self) -> list[dict[str, np.ndarray]]:
        return [read_coordinates(self.input(name)) for name in SETS if self.has_input(name)]

    def tasks(self) -> Iterator[Task[ConsensusJob]]:
        if self.params.keep == "at-least" and self.params.min_sets > len(self.sets):
            raise ValueError(f"min_sets = {self.params.min_sets} but only {len(self.sets)} coordinate sets are given")
        names = np.unique(np.concatenate([s["tomogram"] for s in self.sets]))
        for name in names:
            rows = [np.flatnonzero(s["tomogram"] == name) for s in self.sets]
            job = ConsensusJob(
                positions_A=[s["position"][r] for s, r in zip(self.sets, rows)],
                rotations=[s["rotation"][r] for s, r in zip(self.sets, rows)],
                oriented=[s["has_orientation"][r] for s, r in zip(self.sets, rows)],
                scores=[s["score"][r] for s, r in zip(self.sets, rows)],
                params=self.params,
            )
            yield Task(consensus_task, job, key=str(name))

    def collect(self, task: Task[Any], result: dict[str, np.ndarray]) -> None:
        members = result["members"]
        inputs = [self.input(name) for name in SETS if self.has_input(name)]
        output = self.output("coordinates")
        position = result["position"]
        columns: dict[str, Any] = {
            "tomogram": np.full(len(members), task.key),
            "x_A": position[:, 0],
            "y_A": position[:, 1],
            "z_A": position[:, 2],
            "score": result["score"],
            "has_orientation": result["has_orientation"],
            "rotation": result["rotation"],
        }
        # the other columns of the output's class (group, a Particle's half set, shifts, files …) from the first
        # set that chose the particle and has them; the class's default where none has
        carried = [c for c in output.spec.columns if c not in columns and c != "number"]
        for name in carried:
            kinds = [p[name].dtype for p in self.sets if name in p]
            default = np.asarray(column_default(output, name))
            columns[name] = np.full(len(members), default, dtype=np.result_type(default.dtype, *kinds))
        origins: list[list[str]] = [[] for _ in range(len(members))]
        found = np.zeros(len(members), dtype=bool)
        for k, (picks, source) in enumerate(zip(self.sets, inputs)):
            rows = np.flatnonzero(picks["tomogram"] == task.key)
            chosen = np.flatnonzero(members[:, k] >= 0)
            numbers = picks["number"][rows][members[chosen, k]]
            for i, address in zip(chosen.tolist(), addresses(source, numbers)):
                origins[i].append(address)
            first = chosen[~found[chosen]]
            for name in carried:
                if name in picks:
                    columns[name][first] = picks[name][rows][members[first, k]]
            found[chosen] = True
        append_coordinates(output, columns, origins)
        self.log(f"{task.key}: {len(members)} particles kept ({self.params.keep} of {len(inputs)} sets)")


__all__ = ["ConsensusJob", "PickingConsensus", "PickingConsensusParams", "consensus_task"]
