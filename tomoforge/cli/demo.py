"""``tomoforge demo``: simulate a tilt series with its truth, run the whole chain from movies to a tomogram in a
new project, and print the run table, the accuracy of each step against the truth and the provenance."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from tomoforge.cli.common import console, runs_table, styled
from tomoforge.engine import ExecutorConfig, Project, execute_run
from tomoforge.engine.provenance import format_provenance, provenance

# The simulator, torch and the accuracy measures are imported inside the functions that use them, so that
# the CLI's light commands (runs, show, protocols) start without them.
if TYPE_CHECKING:
    import numpy as np

    from tomoforge.simulate.run import SimulationResult


@dataclass
class DemoRuns:
    """The project and the run id of each step, by step name."""

    project: Project
    ids: dict[str, int] = field(default_factory=dict)
    executor: ExecutorConfig = field(default_factory=lambda: ExecutorConfig(kind="local", workers=1))

    def step(self, name: str, protocol: str, params: dict[str, Any], inputs: dict[str, str] | None = None) -> int:
        """Run ``protocol`` to the end as step ``name``; stop the demo with the run's error if it fails."""
        run_id = self.project.new_run(protocol, params, inputs or {}, label=f"demo: {name}", executor=self.executor)
        console.print(f"run {run_id} {protocol} ...", end="")
        t0 = time.perf_counter()
        state = execute_run(self.project, run_id)
        console.print(f" {state} in {time.perf_counter() - t0:.1f} s")
        if state != "finished":
            console.print(styled((self.project.run(run_id)["error"] or "", "red")))
            raise typer.Exit(1)
        self.ids[name] = run_id
        return run_id

    def out(self, name: str, output: str = "tilt_series") -> str:
        return f"{self.ids[name]}.{output}"

    def first(self, name: str, output: str = "tilt_series") -> Any:
        return next(iter(self.project.output_set(self.ids[name], output)))


def run_chain(runs: DemoRuns, sim: SimulationResult, binning: int) -> None:
    """Import → motion → X-rays → dose filter → coarse → fiducial model → fiducial alignment → assign →
    CTF estimation → CTF correction → binning → reconstruction, each a run of the project."""
    truth = sim.tilt_series[0].truth
    runs.step(
        "import",
        "import-tilt-series-movies",
        {
            "files_path": str(sim.tilt_series[0].mdoc.parent),
            "pattern": "*.mdoc",
            "gain_file": str(sim.gain),
            "voltage_kV": truth["voltage_kV"],
            "spherical_aberration_mm": truth["cs_mm"],
            "amplitude_contrast": truth["amplitude_contrast"],
        },
    )
    runs.step(
        "motion", "motion-correction", {"dose_weighting": False, "odd_even": True}, {"tilt_series": runs.out("import")}
    )
    runs.step("xrays", "xray-eraser", {}, {"tilt_series": runs.out("motion")})
    runs.step("dose", "dose-filter", {}, {"tilt_series": runs.out("xrays")})
    runs.step("coarse", "coarse-alignment", {"binning": binning}, {"tilt_series": runs.out("dose")})
    bead_nm = truth["fiducials"][0]["diameter_A"] / 10.0 if truth["fiducials"] else 10.0
    runs.step(
        "beads",
        "fiducial-model",
        {"binning": binning, "bead_diameter_nm": bead_nm},
        {"tilt_series": runs.out("coarse")},
    )
    runs.step(
        "fiducial",
        "fiducial-alignment",
        {"rotation": "grouped"},
        {"tilt_series": runs.out("coarse"), "landmark_models": runs.out("beads", "landmark_models")},
    )
    runs.step("assign", "assign-alignment", {}, {"source": runs.out("fiducial"), "tilt_series": runs.out("xrays")})
    runs.step("ctf", "ctf-estimation", {"use_nominal_defocus": True}, {"tilt_series": runs.out("assign")})
    runs.step("ctf_correct", "ctf-correction", {}, {"tilt_series": runs.out("assign"), "ctf": runs.out("ctf", "ctf")})
    runs.step("bin", "preprocess-tilt-series", {"binning": float(binning)}, {"tilt_series": runs.out("ctf_correct")})
    # the truth's shape: x across the tilt axis, y along it (a non-square image's sides would otherwise be
    # swapped when the axis is near the image's X, and the tomogram could not be compared with the truth)
    nz, ny, nx = truth["tomogram"]["shape_zyx"]
    runs.step(
        "reconstruct",
        "reconstruct-tomogram",
        {"method": "sirt", "iterations": 10, "invert": True, "thickness_px": nz, "size_y_px": ny, "size_x_px": nx},
        {"tilt_series": runs.out("bin")},
    )


