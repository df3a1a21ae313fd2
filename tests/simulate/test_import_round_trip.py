"""The simulated mdoc and movies go through our import protocol with the truth's angles, doses and order."""

import json

import pytest

from tomoforge.protocols.imports.mdoc import tilt_series_from_mdoc


def test_import_of_the_simulated_movies_matches_the_truth(tiny_sim):
    simulated = tiny_sim.tilt_series[0]
    truth = json.loads(simulated.truth_json.read_text())
    series = tilt_series_from_mdoc(simulated.mdoc, movies=True)
    by_order = {t.acquisition_order: t for t in series.tilt_images}
    assert sorted(by_order) == [t["acquisition_order"] for t in truth["tilts"]]
    for tilt in truth["tilts"]:
        image = by_order[tilt["acquisition_order"]]
        assert image.tilt_angle_deg == pytest.approx(tilt["nominal_tilt_deg"], abs=1e-3)
        assert image.dose_e_A2 == pytest.approx(tilt["dose"], rel=1e-4)
        assert image.accumulated_dose_e_A2 == pytest.approx(tilt["accumulated_dose"], rel=1e-4)
        assert image.n_frames == len(tilt["frame_shifts_A"])
        assert image.file.endswith(tilt["movie"].split("/")[-1])
    assert series.acquisition.tilt_axis_angle_deg == pytest.approx(truth["tilt_axis_angle_deg"])
    assert series.acquisition.pixel_size_A == pytest.approx(truth["pixel_size_A"])
