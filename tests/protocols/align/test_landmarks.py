"""Landmark tables: what is written is read back, per acquisition order, with its gaps."""

import numpy as np

from tomoforge.protocols.align.landmarks import read_landmarks, write_landmarks


def test_a_landmark_table_reads_back_in_any_view_order_with_its_gaps(tmp_path):
    rng = np.random.default_rng(0)
    positions = np.round(rng.uniform(-50, 50, (4, 5, 2)), 3)  # 4 views, 5 landmarks
    positions[1, 2] = np.nan  # landmark 3 not seen in the second view
    positions[:, 4] = np.nan  # landmark 5 never seen: not written
    orders = [7, 3, 5, 1]
    path = str(tmp_path / "TS_01_beads.tsv")
    assert write_landmarks(path, positions, orders) == 4
    back = read_landmarks(path, [1, 3, 5, 7])
    assert back.shape == (4, 4, 2)
    np.testing.assert_allclose(back, positions[[3, 1, 2, 0], :4], atol=1e-3)
    # a view the table has but the caller does not ask for is left out; one it lacks is all gaps
    fewer = read_landmarks(path, [3, 2])
    np.testing.assert_allclose(fewer[0], positions[1, :4], atol=1e-3)
    assert np.isnan(fewer[1]).all()