def accuracy_report(runs: DemoRuns, sim: SimulationResult, binning: int) -> list[dict[str, Any]]:
    """Each step against the simulator's truth: [{step, measure, value (number), text}], in chain order."""
    from tomoforge.io.mrc import read_mrc
    from tomoforge.simulate import accuracy

    simulated = sim.tilt_series[0]
    truth = simulated.truth
    rows: list[dict[str, Any]] = []

    def add(step: str, measure: str, value: float, text: str) -> None:
        rows.append({"step": step, "measure": measure, "value": float(value), "text": text})

    motion = accuracy.motion_rms_error_px(truth, runs.first("motion"))
    add("motion-correction", "per-frame shift error, RMS (px)", motion, f"{motion:.3f} px")
    erased = sum(t.xray_count or 0 for t in runs.first("xrays").tilt_images)
    add(
        "xray-eraser",
        "pixels replaced (simulated: hits + hot pixels)",
        erased,
        f"{erased} ({len(truth['xrays'])} hits + {len(truth['hot_pixels_yx'])} hot pixels simulated)",
    )
    for step, protocol in (("coarse", "coarse-alignment"), ("fiducial", "fiducial-alignment")):
        err = accuracy.alignment_errors(truth, runs.first(step), binning=binning)
        add(
            protocol,
            f"bead reprojection error, RMS (px at bin {binning})",
            err["reprojection_rms_px"],
            f"{err['reprojection_rms_px']:.2f} px",
        )
    add(
        "fiducial-alignment",
        "tilt axis angle error (°)",
        err["tilt_axis_error_deg"],
        f"{err['tilt_axis_error_deg']:+.2f}°",
    )
    add(
        "fiducial-alignment",
        "tilt offset error, levelled specimen (°)",
        err["levelled_tilt_offset_error_deg"],
        f"{err['levelled_tilt_offset_error_deg']:+.2f}° (truth {truth['tilt_offset_deg']:+.2f}° + slab "
        f"{accuracy.slab_tilt_about_y_deg(truth):+.2f}°)",
    )
    ctf = accuracy.defocus_errors(truth, runs.first("ctf", "ctf"))
    add(
        "ctf-estimation",
        "median |defocus error|, |tilt| ≤ 40° (Å)",
        ctf["median_error_low_tilt_A"],
        f"{ctf['median_error_low_tilt_A']:.0f} Å",
    )
    add(
        "ctf-estimation",
        "median |defocus error|, all tilts (Å)",
        ctf["median_error_all_A"],
        f"{ctf['median_error_all_A']:.0f} Å",
    )
    tomo = runs.first("reconstruct", "tomograms")
    volume = read_mrc(runs.project.root / tomo.file)
    true_volume = read_mrc(simulated.tomogram)
    if volume.shape != true_volume.shape:
        raise RuntimeError(f"the tomogram's shape {volume.shape} differs from the truth's {true_volume.shape}")
    r, shift = accuracy.tomogram_correlation(true_volume, volume, tomo.pixel_size_A, resolution_A=40.0)
    add(
        "reconstruct-tomogram",
        "Pearson r with the true potential (40 Å low-pass)",
        r,
        f"{r:.3f} (free shift zyx {', '.join(f'{v:+.1f}' for v in shift)} voxels)",
    )
    reference = reconstruction_with_true_alignment(runs, truth, volume.shape, tomo.pixel_size_A)
    r, shift = accuracy.tomogram_correlation(reference, volume, tomo.pixel_size_A, resolution_A=40.0)
    add(
        "reconstruct-tomogram",
        "Pearson r with the same SIRT from the true alignment",
        r,
        f"{r:.3f} (free shift zyx {', '.join(f'{v:+.1f}' for v in shift)} voxels)",
    )
    return rows


