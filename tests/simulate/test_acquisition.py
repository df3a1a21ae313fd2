import numpy as np

from tomoforge.simulate.acquisition import (
    beam_induced_motion,
    bidirectional_angles,
    dose_symmetric_angles,
    simulate_acquisition,
)
from tomoforge.simulate.config import build_config


def test_dose_symmetric_order_hagen():
    a = dose_symmetric_angles(-60, 60, 3, 0, 2)
    assert a[:9] == [0, 3, 6, -3, -6, 9, 12, -9, -12]
    assert sorted(a) == [float(x) for x in range(-60, 61, 3)]


def test_bidirectional_order():
    assert bidirectional_angles(-6, 6, 3, 0, "negative") == [0, -3, -6, 3, 6]
    assert bidirectional_angles(-6, 6, 3, 0, "positive") == [0, 3, 6, -3, -6]


def test_truth_conventions():
    cfg = build_config("tiny").acquisition
    tilts = simulate_acquisition(cfg, np.random.default_rng(0))
    for i, t in enumerate(tilts):
        assert t.acquisition_order == i + 1
        assert t.defocus_u_A >= t.defocus_v_A
        assert abs(t.tilt_deg - t.nominal_tilt_deg - cfg.tilt_offset_deg) < 1e-12
        assert abs(t.pre_exposure - i * cfg.dose_per_tilt) < 1e-9
        assert abs(t.accumulated_dose - (i + 1) * cfg.dose_per_tilt) < 1e-9
        assert -90 <= t.astigmatism_angle_deg <= 90


def test_beam_motion_is_smooth_and_centred():
    s = beam_induced_motion(10, 3.0, np.random.default_rng(2))
    assert np.allclose(s.mean(0), 0)
    steps = np.linalg.norm(np.diff(s, axis=0), axis=1)
    assert steps[0] > steps[-1]  # fast early motion
