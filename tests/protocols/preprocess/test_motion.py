"""Motion correction as a run on the simulator's tiny preset (2 tilt series): shifts against the truth,
outputs, and bad input (fewer frames, gain of the wrong size or orientation, missing movie) failing only its
own tilt series; the `small` preset's shifts on a subset of tilts; EER movies grouped and upsampled."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tomoforge.engine import ExecutorConfig, Project, execute_run
from tomoforge.io.movies import read_movie
from tomoforge.io.mrc import read_mrc, read_voxel_size, write_mrc
from tomoforge.io.plot_data import read_plot_data

SERIAL = ExecutorConfig(kind="serial")


def simulate_tiny(folder: Path, series: int = 2) -> Path:
    """The tiny preset with ``series`` tilt series (skips where the simulator's data files are absent)."""
    from tomoforge.simulate.run import simulate

    try:
        simulate(folder, preset="tiny", seed=0, overrides={"acquisition.tilt_series_count": series})
    except FileNotFoundError as exc:
        pytest.skip(f"simulator data missing: {exc}")
    return folder


def run(project: Project, name: str, params: dict, inputs: dict | None = None) -> tuple[int, str]:
    run_id = project.new_run(name, params, inputs or {}, executor=SERIAL)
    return run_id, execute_run(project, run_id)


def truth_of(sim: Path, name: str) -> dict:
    from tomoforge.simulate.truth import read_truth

    return read_truth(sim / "truth" / name / "truth.json")


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    """(project, simulation folder, import run, motion-correction run) shared by this module's tests."""
    root = tmp_path_factory.mktemp("motion")
    sim = simulate_tiny(root / "sim")
    project = Project.create(root / "project")
    imp, state = run(project, "import-tilt-series-movies", {"files_path": str(sim), "gain_file": str(sim / "gain.mrc")})
    assert state == "finished", project.run(imp)["error"]
    mc, state = run(project, "motion-correction", {}, {"tilt_series": f"{imp}.tilt_series"})
    assert state == "finished", project.run(mc)["error"]
    yield project, sim, imp, mc
    project.close()


def shift_errors_px(ts, truth: dict, pixel_size_A: float) -> np.ndarray:
    """(x, y) errors of every frame shift, each movie's mean removed (the truth has mean 0)."""
    by_order = {t["acquisition_order"]: np.asarray(t["frame_shifts_A"]) for t in truth["tilts"]}
    errors = []
    for t in ts.tilt_images:
        est = np.asarray(t.frame_shifts_A)
        errors.append((est - est.mean(0)) - by_order[t.acquisition_order])
    return np.concatenate(errors) / pixel_size_A


def test_motion_correction_recovers_the_simulated_frame_shifts(corrected):
    project, sim, _, mc = corrected
    output = project.output_set(mc, "tilt_series")
    assert sorted(output.keys()) == ["TS_01", "TS_02"]
    for ts in output:
        errors = shift_errors_px(ts, truth_of(sim, ts.name), 6.0)
        rms = float(np.sqrt((errors**2).sum(1).mean()))
        assert rms < 0.2, rms  # measured 0.075 / 0.080 px (128², 3 frames of 1 e/Å² each)
        assert all(len(t.frame_shifts_A) == 3 for t in ts.tilt_images)


def test_outputs_stacks_halves_table_and_plot(corrected):
    project, sim, _, mc = corrected
    ts = project.output_set(mc, "tilt_series").get("TS_01")
    stack = project.absolute(ts.stack_file)
    data = read_mrc(stack)
    assert data.shape == (7, 128, 128) and read_voxel_size(stack) == pytest.approx(6.0, abs=1e-3)
    odd, even = read_mrc(project.absolute(ts.odd_stack_file)), read_mrc(project.absolute(ts.even_stack_file))
    assert np.allclose(odd + even, data, atol=1e-2)
    assert [t.index for t in ts.tilt_images] == list(range(7))
    assert [t.tilt_angle_deg for t in ts.tilt_images] == sorted(t.tilt_angle_deg for t in ts.tilt_images)
    assert not ts.dose_weighted and ts.tilt_images[0].file == ts.stack_file
    out = project.run_dir(mc) / "out"
    table = (out / "TS_01_shifts.txt").read_text().splitlines()
    assert len(table) == 1 + 7 * 3
    assert (out / "TS_01_shifts.svg").read_text().count("<polyline") == 7
    drift = read_plot_data(out / "TS_01_drift.plot.json")  # beside its PNG, for the web's interactive plot
    assert (out / "TS_01_drift.png").stat().st_size > 1000
    assert drift.series[0].x == [t.tilt_angle_deg for t in ts.tilt_images]
    first = np.array([[float(v) for v in row.split()[2:]] for row in table[1:4]])  # the lowest tilt's 3 frames
    assert drift.series[0].y[0] == pytest.approx(np.linalg.norm(np.diff(first, axis=0), axis=1).sum(), abs=2e-3)
    # the sum is gain-corrected: its mean is that of the gain-corrected frames, the dose in counts (3 e/Å² ×
    # 36 Å²/px = 108) less what the ice and the tiny preset's 6 gold beads absorb (about 93)
    gain = read_mrc(sim / "gain.mrc").astype(np.float64)
    sums = [read_movie(m).astype(np.float64).sum(axis=0) * gain for m in sorted((sim / "frames").glob("TS_01_*"))]
    assert len(sums) == 7 and data.mean() == pytest.approx(np.mean(sums), rel=0.01)
    assert data.mean() == pytest.approx(108, rel=0.2)


def test_binning_dose_weighting_and_local_patches(corrected):
    project, sim, imp, _ = corrected
    params = {"binning": 2, "dose_weighting": True, "patches_x": 2, "patches_y": 2, "odd_even": False}
    mc, state = run(project, "motion-correction", params, {"tilt_series": f"{imp}.tilt_series"})
    assert state == "finished", project.run(mc)["error"]
    ts = project.output_set(mc, "tilt_series").get("TS_02")
    assert ts.dose_weighted and ts.acquisition.pixel_size_A == pytest.approx(12.0) and not ts.odd_stack_file
    assert read_mrc(project.absolute(ts.stack_file)).shape == (7, 64, 64)


def break_and_run(project, sim, imp, breaker, params=None):
    """Break TS_02's input with ``breaker``, run motion correction; restore the simulation afterwards."""
    backup = sim.parent / "backup"
    shutil.copytree(sim, backup)
    try:
        detail = breaker(sim)
        mc, state = run(project, "motion-correction", params or {}, {"tilt_series": f"{imp}.tilt_series"})
        return mc, state, detail
    finally:
        shutil.rmtree(sim)
        shutil.move(backup, sim)


def movie_of(sim: Path, series: str) -> Path:
    return sorted((sim / "frames").glob(f"{series}_*"))[0]


@pytest.mark.parametrize("problem", ["fewer frames", "missing movie", "wrong gain", "rotated gain"])
def test_a_broken_tilt_series_fails_alone_with_the_file_named(corrected, problem):
    project, sim, imp, _ = corrected

    def breaker(folder: Path) -> str:
        movie = movie_of(folder, "TS_02")
        if problem == "fewer frames":
            write_mrc(movie, read_mrc(movie)[:2].astype(np.int16), 6.0, overwrite=True)
            return f"{movie}: holds 2 frames but the metadata says 3"
        if problem == "missing movie":
            movie.unlink()
            return f"{movie}: movie file not found"
        if problem == "rotated gain":  # square detector: only the orientation check can tell
            write_mrc(folder / "bad_gain.mrc", np.rot90(read_mrc(folder / "gain.mrc")).copy(), 6.0)
            return "bad_gain.mrc"
        write_mrc(folder / "bad_gain.mrc", np.ones((64, 64), np.float32), 6.0)
        return "bad_gain.mrc"

    params = {"gain_file": str(sim / "bad_gain.mrc")} if "gain" in problem else {}
    mc, state, detail = break_and_run(project, sim, imp, breaker, params)
    assert state == "failed"
    error = project.run(mc)["error"]
    assert detail in error, error
    if problem == "wrong gain":  # the gain is shared: both fail, each naming the gain and its shape
        assert "2 of 2 items failed" in error and "does not match the frames (128, 128)" in error
    elif problem == "rotated gain":  # each names the gain and the rotation that fits
        assert "2 of 2 items failed" in error and "fit it turned by a further 270°" in error, error
    else:
        assert "1 of 2 items failed" in error and "TS_02" in error
        done = project.conn.execute("SELECT key FROM run_tasks WHERE run_id = ? AND state = 'done'", (mc,)).fetchall()
        assert [r["key"] for r in done] == ["TS_01"]


SMALL_TILTS = "abs(tilt_angle_deg) <= 3 or abs(tilt_angle_deg) >= 57"  # 7 of the 41: 0°, ±3°, ±57°, ±60°


def test_small_preset_shifts_match_the_truth_on_a_subset_of_tilts(small_sim, tmp_path):
    """The `small` preset (1024², 8 frames of 0.375 e/Å², gain, hot pixels, X-rays), 7 tilts through the input filter."""
    project = Project.create(tmp_path / "project")
    imp, state = run(
        project, "import-tilt-series-movies", {"files_path": str(small_sim.outdir), "gain_file": str(small_sim.gain)}
    )
    assert state == "finished", project.run(imp)["error"]
    mc, state = run(
        project, "motion-correction", {"dose_weighting": True}, {"tilt_series": f"{imp}.tilt_series[{SMALL_TILTS}]"}
    )
    assert state == "finished", project.run(mc)["error"]
    ts = project.output_set(mc, "tilt_series").get("TS_01")
    truth = small_sim.tilt_series[0].truth
    assert sorted(t.tilt_angle_deg for t in ts.tilt_images) == [-60, -57, -3, 0, 3, 57, 60]
    assert ts.dose_weighted and read_mrc(project.absolute(ts.stack_file)).shape == (7, 1024, 1024)
    errors = shift_errors_px(ts, truth, truth["pixel_size_A"])
    per_tilt = np.sqrt((errors.reshape(7, 8, 2) ** 2).sum(-1).mean(-1))
    rms = float(np.sqrt((errors**2).sum(1).mean()))
    true_rms = float(np.sqrt(np.mean([(np.asarray(t["frame_shifts_A"]) ** 2).sum(1).mean() for t in truth["tilts"]])))
    # measured 0.072 px overall, 0.047–0.082 per tilt (RELION 3.1 on the same kind of data: 0.090)
    assert rms < 0.09 and per_tilt.max() < 0.11, (rms, per_tilt)
    assert true_rms / truth["pixel_size_A"] > 3 * rms  # the motion is there to find (0.33 px RMS per frame)
    project.close()


def test_eer_movies_are_grouped_by_dose_and_aligned(tmp_path):
    """A synthetic EER movie (events of 4 shifted frames, 3 counts/px each, spread over fractions): frames
    grouped by ``eer_frame_dose_e_A2``, shifts recovered on the physical and the 2× upsampled grid."""
    pytest.importorskip("imagecodecs")
    import torch

    from tests.io.eer import events_from_counts, write_eer
    from tomoforge.methods.fourier import fourier_shift_2d
    from tomoforge.protocols.preprocess.motion import MotionJob, MotionParams, MovieSource, motion_correct_task

    n, pixel, rng = 128, 2.0, np.random.default_rng(0)
    k2 = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.rfftfreq(n)[None] ** 2
    spec = np.fft.rfft2(rng.normal(size=(n, n))) / np.sqrt(k2 + 1e-4) * np.exp(-50 * k2)
    img = np.fft.irfft2(spec, s=(n, n))
    img = (img - img.min()) / (img - img.min()).mean()
    true = np.array([[0.0, 0.0], [1.5, -2.0], [3.0, -1.0], [4.5, 0.5]])  # (y, x) px, frame content displaced by +s
    counts = [
        rng.poisson(3 * fourier_shift_2d(torch.from_numpy(img).float(), torch.tensor(s)).clamp(min=0).numpy())
        for s in true
    ]
    per_frame = int(max(c.max() for c in counts))
    fractions = []
    for c in counts:  # each frame spread over the same number of fractions
        events = events_from_counts(c, rng)
        fractions += events + [np.zeros((0, 4), int)] * (per_frame - len(events))
    movie = write_eer(tmp_path / "TS_01_000_0.0.eer", fractions, (n, n))
    dose = 4 * 3 / pixel**2  # e/Å² of the tilt
    movies = (
        MovieSource(
            file=str(movie),
            n_frames=len(fractions),
            frame_dose_e_A2=dose / len(fractions),
            pre_exposure_e_A2=0.0,
            dose_e_A2=dose,
        ),
    )
    for up in (1, 2):
        params = MotionParams(eer_frame_dose_e_A2=dose / 4, eer_upsampling=up, bfactor_A2=500, dose_weighting=True)
        job = MotionJob(
            movies=movies,
            out_base=str(tmp_path / f"up{up}"),
            pixel_size_A=pixel,
            voltage_kV=300.0,
            gain_file="",
            params=params,
        )
        result = motion_correct_task(job)
        assert result["pixel_size_A"] == pytest.approx(pixel / up)
        stack = read_mrc(result["stacks"]["file"])
        assert stack.shape == (1, n * up, n * up)
        assert stack.sum() == pytest.approx(sum(c.sum() for c in counts), rel=1e-4)  # dose weights keep the mean
        shifts = np.asarray(result["shifts_A"][0])[:, ::-1] / pixel  # (y, x) physical px
        assert len(shifts) == 4
        error = float(np.sqrt((((shifts - shifts.mean(0)) - (true - true.mean(0))) ** 2).sum(1).mean()))
        assert error < 0.12, (up, shifts)  # measured 0.069 px (physical grid), 0.071 px (upsampled 2×)
