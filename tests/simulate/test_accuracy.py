"""The accuracy measures against the truth give zero for the truth itself and the known value for a known error."""

import numpy as np
import pytest
import torch

from tomoforge.model import Acquisition, CTFSeries, CTFTiltImage, TiltImage, TiltSeries
from tomoforge.simulate import accuracy


def series_from_truth(truth, shift_A=(0.0, 0.0), z_rot_add=0.0, tilt_add=0.0) -> TiltSeries:
    images = [
        TiltImage(
            acquisition_order=t["acquisition_order"],
            tilt_angle_deg=t["nominal_tilt_deg"],
            y_tilt_deg=t["y_tilt_deg"] + tilt_add,
            z_rot_deg=t["z_rot_deg"] + z_rot_add,
            x_tilt_deg=t["x_tilt_deg"],
            x_shift_A=t["x_shift_A"] + shift_A[0],
            y_shift_A=t["y_shift_A"] + shift_A[1],
            frame_shifts_A=[tuple(s) for s in t["frame_shifts_A"]],
        )
        for t in truth["tilts"]
    ]
    acq = Acquisition(pixel_size_A=truth["pixel_size_A"], tilt_axis_angle_deg=truth["tilt_axis_angle_deg"])
    return TiltSeries(name="TS_01", acquisition=acq, tilt_images=images)


def test_alignment_errors_are_zero_for_the_truth_and_ignore_a_common_translation(tiny_sim):
    truth = tiny_sim.tilt_series[0].truth
    exact = accuracy.alignment_errors(truth, series_from_truth(truth))
    assert exact["reprojection_rms_px"] < 1e-4
    assert abs(exact["tilt_axis_error_deg"]) < 1e-9 and abs(exact["tilt_offset_error_deg"]) < 1e-9
    # moving the specimen by t shifts view i by (R_i t)[:2]: the free translation, removed before comparing
    moved = series_from_truth(truth)
    model = accuracy.true_projection_model(truth)
    offsets = np.einsum("nab,b->na", model.matrices(), [40.0, -25.0, 60.0])
    for image, offset in zip(sorted(moved.tilt_images, key=lambda i: i.acquisition_order), offsets):
        image.x_shift_A += offset[0]
        image.y_shift_A += offset[1]
    assert accuracy.alignment_errors(truth, moved)["reprojection_rms_px"] < 1e-4


def test_alignment_errors_report_a_known_rotation_and_tilt_offset(tiny_sim):
    truth = tiny_sim.tilt_series[0].truth
    err = accuracy.alignment_errors(truth, series_from_truth(truth, z_rot_add=1.0, tilt_add=-0.25))
    assert err["tilt_axis_error_deg"] == pytest.approx(1.0)
    assert err["tilt_offset_error_deg"] == pytest.approx(-0.25)
    assert err["reprojection_rms_px"] > 0.1


def test_motion_error_is_zero_for_the_truth(tiny_sim):
    truth = tiny_sim.tilt_series[0].truth
    assert accuracy.motion_rms_error_px(truth, series_from_truth(truth)) < 1e-12


def test_defocus_errors_measure_a_known_offset_and_angle(tiny_sim):
    truth = tiny_sim.tilt_series[0].truth
    entries = [
        CTFTiltImage(
            acquisition_order=t["acquisition_order"],
            tilt_angle_deg=t["nominal_tilt_deg"],
            defocus_u_A=t["defocus_u_A"] + 120.0,
            defocus_v_A=t["defocus_v_A"] + 120.0,
            astigmatism_angle_deg=t["defocus_angle_deg"] + 180.0 + 4.0,
        )
        for t in truth["tilts"]
    ]
    err = accuracy.defocus_errors(truth, CTFSeries(name="TS_01", entries=entries))
    assert err["median_error_low_tilt_A"] == pytest.approx(120.0)
    assert err["median_error_all_A"] == pytest.approx(120.0)
    if any(t["defocus_u_A"] - t["defocus_v_A"] > 500 for t in truth["tilts"]):
        assert err["median_astigmatism_angle_error_deg"] == pytest.approx(4.0)


def test_tomogram_correlation_finds_the_shift_of_a_copy():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(24, 32, 32))
    moved = np.roll(volume, (2, -3, 1), axis=(0, 1, 2))
    r, shift = accuracy.tomogram_correlation(volume, moved, pixel_size_A=10.0, resolution_A=25.0)
    assert r == pytest.approx(1.0, abs=1e-6) and shift == pytest.approx((2, -3, 1), abs=1e-6)
    r_noise, _ = accuracy.tomogram_correlation(volume, rng.normal(size=volume.shape), 10.0, 25.0)
    assert abs(r_noise) < 0.3


def test_tomogram_correlation_uses_the_shared_part_of_two_windows():
    """Two windows of one smooth volume, 7 voxels apart in x (over a fifth of the width): the overlap is
    identical, so r is near 1 (a circular correlation would count the 7 columns that do not match)."""
    rng = np.random.default_rng(1)
    big = accuracy.lowpass_volume(rng.normal(size=(24, 32, 48)), 10.0, 30.0).numpy()
    a, b = big[:, :, :32], big[:, :, 7:39]
    r, shift = accuracy.tomogram_correlation(a, b, pixel_size_A=10.0, resolution_A=30.0)
    assert shift == pytest.approx((0, 0, -7), abs=0.1)
    assert r > 0.99  # 0.996: the low-pass inside wraps at each window's own edges


