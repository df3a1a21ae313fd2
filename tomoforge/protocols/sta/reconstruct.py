"""reconstruct-particle: the map of a particle set from its view stacks (``io.particle_views``), per half
set, by Fourier insertion (``methods.sta.insertion``) with each view's CTF and dose weight and the map's
symmetry; half maps, their FSC (PNG) and the full map (a ``Volume``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import Particle
from tomoforge.model.volume import FSC, Volume


class ReconstructParticleParams(ProtocolParams):
    symmetry: str = param("C1", help="point group of the map (Cn, Dn, T, O, I)")
    binning: int = param(1, ge=1, help="bin the views by this (Fourier crop) first")
    padding: float = param(2.0, ge=1, le=4, help="the 3D grid oversampled by this (RELION's --pad)")
    pad_views: bool = param(
        False, help="views zero-padded to the grid before their transform (4x slower); off: RELION's sampling"
    )
    sphere: bool = param(
        True, help="keep the maps' inscribed sphere, the rest its mean (RELION); needed by unpadded views"
    )
    wiener: float = param(1e-3, ge=0, help="constant 1/SNR as a fraction of the mean weight")
    fsc_regularise: bool = param(True, help="then regularise with τ² from the half maps' FSC (RELION)")
    use_ctf: bool = param(True, help="weight by the views' CTF (and dose); off for views without one")
    max_resolution_A: float = param(
        0.0, ge=0, help="skip frequencies finer than this (Å; 0: up to Nyquist), RELION's --maxres"
    )
    batch: int = param(64, ge=1, help="views inserted at a time (64 on a CPU keeps the grid in cache; more on a GPU)")


@dataclass(frozen=True, kw_only=True)
class ReconstructParticleJob:
    """The job of ``reconstruct_particle_task``: the particles (number, rotation, half set), one view stack
    per tilt series (absolute paths), where to write, the parameters."""

    numbers: list[int]
    rotations: list[list[list[float]]]
    half_sets: list[int]
    stacks: list[str]
    out_base: str
    params: ReconstructParticleParams


def reconstruct_particle_task(job: ReconstructParticleJob) -> dict[str, Any]:
    """Task: half maps, map and FSC into ``{out_base}_half1.mrc``, ``_half2.mrc``, ``.mrc``, ``_fsc.png``."""
    import time

    import numpy as np
    import torch

    from tomoforge.io.mrc import read_mrc, write_mrc
    from tomoforge.io.particle_views import read_particle_views
    from tomoforge.methods.fourier import bin_fourier
    from tomoforge.methods.sta.fsc import half_map_fsc
    from tomoforge.methods.sta.insertion import (
        ViewFilters,
        insert_views,
        new_accumulator,
        reconstruct_map,
        tau2_from_fsc,
    )
    from tomoforge.protocols.sta.plots import fsc_plot

    start = time.perf_counter()
    p = job.params
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    numbers = np.asarray(job.numbers, np.int64)
    order = np.argsort(numbers)
    rotations = np.asarray(job.rotations, float)
    halves = np.asarray(job.half_sets, np.int64)
    accumulators: dict[int, Any] = {}
    pixel, inserted = 0.0, 0
    for stack in job.stacks:
        meta = read_particle_views(stack)
        where = np.searchsorted(numbers[order], meta.particle)
        where = np.clip(where, 0, len(order) - 1)
        known = numbers[order][where] == meta.particle
        rows = np.flatnonzero(known)
        if len(rows) == 0:
            continue
        particle = order[where[rows]]
        images = torch.as_tensor(read_mrc(stack)[rows].astype(np.float32), device=device)
        if p.binning > 1:
            images = bin_fourier(images, p.binning)
        pixel = meta.pixel_size_A * p.binning
        filters = ViewFilters(
            defocus_u_A=meta.defocus_u_A[rows],
            defocus_v_A=meta.defocus_v_A[rows],
            astigmatism_deg=meta.astigmatism_deg[rows],
            dose_e_A2=meta.dose_e_A2[rows],
            pixel_size_A=pixel,
            voltage_kV=meta.voltage_kV,
            cs_mm=meta.cs_mm,
            amplitude_contrast=meta.amplitude_contrast,
            ctf_premultiplied=meta.ctf_premultiplied,
            dose_weighted=meta.dose_weighted,
        )
        views_rot = meta.view_matrix[rows] @ rotations[particle]
        for half in (1, 2):
            pick = np.flatnonzero(halves[particle] == half)
            if len(pick) == 0:
                continue
            if half not in accumulators:
                accumulators[half] = new_accumulator(images.shape[-1], padding=p.padding, device=device)
            insert_views(
                accumulators[half],
                images[pick],
                views_rot[pick],
                filters=filters.take(pick) if p.use_ctf else None,
                symmetry=p.symmetry,
                batch=p.batch,
                pad_views=p.pad_views,
                max_shell=images.shape[-1] * pixel / p.max_resolution_A if p.max_resolution_A > 0 else None,
            )
            inserted += len(pick)
    if set(accumulators) != {1, 2}:
        raise ValueError(f"reconstruct-particle needs views of both half sets; got half set(s) {sorted(accumulators)}")
    maps = {h: reconstruct_map(accumulators[h], wiener=p.wiener, sphere=p.sphere) for h in (1, 2)}
    fsc = half_map_fsc(maps[1], maps[2], pixel)
    full = accumulators[1].add(accumulators[2])
    if p.fsc_regularise:
        maps = {
            h: reconstruct_map(accumulators[h], tau2=tau2_from_fsc(accumulators[h], fsc.correlation), sphere=p.sphere)
            for h in (1, 2)
        }
        fsc = half_map_fsc(maps[1], maps[2], pixel)
        c = np.clip(fsc.correlation, 0, 0.999)
        average = reconstruct_map(full, tau2=tau2_from_fsc(full, 2 * c / (1 + c)), sphere=p.sphere)
    else:
        average = reconstruct_map(full, wiener=p.wiener, sphere=p.sphere)
    files = {}
    for label, volume in (("half1_file", maps[1]), ("half2_file", maps[2]), ("file", average)):
        suffix = {"half1_file": "_half1", "half2_file": "_half2", "file": ""}[label]
        files[label] = str(write_mrc(f"{job.out_base}{suffix}.mrc", volume.cpu().numpy(), pixel, overwrite=True))
    png = fsc_plot(f"{job.out_base}_fsc.png", "half maps", fsc.frequency, [("FSC", fsc.correlation)])
    return {
        **files,
        "png": png,
        "pixel_size_A": pixel,
        "frequency": fsc.frequency.tolist(),
        "fsc": fsc.correlation.tolist(),
        "resolution_A": fsc.resolution_A(),
        "views": inserted,
        "seconds": time.perf_counter() - start,
        "device": str(device),
    }


class ReconstructParticle(Protocol):
    """Reconstruct particle: Fourier insertion of the particles' views, per half set, with CTF, dose and symmetry."""

    name = "reconstruct-particle"
    Params = ReconstructParticleParams
    inputs: ClassVar = {"particles": InputSpec(Particle, help="particles with view stacks (io.particle_views)")}
    outputs: ClassVar = {"volumes": Volume}
    params: ReconstructParticleParams

    def tasks(self) -> Iterator[Task[ReconstructParticleJob]]:
        import numpy as np

        from tomoforge.methods.symmetry import canonical_symmetry

        canonical_symmetry(self.params.symmetry)  # a bad name is the user's error, before any work
        particles = self.input("particles")
        cols = particles.arrays("key", "number", "rotation", "half_set", "tilt_series")
        halves = cols["half_set"].copy()
        unset = halves == 0
        halves[unset] = 1 + cols["number"][unset] % 2
        stacks = []
        for series in sorted(set(cols["tilt_series"].tolist())):
            first = int(np.flatnonzero(cols["tilt_series"] == series)[0])
            item = cast(Particle, particles.get(str(cols["key"][first])))
            stacks.append(str(self.absolute(item.file)))
        job = ReconstructParticleJob(
            numbers=cols["number"].tolist(),
            rotations=cols["rotation"].tolist(),
            half_sets=halves.tolist(),
            stacks=stacks,
            out_base=str(self.out_path("map")),
            params=self.params,
        )
        yield Task(reconstruct_particle_task, job, key="map")

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        from tomoforge.methods.symmetry import canonical_symmetry

        fsc = FSC(label="half maps", frequency_per_A=result["frequency"], correlation=result["fsc"])
        volume = Volume(
            name="map",
            file=self.relative(result["file"]),
            half1_file=self.relative(result["half1_file"]),
            half2_file=self.relative(result["half2_file"]),
            pixel_size_A=result["pixel_size_A"],
            symmetry=canonical_symmetry(self.params.symmetry),
            fsc=fsc,
        )
        self.emit("volumes", volume, task)
        self.log(
            f"{result['views']} views inserted in {result['seconds']:.1f} s on {result['device']}; "
            f"half-map FSC 0.143 at {result['resolution_A']:.1f} Å (unmasked); FSC plot {result['png']}"
        )


__all__ = ["ReconstructParticle", "ReconstructParticleJob", "ReconstructParticleParams", "reconstruct_particle_task"]
