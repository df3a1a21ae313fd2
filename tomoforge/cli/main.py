"""The ``tomoforge`` command line: projects, protocols, runs, provenance, citations."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tomoforge.cli.common import (
    RUN_FAILED,
    CommandError,
    GuardedTyper,
    console,
    duration,
    error_console,
    open_project,
    parse_run_id,
    runs_table,
    state,
    styled,
)
from tomoforge.cli.describe import protocol_help
from tomoforge.cli.progress import run_with_progress
from tomoforge.engine import ExecutorConfig, Project
from tomoforge.engine.project import FAILED, InputPointer
from tomoforge.engine.provenance import (
    citations_of_project,
    format_provenance,
    provenance,
    runs_upstream,
)
from tomoforge.engine.registry import (
    broken_protocols,
    get_protocol,
    protocol_names,
    protocols,
)
from tomoforge.errors import UserError

app = GuardedTyper(
    help="tomoforge: cryo-electron tomography with full provenance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
project_app = GuardedTyper(help="Create or describe a project.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(project_app, name="project")


@app.callback()
def main(
    project: Path | None = typer.Option(
        None, "--project", "-p", envvar="TOMOFORGE_PROJECT", help="project folder (default: current folder)"
    ),
    debug: bool = typer.Option(False, "--debug", help="show the Python traceback of an error"),
) -> None:
    state["project"] = project
    state["debug"] = debug


# --- project ----------------------------------------------------------------------------------
@project_app.command("new")
def project_new(path: Path) -> None:
    """Create a new project in PATH (a new or empty folder)."""
    project = Project.create(path)
    console.print(f"created project {project.root}")


@project_app.command("info")
def project_info() -> None:
    """Where the project is, its schema version and its runs by state."""
    project = open_project()
    from tomoforge.engine.db import schema_version

    rows = project.runs()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    console.print(f"project: {project.root}")
    console.print(f"schema version: {schema_version(project.conn)}")
    console.print(
        f"runs: {len(rows)}" + (" (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")" if rows else "")
    )


# --- protocols and runs -----------------------------------------------------------------------
def complete_protocol(incomplete: str) -> list[str]:
    return [name for name in protocol_names() if name.startswith(incomplete)]


def complete_setting(ctx: typer.Context, incomplete: str) -> list[str]:
    """``--set`` completion: the parameter names of the protocol given before it, as ``name=``."""
    try:
        cls = get_protocol(ctx.params.get("protocol") or "")
    except UserError:
        return []
    return [f"{name}=" for name in cls.Params.model_fields if name.startswith(incomplete)]


@app.command("protocols")
def list_protocols(
    name: str | None = typer.Argument(
        None, help="a protocol: its inputs and parameters", autocompletion=complete_protocol
    ),
) -> None:
    """List the installed protocols (one line each), or describe one: inputs, parameters, outputs."""
    if name:
        console.print(protocol_help(get_protocol(name)))
        return
    table = Table("protocol", "what it does")
    for protocol_name, cls in protocols().items():
        table.add_row(protocol_name, cls.summary())
    console.print(table)
    for broken, why in broken_protocols().items():
        console.print(styled(("not loaded: ", "yellow"), f"{broken}: {why}"))
    console.print("'tomoforge protocols NAME' lists a protocol's inputs and parameters")


def parse_settings(settings: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for setting in settings or []:
        key, sep, value = setting.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--set {setting!r}: expected key=value")
        values[key.strip()] = None if value.strip() == "" else value.strip()
    return values


def parse_inputs(inputs: list[str]) -> dict[str, InputPointer]:
    pointers = {}
    for text in inputs or []:
        name, sep, value = text.partition("=")
        if not sep:
            raise CommandError(f"--input {text!r}: expected name=RUN.OUTPUT, e.g. tilt_series=1.tilt_series")
        pointers[name.strip()] = InputPointer.parse(value)
    return pointers


@app.command("run", context_settings={"help_option_names": []})
def run(
    ctx: typer.Context,
    protocol: str | None = typer.Argument(
        None, help="protocol name (see 'tomoforge protocols')", autocompletion=complete_protocol, show_default=False
    ),
    set_: list[str] = typer.Option(
        None, "--set", help="parameter key=value (key= for 'not set')", autocompletion=complete_setting
    ),
    input_: list[str] = typer.Option(None, "--input", help="input name=RUN.OUTPUT or name=RUN.OUTPUT[filter]"),
    label: str = typer.Option("", help="label shown in the run table"),
    comment: str = typer.Option("", help="free comment"),
    executor: str = typer.Option("local", help="local | dask | serial"),
    workers: int = typer.Option(1, min=1, help="worker processes"),
    threads: int = typer.Option(0, min=0, help="threads per worker (0: cores / workers)"),
    dask_address: str = typer.Option("", help="Dask scheduler address ('' = a LocalCluster)"),
    save: bool = typer.Option(False, "--save", help="only save the run (state saved)"),
    schedule: bool = typer.Option(False, "--schedule", help="save and schedule it (runs when its inputs are ready)"),
    help_: bool = typer.Option(False, "--help", "-h", help="show this help (with PROTOCOL: its inputs and parameters)"),
) -> None:
    """Create a run of PROTOCOL and execute it, with a progress bar."""
    if help_ or not protocol:
        console.print(ctx.get_help())
        if protocol:
            console.print(protocol_help(get_protocol(protocol)))
        if not help_:
            raise CommandError("give a protocol name ('tomoforge protocols' lists them)")
        return
    project = open_project()
    config = ExecutorConfig(kind=executor, workers=workers, threads_per_worker=threads, address=dask_address)
    run_id = project.new_run(
        protocol, parse_settings(set_), parse_inputs(input_), label=label, comment=comment, executor=config
    )
    if save or schedule:
        if schedule:
            project.schedule(run_id)
        console.print(f"run {run_id} {'scheduled' if schedule else 'saved'}")
        return
    execute(project, run_id, "run")


def execute(project: Project, run_id: int, mode: str) -> None:
    final = run_with_progress(project, run_id, mode, console)
    row = project.run(run_id)
    if final == FAILED:
        error_console.print(styled((f"run {run_id} failed: ", "red"), row["error"] or ""))
        console.print(f"log: {project.run_dir(run_id) / 'run.log'}; details: tomoforge show {run_id}")
        raise SystemExit(RUN_FAILED)
    console.print(f"run {run_id} {final} in {duration(row)}")
    if final != "finished":
        raise SystemExit(RUN_FAILED)


_run_id = parse_run_id


@app.command("continue")
def continue_(run: str) -> None:
    """Resume RUN, skipping the items already done."""
    execute(open_project(), _run_id(run), "continue")


@app.command("restart")
def restart(run: str) -> None:
    """Redo RUN from scratch (its outputs are cleared first)."""
    execute(open_project(), _run_id(run), "restart")


def _act(action: str, run: str) -> Project:
    project = open_project()
    getattr(project, action)(_run_id(run))
    return project


@app.command("schedule")
def schedule(run: str) -> None:
    """Schedule a saved (or failed/aborted) RUN: 'tomoforge scheduler' runs it when its inputs are ready."""
    _act("schedule", run)
    console.print(f"run {run} scheduled")


@app.command("scheduler")
def scheduler(wait: bool = typer.Option(False, help="keep waiting for inputs other processes produce")) -> None:
    """Execute the scheduled runs in dependency order; streaming ones start behind their running producers."""
    from tomoforge.engine.scheduler import run_scheduled

    outcome = run_scheduled(
        open_project(), report=lambda run_id, final: console.print(f"run {run_id} {final}"), wait=wait
    )
    if not outcome:
        console.print("no scheduled run is ready")
    if any(s != "finished" for s in outcome.values()):
        raise typer.Exit(1)


@app.command("reset")
def reset(run: str) -> None:
    """Clear RUN's outputs and files, keeping its parameters (state saved)."""
    _act("reset", run)
    console.print(f"run {run} reset")


