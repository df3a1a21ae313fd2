"""Fiducial least squares against synthetic ground truth (beads on two level surfaces)."""

import numpy as np
import pytest

from tests.methods.align.synthetic import bead_points, true_model
from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference, rms
from tomoforge.methods.align.solve import group_matrix, solve_fiducial_alignment

PX = 3.0
TILTS = np.arange(-60, 61, 3.0)


def observe(rng, model, points, noise_px=0.3, missing=0.1):
    obs = model.project_px(points, PX) + rng.normal(0, noise_px, (model.n_views, len(points), 2))
    obs[rng.random(obs.shape[:2]) < missing] = np.nan
    return obs


def test_projection_model_matches_the_rotation_convention():
    # ZRot = 90°: the tilt axis runs along -X; a point at +z moves along the image's +y at +30° tilt.
    model = ProjectionModel([30.0], [90.0], [[10.0, -5.0]])
    u = model.project(np.array([[0.0, 0.0, 100.0]]))[0, 0]
    assert u == pytest.approx([10.0, -5.0 + 50.0])
    axis_point = model.project(np.array([[0.0, 100.0, 0.0]]))[0, 0]  # on the tilt axis: only rotated
    assert axis_point == pytest.approx([10.0 - 100.0, -5.0])


def test_group_matrix_interpolates_and_partitions_unity():
    g = group_matrix(TILTS, "grouped", group_size=5)
    assert g.shape == (41, 9) and np.allclose(g.sum(axis=1), 1.0)
    assert np.allclose(group_matrix(TILTS, "per_view"), np.eye(41))


@pytest.mark.parametrize("rotation", ["single", "per_view"])
def test_noiseless_beads_give_the_exact_model(rotation):
    rng = np.random.default_rng(1)
    truth = true_model(rng, TILTS, drift_deg=0.0 if rotation == "single" else 0.3)
    points = bead_points(rng)
    sol = solve_fiducial_alignment(observe(rng, truth, points, 0.0, 0.0), TILTS, 86.5, PX, rotation=rotation)
    assert rms(reprojection_difference(sol.model, truth, points)) / PX < 1e-3
    assert sol.tilt_offset_deg == pytest.approx(0.7, abs=1e-3)
    assert np.allclose(sol.model.z_rot_deg, truth.z_rot_deg, atol=1e-3)
    assert sol.rms_px < 1e-3 and len(sol.dropped_beads) == 0


def test_noisy_beads_with_gaps_and_a_mistracked_bead_meet_the_floors():
    rng = np.random.default_rng(2)
    truth = true_model(rng, TILTS)
    points = bead_points(rng)
    obs = observe(rng, truth, points)
    obs[5:25, 3] += [12.0, -9.0]  # bead 3 jumped to a neighbour for 20 views
    obs[30, 7] += [0.0, 25.0]  # one wild point
    sol = solve_fiducial_alignment(obs, TILTS, 84.0, PX, rotation="grouped", tilt="grouped")
    err = rms(reprojection_difference(sol.model, truth, points)) / PX
    assert err < 0.3, err
    assert abs(sol.tilt_axis_deg - truth.z_rot_deg.mean()) < 0.1
    assert abs(sol.tilt_offset_deg - 0.7) < 0.15
    assert list(sol.dropped_beads) == [3]
    assert not sol.used[30, 7] and sol.rms_px < 0.6
    assert sorted(sol.surface[sol.surface >= 0]) == sorted((points[:, 2] > 0).astype(int)[np.arange(16) != 3])
    gap_free = sol.gap_free_px(PX)
    assert rms(gap_free[:, :3] - truth.project_px(points, PX)[:, :3]) < 0.5  # projections are gauge-free


def test_grouped_magnification_is_recovered():
    rng = np.random.default_rng(3)
    mag = 1.0 + 0.004 * np.abs(TILTS) / 60
    truth = true_model(rng, TILTS, drift_deg=0.0, magnification=mag)
    points = bead_points(rng, 24)
    sol = solve_fiducial_alignment(
        observe(rng, truth, points, 0.1, 0.0), TILTS, 85.0, PX, magnification="grouped", tilt="grouped"
    )
    assert np.max(np.abs(sol.model.magnification - mag)) < 1e-3
    assert rms(reprojection_difference(sol.model, truth, points)) / PX < 0.15


