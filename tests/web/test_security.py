"""The server's guards: the token, the write header, and only the project's own files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import WRITE, client, made  # noqa: F401
from tomoforge.web.app import create_app
from tomoforge.web.security import TOKEN_COOKIE, needs_token

TOKEN = "s3cret-token-of-24-chars"


@pytest.fixture
def guarded(made):  # noqa: F811
    project, _ = made
    return TestClient(create_app(project.root, token=TOKEN), base_url="http://127.0.0.1")


@pytest.mark.parametrize("path", ["/", "/api/project", "/api/runs/1", "/runs/1", "/static/app.js", "/files/runs"])
def test_without_the_token_every_request_is_refused(guarded, path):
    assert guarded.get(path).status_code == 401
    assert guarded.get(path, headers={"x-tomoforge-token": "wrong-token-of-24-chars!"}).status_code == 401


def test_a_write_without_the_token_changes_nothing(guarded, made):  # noqa: F811
    project, _ = made
    response = guarded.post("/api/runs", json={"protocol": "toy-words", "params": {}}, headers=WRITE)
    assert response.status_code == 401
    assert len(project.runs()) == 3


def test_the_token_by_header_bearer_or_link_cookie(guarded):
    assert guarded.get("/api/project", headers={"x-tomoforge-token": TOKEN}).status_code == 200
    assert guarded.get("/api/project", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    response = guarded.get(f"/?token={TOKEN}")
    assert response.status_code == 200
    assert guarded.cookies.get(TOKEN_COOKIE) == TOKEN  # the link's token is kept in a cookie
    assert guarded.get("/api/project").status_code == 200  # ... which later requests carry


def test_a_write_needs_the_custom_header(client, made):  # noqa: F811
    project, _ = made
    response = client.post("/api/runs", json={"protocol": "toy-words", "params": {}})
    assert response.status_code == 403
    assert client.post("/api/runs/3/delete").status_code == 403
    assert len(project.runs()) == 3


def test_only_loopback_binds_go_without_a_token():
    assert not needs_token("127.0.0.1") and not needs_token("localhost")
    assert needs_token("0.0.0.0") and needs_token("192.168.1.5")


def test_files_inside_the_project_are_served(client, made):  # noqa: F811
    project, (first, _, _) = made
    response = client.get(f"/files/{project.relative(project.run_dir(first) / 'out' / 'n2.txt')}")
    assert response.status_code == 200 and response.text == "4"
    assert response.headers["content-type"].startswith("text/plain")  # never as HTML
    assert "sandbox" in response.headers["content-security-policy"]


def test_paths_and_symlinks_out_of_the_project_are_refused(client, made, tmp_path):  # noqa: F811
    project, _ = made
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (project.root / "link").symlink_to(secret)
    (project.root / "runs" / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    for path in [
        "%2e%2e/secret.txt",
        "runs/%2e%2e/%2e%2e/secret.txt",
        "link",
        "runs/dirlink/secret.txt",
        "%2Fetc/passwd",
    ]:
        response = client.get(f"/files/{path}")
        assert response.status_code in (403, 404), path
        assert "not yours" not in response.text
    assert client.get("/files/%2e%2e/secret.txt").status_code == 403
    assert client.get("/files/link").status_code == 403


def test_the_help_imports_no_web_library():
    probe = (
        "import json, sys\nfrom typer.testing import CliRunner\nfrom tomoforge.cli.main import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "print(json.dumps([r.exit_code, 'serve' in r.output, [m for m in ('fastapi', 'uvicorn', 'starlette') "
        "if m in sys.modules]]))\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [0, True, []]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "192.168.1.5:8000"])
def test_without_a_token_only_loopback_names_are_answered(made, host):  # noqa: F811
    """A page whose name was pointed at 127.0.0.1 (DNS rebinding) reaches the server under its own name."""
    project, _ = made
    app = create_app(project.root)
    assert TestClient(app, base_url=f"http://{host}").get("/api/project").status_code == 403
    for name in ("localhost:8000", "127.0.0.1", "[::1]:8123"):
        assert TestClient(app, base_url=f"http://{name}").get("/api/project").status_code == 200
