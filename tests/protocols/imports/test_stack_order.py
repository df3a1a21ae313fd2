"""Acquisition orders of a 41-tilt ±60°/3° series against orders written out by hand."""

import numpy as np

from tomoforge.protocols.imports.order import order_from_sequence, scheme_sequence

ANGLES = np.arange(-60.0, 60.1, 3.0)  # 41 tilts


def exposed(scheme, **kw):
    return ANGLES[scheme_sequence(ANGLES, scheme, **kw)].tolist()


def test_dose_symmetric_groups_of_two_as_hagen():
    # 0, +3, then pairs alternating sides (the order of the SerialEM mdocs in the test data)
    hand = [0, 3, -3, -6, 6, 9, -9, -12, 12, 15, -15, -18, 18, 21, -21, -24, 24, 27, -27, -30, 30, 33, -33, -36,
            36, 39, -39, -42, 42, 45, -45, -48, 48, 51, -51, -54, 54, 57, -57, -60, 60]  # fmt: skip
    assert exposed("dose-symmetric", group_size=2) == hand
    order = order_from_sequence(scheme_sequence(ANGLES, "dose-symmetric", group_size=2))
    assert order[ANGLES.tolist().index(-60.0)] == 40 and order[ANGLES.tolist().index(6.0)] == 5
    assert exposed("dose-symmetric", group_size=2, first="negative")[:6] == [0, -3, 3, 6, -6, -9]


def test_bidirectional_from_zero_and_from_plus_twenty():
    assert exposed("bidirectional", first="negative") == [0, *range(-3, -61, -3), *range(3, 61, 3)]
    # +20 is not on the grid: the nearest tilt, +21, is the start
    got = exposed("bidirectional", start_deg=20.0, first="negative")
    assert got == [21, *range(18, -61, -3), *range(24, 61, 3)]
    order = order_from_sequence(scheme_sequence(ANGLES, "bidirectional", start_deg=20.0, first="negative"))
    assert order[ANGLES.tolist().index(-60.0)] == 28 and order[ANGLES.tolist().index(24.0)] == 29
    assert exposed("bidirectional", start_deg=20.0, first="positive")[:15] == [21, *range(24, 61, 3), 18]


def test_continuous_and_uneven_angles():
    assert exposed("continuous") == ANGLES.tolist()
    assert exposed("continuous", first="negative") == ANGLES[::-1].tolist()
    angles = np.array([0.4, -2.6, 3.4, -5.6, 6.4, 9.4])  # an offset of 0.4°, a missing −9°
    seq = scheme_sequence(angles, "dose-symmetric", group_size=2)
    assert angles[seq].tolist() == [0.4, 3.4, -2.6, -5.6, 6.4, 9.4]
