"""A user's mistake is one plain line (exit 2), never markup, never a traceback; a failed run exits 1."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tomoforge.cli.main import app
from tomoforge.engine import Project

runner = CliRunner()


def cli(project, *args, code=0):
    result = runner.invoke(app, ["-p", str(project), *args], env={"COLUMNS": "250"})
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def project_dir(tmp_path):
    path = tmp_path / "proj"
    Project.create(path).close()
    return path


def test_user_text_is_printed_verbatim_never_as_markup(project_dir, tmp_path):
    label, comment = "[bold]HIV[/bold] [/] [red", "see [link=x]here"
    cli(
        project_dir,
        "run",
        "import-tilt-series",
        "--set",
        f"files_path={tmp_path}/[x]",
        "--label",
        label,
        "--comment",
        comment,
        "--save",
    )
    cli(project_dir, "run", "exclude-views", "--input", "tilt_series=1.tilt_series[key != '[b]']", "--save")
    assert label in cli(project_dir, "runs")
    shown = cli(project_dir, "show", "1")
    assert label in shown and comment in shown and f"{tmp_path}/[x]" in shown
    assert "1.tilt_series[key != '[b]']" in cli(project_dir, "show", "2")
    out = cli(project_dir, "run", "no-such-[/]-protocol", code=2)
    assert "unknown protocol 'no-such-[/]-protocol'" in out


def test_an_input_of_the_wrong_kind_is_refused_naming_what_makes_the_right_one(project_dir, tmp_path):
    cli(project_dir, "run", "import-tilt-series-movies", "--set", f"files_path={tmp_path}", "--save")
    out = cli(project_dir, "run", "dose-filter", "--input", "tilt_series=1.tilt_series", code=2)
    assert "1.tilt_series holds TiltSeriesMovie; dose-filter needs TiltSeries" in out
    assert "motion-correction makes TiltSeries from TiltSeriesMovie" in out
    assert "pydantic" not in out and "Extra inputs" not in out
    assert "run 2" not in cli(project_dir, "runs")  # not saved
    cli(project_dir, "run", "motion-correction", "--input", "tilt_series=1.tilt_series", "--save")


def test_bad_numbers_and_ids_are_one_line_errors(project_dir):
    for args in (
        ["show", "99999999999999999999999999"],
        ["continue", "1e3"],
        ["show", "7"],
        ["run", "import-tilt-series", "--set", "nope=1"],
        ["run", "reconstruct-tomogram", "--executor", "x"],
    ):
        out = cli(project_dir, *args, code=2)
        assert out.startswith("error: ") and len(out.strip().splitlines()) == 1, out
    assert "nope: unknown field" in cli(project_dir, "run", "import-tilt-series", "--set", "nope=1", code=2)


def test_a_run_whose_log_cannot_be_written_still_reports_its_error(project_dir, tmp_path):
    cli(
        project_dir,
        "run",
        "import-tilt-series",
        "--set",
        f"files_path={tmp_path / 'empty'}",
        "--executor",
        "serial",
        "--save",
    )
    (tmp_path / "empty").mkdir()
    project = Project.open(project_dir)
    (project.run_dir(1) / "run.log").mkdir()  # as root a chmod would not stop the write: a folder does
    out = cli(project_dir, "continue", "1", code=1)
    assert "run 1 failed" in out and "no file in" in out
    assert "no file in" in project.run(1)["error"]


def test_debug_shows_the_traceback_and_a_bug_asks_for_it(project_dir):
    base = [sys.executable, "-m", "tomoforge.cli.main", "-p", str(project_dir)]
    quiet = subprocess.run([*base, "show", "5"], capture_output=True, text=True)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr and "no run 5" in quiet.stderr
    loud = subprocess.run([*base, "--debug", "show", "5"], capture_output=True, text=True)
    assert loud.returncode == 2 and "Traceback" in loud.stderr


def test_no_parameter_takes_a_non_finite_number(project_dir, tmp_path):
    for value in ("inf", "nan", "-inf"):
        out = cli(
            project_dir,
            "run",
            "import-tilt-series-movies",
            "--set",
            f"files_path={tmp_path}",
            "--set",
            f"settle_s={value}",
            code=2,
        )
        assert "settle_s:" in out and "finite" in out