def test_a_view_without_beads_takes_the_prior_shift_in_the_solution_frame():
    rng = np.random.default_rng(9)
    truth = true_model(rng, TILTS)
    points = bead_points(rng)
    obs = observe(rng, truth, points, 0.2, 0.05)
    lost = 37
    obs[lost] = np.nan
    # The prior (e.g. coarse alignment) places another specimen centre: the truth moved by a 3D translation.
    moved = np.array([200.0, -150.0, 120.0])
    prior = truth.project(moved)[:, 0] / PX
    blind = solve_fiducial_alignment(obs, TILTS, 85.0, PX, rotation="grouped")
    sol = solve_fiducial_alignment(obs, TILTS, 85.0, PX, rotation="grouped", prior_shifts_px=prior)
    assert list(sol.unobserved_views) == [lost] and list(blind.unobserved_views) == [lost]
    per_view = (
        np.sqrt(
            np.mean(
                np.sum(reprojection_difference(sol.model, truth, points, remove_tilt_offset=True) ** 2, axis=-1), axis=1
            )
        )
        / PX
    )
    assert per_view[lost] < 0.5 and np.delete(per_view, lost).max() < 0.5, np.round(per_view, 2)
    blind_view = (
        np.sqrt(
            np.mean(
                np.sum(reprojection_difference(blind.model, truth, points, remove_tilt_offset=True) ** 2, axis=-1),
                axis=1,
            )
        )
        / PX
    )
    assert blind_view[lost] > 5.0  # without a prior the view's shift is whatever the solver left


def test_the_solution_is_centred_on_the_reference_view_and_between_the_surfaces():
    """The free 3D translation is fixed so that the least-tilted view has no shift and z = 0 lies midway
    between the two bead surfaces, even when the beads sit off-centre and one surface has three times as
    many (centring on the beads' centroid would put the tomogram 1100 Å off in x and 225 Å off in z)."""
    rng = np.random.default_rng(5)
    truth = true_model(rng, TILTS)
    points = bead_points(rng, count=16, half_width_A=400.0)
    points[:, 0] += 1100.0  # every bead right of the field centre
    points[:12, 2], points[12:, 2] = 450.0, -450.0  # 12 on top, 4 below
    sol = solve_fiducial_alignment(observe(rng, truth, points, 0.1, 0.0), TILTS, 85.0, PX)
    ref = int(np.argmin(np.abs(TILTS)))
    assert np.abs(sol.model.shift_A[ref]).max() < 1e-6
    top, bottom = sol.points_px[sol.surface == 1, 2], sol.points_px[sol.surface == 0, 2]
    assert (top.mean() + bottom.mean()) / 2 == pytest.approx(0.0, abs=1e-6)
    assert (top.mean() - bottom.mean()) * PX == pytest.approx(900.0, rel=0.02)
    # the beads stay off-centre, by the truth's 1100 Å less the reference view's own stage shift (216 Å here)
    assert np.abs(sol.points_px[:, 0].mean() * PX - 1100.0) < 400.0


def test_two_surfaces_are_found_in_a_tilted_frame_and_one_surface_is_not_split():
    """The solution's frame is tilted by its free tilt offset: beads on both ice surfaces (600 Å apart) seen
    14° off must still split into two parallel planes and be levelled; beads on one surface never split."""
    from tomoforge.methods.align.solve import _level_angles, _surface_labels
    from tomoforge.methods.rotations import rotation_about_x, rotation_about_y

    rng = np.random.default_rng(3)
    for tilt in (-14.0, 6.0, 14.0):
        top = np.column_stack([rng.uniform(-700, 700, 6), rng.uniform(-700, 700, 6), 300 + rng.normal(0, 3, 6)])
        bottom = np.column_stack([rng.uniform(-700, 700, 5), rng.uniform(-700, 700, 5), -300 + rng.normal(0, 3, 5)])
        turned = np.vstack([top, bottom]) @ (rotation_about_y(tilt) @ rotation_about_x(2.0)).T
        about_y, about_x, labels = _level_angles(turned)
        assert labels.tolist() == [1] * 6 + [0] * 5 or labels.tolist() == [0] * 6 + [1] * 5
        assert about_y == pytest.approx(-tilt, abs=0.5) and about_x == pytest.approx(-2.0, abs=0.5)  # undo the turn
        one = np.column_stack([rng.uniform(-700, 700, 8), rng.uniform(-700, 700, 8), rng.normal(0, 3, 8)])
        one = one @ rotation_about_y(tilt).T
        assert _surface_labels(one - one.mean(axis=0)) is None
