"""import-particles: a RELION 5 / WarpTools particle set (2D tilt stacks or 3D subtomograms) as Particles.

2D stacks become one view stack per tomogram in the ``io.particle_views`` format (the particles' visible
views, consecutive, with each view's matrix, CTF at the particle's height and dose), so that
``reconstruct-particle`` reads one format whatever made the views. 3D subtomograms keep their files (and
``rlnCtfImage`` as the weight file). The geometry is converted as ``io.relion5_particles`` explains.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tomoforge.engine import Protocol, ProtocolParams, Task, param
from tomoforge.model import Particle


class ImportParticlesParams(ProtocolParams):
    particles_star: str = param(..., help="RELION 5 / WarpTools particle STAR file")
    tomograms_star: str = param(..., help="its tomograms STAR file (per-tilt projection, CTF and dose)")


@dataclass(frozen=True, kw_only=True)
class ImportParticlesJob:
    """The job of ``import_particles_task``: the two STAR files and the output folder."""

    particles_star: str
    tomograms_star: str
    out_dir: str


def import_particles_task(job: ImportParticlesJob) -> dict[str, Any]:
    """Task: read the particles; for 2D stacks write one view stack (+ metadata) per tomogram. Returns the
    Particle columns as lists and a summary."""
    import numpy as np

    from tomoforge.io.mrc import read_mrc, write_mrc
    from tomoforge.io.particle_views import ParticleViews, write_particle_views
    from tomoforge.io.relion5_particles import particle_depth_defocus, read_relion5_particles

    rp = read_relion5_particles(job.particles_star, job.tomograms_star)
    n = len(rp.tomograms)
    names = [str(t).removesuffix(".tomostar") for t in rp.tomograms]
    files, index, weights = [""] * n, np.zeros(n, np.int64), [""] * n
    views_written = 0
    if rp.stacks_2d and rp.visible is not None:
        for tomo in sorted(set(names)):
            members = [i for i in range(n) if names[i] == tomo]
            stack: list[np.ndarray] = []
            rows: list[tuple[np.ndarray, ...]] = []
            for i in members:
                tilts = rp.tilts[str(rp.tomograms[i])]
                seen = rp.visible[i] & (tilts.ctf_scale > 0)
                images = read_mrc(rp.images[i]).astype(np.float32)
                if images.ndim != 3 or len(images) != len(seen):
                    raise ValueError(f"{rp.images[i]}: {images.shape[0]} sections, its tomogram has {len(seen)} tilts")
                u, v = particle_depth_defocus(rp, i)
                index[i] = int(sum(len(s) for s in stack))
                stack.append(images[seen])
                rows.append(
                    (
                        np.full(int(seen.sum()), i),
                        tilts.projection[seen],
                        u[seen],
                        v[seen],
                        tilts.astigmatism_deg[seen],
                        tilts.dose_e_A2[seen],
                    )
                )
            path = Path(job.out_dir) / f"{tomo}.mrcs"
            data = np.concatenate(stack)
            write_mrc(path, data, rp.pixel_size_A, overwrite=True)
            cols = [np.concatenate(c) for c in zip(*rows)]
            tilt = np.degrees(np.arccos(np.clip(cols[1][:, 2, 2], -1, 1)))
            write_particle_views(
                path,
                ParticleViews(
                    particle=cols[0].astype(np.int64),
                    view_matrix=cols[1],
                    defocus_u_A=cols[2],
                    defocus_v_A=cols[3],
                    astigmatism_deg=cols[4],
                    dose_e_A2=cols[5],
                    tilt_deg=tilt,
                    pixel_size_A=rp.pixel_size_A,
                    voltage_kV=rp.voltage_kV,
                    cs_mm=rp.cs_mm,
                    amplitude_contrast=rp.amplitude_contrast,
                    ctf_premultiplied=rp.ctf_premultiplied,
                    dose_weighted=False,
                ),
            )
            views_written += len(data)
            for i in members:
                files[i] = str(path)
    else:
        files = [str(p) for p in rp.images]
    half = rp.half_sets.copy()
    unset = half == 0
    half[unset] = 1 + np.arange(n)[unset] % 2  # alternate, when the STAR has no rlnRandomSubset
    return {
        "columns": {
            "number": np.arange(n).tolist(),
            "tomogram": names,
            "tilt_series": names,
            "x_A": rp.positions_A[:, 0].tolist(),
            "y_A": rp.positions_A[:, 1].tolist(),
            "z_A": rp.positions_A[:, 2].tolist(),
            "rotation": rp.rotations.tolist(),
            "has_orientation": [True] * n,
            "half_set": half.tolist(),
            "file": files,
            "index": index.tolist(),
            "weight_file": weights,
        },
        "views": views_written,
        "stacks_2d": rp.stacks_2d,
        "pixel_size_A": rp.pixel_size_A,
    }


class ImportParticles(Protocol):
    """Import particles: a RELION 5 / WarpTools particle STAR (2D tilt stacks or 3D subtomograms)."""

    name = "import-particles"
    Params = ImportParticlesParams
    inputs: ClassVar[dict[str, Any]] = {}
    outputs = {"particles": Particle}
    params: ImportParticlesParams

    def tasks(self) -> Iterator[Task[ImportParticlesJob]]:
        job = ImportParticlesJob(
            particles_star=self.params.particles_star,
            tomograms_star=self.params.tomograms_star,
            out_dir=str(self.context.out_dir),
        )
        yield Task(import_particles_task, job, key=Path(self.params.particles_star).name)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        import numpy as np

        columns = dict(result["columns"])
        columns["file"] = [self.relative(f) for f in columns["file"]]
        arrays = {k: np.asarray(v) for k, v in columns.items()}
        count = self.output("particles").append_columns(arrays)
        kind = f"2D tilt stacks, {result['views']} views" if result["stacks_2d"] else "3D subtomograms"
        self.log(f"{count} particles ({kind}) at {result['pixel_size_A']:.3f} Å/px")


__all__ = ["ImportParticles", "ImportParticlesJob", "ImportParticlesParams", "import_particles_task"]
