"""The CTF protocols take their defaults from the methods' settings: one place for each default."""

from __future__ import annotations

import dataclasses

from tomoforge.methods.ctf.settings import CorrectionSettings, FitSettings
from tomoforge.protocols.ctf.correct import CTFCorrectionParams
from tomoforge.protocols.ctf.estimate import CTFEstimationParams


def test_default_estimation_parameters_are_the_methods_settings():
    assert CTFEstimationParams().fit_settings() == FitSettings()


def test_estimation_parameters_reach_the_settings():
    params = CTFEstimationParams(box_px=256, search_window_A=1500.0, erase_gold_sd=0.0, find_phase_shift=True)
    settings = params.fit_settings()
    assert (settings.box, settings.window_A, settings.erase_threshold_sd, settings.find_phase_shift) == (
        256,
        1500.0,
        0.0,
        True,
    )


def test_default_correction_parameters_are_the_methods_settings():
    assert CTFCorrectionParams().correction_settings() == CorrectionSettings()
    changed = CTFCorrectionParams(method="wiener", handedness=-1, pad_px=12).correction_settings()
    assert dataclasses.replace(CorrectionSettings(), method="wiener", handedness=-1, pad_px=12) == changed
