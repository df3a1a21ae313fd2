"""Engine fixtures: the toy plugin registered through a real entry point, and a fresh project."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tomoforge.engine import Project
from tomoforge.engine.registry import protocols

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

ENTRY_POINTS = """[tomoforge.protocols]
toy-make = tests.engine.toyplugin.toy_protocols:MakeNumbers
toy-double = tests.engine.toyplugin.toy_protocols:DoubleNumbers
toy-words = tests.engine.toyplugin.toy_protocols:MakeWords
toy-arrays = tests.engine.toyplugin.toy_protocols:MakeArrays
toy-broken = tests.engine.toyplugin.no_such_module:Nothing
"""


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory) -> Path:
    """A folder holding an installed-looking 'toyplugin' distribution (dist-info + entry points)."""
    root = tmp_path_factory.mktemp("site")
    dist = root / "toyplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


@pytest.fixture(scope="session", autouse=True)
def toy_plugin(plugin_path):
    """Put the plugin and the repo on sys.path (and PYTHONPATH, for subprocesses and workers)."""
    added = [str(plugin_path), str(REPO)]
    sys.path[:0] = added
    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(added + ([old] if old else []))
    protocols(reload=True)
    yield
    for path in added:
        sys.path.remove(path)
    os.environ["PYTHONPATH"] = old
    protocols(reload=True)


@pytest.fixture
def project(tmp_path) -> Project:
    p = Project.create(tmp_path / "project")
    yield p
    p.close()


@pytest.fixture
def control(tmp_path) -> Path:
    folder = tmp_path / "control"
    folder.mkdir()
    return folder


def ran(control: Path, index: int) -> int:
    """How many times task ``index`` ran."""
    return len(list(control.glob(f"ran_{index}_*")))
