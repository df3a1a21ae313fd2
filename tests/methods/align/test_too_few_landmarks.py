"""Too little to align: beads at the image border are still found, a fit with too few beads or views fails
with a message that says why (never a ZeroDivisionError), and a few beads on two surfaces still level."""

import numpy as np
import pytest

from tests.methods.align.synthetic import render_beads, true_model
from tomoforge.errors import UserError
from tomoforge.methods.align.beads import bead_score, detect_beads
from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.align.solve import TooFewLandmarksError, solve_fiducial_alignment

PX = 12.0
TILTS = np.arange(-30, 31, 10.0)


def test_a_bead_a_radius_and_two_pixels_from_the_border_is_found():
    # 64² image at 12 Å/px, bead of 100 Å = 8.3 px: centre 6.2 px from the right edge (x = +25.8 px);
    # a border of one diameter (9 px) hid it, and with it half the tiny simulation's beads
    points = np.array([[25.8 * PX, 3.0 * PX, 0.0], [-4.0 * PX, -6.0 * PX, 0.0]])
    model = ProjectionModel([0.0], [0.0], [[0.0, 0.0]])
    image = render_beads(model, points, (64, 64), PX, 100.0, noise_sd=0.2, rng=np.random.default_rng(3))[0]
    d = 100.0 / PX
    xy, _ = detect_beads(bead_score(image, d).numpy()[0], d, threshold_sd=6.0)
    assert len(xy) == 2
    assert np.min(np.linalg.norm(xy - [25.8, 3.0], axis=1)) < 0.6, xy


def observations(n_beads: int, rng: np.random.Generator, top: int | None = None) -> tuple[np.ndarray, ProjectionModel]:
    """Noisy (7, n_beads, 2) positions of beads on two surfaces 200 Å apart (``top`` of them on the upper one)."""
    truth = true_model(rng, TILTS, shift_sigma_A=10.0)
    top = n_beads // 2 if top is None else top
    xy = rng.uniform(-250, 250, (n_beads, 2))
    z = np.where(np.arange(n_beads) < n_beads - top, -100.0, 100.0)
    points = np.c_[xy, z]
    return truth.project_px(points, PX) + rng.normal(0, 0.1, (len(TILTS), n_beads, 2)), truth


@pytest.mark.parametrize("n_beads", [0, 1, 2])
def test_fewer_than_three_beads_fail_with_a_message(n_beads):
    obs, _ = observations(n_beads, np.random.default_rng(n_beads))
    with pytest.raises(TooFewLandmarksError, match=r"needs 3 beads in 3 views at least") as err:
        solve_fiducial_alignment(obs, TILTS, 85.0, PX, rotation="grouped")
    assert isinstance(err.value, UserError)
    assert f"{n_beads} beads seen in 3 views or more" in str(err.value)


def test_beads_seen_in_too_few_views_fail_with_a_message():
    obs, _ = observations(6, np.random.default_rng(5))
    obs[2:] = np.nan  # only the first two views hold beads
    with pytest.raises(TooFewLandmarksError, match=r"0 beads seen in 3 views or more \(of 6 beads, 7 views\)"):
        solve_fiducial_alignment(obs, TILTS, 85.0, PX)


@pytest.mark.parametrize("top", [2, 3])
def test_five_beads_on_two_surfaces_are_levelled_per_surface(top):
    # 3 + 2 (or 2 + 3) beads, 200 Å apart in z: one plane through both surfaces is tilted by tens of
    # degrees; the surfaces must be told apart with two beads on one of them
    obs, _ = observations(5, np.random.default_rng(11), top=top)
    sol = solve_fiducial_alignment(obs, TILTS, 85.0, PX, rotation="single", tilt="fixed")
    assert abs(sol.tilt_offset_deg - 0.7) < 2.0, sol.tilt_offset_deg  # one plane through both surfaces: 17° off
    assert sorted(sol.surface.tolist()) == sorted([0] * (5 - top) + [1] * top)
