"""The import protocols' layout (one protocol per module) and their typed task boundary: each task gets a frozen
dataclass job holding the protocol's own ``Params`` object, and the task function gives what the science gives."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pickle
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.protocols.conftest import write_frames
from tomoforge.io.mrc import write_mrc
from tomoforge.model import Tomogram
from tomoforge.protocols.imports.mdoc import tilt_series_from_mdoc

ENTRY_POINTS = {
    "import-tilt-series": "tomoforge.protocols.imports.tilt_series:ImportTiltSeries",
    "import-tilt-series-movies": "tomoforge.protocols.imports.tilt_series:ImportTiltSeriesMovies",
    "import-tilt-series-stack": "tomoforge.protocols.imports.stacks:ImportTiltSeriesStack",
    "import-tomograms": "tomoforge.protocols.imports.tomograms:ImportTomograms",
    "import-coordinates": "tomoforge.protocols.imports.coordinates:ImportCoordinates",
}


def test_each_import_protocol_is_declared_in_the_module_of_its_concept():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["tomoforge.protocols"]
    assert {name: declared[name] for name in ENTRY_POINTS} == ENTRY_POINTS
    for value in ENTRY_POINTS.values():
        module, name = value.split(":")
        assert getattr(importlib.import_module(module), name).__module__ == module


def only_task(protocol):
    """The protocol's single task, after checking that its job is a frozen dataclass that survives pickling
    (workers receive it pickled) and holds the protocol's own params object."""
    (task,) = list(protocol.tasks())
    job = task.job
    assert dataclasses.is_dataclass(job) and not isinstance(job, type)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.params = None
    assert job.params is protocol.params
    assert pickle.loads(pickle.dumps(job)) == job
    return task


def test_a_tilt_series_task_gets_the_params_typed(hiv_dir):
    from tomoforge.protocols.imports.tilt_series import ImportTiltSeries, MdocImportParams

    params = MdocImportParams(files_path=str(hiv_dir), pixel_size_A=5.4, amplitude_contrast=0.07)
    task = only_task(ImportTiltSeries(SimpleNamespace(params=params)))
    mdoc = hiv_dir.resolve() / "TS_01.mrc.mdoc"
    assert task.key == mdoc.name and task.job.mdoc == str(mdoc)
    expected = tilt_series_from_mdoc(mdoc, {"pixel_size_A": 5.4, "amplitude_contrast": 0.07})
    assert task.fn(task.job) == expected


def test_a_movie_task_gets_the_params_typed(hiv_dir, tmp_path):
    from tomoforge.protocols.imports.tilt_series import ImportTiltSeriesMovies, MovieImportParams

    frames = tmp_path / "elsewhere"
    write_frames(hiv_dir / "TS_01.mrc.mdoc", frames)
    gain = write_mrc(tmp_path / "gain.mrc", np.ones((4, 4), np.float32), 5.4)
    params = MovieImportParams(
        files_path=str(hiv_dir), frames_path=str(frames), gain_file=str(gain), dose_per_tilt_e_A2=3.2
    )
    task = only_task(ImportTiltSeriesMovies(SimpleNamespace(params=params)))
    series = task.fn(task.job)
    expected = tilt_series_from_mdoc(
        hiv_dir / "TS_01.mrc.mdoc",
        {"gain_file": str(gain.resolve()), "dose_per_tilt_e_A2": 3.2},
        movies=True,
        frames_dir=frames,
    )
    assert series == expected and Path(series.tilt_images[0].file).parent == frames.resolve()


def test_a_stack_task_gets_the_params_typed(tmp_path):
    from tomoforge.io.imod import write_tlt
    from tomoforge.protocols.imports.stacks import ImportTiltSeriesStack, StackImportParams, import_stack_task

    write_mrc(tmp_path / "TS_01.ali", np.zeros((3, 6, 8), np.float32), 4.0)
    write_tlt(tmp_path / "TS_01.tlt", [-30.0, 0.0, 30.0])
    params = StackImportParams(
        files_path=str(tmp_path), pattern="*.ali", order="continuous", dose_per_tilt_e_A2=2.0, tilt_axis_angle_deg=0
    )
    task = only_task(ImportTiltSeriesStack(SimpleNamespace(params=params)))
    result = import_stack_task(task.job)
    ts = result["tilt_series"]
    assert task.key == "TS_01.ali" and ts.name == "TS_01" and result["warnings"] == []
    assert [t.accumulated_dose_e_A2 for t in ts.tilt_images] == [2.0, 4.0, 6.0]


