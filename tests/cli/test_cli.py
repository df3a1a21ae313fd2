"""The command line on a real mdoc: project, run, runs, show, provenance, citations, errors."""

import json
import re

import pytest
from typer.testing import CliRunner

from tomoforge.cli.main import app

runner = CliRunner()


def cli(project, *args, code=0):
    result = runner.invoke(app, ["-p", str(project), *args])
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def project_dir(tmp_path):
    path = tmp_path / "proj"
    assert "created project" in runner.invoke(app, ["project", "new", str(path)]).output
    return path


def test_import_then_runs_show_and_provenance(project_dir, hiv_dir):
    out = cli(
        project_dir,
        "run",
        "import-tilt-series",
        "--set",
        f"files_path={hiv_dir}",
        "--set",
        "pixel_size_A=",
        "--set",
        "dose_per_tilt_e_A2=3",
        "--label",
        "HIV",
        "--executor",
        "serial",
    )
    assert "run 1 finished" in out
    table = cli(project_dir, "runs")
    assert re.search(r"1\s+│ import-tilt-series\s+│ HIV\s+│ finished\s+│ [\d.]+ s\s+│ tilt_series \(1\)", table)
    prov = cli(project_dir, "provenance", "1.tilt_series/TS_01/1")
    assert f"file: {hiv_dir / 'TS_01.mrc.mdoc'}" in prov
    assert "made by run 1 'import tilt series'" in prov
    item = json.loads(cli(project_dir, "show", "1.tilt_series/TS_01/2"))
    assert item["acquisition_order"] == 2 and item["accumulated_dose_e_A2"] == 6.0
    shown = cli(project_dir, "show", "1")
    assert "output tilt_series: 1 TiltSeries (closed)" in shown and '"dose_per_tilt_e_A2": 3.0' in shown
    assert "@software{tomoforge" in cli(project_dir, "citations")
    assert "1 finished" in cli(project_dir, "project", "info")
    log = cli(project_dir, "log", "1")
    assert "[1/1] TS_01.mrc.mdoc done" in log


def test_errors_are_clear_and_exit_non_zero(project_dir, tmp_path):
    out = cli(project_dir, "run", "import-tilt-series", "--set", "files_path=x", "--set", "pixel_size_A=-1", code=2)
    assert "pixel_size_A: '-1' must be" in out
    out = cli(project_dir, "run", "no-such-protocol", code=2)
    assert "unknown protocol 'no-such-protocol'" in out
    out = cli(
        project_dir, "run", "import-tilt-series", "--set", f"files_path={tmp_path}", "--executor", "serial", code=1
    )
    assert "run 1 failed" in out and "no file in" in out
    out = cli(project_dir, "show", "1")
    assert "failed" in out and "Traceback" in out
    out = cli(project_dir, "provenance", "1.tilt_series/TS_01/1", code=2)
    assert "run 1 has no output 'tilt_series' yet (it is failed)" in out
    out = runner.invoke(app, ["-p", str(tmp_path / "nowhere"), "runs"]).output
    assert "not a tomoforge project" in out


def test_duplicate_label_reset_delete(project_dir, hiv_dir):
    cli(project_dir, "run", "import-tilt-series", "--set", f"files_path={hiv_dir}", "--executor", "serial")
    assert "run 2 saved (copy of run 1)" in cli(project_dir, "duplicate", "1")
    cli(project_dir, "label", "2", "--label", "again", "--comment", "same params")
    assert "again" in cli(project_dir, "runs")
    assert "run 2 finished" in cli(project_dir, "continue", "2")
    assert "run 2 finished" in cli(project_dir, "restart", "2")
    cli(project_dir, "reset", "2")
    assert "saved" in cli(project_dir, "show", "2")
    cli(project_dir, "delete", "2")
    assert "no run 2" in cli(project_dir, "show", "2", code=2)


def test_protocols_lists_the_imports():
    out = runner.invoke(app, ["protocols"]).output
    for name in ("import-tilt-series", "import-tilt-series-movies", "import-tomograms", "import-coordinates"):
        assert name in out
