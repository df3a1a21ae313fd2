"""`tomoforge serve` (uvicorn replaced by a stub that keeps the app) and runs started in a CLI process."""

from __future__ import annotations

import time

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.web.conftest import made  # noqa: F401
from tomoforge.cli.main import app as cli
from tomoforge.web.actions import LaunchError, launch_in_process


@pytest.fixture
def served(monkeypatch):
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_serve_binds_loopback_without_a_token(made, served):  # noqa: F811
    project, _ = made
    result = CliRunner().invoke(cli, ["serve", str(project.root), "--port", "8123"])
    assert result.exit_code == 0, result.output
    app, options = served[0]
    assert options["host"] == "127.0.0.1" and options["port"] == 8123
    assert "http://127.0.0.1:8123/" in result.output and "token" not in result.output
    assert "ssh -N -L 8123:127.0.0.1:8123" in result.output
    assert TestClient(app, base_url="http://127.0.0.1").get("/api/project").status_code == 200


def test_serve_on_another_address_makes_and_needs_a_token(made, served):  # noqa: F811
    project, _ = made
    result = CliRunner().invoke(cli, ["serve", str(project.root), "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    token = result.output.split("?token=")[1].split()[0]
    assert len(token) >= 16
    app, options = served[0]
    assert options["host"] == "0.0.0.0"
    assert TestClient(app, base_url="http://127.0.0.1").get("/api/project").status_code == 401
    assert TestClient(app, base_url="http://127.0.0.1").get(f"/api/project?token={token}").status_code == 200


def test_serve_refuses_a_short_token_and_a_folder_that_is_no_project(made, served, tmp_path):  # noqa: F811
    project, _ = made
    short = CliRunner().invoke(cli, ["serve", str(project.root), "--host", "0.0.0.0", "--token", "abc"])
    assert short.exit_code == 2 and "too short" in short.output
    assert CliRunner().invoke(cli, ["serve", str(tmp_path)]).exit_code == 2
    assert served == []


def test_a_run_is_started_by_the_cli_in_its_own_process(made):  # noqa: F811
    project, (first, _, _) = made
    with pytest.raises(LaunchError, match="cannot continue it; use 'restart'"):
        launch_in_process(project, first, "continue")  # the CLI's refusal, word for word
    run_id = project.new_run("toy-words", {})
    launch_in_process(project, run_id, "continue")
    deadline = time.monotonic() + 60
    while project.refresh_state(run_id) not in ("finished", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert project.run(run_id)["state"] == "finished"
    assert sorted(len(w.digits) for w in project.output_set(run_id, "words")) == [2, 3]