def test_tomogram_correlation_refines_a_fraction_of_a_voxel():
    rng = np.random.default_rng(2)
    volume = accuracy.lowpass_volume(rng.normal(size=(24, 32, 32)), 10.0, 40.0)
    k = torch.fft.rfftfreq(32)
    moved = torch.fft.irfftn(torch.fft.rfftn(volume) * torch.exp(-2j * torch.pi * k * 1.4), s=volume.shape)  # +1.4 in x
    r, shift = accuracy.tomogram_correlation(volume.numpy(), moved.numpy(), pixel_size_A=10.0, resolution_A=40.0)
    assert shift == pytest.approx((0, 0, 1.4), abs=0.1)
    assert r > 0.99


def test_levelled_offset_adds_the_slab_tilt_about_the_axis(tiny_sim):
    truth = tiny_sim.tilt_series[0].truth
    slab = accuracy.slab_tilt_about_y_deg(truth)
    assert abs(slab) > 0.01  # tiny's slab is tilted by 1°
    err = accuracy.alignment_errors(truth, series_from_truth(truth, tilt_add=slab))
    assert err["levelled_tilt_offset_error_deg"] == pytest.approx(0.0, abs=1e-9)
    assert err["tilt_offset_error_deg"] == pytest.approx(slab)


def _truth_cloud(n=400, seed=11):
    rng = np.random.default_rng(seed)
    positions = rng.uniform(-2000, 2000, size=(n, 3))
    positions[:, 2] *= 0.1
    from tomoforge.methods.rotations import random_rotations

    return rng, positions, random_rotations(n, rng)


def test_match_picks_scores_removed_added_and_shifted_picks_exactly():
    rng, true, rotations = _truth_cloud()
    keep = rng.permutation(len(true))[:360]  # 10 % removed
    direction = rng.normal(size=(360, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    picks = true[keep] + 5.0 * direction  # each pick 5 Å from its particle
    false = rng.uniform(-2000, 2000, size=(40, 3)) + [0, 0, 1e4]  # 40 picks far from every particle
    result = accuracy.match_picks(np.concatenate([picks, false]), true, radius_A=30.0)
    assert result.recall == pytest.approx(0.9)
    assert result.precision == pytest.approx(360 / 400)
    assert result.f1 == pytest.approx(2 * 360 / 800)
    assert result.mean_position_error_A == pytest.approx(5.0)
    np.testing.assert_array_equal(np.sort(result.true_index), np.sort(keep))
    assert np.all(result.true_index[np.argsort(result.pick_index)][:360] == keep)


def test_match_picks_is_one_to_one_and_prefers_more_pairs():
    true = np.array([[0.0, 0, 0], [20.0, 0, 0]])
    picks = np.array([[9.0, 0, 0], [-8.0, 0, 0]])  # greedy would pair (9 → 0) and lose the second
    result = accuracy.match_picks(picks, true, radius_A=12.0)
    assert len(result.pick_index) == 2 and result.recall == 1.0
    assert result.mean_position_error_A == pytest.approx((11.0 + 8.0) / 2)
    none = accuracy.match_picks(np.zeros((0, 3)), true, radius_A=12.0)
    assert none.recall == 0.0 and np.isnan(none.precision)


def test_match_picks_orientation_error_is_zero_for_a_symmetry_copy():
    from tomoforge.methods.rotations import rotation_about_axis, rotation_about_z

    rng, true, rotations = _truth_cloud(60)
    c6 = rotation_about_z(60.0)
    result = accuracy.match_picks(
        true, true, 10.0, pick_rotations=rotations @ c6, true_rotations=rotations, symmetry="C6"
    )
    assert result.orientation_error_deg.max() < 1e-5
    as_c1 = accuracy.match_picks(true, true, 10.0, pick_rotations=rotations @ c6, true_rotations=rotations)
    np.testing.assert_allclose(as_c1.orientation_error_deg, 60.0, atol=1e-5)
    off = rotations @ rotation_about_axis(np.array([1.0, 0, 0]), 3.0)
    tilted = accuracy.match_picks(true, true, 10.0, pick_rotations=off, true_rotations=rotations, symmetry="C6")
    assert tilted.median_orientation_error_deg == pytest.approx(3.0)


def test_map_fsc_scores_a_moved_copy_of_a_symmetric_reference_to_nyquist():
    """An average in another frame (turned, shifted) against its C6 reference: FSC to Nyquist (2 × 4 Å),
    the shift found (Å), and a map that is not the reference stays far from Nyquist."""
    from tests.methods.test_map_alignment import gaussian_blobs
    from tomoforge.methods.rotations import random_rotations
    from tomoforge.methods.symmetry import symmetric_angle_deg, symmetry_operators

    rng = np.random.default_rng(3)
    seed = rng.normal(scale=3.0, size=(3, 3)) + [4.0, 0, 0]
    centres = np.concatenate([seed @ g.T for g in symmetry_operators("C6")])
    rotation, shift_px = random_rotations(1, rng)[0], np.array([1.5, -2.0, 0.5])
    reference = gaussian_blobs(centres)
    average = gaussian_blobs(centres @ rotation.T + shift_px)
    result = accuracy.map_fsc(average.numpy(), reference.numpy(), 4.0, symmetry="C6")
    assert result["resolution_A"] == pytest.approx(8.0)
    np.testing.assert_allclose(result["shift_A"], shift_px * 4.0, atol=0.2)
    assert symmetric_angle_deg(result["rotation"], rotation, "C6") < 0.5
    other = gaussian_blobs(rng.normal(scale=4.0, size=(18, 3)))
    assert accuracy.map_fsc(other.numpy(), reference.numpy(), 4.0, symmetry="C6")["resolution_A"] > 16.0
