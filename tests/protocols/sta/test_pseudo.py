"""extract-pseudo-subtomograms on the simulated tilt series (noise-free, formed with a perfect transfer) with its
TRUE projection model and CTF: each particle's views are the projections of the reference through
``view_matrix @ R`` (the particle_views format's promise), and each view's defocus is the simulator's at the
particle's height."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.protocols.sta.conftest import coordinate_run, finished_run, run
from tomoforge.io.mrc import read_mrc
from tomoforge.io.particle_views import read_particle_views
from tomoforge.methods.projection import prepare_fourier_volume, project_fourier_slice
from tomoforge.methods.rotations import tilt_projection_matrix
from tomoforge.model import Acquisition, CTFSeries, CTFTiltImage, TiltImage, TiltSeries
from tomoforge.simulate.accuracy import truth_particles


def true_series(truth: dict, stack: str) -> TiltSeries:
    """The tilt series of the simulation with its true projection model, images from ``stack`` (truth order)."""
    images = [
        TiltImage(
            acquisition_order=t["acquisition_order"],
            tilt_angle_deg=t["nominal_tilt_deg"],
            accumulated_dose_e_A2=t["accumulated_dose"],
            file=stack,
            index=i,
            x_tilt_deg=t["x_tilt_deg"],
            y_tilt_deg=t["y_tilt_deg"],
            z_rot_deg=t["z_rot_deg"],
            x_shift_A=t["x_shift_A"],
            y_shift_A=t["y_shift_A"],
        )
        for i, t in enumerate(truth["tilts"])
    ]
    acquisition = Acquisition(
        pixel_size_A=truth["pixel_size_A"],
        voltage_kV=truth["voltage_kV"],
        spherical_aberration_mm=truth["cs_mm"],
        amplitude_contrast=truth["amplitude_contrast"],
        tilt_axis_angle_deg=truth["tilt_axis_angle_deg"],
    )
    return TiltSeries(name=truth["tilt_series"], acquisition=acquisition, tilt_images=images, aligned=True)


def true_ctf(truth: dict) -> CTFSeries:
    entries = [
        CTFTiltImage(
            acquisition_order=t["acquisition_order"],
            tilt_angle_deg=t["nominal_tilt_deg"],
            defocus_u_A=t["defocus_u_A"],
            defocus_v_A=t["defocus_v_A"],
            astigmatism_angle_deg=t["defocus_angle_deg"],
        )
        for t in truth["tilts"]
    ]
    return CTFSeries(name=truth["tilt_series"], entries=entries)


def true_runs(project, tomos: int, truth: dict, stack: str) -> tuple[int, int, int, np.ndarray, np.ndarray]:
    """Finished runs holding the simulation's tilt series (TRUE projection model, images from ``stack``), its
    TRUE CTF and its TRUE particles in the tomograms of run ``tomos``: (series run, CTF run, coordinates run,
    positions, rotations)."""
    series_run, series = finished_run(
        project, "import-tilt-series", {"files_path": "."}, {}, "tilt_series", TiltSeries, [true_series(truth, stack)]
    )
    series.close()
    ctf_run, ctf = finished_run(
        project,
        "import-ctf",
        {"files_path": "."},
        {"tilt_series": f"{series_run}.tilt_series"},
        "ctf",
        CTFSeries,
        [true_ctf(truth)],
    )
    ctf.close()
    positions, rotations = truth_particles(truth)
    coords = coordinate_run(project, tomos, truth["tilt_series"], positions, rotations)
    return series_run, ctf_run, coords, positions, rotations


@pytest.fixture(scope="module")
def pseudo(sta_project, hexamer_sim):
    project, tomos, truth, reference = sta_project
    ts = hexamer_sim.tilt_series[0]
    free = str(ts.truth_json.parent / "noise_free_tilt_series_ctf_free.mrc")
    series_run, ctf_run, coords, positions, rotations = true_runs(project, tomos, truth, free)
    params = {"box": 32, "premultiply_ctf": False, "dose_weight": False, "invert": True}
    inputs = {
        "tilt_series": f"{series_run}.tilt_series",
        "coordinates": f"{coords}.coordinates",
        "ctf": f"{ctf_run}.ctf",
    }
    ext = run(project, "extract-pseudo-subtomograms", params, inputs)
    return project, ext, truth, reference, positions, rotations


def test_views_are_the_reference_projected_through_the_view_and_the_particle_rotation(pseudo):
    project, ext, truth, reference, positions, rotations = pseudo
    particles = project.output_set(ext, "particles")
    cols = particles.arrays("number", "index", "tilt_series", "half_set")
    n_views = len(truth["tilts"])
    assert list(cols["index"]) == [i * n_views for i in range(10)] and set(cols["half_set"]) == {1, 2}
    stack_file = project.absolute(particles.get("0").file)
    views, meta = read_mrc(stack_file), read_particle_views(stack_file)
    assert views.shape == (10 * n_views, 32, 32) and len(meta) == 10 * n_views
    assert not meta.ctf_premultiplied and not meta.dose_weighted and meta.pixel_size_A == pytest.approx(6.0)
    fv = prepare_fourier_volume(torch.as_tensor(read_mrc(reference)), 6.0)
    lo = fv.n // 2 - 16

    def projection(r):
        return project_fourier_slice(fv, r)[lo : lo + 32, lo : lo + 32].numpy().reshape(-1)

    right, wrong = [], []
    for s in range(len(meta)):
        p = int(meta.particle[s])
        view = views[s].reshape(-1)
        right.append(np.corrcoef(view, projection(meta.view_matrix[s] @ rotations[p]))[0, 1])
        wrong.append(np.corrcoef(view, projection(meta.view_matrix[s] @ rotations[p].T))[0, 1])
    # measured: median r 0.986 (views that also hold a neighbouring particle 0.6-0.8); Rᵀ instead of R 0.670
    assert np.median(right) > 0.95 and np.median(wrong) < 0.8


def test_defocus_of_each_view_is_the_simulators_at_the_particles_height(pseudo):
    project, ext, truth, _, positions, _ = pseudo
    particles = project.output_set(ext, "particles")
    meta = read_particle_views(project.absolute(particles.get("0").file))
    for s in range(0, len(meta), 7):
        p, t = int(meta.particle[s]), truth["tilts"][s % len(truth["tilts"])]
        # the simulator forms each tilt at defocus + (tilt_projection_matrix · X)_z (simulate/imaging.py)
        height = (tilt_projection_matrix(t["y_tilt_deg"], t["z_rot_deg"], t["x_tilt_deg"]) @ positions[p])[2]
        assert meta.defocus_u_A[s] == pytest.approx(t["defocus_u_A"] + height, abs=1e-3)
        assert meta.tilt_deg[s] == pytest.approx(t["y_tilt_deg"])


def test_a_cropped_box_larger_than_the_box_is_refused_naming_both():
    from tomoforge.engine.protocol import ParamsError, validate_params
    from tomoforge.protocols.sta.pseudo import ExtractPseudoSubtomograms

    with pytest.raises(ParamsError, match=r"cropped_box \(80\) must be at most box \(64\)"):
        validate_params(ExtractPseudoSubtomograms, {"box": 64, "cropped_box": 80})
