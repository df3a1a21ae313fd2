"""Gold beads kept apart in x-y (specimen.fiducials.min_spacing_A), so that the tiny preset's beads on
opposite surfaces do not merge in its tilted views; the tiny preset has enough gold to align."""

import numpy as np
import pytest

from tomoforge.simulate.config import build_config
from tomoforge.simulate.specimen import build_specimen

FIELD_A = (768.0, 768.0)  # the tiny preset's 128² field at 6 Å


def beads(overrides: dict, seed: int) -> np.ndarray:
    cfg = build_config("tiny", {"specimen.particles": [], "specimen.vesicles.count": 0, **overrides})
    spec = build_specimen(cfg.specimen, FIELD_A, [], [], np.random.default_rng(seed))
    return np.array(spec.fiducials)


def min_xy_distance(points: np.ndarray) -> float:
    d = np.linalg.norm(points[:, None, :2] - points[None, :, :2], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def test_the_tiny_preset_has_three_beads_per_surface_200_A_apart():
    cfg = build_config("tiny")
    assert cfg.specimen.fiducials.count_per_surface == 3 and cfg.specimen.fiducials.min_spacing_A == 200.0
    for seed in range(6):
        points = beads({}, seed)
        assert len(points) == 6 and min_xy_distance(points) >= 200.0, seed


def test_without_spacing_beads_may_overlap_in_x_y_and_the_rule_is_what_keeps_them_apart():
    closest = [min_xy_distance(beads({"specimen.fiducials.min_spacing_A": 0.0}, seed)) for seed in range(6)]
    assert min(closest) < 200.0


def test_an_impossible_spacing_says_what_to_change():
    with pytest.raises(RuntimeError, match="min_spacing_A"):
        beads({"specimen.fiducials.min_spacing_A": 700.0}, 0)
