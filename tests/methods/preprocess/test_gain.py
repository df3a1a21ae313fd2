"""Gain rotate/flip against numpy's, application, and errors that name the file and hint at the fix."""

import numpy as np
import pytest
import torch

from tomoforge.methods.preprocess.gain import (
    GainError,
    apply_gain,
    check_gain_orientation,
    gain_orientation_score,
    transform_gain,
)


def test_rotation_and_flip_follow_numpy():
    g = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(transform_gain(g, rotate_deg=90).numpy(), np.rot90(g, 1))
    assert np.array_equal(transform_gain(g, rotate_deg=270, flip="x").numpy(), np.fliplr(np.rot90(g, 3)))
    assert np.array_equal(transform_gain(g, rotate_deg=180, flip="y").numpy(), np.flipud(np.rot90(g, 2)))
    with pytest.raises(GainError, match="multiple of 90"):
        transform_gain(g, rotate_deg=45)


def test_apply_gain_multiplies_and_refuses_a_wrong_shape_naming_it():
    frames = torch.ones(2, 3, 4)
    gain = torch.arange(12.0).reshape(3, 4)
    assert torch.equal(apply_gain(frames, gain), gain.expand(2, 3, 4))
    with pytest.raises(GainError, match=r"g\.mrc: shape \(4, 3\).*rotated by 90"):
        apply_gain(frames, gain.T, name="g.mrc")
    with pytest.raises(GainError, match="super-resolution"):
        apply_gain(torch.ones(1, 6, 8), gain, name="g.mrc")


def test_orientation_score_picks_the_right_rotation():
    rng = np.random.default_rng(0)
    gain = rng.uniform(0.8, 1.2, (32, 32)).astype(np.float32)
    flat = rng.poisson(200 / np.rot90(gain, 1)).astype(np.float32)  # frames recorded with the gain rotated by 90°
    scores = {r: gain_orientation_score(flat, transform_gain(gain, rotate_deg=r)) for r in (0, 90, 180, 270)}
    assert max(scores, key=scores.get) == 90 and scores[90] > 0.5


def test_a_gain_in_the_wrong_orientation_is_refused_with_the_fix():
    rng = np.random.default_rng(1)
    gain = rng.uniform(0.9, 1.1, (64, 64)).astype(np.float32)
    raw = rng.poisson(30 / gain).astype(np.float32)  # a frame sum recorded through this gain
    check_gain_orientation(raw, gain, name="g.mrc")  # the right one passes
    check_gain_orientation(raw, np.ones_like(gain), name="flat.mrc")  # a flat gain has no orientation to check
    with pytest.raises(GainError, match=r"g\.mrc: the frames do not fit its orientation.*further 90°.*flipped none"):
        check_gain_orientation(raw, transform_gain(gain, rotate_deg=270), name="g.mrc")
    with pytest.raises(GainError, match=r"further 0°.*flipped x"):
        check_gain_orientation(raw, transform_gain(gain, flip="x"), name="g.mrc")
