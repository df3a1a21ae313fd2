"""``tomoforge demo``: make data, create a project, import it, and show the runs and a provenance."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from tomoforge.engine import Project, execute_run
from tomoforge.engine.provenance import format_provenance, provenance

console = Console(soft_wrap=True)


def demo(
    outdir: Path = typer.Argument(Path("tomoforge-demo"), help="new folder for the data and the project"),
    seed: int = typer.Option(0, help="random seed of the simulation"),
) -> None:
    """Simulate a tiny tilt series, import it into a new project, and show runs and provenance."""
    from tomoforge.simulate.run import simulate

    if outdir.exists() and any(outdir.iterdir()):
        console.print(f"[red]error:[/red] {outdir} is not empty; give a new folder")
        raise typer.Exit(1)
    raw = outdir / "raw"
    console.print(f"simulating the 'tiny' preset into {raw} ...")
    result = simulate(raw, preset="tiny", seed=seed)
    project = Project.create(outdir / "project")
    mdoc_dir = Path(result.mdoc_paths[0]).parent
    run_id = project.new_run("import-tilt-series-movies", {"files_path": str(mdoc_dir), "pattern": "*.mdoc"},
                             label="demo import")
    state = execute_run(project, run_id)
    console.print(f"import run {run_id}: {state}")
    from tomoforge.cli.main import runs, state as cli_state

    cli_state["project"] = project.root
    runs()
    item_set = project.output_set(run_id, "tilt_series")
    first = next(iter(item_set))
    address = f"{run_id}.tilt_series/{first.name}/{first.tilt_images[0].acquisition_order}"
    console.print(f"\ntomoforge provenance {address}")
    console.print(format_provenance(provenance(project, address)), highlight=False, markup=False)
    console.print(f"\nproject: {project.root}  (try: tomoforge -p {project.root} runs)")
