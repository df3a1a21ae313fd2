"""Alignment of a foreign-like series WITH gold (issue 16): the series of ``foreign_tilts`` (torch-ctf at 3 µm,
blobs in an 1100 Å slab, ice per tilt, 256² at 8 Å/px: the issue's 2 Å images at binning 4) with 40 gold beads
of 10 nm on its two surfaces.

Before: fiducial-model's sphere template found these beads (dark out past their edge and ringed by Fresnel
fringes under the CTF) 1.3 px off centre and missed a third: 5–155 px RMS of 2 Å after fiducial-alignment on
seeds 0–2 with the true coarse shifts. The beads also flattened coarse-alignment's axis scan (scores 0.597–0.612
over the half-turn): from the given 86.5° its best angle was 114.8°, and given the axis 90° off it moved the
axis to −65° (23° off the line of the axis). Errors are in the 8 Å pixels here (the issue's 2 Å px × 1/4).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch_ctf", reason="the foreign CTF needs teamtomo's torch-ctf (the test extra)")

from tests.methods.align.foreign_tilts import TiltSetup, make_tilts  # noqa: E402
from tomoforge.methods.align.axis_scan import scan_tilt_axis  # noqa: E402
from tomoforge.methods.align.beads import fill_gaps, learn_bead_template, track_beads  # noqa: E402
from tomoforge.methods.align.coarse import coarse_alignment  # noqa: E402
from tomoforge.methods.align.consensus import point_grid  # noqa: E402
from tomoforge.methods.align.filters import bandpass  # noqa: E402
from tomoforge.methods.align.projection_model import reprojection_difference  # noqa: E402
from tomoforge.methods.align.solve import solve_fiducial_alignment  # noqa: E402

SETUP = TiltSetup(gold_count=40)
PX = SETUP.pixel_size_A


@pytest.fixture(scope="module")
def series():
    return make_tilts(SETUP)


def line_error_deg(angle_deg: float) -> float:
    """Distance (degrees) of an angle from the line of the true tilt axis (modulo 180°)."""
    return abs((angle_deg - SETUP.axis_deg + 90.0) % 180.0 - 90.0)


def test_gold_beads_do_not_overlap_on_their_surface(series):
    g = series.gold_A
    d = np.linalg.norm(g[:, None] - g[None], axis=-1)  # beads of the two surfaces are 1100 Å apart in z
    np.fill_diagonal(d, np.inf)
    assert len(g) == 40 and d.min() >= SETUP.gold_diameter_A


def test_the_axis_scan_is_not_flattened_by_gold(series):
    scan = scan_tilt_axis(bandpass(series.images, 64.0, 5.0), series.nominal_deg, SETUP.axis_deg + 1.5)
    # before: 114.8° (scores 0.597–0.612); measured now 80.4°, as without gold (81.1°; the scan's broad peak)
    assert line_error_deg(scan.best_deg) < 5.0, scan.best_deg
    assert scan.scores.max() - scan.scores.min() > 0.2 * scan.scores.max()  # measured 0.30 (before 0.03)


def test_coarse_alignment_with_gold_given_the_axis_90_degrees_off(series):
    c = coarse_alignment(series.images, series.nominal_deg, SETUP.axis_deg - 90.0, high_cut_px=40.0 / PX)
    assert c.tilt_axis_deg is not None
    # before: the scan's −65° replaced the given axis, 23° off the line (1.8 px RMS); measured now 0.37° off
    assert line_error_deg(c.tilt_axis_deg) < 1.5, c.tilt_axis_deg
    a = series.truth.matrices()
    e = c.shifts_px - series.truth.shift_A / PX
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    err = np.linalg.norm(e - a @ t, axis=1)
    # the floor, 3 px of 2 Å; measured 0.27 px RMS, worst 0.83 px (before 1.8, worst 3.6)
    assert np.sqrt(np.mean(err**2)) < 0.75 and err.max() < 1.5, np.round(err, 2)


def test_fiducial_alignment_of_ctf_modulated_beads_against_the_truth(series):
    d, n = series, len(series.nominal_deg)
    rng = np.random.default_rng(1)
    shifts = d.truth.shift_A / PX + rng.normal(0.0, 1.0, (n, 2))  # a coarse alignment ~1 px off
    axis, diameter = SETUP.axis_deg + 1.5, SETUP.gold_diameter_A / PX
    template = learn_bead_template(d.images, diameter)
    # the bead as seen: dark (bright after the polarity) at the centre and past the 6.25 px radius
    assert template[128, 128] > 0 and template[128, 128 + 7] > 0 and template[128, 128 + 13] == 0
    track = track_beads(d.images, d.nominal_deg, axis, diameter, shifts, template=template)
    track = track[:, np.isfinite(track[..., 0]).sum(axis=0) >= n // 4]
    first = solve_fiducial_alignment(track, d.nominal_deg, axis, PX, tilt="fixed")
    track = fill_gaps(track, first.gap_free_px(PX), d.images, diameter, template=template)
    sol = solve_fiducial_alignment(track, d.nominal_deg, axis, PX, rotation="grouped", prior_shifts_px=shifts)
    grid = point_grid(0.35 * SETUP.size * PX, 400.0)
    dd = reprojection_difference(sol.model, d.truth, grid, remove_tilt_offset=True) / PX
    view = np.sqrt(np.mean(np.sum(dd**2, axis=-1), axis=1))
    kept = track.shape[1] - len(sol.dropped_beads)
    # the other code: 0.34 px of 2 Å (0.085 here). Before (sphere template): 5.3–155 px of 2 Å on
    # seeds 0–2, 5–12 beads. Measured now 0.46 px of 2 Å RMS, worst 0.86, 29 of 40 beads.
    assert np.sqrt(np.mean(view**2)) < 0.125 and view.max() < 0.3, np.round(view, 3)
    assert kept >= 20, kept
    assert abs(sol.tilt_axis_deg - SETUP.axis_deg) < 0.2 and abs(sol.tilt_offset_deg - SETUP.offset_deg) < 0.2
