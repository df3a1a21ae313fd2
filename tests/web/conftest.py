"""Web fixtures: the toy protocols (through their entry points), a project with runs, and a test client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.engine.conftest import control, plugin_path, project, toy_plugin  # noqa: F401
from tomoforge.engine import ExecutorConfig, Project, execute_run
from tomoforge.web.app import create_app
from tomoforge.web.security import WRITE_HEADER

WRITE = {WRITE_HEADER: "1"}


def run_serially(project: Project, run_id: int, mode: str) -> None:
    """The tests' launcher: the engine's execute_run in this process (the server starts a CLI process)."""
    execute_run(project, run_id, mode, executor=ExecutorConfig(kind="serial"))


@pytest.fixture
def made(project, control):  # noqa: F811
    """Run 1: toy-make (3 numbers, finished); run 2: toy-double of it (finished); run 3: toy-words (saved)."""
    first = project.new_run("toy-make", {"count": 3, "control_dir": str(control)}, label="squares")
    run_serially(project, first, "run")
    second = project.new_run("toy-double", {}, {"numbers": f"{first}.numbers"}, label="doubled")
    run_serially(project, second, "run")
    third = project.new_run("toy-words", {})
    return project, (first, second, third)


@pytest.fixture
def client(made):
    project, _ = made
    launched: list[tuple[int, str]] = []

    def launch(p: Project, run_id: int, mode: str) -> None:
        launched.append((run_id, mode))
        run_serially(p, run_id, mode)

    test_client = TestClient(create_app(project.root, launch=launch), base_url="http://127.0.0.1")
    test_client.launched = launched
    return test_client
