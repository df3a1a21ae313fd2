"""``tomoforge demo``: simulate, create a project, run the first steps, show runs, accuracy and provenance."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from tomoforge.engine import ExecutorConfig, Project, execute_run
from tomoforge.engine.provenance import format_provenance, provenance

console = Console(soft_wrap=True)


def _step(project: Project, protocol: str, params: dict, inputs: dict | None = None) -> int:
    run_id = project.new_run(protocol, params, inputs or {}, label="demo",
                             executor=ExecutorConfig(kind="local", workers=1))
    state = execute_run(project, run_id)
    row = project.run(run_id)
    console.print(f"run {run_id} {protocol}: {state} in {row['finished'] - row['started']:.1f} s")
    if state != "finished":
        console.print(f"[red]{row['error']}[/red]", highlight=False)
        raise typer.Exit(1)
    return run_id


def motion_rms_error_px(truth_json: Path, tilt_series, pixel_size_A: float) -> float:
    """RMS (px) between recovered and true per-frame shifts, each made mean-zero per tilt."""
    truth = {t["acquisition_order"]: np.asarray(t["frame_shifts_A"]) for t in json.loads(truth_json.read_text())["tilts"]}
    errors = []
    for image in tilt_series.tilt_images:
        found = np.asarray(image.frame_shifts_A)
        true = truth[image.acquisition_order]
        errors.append((found - found.mean(0)) - (true - true.mean(0)))
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)) / pixel_size_A)


def demo(
    outdir: Path = typer.Argument(Path("tomoforge-demo"), help="new folder for the data and the project"),
    seed: int = typer.Option(0, help="random seed of the simulation"),
) -> None:
    """Simulate a tiny tilt series, import it into a new project, correct motion, erase X-rays, filter dose."""
    from tomoforge.simulate.run import simulate

    if outdir.exists() and any(outdir.iterdir()):
        console.print(f"[red]error:[/red] {outdir} is not empty; give a new folder")
        raise typer.Exit(1)
    console.print(f"simulating the 'tiny' preset into {outdir / 'raw'} ...")
    result = simulate(outdir / "raw", preset="tiny", seed=seed, progress=False)
    simulated = result.tilt_series[0]
    project = Project.create(outdir / "project")
    imported = _step(project, "import-tilt-series-movies",
                     {"files_path": str(simulated.mdoc.parent), "pattern": "*.mdoc", "gain_file": str(result.gain)})
    motion = _step(project, "motion-correction", {}, {"tilt_series": f"{imported}.tilt_series"})
    erased = _step(project, "xray-eraser", {}, {"tilt_series": f"{motion}.tilt_series"})
    filtered = _step(project, "dose-filter", {}, {"tilt_series": f"{erased}.tilt_series"})

    from tomoforge.cli.main import runs, state as cli_state

    cli_state["project"] = project.root
    runs()
    corrected = next(iter(project.output_set(motion, "tilt_series")))
    rms = motion_rms_error_px(simulated.truth_json, corrected, corrected.acquisition.pixel_size_A)
    console.print(f"motion correction against the truth: {rms:.3f} px RMS over {corrected.n_images} tilts")
    address = f"{filtered}.tilt_series/{corrected.name}/1"  # the first exposed image, dose-filtered
    console.print(f"\ntomoforge provenance {address}")
    console.print(format_provenance(provenance(project, address)), highlight=False, markup=False)
    console.print(f"\nproject: {project.root}  (try: tomoforge -p {project.root} runs)")
