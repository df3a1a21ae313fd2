"""CTF estimation as runs on the simulator's `small` series: the gain-corrected frame sums imported as a
stack (views |tilt| ≤ 30° through the input filter, one excluded view), and the noise-free series
imported with the tilt axis given 180° off (the defocus gradient must be flagged)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tomoforge.engine import ExecutorConfig, Project, execute_run
from tomoforge.io.movies import read_gain, read_movie
from tomoforge.io.mrc import read_mrc, write_mrc
from tomoforge.io.plot_data import plot_data_path, read_plot_data

pytestmark = pytest.mark.slow
SERIAL = ExecutorConfig(kind="serial")


def run(project, name, params, inputs=None):
    run_id = project.new_run(name, params, inputs or {}, executor=SERIAL)
    state = execute_run(project, run_id)
    assert state == "finished", project.run(run_id)["error"]
    return run_id


def import_stack(project, small_sim, folder, stack: np.ndarray, **params) -> int:
    """The stack (acquisition order = the mdoc's ZValue order) beside a copy of the simulated mdoc, imported."""
    ts = small_sim.tilt_series[0]
    folder.mkdir()
    shutil.copy(ts.mdoc, folder / "TS_01.mrc.mdoc")
    write_mrc(folder / "TS_01.mrc", stack.astype(np.float32), ts.truth["pixel_size_A"])
    return run(project, "import-tilt-series", {"files_path": str(folder), "amplitude_contrast": 0.07, **params})


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    p = Project.create(tmp_path_factory.mktemp("ctf") / "project")
    yield p
    p.close()


def frame_sums(small_sim) -> np.ndarray:
    """Each movie's frames times the gain, summed (motion is left in: 3 Å, it barely blurs 10 Å rings)."""
    gain = torch.from_numpy(read_gain(small_sim.gain))
    return np.stack([(torch.from_numpy(read_movie(m)) * gain).sum(0).numpy() for m in small_sim.tilt_series[0].movies])


def test_ctf_estimation_run_outputs_and_accuracy(project, small_sim, tmp_path):
    truth = small_sim.tilt_series[0].truth
    imp = import_stack(project, small_sim, tmp_path / "sums", frame_sums(small_sim))
    ex = run(project, "exclude-views", {"acquisition_orders": [4]}, {"tilt_series": f"{imp}.tilt_series"})
    ctf = run(project, "ctf-estimation", {}, {"tilt_series": f"{ex}.tilt_series[abs(tilt_angle_deg) <= 30]"})
    series = project.output_set(ctf, "ctf").get("TS_01")
    assert len(series.entries) == 21
    by_order = {t["acquisition_order"]: t for t in truth["tilts"]}
    errors = []
    for e in series.entries:
        t = by_order[e.acquisition_order]
        assert e.tilt_angle_deg == pytest.approx(t["nominal_tilt_deg"])
        assert e.excluded == (e.acquisition_order == 4)
        assert e.defocus_u_A >= e.defocus_v_A and 5.9 < e.fit_resolution_A < 60 and e.score is not None
        assert e.score_gap is None or e.ambiguous == (e.score_gap < 1.0)  # the per-tilt confidence is stored
        errors.append(e.defocus_A - 0.5 * (t["defocus_u_A"] + t["defocus_v_A"]))
    # measured 32 Å (issue floor 250 Å over |tilt| ≤ 40°): frames summed without motion correction, and no
    # alignment, so the fit is at the image centre while the truth is at the specimen centre (≤ ~150 Å apart)
    assert np.median(np.abs(errors)) < 150
    spectra = read_mrc(project.absolute(series.spectra_file))
    assert spectra.shape == (21, 512, 512) and np.isfinite(spectra).all()
    for png in (series.plot_file, series.spectra_plot_file):
        assert project.absolute(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot = read_plot_data(plot_data_path(project.absolute(series.plot_file)))  # drawn interactively by the web
    mean = {e.tilt_angle_deg: e.defocus_A / 1e4 for e in series.entries}
    assert plot.series[0].y == pytest.approx([mean[t] for t in plot.series[0].x])
    assert sum(plot.series[1].hollow or []) == 1  # the excluded view 4
    assert series.hand_check in ("consistent", "inconclusive")
    log = (project.run_dir(ctf) / "run.log").read_text()
    assert log.count("TS_01 view ") == 21 and "view 4 (-3.0°)" in log and "(excluded)" in log
    assert "consensus defocus" in log and "no clear Thon rings" not in log
    assert sum(e.ambiguous for e in series.entries) <= 3 and log.count(" SD") >= 18  # the gap is logged per view


def test_tilt_axis_180_degrees_off_is_flagged(project, small_sim, tmp_path):
    ts = small_sim.tilt_series[0]
    imp = import_stack(
        project,
        small_sim,
        tmp_path / "noise_free",
        read_mrc(ts.noise_free_stack),
        tilt_axis_angle_deg=ts.truth["tilt_axis_angle_deg"] + 180.0,
    )
    # the views at multiples of 6° (21 of 41, 16 of them tilted ≥ 15° for the hand's sign test): half the work
    ctf = run(project, "ctf-estimation", {}, {"tilt_series": f"{imp}.tilt_series[tilt_angle_deg % 6 = 0]"})
    series = project.output_set(ctf, "ctf").get("TS_01")
    assert len(series.entries) == 21 and series.hand_check == "opposite"
    log = (project.run_dir(ctf) / "run.log").read_text()
    assert (
        "WARNING: defocus gradient opposite to the geometry: tilt axis 180° off or tilt angles of the wrong sign" in log
    )
