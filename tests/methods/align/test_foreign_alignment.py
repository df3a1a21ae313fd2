"""Coarse alignment on a tilt series that the project's simulator did not make (issue 16's 62 px failure).

``foreign_tilts``: 41 tilts ±60° dose-symmetric, 256² at 8 Å/px (the issue's 1024² at 2 Å/px after the
protocol's binning 4), blobs in a 1100 Å slab, torch-ctf's CTF at 3 µm, a fresh ice texture per tilt, Poisson
noise at 3 e/Å², a 0.8° tilt offset, shifts drifting more at high tilt, the tilt axis at 85°. Given an axis
90° off (a convention mix-up: Tomography 5's TiltAxisAngle is not the angle from image Y), the stretched
chain drifted with |tilt| on both sides and projection matching (±2° about the given axis) agreed with it:
23.6 px RMS (8 Å px; 94 px of the 2 Å images), worst view 83 px. Errors here are in the 8 Å pixels, after
removing the free 3D translation; the issue's floor (coarse ≤ 3 px at 2 Å/px) is 0.75 px here.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch_ctf", reason="the foreign CTF needs teamtomo's torch-ctf (the test extra)")

from tests.methods.align.foreign_tilts import TiltSetup, make_tilts  # noqa: E402
from tomoforge.methods.align.axis_scan import scan_tilt_axis  # noqa: E402
from tomoforge.methods.align.coarse import coarse_alignment  # noqa: E402
from tomoforge.methods.align.filters import bandpass  # noqa: E402

SETUP = TiltSetup()


@pytest.fixture(scope="module")
def series():
    return make_tilts(SETUP)


@pytest.fixture(scope="module")
def coarse_axis_off(series):
    """Coarse alignment given the tilt axis 90° off (−5° for 85°)."""
    return coarse_alignment(series.images, series.nominal_deg, SETUP.axis_deg - 90.0, high_cut_px=40.0 / 8.0)


def shift_error_px(series, shifts_px: np.ndarray) -> np.ndarray:
    """(n,) distance (px) between where ``shifts_px`` and the truth put the specimen centre, the best 3D
    translation removed."""
    a = series.truth.matrices()
    e = shifts_px - series.truth.shift_A / SETUP.pixel_size_A
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    return np.linalg.norm(e - a @ t, axis=1)


@pytest.mark.parametrize("given", [-5.0, -175.0, 40.0])
def test_the_axis_scan_finds_the_axis_line_from_any_start(series, given):
    f = bandpass(series.images, 64.0, 5.0)
    scan = scan_tilt_axis(f, series.nominal_deg, given)
    # the line of the axis: 85° or −95° (the hand is not seen); measured 81.3° (a broad peak): 3.7° off
    assert abs((scan.best_deg - SETUP.axis_deg + 90.0) % 180.0 - 90.0) < 5.0, scan.best_deg
    assert abs(scan.best_deg - given) <= 90.0  # the equivalent nearest the given angle
    assert scan.best_score > scan.given_score + 0.05  # measured 0.53 against 0.32 (−5°), 0.41 (40°)
    assert scan.clear_gain() > 0.5  # what replaces a given axis; measured 0.58 (40°) to 0.96 (−5°)


def test_coarse_alignment_given_the_axis_90_degrees_off_meets_the_floor(series, coarse_axis_off):
    c = coarse_axis_off
    assert c.axis_scan is not None and c.start_axis_deg is not None
    assert abs(c.start_axis_deg - SETUP.axis_deg) < 5.0  # the scan replaced the given −5° (measured 81.3°)
    assert c.tilt_axis_deg is not None and abs(c.tilt_axis_deg - SETUP.axis_deg) < 1.5  # measured 0.8° off
    err = shift_error_px(series, c.shifts_px)
    # before: 23.6 px RMS, worst 83 px; measured now 0.38 px RMS, worst 0.72 px (×4 in the 2 Å px)
    assert np.sqrt(np.mean(err**2)) < 0.75 and err.max() < 1.5, np.round(err, 2)


def test_projection_matching_reduces_the_error_against_the_truth(series, coarse_axis_off):
    c = coarse_axis_off
    chain = shift_error_px(series, c.chain_shifts_px)
    refined = shift_error_px(series, c.shifts_px)
    # measured: chain 2.0 px RMS (worst 7.9), refined 0.38 (worst 0.72)
    assert np.sqrt(np.mean(refined**2)) < 0.5 * np.sqrt(np.mean(chain**2))
    assert refined.max() < chain.max()
    # the slab found against the true 1100 Å (the run reported 2112 Å); measured 1200 Å
    assert c.thickness_px is not None and 800 < c.thickness_px * SETUP.pixel_size_A < 1400
    assert abs(c.tilt_offset_deg - SETUP.offset_deg) < 0.3  # Beer–Lambert; measured 0.87°
    # the views' attenuation gives the thickness in mean free paths (true T/λ 0.35), the check of the slab found;
    # measured 0.328 (intensities clamped at 0.05 lift the means of the high tilts a little)
    assert c.thickness_mfp is not None and abs(c.thickness_mfp - SETUP.attenuation) < 0.1 * SETUP.attenuation
