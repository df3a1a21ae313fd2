"""Dose filter, X-ray eraser, binning and exclude views as runs on the simulator's tiny preset."""

from __future__ import annotations

import numpy as np
import pytest

from tests.protocols.preprocess.test_motion import corrected, run, truth_of  # noqa: F401 - the module fixture
from tomoforge.io.mrc import read_mrc, read_voxel_size, write_mrc
from tomoforge.protocols.preprocess.exclude import ExcludeParams, ExclusionJob, exclusion_task

GG_A, GG_B, GG_C = 0.245, -1.665, 2.81  # Grant & Grigorieff 2015


def stacks(project, mc, other, name="TS_01"):
    a = project.output_set(mc, "tilt_series").get(name)
    b = project.output_set(other, "tilt_series").get(name)
    return a, b, read_mrc(project.absolute(a.stack_file)), read_mrc(project.absolute(b.stack_file))


def test_dose_filter_attenuates_each_frequency_by_the_published_formula(corrected):
    project, _, _, mc = corrected
    df, state = run(project, "dose-filter", {}, {"tilt_series": f"{mc}.tilt_series"})
    assert state == "finished", project.run(df)["error"]
    before, after, x, y = stacks(project, mc, df)
    assert after.dose_weighted and not before.dose_weighted
    fx, fy = np.fft.rfft2(x.astype(np.float64)), np.fft.rfft2(y.astype(np.float64))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(128, 6.0), np.fft.rfftfreq(128, 6.0), indexing="ij"))
    k[0, 0] = 1e-9
    worst = 0.0
    for i, t in enumerate(before.tilt_images):
        expected = np.exp(-t.accumulated_dose_e_A2 / (2 * (GG_A * k**GG_B + GG_C)))
        strong = np.abs(fx[i]) > 1e-3 * np.abs(fx[i]).max()
        worst = max(worst, float(np.abs(np.abs(fy[i][strong] / fx[i][strong]) - expected[strong]).max()))
    assert worst < 1e-4, worst  # measured 2.7e-5 (float32 stacks)
    df2, state = run(project, "dose-filter", {}, {"tilt_series": f"{df}.tilt_series"})
    assert state == "failed" and "already dose-weighted" in project.run(df2)["error"]


def test_xray_eraser_finds_the_simulated_hits_and_leaves_the_rest(corrected):
    project, sim, _, mc = corrected
    xr, state = run(project, "xray-eraser", {}, {"tilt_series": f"{mc}.tilt_series"})
    assert state == "finished", project.run(xr)["error"]
    found, total, changed_elsewhere, pixels = 0, 0, 0, 0
    for name in ("TS_01", "TS_02"):
        before, after, x, y = stacks(project, mc, xr, name)
        truth = truth_of(sim, name)
        changed = x != y
        position = {t.acquisition_order - 1: i for i, t in enumerate(before.tilt_images)}
        near = np.zeros(x.shape, bool)
        hits = [(h["tilt_index"], h["y_px"], h["x_px"]) for h in truth["xrays"]]
        hits += [(order, yy, xx) for order in position for yy, xx in truth["hot_pixels_yx"]]
        for order, hy, hx in hits:
            i = position[order]
            window = (i, slice(max(hy - 2, 0), hy + 4), slice(max(hx - 2, 0), hx + 4))
            near[window] = True
            found += bool(changed[window].any())
            total += 1
        changed_elsewhere += int((changed & ~near).sum())
        pixels += int((~near).sum())
        assert all(t.xray_count is not None for t in after.tilt_images)
    # measured 83/85 since the tiny preset has 3 gold beads per surface (the iterative eraser before: 84/85); both
    # misses lie on a bead: an 87-count hit inside one (missed by every eraser tried) and an 80-count 2-pixel hit
    # on a bead's edge, 3.8 SD above the bead-free side (the eraser compares a pixel with every side of it, so that
    # the bright fringe around beads is kept: tests/methods/preprocess/test_xray.py). With the simulator's noise
    # realisation of 2026-12-06 (any change to the expected images re-rolls it): 83/86, two misses inside beads
    # (86 and 88 counts, local minimum < 4 counts) and one 67-count single-pixel hit that motion correction's
    # interpolation leaves 2.3 image SD above its neighbourhood, below any threshold that keeps the rest intact
    assert found / total >= 0.96, (found, total)
    assert changed_elsewhere / pixels < 1e-3, changed_elsewhere / pixels


