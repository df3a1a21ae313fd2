"""Exclude CTFs: flag CTF entries by list or by criteria; flagged entries are kept and can be restored.

Criteria (each off at 0): fit resolution worse (larger) than X Å, astigmatism (DefocusU − DefocusV)
above Y Å, defocus (mean of U and V) further than Z Å from what its 4 nearest included entries in tilt
predict (a robust line through them, so that a defocus gradient over the series is no outlier). With ``propagate`` and the tilt series given, the tilt images
whose CTF entry is excluded are excluded too (as exclude-views does: a flag, never a deletion).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

from tomoforge.engine import Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.model import TiltSeries
from tomoforge.model.ctf import CTFSeries, CTFTiltImage
from tomoforge.model.quantities import TiltAngleDeg
from tomoforge.protocols.ctf.common import ctf_inputs, tilt_series_named


class ExcludeCTFParams(ProtocolParams):
    acquisition_orders: list[int] = param([], help="exclude the entries of these views (acquisition order, 1 = first)")
    tilt_angles_deg: list[TiltAngleDeg] = param([], unit="deg", help="exclude the entries at these tilts (±0.05°)")
    max_fit_resolution_A: float = param(
        0.0,
        ge=0,
        unit="Å",
        help="exclude an entry whose fit resolution is worse "
        "(larger) than this (0 = off; an entry without one is kept)",
    )
    max_astigmatism_A: float = param(
        0.0, ge=0, unit="Å", help="exclude an entry whose DefocusU − DefocusV is above this (0 = off)"
    )
    max_defocus_jump_A: float = param(
        0.0,
        ge=0,
        unit="Å",
        help="exclude an entry whose defocus differs from the "
        "line through its 4 nearest entries in tilt by more than this (0 = off)",
    )
    restore: bool = param(
        False, help="first clear every exclusion of the input (CTF entries, and views when propagating)"
    )
    propagate: bool = param(
        False, help="also exclude the tilt images whose CTF entry is excluded (needs the tilt_series input)"
    )


@dataclass(frozen=True, kw_only=True)
class CTFExclusionJob:
    """The job of ``ctf_exclusion_task``: the CTF entries of one series and the protocol's criteria."""

    entries: list[CTFTiltImage]
    params: ExcludeCTFParams


def ctf_exclusion_task(job: CTFExclusionJob) -> dict[str, list[Any]]:
    """Task: the exclusion flag and its reason for each entry, by list first, then by the criteria."""
    entries, p = job.entries, job.params
    flags = [e.excluded and not p.restore for e in entries]
    reasons = ["" for _ in entries]
    for i, e in enumerate(entries):
        listed = e.acquisition_order in p.acquisition_orders or any(
            abs(e.tilt_angle_deg - a) <= 0.05 for a in p.tilt_angles_deg
        )
        res, astig = e.fit_resolution_A, e.defocus_u_A - e.defocus_v_A
        why = (
            "listed"
            if listed
            else f"fit resolution {res:.1f} Å"
            if p.max_fit_resolution_A and res is not None and res > p.max_fit_resolution_A
            else f"astigmatism {astig:.0f} Å"
            if p.max_astigmatism_A and astig > p.max_astigmatism_A
            else ""
        )
        if why and not flags[i]:
            flags[i], reasons[i] = True, why
    jump = p.max_defocus_jump_A
    kept = sorted((i for i in range(len(entries)) if not flags[i]), key=lambda i: entries[i].tilt_angle_deg)
    if jump > 0 and len(kept) >= 3:
        tilt = np.array([entries[i].tilt_angle_deg for i in kept])
        defocus = np.array([entries[i].defocus_A for i in kept])
        for j, i in enumerate(kept):
            local = neighbours_defocus(tilt, defocus, j)
            if abs(defocus[j] - local) > jump:
                flags[i], reasons[i] = (
                    True,
                    f"defocus {defocus[j]:.0f} Å, {defocus[j] - local:+.0f} Å from its neighbours",
                )
    return {"excluded": flags, "reasons": reasons}


def neighbours_defocus(tilt_deg: np.ndarray, defocus_A: np.ndarray, j: int) -> float:
    """Defocus (Å) the 4 entries nearest to entry ``j`` in tilt order predict at its tilt: a Theil–Sen line
    (median slope of the pairs, median intercept), so a defocus gradient over the series and one bad
    neighbour do not move it."""
    lo = min(max(j - 2, 0), max(len(tilt_deg) - 5, 0))
    near = [m for m in range(lo, min(lo + 5, len(tilt_deg))) if m != j]
    t, d = tilt_deg[near], defocus_A[near]
    a, b = np.triu_indices(len(near), 1)
    steps = t[b] - t[a]
    slope = float(np.median((d[b] - d[a])[steps != 0] / steps[steps != 0])) if np.any(steps != 0) else 0.0
    return float(np.median(d - slope * t) + slope * tilt_deg[j])


class ExcludeCTFs(Protocol):
    """Exclude CTFs: flag CTF entries by list or criteria (fit resolution, astigmatism, defocus outliers)."""

    name = "exclude-ctfs"
    label = "exclude CTFs"
    Params = ExcludeCTFParams
    inputs: ClassVar = ctf_inputs("CTF series to screen", "their tilt series, to propagate the exclusion to the views")
    outputs: ClassVar = {"ctf": CTFSeries, "tilt_series": TiltSeries}

    def tasks(self) -> Iterator[Task[Any]]:
        p: ExcludeCTFParams = self.params
        ctfs = self.input("ctf")
        if p.propagate and not self.has_input("tilt_series"):
            raise ValueError("exclude-ctfs: propagate needs the tilt_series input")
        for ctf in cast("Iterator[CTFSeries]", iter(ctfs)):
            job = CTFExclusionJob(entries=list(ctf.entries), params=p)
            yield Task(ctf_exclusion_task, job, key=ctf.name, origin=(origin_of(ctfs, ctf.name),))

    def collect(self, task: Task[Any], result: dict[str, list[Any]]) -> None:
        ctf = cast(CTFSeries, self.input("ctf").get(task.key))
        entries = []
        for e, flag, why in zip(ctf.entries, result["excluded"], result["reasons"]):
            if why:
                self.log(f"{ctf.name}: CTF of view {e.acquisition_order} ({e.tilt_angle_deg:+.1f}°) excluded: {why}")
            entries.append(e.model_copy(update={"excluded": flag}))
        self.log(f"{ctf.name}: {sum(result['excluded'])} of {len(entries)} CTF entries excluded")
        self.emit("ctf", ctf.model_copy(update={"entries": entries}), task)
        if not self.params.propagate:
            return
        ts = tilt_series_named(self, ctf.name)
        if ts is None:
            self.log(f"{ctf.name}: no tilt series of that name to propagate to")
            return
        flagged = {e.acquisition_order for e, f in zip(ctf.entries, result["excluded"]) if f}
        images = [
            t.model_copy(
                update={"excluded": t.acquisition_order in flagged or (t.excluded and not self.params.restore)}
            )
            for t in ts.tilt_images
        ]
        self.emit("tilt_series", ts.model_copy(update={"tilt_images": images}), task)
