"""exclude-ctfs as runs: the real SerialEM HIV mdoc (41 tilts) with a CTF imported from a RELION 5 star
in which three entries are planted bad (fit resolution, astigmatism, a defocus jump); by criteria, by
list, restore, and propagation to the tilt series' views."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tomoforge.engine import ExecutorConfig, execute_run
from tomoforge.io.ctf import write_relion_ctf
from tomoforge.model.ctf import CTFTiltImage
from tomoforge.protocols.ctf.exclude import CTFExclusionJob, ExcludeCTFParams, ctf_exclusion_task

SERIAL = ExecutorConfig(kind="serial")


def run(project, name, params, inputs=None, expect="finished"):
    run_id = project.new_run(name, params, inputs or {}, executor=SERIAL)
    state = execute_run(project, run_id)
    assert state == expect, project.run(run_id)["error"]
    return run_id


@pytest.fixture
def with_ctf(project, hiv_dir, tmp_path):
    """(project, import run, import-ctf run, {planted fault: tilt angle})."""
    imp = run(project, "import-tilt-series", {"files_path": str(hiv_dir)})
    tilts = sorted(t.tilt_angle_deg for t in project.output_set(imp, "tilt_series").get("TS_01").tilt_images)
    n = len(tilts)
    defocus = 30000.0 + 400.0 * np.sin(np.linspace(0, 3, n))  # a smooth drift of ±400 Å
    astig = np.full(n, 300.0)
    resolution = np.linspace(8.0, 14.0, n)
    bad = {"resolution": tilts[3], "astigmatism": tilts[20], "jump": tilts[30]}
    resolution[3], astig[20], defocus[30] = 30.0, 2500.0, defocus[30] + 3000.0
    table = pd.DataFrame(
        {
            "view": range(1, n + 1),
            "tilt_angle_deg": tilts,
            "defocus_u_A": defocus + astig / 2,
            "defocus_v_A": defocus - astig / 2,
            "astigmatism_angle_deg": 40.0,
            "fit_resolution_A": resolution,
            "score": 0.05,
        }
    )
    folder = tmp_path / "ctf"
    write_relion_ctf(table, folder / "TS_01.star", "TS_01")
    ctf = run(
        project, "import-ctf", {"files_path": str(folder), "format": "relion"}, {"tilt_series": f"{imp}.tilt_series"}
    )
    return project, imp, ctf, bad


def excluded_angles(project, run_id, output="ctf"):
    item = project.output_set(run_id, output).get("TS_01")
    rows = item.entries if output == "ctf" else item.tilt_images
    return sorted(e.tilt_angle_deg for e in rows if e.excluded)


def test_criteria_find_the_planted_entries_and_restore_clears_them(with_ctf):
    project, imp, ctf, bad = with_ctf
    ex = run(
        project,
        "exclude-ctfs",
        {"max_fit_resolution_A": 20.0, "max_astigmatism_A": 1000.0, "max_defocus_jump_A": 1000.0},
        {"ctf": f"{ctf}.ctf"},
    )
    assert excluded_angles(project, ex) == sorted(bad.values())
    log = (project.run_dir(ex) / "run.log").read_text()
    assert "fit resolution 30.0 Å" in log and "astigmatism 2500 Å" in log
    jump = re.search(r"\(\+30\.0°\) excluded: defocus \d+ Å, ([-+]\d+) Å from its neighbours", log)
    assert jump and abs(int(jump.group(1)) - 3000) < 50, log  # planted +3000 Å; measured +3002
    assert len(project.output_set(ex, "ctf").get("TS_01").entries) == 41  # excluded, not deleted
    listed = run(
        project, "exclude-ctfs", {"tilt_angles_deg": [-30.0], "acquisition_orders": [41]}, {"ctf": f"{ex}.ctf"}
    )
    last = max(project.output_set(ctf, "ctf").get("TS_01").entries, key=lambda e: e.acquisition_order)
    assert excluded_angles(project, listed) == pytest.approx(
        sorted([*bad.values(), -30.0, last.tilt_angle_deg]), abs=0.01
    )
    restored = run(project, "exclude-ctfs", {"restore": True}, {"ctf": f"{listed}.ctf"})
    assert excluded_angles(project, restored) == []


def test_propagation_excludes_the_views_and_needs_the_tilt_series(with_ctf):
    project, imp, ctf, bad = with_ctf
    views = run(project, "exclude-views", {"tilt_angles_deg": [60.0]}, {"tilt_series": f"{imp}.tilt_series"})
    ex = run(
        project,
        "exclude-ctfs",
        {"max_astigmatism_A": 1000.0, "propagate": True},
        {"ctf": f"{ctf}.ctf", "tilt_series": f"{views}.tilt_series"},
    )
    assert excluded_angles(project, ex, "tilt_series") == pytest.approx(sorted([bad["astigmatism"], 60.0]), abs=0.01)
    again = run(
        project,
        "exclude-ctfs",
        {"max_astigmatism_A": 1000.0, "propagate": True, "restore": True},
        {"ctf": f"{ctf}.ctf", "tilt_series": f"{views}.tilt_series"},
    )
    assert excluded_angles(project, again, "tilt_series") == [bad["astigmatism"]]
    failed = run(project, "exclude-ctfs", {"propagate": True}, {"ctf": f"{ctf}.ctf"}, expect="failed")
    assert "propagate needs the tilt_series input" in project.run(failed)["error"]


def test_defocus_jump_is_against_the_neighbours_in_tilt_not_the_series_mean():
    tilts = np.arange(-60.0, 61.0, 3.0)
    defocus = 30000.0 + 60.0 * tilts  # a 7200 Å gradient over the series (e.g. a tilted specimen)
    entries = [
        CTFTiltImage(acquisition_order=i + 1, tilt_angle_deg=float(t), defocus_u_A=float(d), defocus_v_A=float(d))
        for i, (t, d) in enumerate(zip(tilts, defocus))
    ]
    criteria = ExcludeCTFParams(max_fit_resolution_A=10.0, max_defocus_jump_A=500.0)
    assert not any(ctf_exclusion_task(CTFExclusionJob(entries=entries, params=criteria))["excluded"])  # kept
    first = float(defocus[0]) + 800.0  # the first: only right neighbours
    entries[0] = entries[0].model_copy(update={"defocus_u_A": first, "defocus_v_A": first})
    result = ctf_exclusion_task(CTFExclusionJob(entries=entries, params=criteria))
    assert result["excluded"] == [True] + [False] * 40, result["reasons"][:3]