@app.command("delete")
def delete(run: str) -> None:
    """Delete RUN and its folder (refused while other runs use its outputs)."""
    _act("delete", run)
    console.print(f"run {run} deleted")


@app.command("abort")
def abort(run: str) -> None:
    """Stop RUN (a running run stops within a second; its finished items are kept for 'continue')."""
    project = open_project()
    outcome = project.request_abort(_run_id(run))
    console.print(f"run {run}: abort {outcome}")


@app.command("stop")
def stop(run: str) -> None:
    """End streaming RUN: no new item, the ones under way finish, then its outputs close (run finished)."""
    project = open_project()
    project.request_stop(_run_id(run))
    console.print(f"run {run}: stop requested")


@app.command("duplicate")
def duplicate(run: str, label: str = typer.Option("", help="label of the copy")) -> None:
    """Copy RUN's protocol, parameters and inputs into a new saved run."""
    project = open_project()
    new = project.duplicate(_run_id(run), label)
    console.print(f"run {new} saved (copy of run {run})")


@app.command("label")
def label(
    run: str,
    text: str | None = typer.Option(None, "--label"),
    comment: str | None = typer.Option(None, "--comment"),
) -> None:
    """Set RUN's label and/or comment."""
    project = open_project()
    project.set_label(_run_id(run), text, comment)


