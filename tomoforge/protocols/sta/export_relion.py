"""export-relion5: a project's aligned tilt series (with their CTF), tomograms and particles as a RELION 5
tomography project (``tomoforge.io.relion5_export``): ``tomograms.star`` with one ``tilt_series/NAME.star`` per
tilt series, ``particles.star`` and ``optimisation_set.star`` in the run's ``out/`` folder, to run RELION 5 from
(its paths are relative to that folder; the images are named by their absolute paths).

Without a tomogram of a tilt series, its tomogram's size is the image's in x and y and ``thickness_A`` in z.
Particles are placed in their tilt series' frame (their tomogram's origin added, as extract-pseudo-subtomograms
does); a tomogram whose centre is not the tilt series' (origin ≠ 0) is not named in tomograms.star.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import Coordinate3D, CTFSeries, TiltSeries, Tomogram
from tomoforge.protocols.sta.extract import centres_A, ctf_per_view, read_coordinates
from tomoforge.protocols.tilt_stacks import image_sources


class ExportRelion5Params(ProtocolParams):
    thickness_A: float = param(2000.0, gt=0, le=1e5, unit="Å", help="tomogram thickness where no tomogram is given")
    copy_tomograms: bool = param(True, help="copy each tomogram into the export (tomograms/rec_NAME.mrc)")


@dataclass(frozen=True, kw_only=True)
class ExportRelion5Job:
    """The job of ``export_relion5_task``: the tilt series as ``ExportTiltSeries``, the particles (or None), the
    tomogram files to copy ({tilt series: absolute path}) and the output folder."""

    series: tuple[Any, ...]
    particles: Any
    tomogram_sources: dict[str, str]
    out_dir: str


def export_relion5_task(job: ExportRelion5Job) -> dict[str, Any]:
    """Task: write the RELION 5 project; returns ``{"files": [paths], "particles": n}``."""
    import shutil

    from tomoforge.io.relion5_export import write_relion5_project

    out = Path(job.out_dir)
    files: list[Path] = []
    (out / "tomograms").mkdir(parents=True, exist_ok=True)
    for name, source in job.tomogram_sources.items():
        files.append(Path(shutil.copyfile(source, out / "tomograms" / f"rec_{name}.mrc")))
    files += write_relion5_project(out, job.series, job.particles)
    n = 0 if job.particles is None else len(job.particles.tomograms)
    return {"files": [str(f) for f in files], "particles": n}


class ExportRelion5(Protocol):
    """Export to RELION 5: tomograms.star, per-tilt-series STAR, particles.star and optimisation_set.star."""

    name = "export-relion5"
    Params = ExportRelion5Params
    params: ExportRelion5Params
    inputs: ClassVar = {
        "tilt_series": InputSpec(TiltSeries, help="aligned tilt series"),
        "ctf": InputSpec(CTFSeries, help="their CTF (defocus per view)", optional=True),
        "tomograms": InputSpec(Tomogram, help="their tomograms (size, binning, file, origin)", optional=True),
        "particles": InputSpec(
            Coordinate3D, help="particles or coordinates (Å from their tomogram's centre)", optional=True
        ),
    }
    outputs: ClassVar = {"tilt_series": TiltSeries}

    def tasks(self) -> Iterator[Task[ExportRelion5Job]]:
        from tomoforge.io.mrc import mrc_shape
        from tomoforge.io.relion5_export import ExportParticles, ExportTiltSeries, relion_image_name

        p = self.params
        ctfs = {c.name: c for c in cast("list[CTFSeries]", list(self.input("ctf")))} if self.has_input("ctf") else {}
        tomograms = cast("list[Tomogram]", list(self.input("tomograms"))) if self.has_input("tomograms") else []
        of_series = {t.tilt_series or t.name: t for t in tomograms}
        series, copies = [], {}
        for ts in cast("list[TiltSeries]", list(self.input("tilt_series"))):
            if not ts.aligned:
                self.log(f"WARNING tilt series {ts.name} is not aligned: its nominal geometry is exported")
            views = ts.included()
            model = ts.projection_model(views)
            index = {t.acquisition_order: i for i, t in enumerate(ts.tilt_images)}
            sources = image_sources(ts, self.absolute)["file"]
            chosen = [sources[index[t.acquisition_order]] for t in views]
            stack = len({f for f, _ in chosen}) < len(chosen) or any(i > 0 for _, i in chosen)
            defocus = ctf_per_view(views, ctfs.get(ts.name))
            if not defocus:
                self.log(f"WARNING {ts.name}: no CTF for every included view: no defocus columns written")
            ac = ts.acquisition
            tomo = of_series.get(ts.name)
            if tomo is not None:
                binning = tomo.pixel_size_A / ac.pixel_size_A  # the tomogram's voxel in tilt-series pixels
                size = tuple(int(round(s * binning)) for s in tomo.size_xyz)
                centred = not np.any(np.asarray(tomo.origin_A))
                if p.copy_tomograms and centred:
                    copies[ts.name] = str(self.absolute(tomo.file))
                elif not centred:
                    self.log(f"{ts.name}: tomogram {tomo.name} is off the tilt series' centre: not named")
            else:
                shape = mrc_shape(chosen[0][0])
                size = (int(shape[-1]), int(shape[-2]), int(round(p.thickness_A / ac.pixel_size_A)))
            series.append(
                ExportTiltSeries(
                    name=ts.name,
                    images=tuple(relion_image_name(f, i, stack) for f, i in chosen),
                    nominal_tilt_deg=tuple(t.tilt_angle_deg for t in views),
                    tilt_axis_deg=ac.tilt_axis_angle_deg,
                    x_tilt_deg=tuple(model.x_tilt_deg.tolist()),
                    y_tilt_deg=tuple(model.tilt_deg.tolist()),
                    z_rot_deg=tuple(model.z_rot_deg.tolist()),
                    x_shift_A=tuple(model.shift_A[:, 0].tolist()),
                    y_shift_A=tuple(model.shift_A[:, 1].tolist()),
                    pre_exposure_e_A2=tuple(max(0.0, t.accumulated_dose_e_A2 - t.dose_e_A2) for t in views),
                    defocus=tuple(tuple(d) for d in defocus),  # type: ignore[misc]
                    pixel_size_A=ac.pixel_size_A,
                    voltage_kV=ac.voltage_kV,
                    cs_mm=ac.spherical_aberration_mm,
                    amplitude_contrast=ac.amplitude_contrast,
                    size_xyz_px=size,  # type: ignore[arg-type]
                    tomogram_binning=tomo.pixel_size_A / ac.pixel_size_A if tomo is not None else 1.0,
                    tomogram_file=f"tomograms/rec_{ts.name}.mrc" if ts.name in copies else "",
                )
            )
        particles = None
        if self.has_input("particles"):
            columns = read_coordinates(self.input("particles"))
            centres = centres_A(columns)
            for tomo in tomograms:
                rows = columns["tomogram"] == tomo.name
                centres[rows] += np.asarray(tomo.origin_A)
                columns["tilt_series"][rows] = tomo.tilt_series or tomo.name
            known = np.isin(columns["tilt_series"], [s.name for s in series])
            if not np.all(known):
                self.log(f"WARNING {int(np.sum(~known))} particle(s) lie in no input tilt series: left out")
            particles = ExportParticles(
                tomograms=np.asarray(columns["tilt_series"][known], dtype=str),
                positions_A=centres[known],
                rotations=columns["rotation"][known],
                half_sets=columns["half_set"][known],
                numbers=columns["number"][known],
            )
        job = ExportRelion5Job(
            series=tuple(series), particles=particles, tomogram_sources=copies, out_dir=str(self.context.out_dir)
        )
        yield Task(export_relion5_task, job, key="relion5")

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        files = [Path(f).name for f in result["files"]]
        self.log(f"wrote {len(files)} file(s) ({result['particles']} particles): {', '.join(files[:12])}")
        source = self.input("tilt_series")
        for ts in cast("ExportRelion5Job", task.job).series:
            self.emit("tilt_series", source.get(ts.name), task)


__all__ = ["ExportRelion5", "ExportRelion5Job", "ExportRelion5Params", "export_relion5_task"]
