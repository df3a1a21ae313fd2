"""The project database: SQLite in WAL mode, with a schema version and migrations.

Every process opens its own connection. WAL lets readers go on while one writer commits; a
generous busy timeout plus ``BEGIN IMMEDIATE`` for writes means two processes never see
"database is locked" in normal use.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 60.0

# Each entry moves the schema from version i to i + 1. Never edit a released entry: append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        protocol TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        params TEXT NOT NULL,
        executor TEXT NOT NULL DEFAULT '{}',
        software_version TEXT NOT NULL,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        pid INTEGER,
        host TEXT,
        abort_requested INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        traceback TEXT
    );
    CREATE TABLE run_inputs (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        source_run_id INTEGER NOT NULL REFERENCES runs(id),
        source_output TEXT NOT NULL,
        filter TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE run_tasks (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        state TEXT NOT NULL,
        result BLOB,
        error TEXT,
        started REAL,
        finished REAL,
        PRIMARY KEY (run_id, key)
    );
    CREATE TABLE sets (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        stream_state TEXT NOT NULL DEFAULT 'open',
        created REAL NOT NULL,
        UNIQUE (run_id, name)
    );
    """,
    # 2: a streaming run can be asked to stop taking new items, finish the ones under way and close.
    """
    ALTER TABLE runs ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: task results are JSON (never pickle), with the run files each names and their sizes.
    """
    ALTER TABLE run_tasks ADD COLUMN files TEXT NOT NULL DEFAULT '{}';
    """,
    # 4: the run folder's name is fixed when the run is created ('' in older projects: derived as before).
    """
    ALTER TABLE runs ADD COLUMN folder TEXT NOT NULL DEFAULT '';
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open the project database, creating or migrating its schema as needed."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    _set_wal(conn)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn, path)
    return conn


def _set_wal(conn: sqlite3.Connection) -> None:
    # Switching the journal mode needs a moment with no other writer; retry briefly.
    for _ in range(100):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            time.sleep(0.05)
    conn.execute("PRAGMA journal_mode = WAL")


def schema_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(conn: sqlite3.Connection, path: Path | None = None) -> None:
    """Bring the schema up to SCHEMA_VERSION; refuse a database newer than this software."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"{path}: schema version {version} is newer than this tomoforge understands "
            f"({SCHEMA_VERSION}); upgrade tomoforge"
        )
    if version == SCHEMA_VERSION:
        return
    with transaction(conn):
        version = schema_version(conn)  # another process may have migrated meanwhile
        for step in range(version, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[step]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE): all or nothing. Nested use joins the outer one."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
