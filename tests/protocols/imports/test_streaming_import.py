"""Streaming import during a (replayed) acquisition: complete tilt series only, consumers follow, kill, stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.engine.test_faults import wait_for
from tests.engine.test_streaming import scheduled_while
from tomoforge.cli.main import app
from tomoforge.engine import ExecutorConfig, ParamsError, Project
from tomoforge.protocols.imports.mdoc import tilt_series_from_mdoc
from tomoforge.protocols.imports.watch import MdocWatcher
from tomoforge.simulate import simulate

SERIAL = ExecutorConfig(kind="serial")
SETTLE = {"streaming": True, "settle_s": 0.5, "tilts_per_series": 7}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, test_data) -> Path:
    """The simulator's `tiny` preset (7 tilts of 128², 3 frames each): the movies the microscope replays."""
    out = tmp_path_factory.mktemp("tiny")
    simulate(out, preset="tiny", seed=7, overrides={"data_root": str(test_data)}, progress=False)
    return out


class Microscope:
    """Replays the simulated acquisition into a folder: per tilt, its movie (in two writes), then its mdoc section.

    Tilt series ``TS_02``, ``TS_03``... are the simulated ``TS_01`` under another name.
    """

    def __init__(self, simulated: Path, folder: Path):
        self.simulated, self.folder = simulated, folder
        (folder / "frames").mkdir(parents=True, exist_ok=True)
        text = (simulated / "TS_01.mrc.mdoc").read_text()
        self.header, *self.sections = re.split(r"(?=\[ZValue = )", text)

    def mdoc(self, name: str) -> Path:
        return self.folder / f"{name}.mrc.mdoc"

    def tilt(self, name: str, i: int, pause_s: float = 0.0, movie: bool = True) -> None:
        section = self.sections[i]
        if movie:
            source = self.simulated / "frames" / Path(re.search(r"SubFramePath = (\S+)", section).group(1)).name
            data = source.read_bytes()
            with open(self.folder / "frames" / source.name.replace("TS_01", name), "wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                time.sleep(pause_s)
                handle.write(data[len(data) // 2 :])
        with open(self.mdoc(name), "a", encoding="utf-8") as handle:
            handle.write((self.header if i == 0 else "") + section.replace("TS_01", name))

    def series(self, name: str, tilts: int = 7, pause_s: float = 0.0) -> None:
        for i in range(tilts):
            self.tilt(name, i, pause_s)


def test_a_tilt_series_is_complete_only_with_all_its_tilts_and_settled_movies(tiny, tmp_path):
    now = [0.0]
    scope = Microscope(tiny, tmp_path / "acq")
    watcher = MdocWatcher(scope.folder, "*.mdoc", None, settle_s=5.0, tilts_per_series=7, clock=lambda: now[0])
    scope.series("TS_01", tilts=3)
    assert watcher.scan() == [] and "3 of 7 tilts" in watcher.pending[scope.mdoc("TS_01")]
    for i in range(3, 6):
        scope.tilt("TS_01", i)
    scope.tilt("TS_01", 6, movie=False)  # the mdoc names a movie not written yet
    now[0] += 1
    assert watcher.scan() == [] and "changed 0.0 s ago" in watcher.pending[scope.mdoc("TS_01")]
    now[0] += 10
    assert watcher.scan() == [] and "is missing" in watcher.pending[scope.mdoc("TS_01")]
    movie = scope.folder / "frames" / "TS_01_006_-30.0.mrc"
    data = (tiny / "frames" / "TS_01_006_-30.0.mrc").read_bytes()
    movie.write_bytes(data[:1000])
    now[0] += 10
    assert watcher.scan() == [] and "still growing" in watcher.pending[scope.mdoc("TS_01")]  # first seen
    movie.write_bytes(data)
    now[0] += 10
    assert watcher.scan() == []  # it grew since
    now[0] += 10
    assert watcher.scan() == [scope.mdoc("TS_01").resolve()]
    assert watcher.scan() == [] and watcher.pending == {}  # accepted once
    now[0] += 100
    assert watcher.idle_s() == pytest.approx(110.0)


def test_a_half_written_mdoc_waits_and_a_series_without_a_tilt_count_settles(tiny, tmp_path):
    now = [0.0]
    scope = Microscope(tiny, tmp_path / "acq")
    watcher = MdocWatcher(scope.folder, "*.mdoc", None, settle_s=5.0, clock=lambda: now[0])
    scope.series("TS_01", tilts=2)
    with open(scope.mdoc("TS_01"), "a") as handle:
        handle.write("[ZValue = 2]\nTiltAn")
    assert watcher.scan() == [] and "does not read yet" in watcher.pending[scope.mdoc("TS_01")]
    with open(scope.mdoc("TS_01"), "a") as handle:
        handle.write("gle = 20.0\n")
    now[0] += 1
    assert watcher.scan() == [] and "changed 0.0 s ago" in watcher.pending[scope.mdoc("TS_01")]
    now[0] += 10
    assert watcher.scan() == [] and "[ZValue = 2] (None) is missing" in watcher.pending[scope.mdoc("TS_01")]
    scope.series("TS_02", tilts=2)  # without tilts_per_series, two settled tilts make a tilt series
    accepted = []
    for _ in range(3):  # mdoc first seen; movies first seen; all settled
        now[0] += 10
        accepted += watcher.scan()
    assert accepted == [scope.mdoc("TS_02").resolve()]


def test_streaming_import_feeds_motion_correction_and_dose_filter_during_the_acquisition(tiny, tmp_path):
    scope = Microscope(tiny, tmp_path / "acq")
    project = Project.create(tmp_path / "project")
    importing = project.new_run(
        "import-tilt-series-movies",
        {"files_path": str(scope.folder), **SETTLE, "stream_timeout_s": 4.0},
        executor=SERIAL,
    )
    motion = project.new_run(
        "motion-correction", {"odd_even": False}, {"tilt_series": f"{importing}.tilt_series"}, executor=SERIAL
    )
    dose = project.new_run("dose-filter", {}, {"tilt_series": f"{motion}.tilt_series"}, executor=SERIAL)
    for run_id in (dose, motion, importing):
        project.schedule(run_id)

    def acquisition():
        watcher = Project.open(project.root)
        scope.series("TS_01", pause_s=0.05)
        try:  # the next tilt series only once the first went through the whole chain
            wait_for(lambda: watcher.output_sets(dose) and len(watcher.output_set(dose, "tilt_series")), 120)
        finally:
            scope.series("TS_02", pause_s=0.05)
        scope.series("TS_03", tilts=3)  # the session ends mid-series
        watcher.close()

    outcome = scheduled_while(project, acquisition)
    assert outcome == {importing: "finished", motion: "finished", dose: "finished"}
    for run_id in (importing, motion, dose):
        assert project.output_set(run_id, "tilt_series").keys() == ["TS_01", "TS_02"]
        assert project.output_set(run_id, "tilt_series").is_closed
    done = dict(project.conn.execute("SELECT run_id || '/' || key, finished FROM run_tasks").fetchall())
    assert done[f"{dose}/TS_01"] < done[f"{importing}/TS_02.mrc.mdoc"]  # TS_01 came out before TS_02 went in
    log = (project.run_dir(importing) / "run.log").read_text()
    assert re.search(r"WARNING: TS_03.mrc.mdoc not imported: incomplete when the stream ended \(3 of 7 tilts", log)
    assert "2 tilt series complete, 1 incomplete (source closed" in log
    imported = project.output_set(importing, "tilt_series").get("TS_02")
    batch = tilt_series_from_mdoc(
        scope.mdoc("TS_02"), {"spherical_aberration_mm": 2.7, "amplitude_contrast": 0.1, "gain_file": ""}, movies=True
    )
    assert imported.model_dump() == batch.model_dump()  # streaming imports exactly what a batch import would
    project.close()


def tomoforge(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tomoforge.cli.main", "-p", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def cli(root: Path, *args: str) -> str:
    """A command in this process (what runs in the background goes through ``tomoforge()``)."""
    result = CliRunner().invoke(app, ["-p", str(root), *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def wait_for_items(project: Project, run_id: int, n: int, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if project.output_sets(run_id) and len(project.output_set(run_id, "tilt_series")) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not reach {n} items")


def streaming_args(folder: Path, timeout_s: float) -> list[str]:
    args = [
        "run",
        "import-tilt-series-movies",
        "--set",
        f"files_path={folder}",
        "--executor",
        "serial",
        "--set",
        f"stream_timeout_s={timeout_s}",
        "--set",
        "stop_file=DONE",
    ]
    for key, value in SETTLE.items():
        args += ["--set", f"{key}={value}"]
    return args


def test_a_killed_streaming_import_continues_without_duplicates(tiny, tmp_path):
    scope = Microscope(tiny, tmp_path / "acq")
    project = Project.create(tmp_path / "project")
    scope.series("TS_01")
    scope.series("TS_02")
    proc = tomoforge(project.root, *streaming_args(scope.folder, 60.0))
    try:
        wait_for_items(project, 1, 1)
        assert re.search(r"tilt_series \([12], open\)", cli(project.root, "runs"))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert project.refresh_state(1) == "failed"
    kept = project.output_set(1, "tilt_series").keys()
    done = [r[0] for r in project.conn.execute("SELECT key FROM run_tasks WHERE state = 'done' ORDER BY key")]
    assert [f"{k}.mrc.mdoc" for k in kept] == done  # each committed item has its task record, nothing else
    scope.series("TS_03")
    (scope.folder / "DONE").touch()
    assert "run 1 finished" in cli(project.root, "continue", "1")
    assert project.output_set(1, "tilt_series").keys() == ["TS_01", "TS_02", "TS_03"]
    log = (project.run_dir(1) / "run.log").read_text()
    assert all(len(re.findall(rf"\] {k}.mrc.mdoc done", log)) == 1 for k in kept)  # not imported twice
    assert "output tilt_series: 3 TiltSeriesMovie (closed)" in cli(project.root, "show", "1")
    project.close()


def test_tomoforge_stop_ends_a_streaming_import(tiny, tmp_path):
    scope = Microscope(tiny, tmp_path / "acq")
    project = Project.create(tmp_path / "project")
    scope.series("TS_01")
    proc = tomoforge(project.root, *streaming_args(scope.folder, 300.0))
    try:
        wait_for_items(project, 1, 1)
        scope.series("TS_02", tilts=2)
        assert "run 1: stop requested" in cli(project.root, "stop", "1")
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "run 1 finished" in out, out
    assert project.output_set(1, "tilt_series").keys() == ["TS_01"] and project.output_set(1, "tilt_series").is_closed
    log = (project.run_dir(1) / "run.log").read_text()
    assert "stream ended (stop requested)" in log and "WARNING: TS_02.mrc.mdoc not imported" in log
    project.close()


def test_streaming_params_are_checked(tmp_path):
    project = Project.create(tmp_path / "project")
    with pytest.raises(ParamsError, match=r"stream_timeout_s \(5 s\) must exceed settle_s \(30 s\)"):
        project.new_run(
            "import-tilt-series-movies", {"files_path": str(tmp_path), "streaming": True, "stream_timeout_s": 5}
        )
    project.close()
