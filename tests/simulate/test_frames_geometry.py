"""The recorded movies against the truth's projection model: every gold bead's shadow in the gain-corrected,
motion-undone sum of a tilt's frames lies where the truth's tilt angles, axis and shifts project it
(< 0.3 px at every tilt), and the mdoc's tilt angles are the truth's nominal ones.

This is the geometry the alignment tests of the first half score against (tests/protocols/align): the
frames, not the noise-free stack, are what the demo processes."""

from __future__ import annotations

import numpy as np
import pytest

from tomoforge.io.mdoc import read_mdoc
from tomoforge.io.mrc import read_mrc
from tomoforge.methods.align.projection_model import ProjectionModel

OVERRIDES = {
    "detector.image_size": [256, 256],
    "acquisition.tilt_min_deg": -60.0,
    "acquisition.tilt_max_deg": 60.0,
    "acquisition.tilt_step_deg": 10.0,
    "acquisition.frames_per_tilt": 3,
    "acquisition.beam_motion_A": 8.0,  # frames visibly apart: undoing the motion is part of the check
    "specimen.fiducials.count_per_surface": 4,
    "specimen.ice_thickness_A": 600.0,
    "specimen.slab_tilt_deg": 8.0,  # a tilted slab: beads at many heights
    "detector.xrays_per_frame": 0.0,
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory, test_data):
    from tomoforge.simulate import simulate

    out = tmp_path_factory.mktemp("frames_geometry")
    return simulate(out, preset="tiny", seed=5, overrides={**OVERRIDES, "data_root": str(test_data)}, progress=False)


def summed_frames(movie, gain: np.ndarray, frame_shifts_A: np.ndarray, pixel_size_A: float) -> np.ndarray:
    """Gain-corrected frames, each moved back by its true shift (Fourier phase ramp), summed."""
    frames = read_mrc(movie).astype(np.float64) * gain
    ny, nx = frames.shape[1:]
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    total = np.zeros((ny, nx // 2 + 1), dtype=complex)
    for frame, (sx, sy) in zip(frames, frame_shifts_A / pixel_size_A):
        total += np.fft.rfft2(frame) * np.exp(2j * np.pi * (kx * sx + ky * sy))  # content moved by (-sx, -sy)
    return np.fft.irfft2(total, s=(ny, nx))


def shadow_centre(image: np.ndarray, guess_xy: np.ndarray, radius_px: float) -> np.ndarray | None:
    """Centre (x, y), pixels, of the dark disc near ``guess_xy``: the centroid of the pixels darker than half
    the disc's depth within 2 radii of the guess, recentred twice (the guess's only influence is the window:
    a disc within the window is found wherever it lies). None if the window reaches outside the image."""
    ny, nx = image.shape
    y, x = np.mgrid[:ny, :nx]
    centre = np.asarray(guess_xy, dtype=float)
    for _ in range(3):
        window = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < (2 * radius_px) ** 2
        if window.sum() < np.pi * (2 * radius_px) ** 2 * 0.9:
            return None
        ring = window & ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 > (1.6 * radius_px) ** 2)
        background = np.median(image[ring])
        depth = background - np.percentile(image[window], 5)
        core = window & (image < background - 0.5 * depth)
        w = (background - image) * core
        centre = np.array([(w * x).sum() / w.sum(), (w * y).sum() / w.sum()])
    return centre


def test_gold_beads_in_the_summed_frames_lie_where_the_truth_projects_them(sim):
    ts = sim.tilt_series[0]
    truth = ts.truth
    pix = truth["pixel_size_A"]
    ny, nx = truth["image_size_yx"]
    gain = read_mrc(sim.gain).astype(np.float64)
    tilts = truth["tilts"]
    model = ProjectionModel(
        [t["y_tilt_deg"] for t in tilts],
        [t["z_rot_deg"] for t in tilts],
        [[t["x_shift_A"], t["y_shift_A"]] for t in tilts],
        [t["x_tilt_deg"] for t in tilts],
    )
    beads = np.array([f["position_A"] for f in truth["fiducials"]])
    radius_px = truth["fiducials"][0]["diameter_A"] / 2 / pix
    predicted = model.project_px(beads, pix) + [nx // 2, ny // 2]  # (views, beads, 2) pixel (x, y)
    assert [s["TiltAngle"] for s in read_mdoc(ts.mdoc).sections] == pytest.approx(
        [t["nominal_tilt_deg"] for t in tilts]
    )
    worst, measured = [], 0
    for v, (tilt, movie) in enumerate(zip(tilts, ts.movies)):
        image = summed_frames(movie, gain, np.asarray(tilt["frame_shifts_A"]), pix)
        errors = []
        for b, guess in enumerate(predicted[v]):
            others = np.delete(predicted[v], b, axis=0)
            if len(others) and np.linalg.norm(others - guess, axis=1).min() < 3.2 * radius_px:
                continue  # shadows overlapping at this tilt: no clean centroid
            found = shadow_centre(image, guess, radius_px)
            if found is not None:
                errors.append(np.linalg.norm(found - guess))
        assert errors, f"no isolated bead inside the field at {tilt['nominal_tilt_deg']}°"
        measured += len(errors)
        worst.append(max(errors))
    print(f"bead shadow vs truth projection: worst per tilt {np.round(worst, 3)} px")
    assert max(worst) < 0.3, np.round(worst, 3)
    assert measured >= 3 * len(tilts)


def test_the_centroid_finds_a_bead_moved_off_the_prediction(sim):
    """The check can fail: the same measure on a frame sum shifted by 0.5 px reports 0.5 px."""
    ts = sim.tilt_series[0]
    truth = ts.truth
    pix = truth["pixel_size_A"]
    ny, nx = truth["image_size_yx"]
    t = truth["tilts"][0]
    model = ProjectionModel([t["y_tilt_deg"]], [t["z_rot_deg"]], [[t["x_shift_A"], t["y_shift_A"]]], [t["x_tilt_deg"]])
    beads = np.array([f["position_A"] for f in truth["fiducials"]])
    guess = model.project_px(beads, pix)[0] + [nx // 2, ny // 2]
    radius_px = truth["fiducials"][0]["diameter_A"] / 2 / pix
    shifts = np.asarray(t["frame_shifts_A"]) + [0.5 * pix, 0.0]  # undo a motion 0.5 px off in x
    image = summed_frames(ts.movies[0], read_mrc(sim.gain).astype(np.float64), shifts, pix)
    found = [shadow_centre(image, g, radius_px) for g in guess]
    dx = [f[0] - g[0] for f, g in zip(found, guess) if f is not None]
    assert dx and np.allclose(dx, -0.5, atol=0.15), dx
