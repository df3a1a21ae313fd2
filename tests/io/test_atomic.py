"""Files are written whole or not at all, with the mode the umask gives, through the run's scratch folder."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from tomoforge.io.atomic import SCRATCH_VARIABLE, atomic_path
from tomoforge.io.errors import write_text_atomic
from tomoforge.io.mrc import write_mrc


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_follow_the_umask_not_0600(tmp_path, umask_022):
    write_mrc(tmp_path / "a.mrc", np.zeros((4, 4), np.float32), voxel_size_A=2.0)
    write_text_atomic(tmp_path / "a.txt", "x\n")
    for name in ("a.mrc", "a.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    os.umask(0o077)
    write_text_atomic(tmp_path / "b.txt", "x\n")
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_the_temporary_file_lives_in_the_scratch_folder_and_vanishes_on_failure(tmp_path, monkeypatch):
    scratch, out = tmp_path / "tmp", tmp_path / "out"
    scratch.mkdir()
    monkeypatch.setenv(SCRATCH_VARIABLE, str(scratch))
    with pytest.raises(RuntimeError), atomic_path(out / "v.mrc") as temporary:
        assert temporary.parent == scratch
        temporary.write_bytes(b"half")
        raise RuntimeError("killed halfway")
    assert list(out.iterdir()) == [] and list(scratch.iterdir()) == []
    with atomic_path(out / "v.mrc") as temporary:
        temporary.write_bytes(b"whole")
    assert (out / "v.mrc").read_bytes() == b"whole" and list(scratch.iterdir()) == []
