"""The truth against the images: the written reference map, reprojected at each particle's true orientation
and position through the truth's projection model, CTF at its height and exposure filter, reproduces that
particle in the simulated noise-free tilt series (issue 17: r ≥ 0.95)."""

import numpy as np
import pytest
import torch

from tomoforge.io.mrc import read_mrc, read_voxel_size
from tomoforge.methods.ctf.transfer import ctf_2d
from tomoforge.methods.preprocess.dose import exposure_filter_2d
from tomoforge.methods.projection import paste_add, prepare_fourier_volume, project_fourier_slice, split_position
from tomoforge.methods.rotations import tilt_projection_matrix
from tomoforge.simulate import simulate


@pytest.fixture(scope="module")
def ribosomes(tmp_path_factory, test_data):
    overrides = {
        "data_root": str(test_data),
        "specimen.ice_thickness_A": 700.0,
        "specimen.particles": [{"name": "ribosome", "source": "models/4v5d.cif", "count": 3}],
        "specimen.vesicles.count": 0,
        "specimen.fiducials.count_per_surface": 0,
        "acquisition.tilt_step_deg": 30.0,
        "acquisition.frames_per_tilt": 2,
        "detector.image_size": [160, 160],
        "detector.pixel_size_A": 8.0,
        "detector.mtf": None,
        "detector.hot_pixels": 0,
    }
    out = tmp_path_factory.mktemp("ribosomes")
    return out, simulate(out, preset="tiny", seed=11, overrides=overrides, progress=False).tilt_series[0]


def _scores(out, ts, turn=np.eye(3)):
    """Correlation of each particle fully inside a tilt image with its prediction from the truth (its
    rotation followed by ``turn``, in the reference frame)."""
    truth = ts.truth
    (species,) = truth["species"]
    pix = truth["pixel_size_A"]
    reference = read_mrc(out / species["reference_map"]).astype(np.float32)
    assert read_voxel_size(out / species["reference_map"]) == pytest.approx(pix)
    fv = prepare_fourier_volume(torch.from_numpy(reference), pix)
    stack = read_mrc(ts.noise_free_stack).astype(np.float64)
    ny, nx = truth["image_size_yx"]
    half = int(species["radius_A"] / pix)
    optics = {"voltage_kV": truth["voltage_kV"], "cs_mm": truth["cs_mm"]}
    optics["amplitude_contrast"] = truth["amplitude_contrast"]
    scores = []
    for t, observed in zip(truth["tilts"], stack):
        m = tilt_projection_matrix(t["y_tilt_deg"], t["z_rot_deg"], t["x_tilt_deg"])
        exposure = exposure_filter_2d((ny, nx), pix, t["pre_exposure"] + t["dose"] / 2)
        for p in truth["particles"]:
            q = m @ np.array(p["position_A"])
            centre = (q[:2] + [t["x_shift_A"], t["y_shift_A"]]) / pix + [nx // 2, ny // 2]
            if np.any(centre < half) or centre[0] >= nx - half or centre[1] >= ny - half:
                continue
            whole, frac = split_position(centre)
            image = torch.zeros(ny, nx)
            projection = project_fourier_slice(fv, m @ np.array(p["rotation"]) @ turn, tuple(frac))
            paste_add(image, projection, (whole[1], whole[0]))
            du, dv = t["defocus_u_A"] + q[2], t["defocus_v_A"] + q[2]
            ctf = ctf_2d((ny, nx), pix, du, dv, t["defocus_angle_deg"], **optics)
            predicted = torch.fft.irfft2(torch.fft.rfft2(image) * ctf * exposure, s=(ny, nx)).numpy()
            window = np.s_[whole[1] - half : whole[1] + half, whole[0] - half : whole[0] + half]
            a, b = observed[window] - observed[window].mean(), predicted[window] - predicted[window].mean()
            scores.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())))
    return np.array(scores)


def test_reference_reprojected_at_the_truth_matches_the_noise_free_particles(ribosomes):
    scores = _scores(*ribosomes)
    print("reprojection r:", np.round(scores, 4))
    assert len(scores) >= 6
    assert scores.min() >= 0.95, scores


def test_a_wrong_orientation_does_not_match(ribosomes):
    """The check can fail: each particle predicted turned by 90° about its x axis scores well below 0.95."""
    scores = _scores(*ribosomes, turn=np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]))
    print("turned r:", np.round(scores, 4))
    assert scores.max() < 0.8, scores
