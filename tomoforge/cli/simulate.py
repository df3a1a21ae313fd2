"""``tomoforge simulate OUTDIR --preset NAME [--seed N] [--set key=value]``."""

from __future__ import annotations

from pathlib import Path

import typer

from tomoforge.simulate.config import PRESET_INFO, preset_help


def simulate_command(
    outdir: Path = typer.Argument(..., help="folder to write movies, mdoc, gain and truth into"),
    preset: str = typer.Option(
        "tiny",
        "--preset",
        help=preset_help(),
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="random seed (default: the preset's, listed above): the same seed gives the same data"
    ),
    set_: list[str] = typer.Option(None, "--set", help="key=value overrides, e.g. detector.pixel_size_A=2.5"),
) -> None:
    """Simulate tilt-series movies with their mdoc, gain reference and ground truth."""
    from tomoforge.simulate.config import ConfigError, parse_overrides
    from tomoforge.simulate.run import simulate

    if seed is None:
        seed = PRESET_INFO[preset][0] if preset in PRESET_INFO else 0
    try:
        result = simulate(outdir, preset=preset, seed=seed, overrides=parse_overrides(set_), progress=True)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err
    for ts in result.tilt_series:
        typer.echo(f"{ts.name}: {len(ts.movies)} movies, mdoc {ts.mdoc}, truth {ts.truth_json}")
    typer.echo(f"written to {result.outdir} in {result.seconds:.1f} s")