def test_binning_protocol_halves_the_sampling_and_inverts_normalises(corrected):
    project, _, _, mc = corrected
    pp, state = run(
        project,
        "preprocess-tilt-series",
        {"binning": 2, "invert": True, "normalise": "standardise"},
        {"tilt_series": f"{mc}.tilt_series"},
    )
    assert state == "finished", project.run(pp)["error"]
    before, after, x, y = stacks(project, mc, pp)
    assert y.shape == (7, 64, 64) and after.acquisition.pixel_size_A == pytest.approx(12.0)
    assert read_voxel_size(project.absolute(after.stack_file)) == pytest.approx(12.0, abs=1e-3)
    assert np.allclose(y.mean((1, 2)), 0, atol=1e-4) and np.allclose(y.std((1, 2)), 1, atol=1e-3)
    # inverted: the binned image correlates negatively with the input sampled every 2 pixels
    assert np.corrcoef(y[3].ravel(), x[3, ::2, ::2].ravel())[0, 1] < -0.5
    assert read_mrc(project.absolute(after.odd_stack_file)).shape == (7, 64, 64)


def test_exclude_by_list_restack_and_restore(corrected):
    project, _, _, mc = corrected
    ex, state = run(
        project,
        "exclude-views",
        {"acquisition_orders": [1], "tilt_angles_deg": [30.0]},
        {"tilt_series": f"{mc}.tilt_series"},
    )
    assert state == "finished", project.run(ex)["error"]
    ts = project.output_set(ex, "tilt_series").get("TS_01")
    excluded = {(t.acquisition_order, t.tilt_angle_deg) for t in ts.tilt_images if t.excluded}
    assert len(ts.tilt_images) == 7 and {o for o, _ in excluded} >= {1} and {a for _, a in excluded} >= {30.0}
    assert len(excluded) == 2
    rs, state = run(project, "exclude-views", {"restack": True}, {"tilt_series": f"{ex}.tilt_series"})
    assert state == "finished", project.run(rs)["error"]
    kept = project.output_set(rs, "tilt_series").get("TS_01")
    full = read_mrc(project.absolute(ts.stack_file))
    restacked = read_mrc(project.absolute(kept.stack_file))
    assert len(kept.tilt_images) == 5 and restacked.shape[0] == 5 and not any(t.excluded for t in kept.tilt_images)
    for i, t in enumerate(kept.tilt_images):
        original = next(j for j, o in enumerate(ts.tilt_images) if o.acquisition_order == t.acquisition_order)
        assert t.index == i and np.array_equal(restacked[i], full[original])
    back, state = run(project, "exclude-views", {"restore": True}, {"tilt_series": f"{ex}.tilt_series"})
    assert not any(t.excluded for t in project.output_set(back, "tilt_series").get("TS_01").tilt_images)


def test_exclusion_criteria_dark_blank_and_shift_jump(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(100, 10, (6, 32, 32)).astype(np.float32)
    images[1] *= 0.2  # dark (a grid bar)
    images[4] = 100.0  # blank
    path = write_mrc(tmp_path / "s.mrc", images, 5.0)
    sources = {"file": [(str(path), i) for i in range(6)]}
    shifts = ((0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (200.0, 0.0), (4.0, 0.0), (5.0, 0.0))  # view 3 jumps by ~200 Å
    params = ExcludeParams(dark_fraction=0.5, blank_fraction=0.1, max_shift_jump_A=50.0)
    job = ExclusionJob(
        sources=sources,
        out_base=str(tmp_path / "out"),
        pixel_size_A=5.0,
        excluded=(False,) * 6,
        shifts_A=shifts,
        params=params,
    )
    result = exclusion_task(job)
    assert result["excluded"] == [False, True, False, True, True, False]
    assert result["reasons"] == ["", "dark", "", "shift jump", "blank", ""]


def test_a_missing_stack_fails_only_its_tilt_series(corrected):
    project, _, _, mc = corrected
    ts = project.output_set(mc, "tilt_series").get("TS_02")
    stack = project.absolute(ts.stack_file)
    moved = stack.with_suffix(".away")
    stack.rename(moved)
    try:
        df, state = run(project, "dose-filter", {}, {"tilt_series": f"{mc}.tilt_series"})
    finally:
        moved.rename(stack)
    error = project.run(df)["error"]
    assert state == "failed" and "1 of 2 items failed" in error and f"{stack}: image file not found" in error
    done = project.conn.execute("SELECT key FROM run_tasks WHERE run_id = ? AND state = 'done'", (df,)).fetchall()
    assert [r["key"] for r in done] == ["TS_01"]