@app.command("runs")
def runs() -> None:
    """The run table: state, duration and outputs of every run."""
    console.print(runs_table(open_project()))


@app.command("show")
def show(
    what: str = typer.Argument(..., help="RUN number, set RUN.OUTPUT[filter], or item RUN.OUTPUT/KEY[/CHILD]"),
    page: int = typer.Option(0, min=0, help="page of a set to show (0 = first)"),
    page_size: int = typer.Option(100, min=1, max=10_000, help="items per page of a set"),
) -> None:
    """Everything about a run (params, inputs, outputs, error), a page of a set's items, or an item's fields."""
    project = open_project()
    if what.strip().isdigit():
        show_run(project, parse_run_id(what))
        return
    if "/" not in what:
        show_set(project, InputPointer.parse(what), page, page_size)
        return
    _, item, child = project.resolve(what)
    shown = child if child is not None else item
    console.print_json(shown.model_dump_json())


def show_run(project: Project, run_id: int) -> None:
    project.refresh_state(run_id)
    row = project.run(run_id)
    console.print(styled(f"run {run_id}: {row['protocol']}  ", (row["state"], "bold"), f"  {duration(row)}"))
    if row["label"] or row["comment"]:
        console.print(f"label: {row['label']}  comment: {row['comment']}")
    console.print(f"folder: {project.run_dir(run_id)}  tomoforge {row['software_version']}")
    console.print("params: " + json.dumps(json.loads(row["params"])))
    for name, pointer in project.run_inputs(run_id).items():
        console.print(f"input {name}: {pointer}")
    for item_set in project.output_sets(run_id):
        console.print(
            f"output {item_set.name}: {len(item_set)} {item_set.item_class.__name__} ({item_set.stream_state})"
        )
    if row["error"]:
        console.print(styled(("error: ", "red"), row["error"]))
    if row["traceback"]:
        console.print(row["traceback"])


def show_set(project: Project, pointer: InputPointer, page: int, page_size: int) -> None:
    """The count of a (filtered) set and one page of its items' columns."""
    item_set = project.output_set(pointer.run_id, pointer.output, pointer.filter)
    total = len(item_set)
    items = item_set.page(page, page_size)
    columns = [c for c in item_set.spec.columns if c not in item_set.spec.packed]
    table = Table(
        "key",
        *columns,
        title=f"{pointer}: {total} {item_set.item_class.__name__} ({item_set.stream_state}); "
        f"items {page * page_size + 1 if items else 0}–{page * page_size + len(items)}",
        title_justify="left",
    )
    for item in items:
        table.add_row(str(getattr(item, item_set.spec.key_field)), *(_cell(getattr(item, c)) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@app.command("log")
def log(run: str) -> None:
    """Print RUN's log (timestamped lines)."""
    project = open_project()
    path = project.run_dir(_run_id(run)) / "run.log"
    console.print(path.read_text() if path.exists() else "(no log yet)")


@app.command("provenance")
def show_provenance(item: str = typer.Argument(..., help="item RUN.OUTPUT/KEY[/CHILD]")) -> None:
    """The chain of runs and files that made ITEM, back to the imported files."""
    project = open_project()
    step = provenance(project, item)
    console.print(format_provenance(step))


@app.command("citations")
def citations(run: str | None = typer.Argument(None, help="only what RUN and its inputs used")) -> None:
    """BibTeX of every method used in the project (or in the making of RUN)."""
    project = open_project()
    run_ids = runs_upstream(project, _run_id(run)) if run else None
    for entry in citations_of_project(project, run_ids).values():
        console.print(entry + "\n")


def _register_optional_commands() -> None:
    """Commands that live in their own modules."""
    import importlib.util

    if importlib.util.find_spec("tomoforge.cli.simulate") is None:
        return
    from tomoforge.cli.simulate import simulate_command

    app.command("simulate", help="Simulate tilt-series movies with their ground truth.")(simulate_command)


_register_optional_commands()

from tomoforge.cli.demo import demo  # noqa: E402 - its heavy imports are inside; registered after the others

app.command("demo")(demo)

from tomoforge.cli.serve import serve_command  # noqa: E402 - fastapi and uvicorn are imported when it runs

app.command("serve")(serve_command)

if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
