import typer
from typer.testing import CliRunner

from tomoforge.cli.simulate import simulate_command


def _app():
    app = typer.Typer()
    app.command("simulate")(simulate_command)
    app.command("noop")(lambda: None)  # two commands: typer keeps the sub-command name
    return app


def test_cli_writes_tiny(tmp_path, test_data):
    out = tmp_path / "sim"
    res = CliRunner().invoke(
        _app(),
        [
            "simulate",
            str(out),
            "--preset",
            "tiny",
            "--seed",
            "3",
            "--set",
            f"data_root={test_data}",
            "--set",
            "acquisition.tilt_step_deg=15",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "TS_01.mrc.mdoc").exists() and len(list((out / "frames").glob("*.mrc"))) == 5


def test_cli_unknown_key_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(_app(), ["simulate", str(tmp_path), "--set", "detector.nope=1"])
    assert res.exit_code == 2
    assert "detector.nope" in res.output


def test_help_lists_every_preset_with_its_seed_and_a_description():
    from tomoforge.simulate.config import PRESET_INFO, PRESETS

    assert set(PRESET_INFO) == set(PRESETS)
    res = CliRunner().invoke(_app(), ["simulate", "--help"], env={"COLUMNS": "2000", "TERMINAL_WIDTH": "2000"})
    assert res.exit_code == 0
    text = " ".join(res.output.replace("│", " ").split())
    for name, (seed, description) in PRESET_INFO.items():
        assert f"{name} (seed {seed}): {' '.join(description.split())}" in text
