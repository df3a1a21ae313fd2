"""Import fixtures: real mdocs copied beside small generated image stacks and frame movies."""

from __future__ import annotations

import shutil
from pathlib import Path, PureWindowsPath

import numpy as np
import pytest

from tomoforge.engine import Project
from tomoforge.io.mdoc import read_mdoc
from tomoforge.io.mrc import write_mrc

HIV_MDOC = "mdoc/serialem_mdocfile/tilt_series.mdoc"


def stack_beside(mdoc_path: Path, n: int, size: int = 8) -> Path:
    """An n-image float32 stack named as the mdoc's ImageFile, beside it."""
    stack = mdoc_path.with_name(str(read_mdoc(mdoc_path).header.get("ImageFile", mdoc_path.stem)))
    write_mrc(stack, np.random.default_rng(0).random((n, size, size), dtype=np.float32), 5.4)
    return stack


@pytest.fixture
def hiv_dir(tmp_path, data_file) -> Path:
    """The real SerialEM HIV mdoc (41 tilts) as TS_01.mrc.mdoc, with a 41-image TS_01.mrc."""
    folder = tmp_path / "raw"
    folder.mkdir()
    mdoc = folder / "TS_01.mrc.mdoc"
    shutil.copy(data_file(HIV_MDOC), mdoc)
    stack_beside(mdoc, 41)
    return folder


def write_frames(mdoc_path: Path, folder: Path, n_frames: int | None = None) -> list[Path]:
    """One small MRC movie per section, named as its SubFramePath (NumSubFrames frames unless given)."""
    folder.mkdir(exist_ok=True)
    paths = []
    for section in read_mdoc(mdoc_path).sections:
        path = folder / PureWindowsPath(str(section["SubFramePath"])).name
        frames = n_frames or int(section["NumSubFrames"])
        write_mrc(path, np.zeros((frames, 4, 4), np.int8), 5.4)
        paths.append(path)
    return paths


@pytest.fixture
def project(tmp_path) -> Project:
    p = Project.create(tmp_path / "project")
    yield p
    p.close()
