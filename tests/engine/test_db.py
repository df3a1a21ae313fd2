"""The project database: WAL, schema version, migrations, refusal of a newer schema."""

import sqlite3

import pytest

from tomoforge.engine import Project, ProjectError
from tomoforge.engine.db import SCHEMA_VERSION, connect, schema_version


def test_new_project_is_wal_at_the_current_schema(tmp_path):
    project = Project.create(tmp_path / "p")
    assert project.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema_version(project.conn) == SCHEMA_VERSION
    assert (tmp_path / "p" / "runs").is_dir()


def test_an_old_database_is_migrated_on_open(tmp_path):
    path = tmp_path / "project.db"
    sqlite3.connect(path).close()  # version 0: no tables
    conn = connect(path)
    assert schema_version(conn) == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "run_inputs", "run_tasks", "sets", "meta"} <= tables


def test_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "project.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(RuntimeError, match="newer than this tomoforge understands"):
        connect(path)


def test_create_refuses_an_existing_project_or_a_full_folder(tmp_path):
    Project.create(tmp_path / "p")
    with pytest.raises(ProjectError, match="a project already exists"):
        Project.create(tmp_path / "p")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "data.txt").write_text("mine")
    with pytest.raises(ProjectError, match="not empty"):
        Project.create(tmp_path / "full")
    assert (tmp_path / "full" / "data.txt").read_text() == "mine"
