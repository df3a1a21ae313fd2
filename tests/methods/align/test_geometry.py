"""The tilt offset and the thickness (in mean free paths) from the views' mean intensities (Beer–Lambert)
against a formula."""

import numpy as np

from tomoforge.methods.align.geometry import attenuation_thickness, intensity_offset_deg

TILTS = np.arange(-60, 61, 3.0)


def test_the_offset_that_levels_the_slab_comes_from_the_attenuation():
    rng = np.random.default_rng(0)
    means = np.exp(5.0 - 0.3 / np.cos(np.deg2rad(TILTS + 1.3))) * (1 + rng.normal(0, 2e-4, len(TILTS)))
    assert abs(intensity_offset_deg(means, TILTS) - 1.3) < 0.03


def test_normalised_or_unattenuated_means_give_no_offset():
    rng = np.random.default_rng(1)
    assert intensity_offset_deg(np.zeros(len(TILTS)), TILTS) is None  # mean-subtracted views
    assert intensity_offset_deg(1 + rng.normal(0, 0.01, len(TILTS)), TILTS) is None  # no attenuation, only noise
    brighter = np.exp(0.3 / np.cos(np.deg2rad(TILTS)))  # intensity rising with the path: not Beer–Lambert
    assert intensity_offset_deg(brighter, TILTS) is None


def test_the_thickness_in_mean_free_paths_comes_from_the_attenuation():
    rng = np.random.default_rng(2)
    means = np.exp(5.0 - 0.3 / np.cos(np.deg2rad(TILTS + 1.3))) * (1 + rng.normal(0, 2e-4, len(TILTS)))
    assert abs(attenuation_thickness(means, TILTS, 1.3) - 0.3) < 0.003
    assert attenuation_thickness(np.exp(0.3 / np.cos(np.deg2rad(TILTS))), TILTS) is None  # brighter with the path
    assert attenuation_thickness(np.zeros(len(TILTS)), TILTS) is None