def test_a_tomogram_task_gets_the_params_typed(tmp_path):
    from tomoforge.protocols.imports.tomograms import ImportTomograms, TomogramImportParams

    write_mrc(tmp_path / "TS_01.mrc", np.zeros((4, 6, 8), np.int8), 10.0)
    params = TomogramImportParams(files_path=str(tmp_path), pixel_size_A=7.0)
    task = only_task(ImportTomograms(SimpleNamespace(params=params)))
    tomogram = task.fn(task.job)
    assert (tomogram.name, tomogram.size_xyz, tomogram.pixel_size_A) == ("TS_01", (8, 6, 4), 7.0)


def test_a_coordinates_task_gets_the_params_and_the_tomograms_typed(tmp_path):
    from tomoforge.protocols.imports.coordinates import CoordinateImportParams, ImportCoordinates

    (tmp_path / "picks.txt").write_text("10 20 30\n")
    tomogram = Tomogram(name="TS_02", file="TS_02.mrc", pixel_size_A=10.0, size_xyz=(40, 60, 20))
    params = CoordinateImportParams(files_path=str(tmp_path), pattern="*.txt", units="pixel", tomogram="TS_02")
    context = SimpleNamespace(params=params, input={"tomograms": [tomogram]}.__getitem__)
    task = only_task(ImportCoordinates(context))
    assert task.job.tomograms == {"TS_02": ((40, 60, 20), 10.0)}
    columns = task.fn(task.job)  # arrays, appended with append_columns
    assert {k: v.tolist() for k, v in columns.items()} == {
        "tomogram": ["TS_02"],
        "x_A": [-100.0],
        "y_A": [-100.0],
        "z_A": [200.0],
    }


def test_the_import_error_and_the_mdoc_rules_load_without_pandas():
    """Other stages raise ImportFileError from their protocol modules, which must not pull the mdoc reader
    (pandas) or any other heavy library at import."""
    probe = (
        "import json, sys\n"
        "import tomoforge.protocols.imports.files, tomoforge.protocols.imports.mdoc\n"
        "print(json.dumps([m for m in ('torch', 'scipy', 'matplotlib', 'pandas', 'dask') if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("angles", [False, True])
def test_a_star_file_marks_its_coordinates_oriented_only_when_it_gives_angles(tmp_path, angles):
    import starfile

    from tomoforge.protocols.imports.coordinates import CoordinateImportParams, coordinate_arrays_from_file

    table = {
        "rlnTomoName": ["TS_02", "TS_02"],
        "rlnCenteredCoordinateXAngst": [10.0, -20.0],
        "rlnCenteredCoordinateYAngst": [0.0, 5.0],
        "rlnCenteredCoordinateZAngst": [3.0, 4.0],
    }
    if angles:
        table.update({"rlnAngleRot": [0.0, 30.0], "rlnAngleTilt": [90.0, 0.0], "rlnAnglePsi": [0.0, 0.0]})
    starfile.write({"particles": pd.DataFrame(table)}, tmp_path / "picks.star")
    params = CoordinateImportParams(files_path=str(tmp_path), pattern="*.star")
    columns = coordinate_arrays_from_file(str(tmp_path / "picks.star"), params, {"TS_02": ((40, 60, 20), 10.0)})
    assert columns["x_A"].tolist() == [10.0, -20.0]
    assert ("has_orientation" in columns) is angles
    if angles:
        assert columns["has_orientation"].tolist() == [True, True]
        # tilt 90° about y (ZYZ): the reference's z goes to the tomogram's x (or −x), not left as the identity
        assert abs(abs(columns["rotation"][0][0, 2]) - 1.0) < 1e-9