def reconstruction_with_true_alignment(
    runs: DemoRuns, truth: dict[str, Any], shape_zyx: tuple[int, int, int], voxel_A: float
) -> np.ndarray:
    """The demo's SIRT of the binned, CTF-corrected series with the simulator's projection model instead of the
    recovered one (tilts + the slab's tilt about Y: the levelled frame an alignment chooses)."""
    import numpy as np
    import torch

    from tomoforge.methods.align.projection_model import ProjectionModel
    from tomoforge.methods.reconstruct import VolumeGeometry, reconstruct_sirt
    from tomoforge.protocols.tilt_stacks import image_sources, read_images
    from tomoforge.simulate import accuracy

    ts = runs.first("bin")
    views = [t for t in ts.tilt_images if not t.excluded]
    files = [s for s, t in zip(image_sources(ts, runs.project.absolute)["file"], ts.tilt_images) if not t.excluded]
    true = {t["acquisition_order"]: t for t in truth["tilts"]}
    level = accuracy.slab_tilt_about_y_deg(truth)
    rows = [true[v.acquisition_order] for v in views]
    geometry = ProjectionModel(
        [t["y_tilt_deg"] + level for t in rows],
        [t["z_rot_deg"] for t in rows],
        [[t["x_shift_A"], t["y_shift_A"]] for t in rows],
        [t["x_tilt_deg"] for t in rows],
    )
    volume = reconstruct_sirt(
        read_images(files), voxel_A, geometry, VolumeGeometry(shape_zyx, voxel_A), iterations=10, invert=True
    )
    return volume.cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)


def demo(
    outdir: Path = typer.Argument(Path("tomoforge-demo"), help="new folder for the data and the project"),
    preset: str = typer.Option("small", help="simulator preset: small (41 tilts of 1024²) or tiny"),
    seed: int = typer.Option(0, help="random seed of the simulation"),
    binning: int | None = typer.Option(
        None, help="binning for alignment and the tomogram (default: that of the simulated truth tomogram, 4 for small)"
    ),
    simulation: Path | None = typer.Option(None, help="use this finished simulation instead of simulating"),
    set_: list[str] = typer.Option([], "--set", help="simulator override key=value (see tomoforge simulate)"),
) -> None:
    """Simulate a tilt series and run the whole chain to a tomogram; print timings and accuracy vs the truth."""
    from tomoforge.simulate import load_simulation, simulate
    from tomoforge.simulate.config import parse_overrides

    if outdir.exists() and any(outdir.iterdir()):
        console.print(styled(("error: ", "red"), f"{outdir} is not empty; give a new folder"))
        raise typer.Exit(1)
    t0 = time.perf_counter()
    if simulation is not None:
        sim = load_simulation(simulation)
        console.print(f"using the simulation in {simulation}")
    else:
        console.print(f"simulating the '{preset}' preset (seed {seed}) into {outdir / 'raw'} ...")
        sim = simulate(outdir / "raw", preset=preset, seed=seed, overrides=parse_overrides(set_), progress=True)
        console.print(f"simulated in {sim.seconds:.1f} s")
    binning = binning or int(sim.tilt_series[0].truth["tomogram"]["binning"])
    runs = DemoRuns(Project.create(outdir / "project"))
    run_chain(runs, sim, binning)
    console.print(runs_table(runs.project))
    report = accuracy_report(runs, sim, binning)
    table = Table("step", "against the truth", "value", title="accuracy")
    for row in report:
        table.add_row(row["step"], row["measure"], row["text"])
    console.print(table)
    (outdir / "accuracy.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    console.print(f"accuracy figures: {outdir / 'accuracy.json'}")
    tomo = runs.first("reconstruct", "tomograms")
    console.print(f"tomogram: {runs.project.root / tomo.file}")
    address = f"{runs.out('reconstruct', 'tomograms')}/{tomo.name}"
    console.print(f"\ntomoforge provenance {address}")
    console.print(format_provenance(provenance(runs.project, address)))
    console.print(f"\nproject: {runs.project.root}  (try: tomoforge -p {runs.project.root} runs)")
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s")
