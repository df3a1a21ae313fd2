"""The written tiny simulation: files, mdoc round trip, counts, geometry of the truth, determinism."""

import json

import mdocfile
import mrcfile
import numpy as np
import pytest

from tomoforge.io.mdoc import read_mdoc
from tomoforge.io.mrc import read_mrc, read_voxel_size
from tomoforge.methods.rotations import tilt_projection_matrix
from tomoforge.simulate import simulate
from tomoforge.simulate.truth import read_truth


def test_files_exist(tiny_sim):
    ts = tiny_sim.tilt_series[0]
    assert ts.mdoc.name == "TS_01.mrc.mdoc" and len(ts.movies) == 7
    movie = read_mrc(ts.movies[0])
    assert movie.shape == (3, 128, 128)
    with mrcfile.open(ts.movies[0], header_only=True) as m:
        assert int(m.header.mode) == 1  # int16 counts, as detectors write
    assert read_voxel_size(ts.movies[0]) == pytest.approx(6.0)
    assert read_mrc(tiny_sim.gain).shape == (128, 128)
    truth = read_truth(ts.truth_json)
    assert len(truth["tilts"]) == 7 and truth["particles"] and truth["fiducials"] and truth["vesicles"]
    assert read_mrc(ts.noise_free_stack).shape == (7, 128, 128)
    assert read_mrc(ts.tomogram).shape[1:] == (64, 64)


def test_mdoc_round_trips_through_our_reader_and_mdocfile(tiny_sim):
    ts = tiny_sim.tilt_series[0]
    truth = ts.truth
    ours = read_mdoc(ts.mdoc)
    theirs = mdocfile.read(ts.mdoc)
    nominal = [t["nominal_tilt_deg"] for t in truth["tilts"]]
    doses = [t["dose"] for t in truth["tilts"]]
    assert [s["TiltAngle"] for s in ours.sections] == pytest.approx(nominal)
    assert list(theirs["TiltAngle"]) == pytest.approx(nominal)
    assert [s["ExposureDose"] for s in ours.sections] == pytest.approx(doses)
    assert list(theirs["ExposureDose"]) == pytest.approx(doses)
    assert list(theirs["ZValue"]) == list(range(7))
    assert ours.tilt_axis_angle == pytest.approx(truth["tilt_axis_angle_deg"])
    assert [s["SubFramePath"] for s in ours.sections] == truth["movies"]
    assert [s["NumSubFrames"] for s in ours.sections] == [3] * 7
    assert [s["Defocus"] for s in ours.sections] == pytest.approx(
        [-t["target_defocus_A"] / 1e4 for t in truth["tilts"]], abs=1e-4
    )
    times = ours.datetimes() if hasattr(ours, "datetimes") else None
    if times is not None:
        assert list(times) == sorted(times)
    for s, movie in zip(ours.sections, tiny_sim.tilt_series[0].movies):
        assert (ts.mdoc.parent / s["SubFramePath"]) == movie and movie.exists()


def test_mean_counts_equal_dose_times_pixel_area(tmp_path, test_data):
    """An empty specimen: gain-corrected mean counts = dose · pixel² · exp(−t / (λ_in cos α)), Poisson error."""
    over = {
        "data_root": str(test_data),
        "specimen.particles.0.count": 0,
        "specimen.particles.0.count_on_membranes": 0,
        "specimen.vesicles.count": 0,
        "specimen.fiducials.count_per_surface": 0,
        "detector.hot_pixels": 0,
        "detector.xrays_per_frame": 0.0,
        "detector.image_size": [96, 96],
    }
    res = simulate(tmp_path, "tiny", seed=1, overrides=over, progress=False)
    ts = res.tilt_series[0]
    gain = read_mrc(res.gain)
    cfg = res.config
    per_frame = cfg.acquisition.dose_per_tilt / cfg.acquisition.frames_per_tilt * cfg.detector.pixel_size_A**2
    normal = np.array(ts.truth["specimen"]["slab_normal"])
    for t, movie in zip(ts.truth["tilts"], ts.movies):
        beam = tilt_projection_matrix(t["y_tilt_deg"], t["z_rot_deg"], t["x_tilt_deg"])[2]
        expected = per_frame * np.exp(-cfg.specimen.ice_thickness_A / (3500.0 * abs(beam @ normal)))
        frames = read_mrc(movie).astype(np.float64) * gain
        sigma = np.sqrt(expected * (gain**2).mean() / frames.size)
        assert abs(frames.mean() - expected) < 4 * sigma


def test_gold_beads_appear_where_the_truth_projects_them(tiny_sim):
    """Centroid of each bead's shadow in the noise-free tilt images vs the projection model, < 0.5 px."""
    ts = tiny_sim.tilt_series[0]
    truth = ts.truth
    stack = read_mrc(ts.noise_free_stack).astype(np.float64)
    pix = truth["pixel_size_A"]
    ny, nx = truth["image_size_yx"]
    for t, img in zip(truth["tilts"], stack):
        m = tilt_projection_matrix(t["y_tilt_deg"], t["z_rot_deg"], t["x_tilt_deg"])
        for f in truth["fiducials"]:
            u, v = (m @ np.array(f["position_A"]))[:2] + [t["x_shift_A"], t["y_shift_A"]]
            cx, cy = u / pix + nx // 2, v / pix + ny // 2
            y, x = np.mgrid[:ny, :nx]
            win = (x - cx) ** 2 + (y - cy) ** 2 < 9.5**2
            w = np.clip(np.median(img) - img, 0, None) * win
            if win.sum() < 200 or not (10 < cx < nx - 10 and 10 < cy < ny - 10):
                continue
            assert abs((w * x).sum() / w.sum() - cx) < 0.5 and abs((w * y).sum() / w.sum() - cy) < 0.5


def test_frames_follow_the_truth_shifts(tiny_sim):
    """Cross-correlating a frame's noise-free content is not possible from the file, so check that the
    summed frames correlate best with the noise-free image at zero mean shift (frame shifts average to 0)."""
    ts = tiny_sim.tilt_series[0]
    gain = read_mrc(tiny_sim.gain)
    ref = read_mrc(ts.noise_free_stack)[0].astype(np.float64)
    frames = read_mrc(ts.movies[0]).astype(np.float64) * gain
    total = frames.sum(0)
    a, b = total - total.mean(), ref - ref.mean()
    cc = np.fft.irfft2(np.fft.rfft2(a) * np.conj(np.fft.rfft2(b)), s=a.shape)
    peak = np.unravel_index(np.argmax(cc), cc.shape)
    assert peak == (0, 0)
    assert np.abs(np.array(ts.truth["tilts"][0]["frame_shifts_A"]).mean(0)).max() < 1e-9


def test_xrays_and_hot_pixels_are_in_the_movies(tiny_sim):
    ts = tiny_sim.tilt_series[0]
    truth = ts.truth
    assert truth["xrays"]
    for hit in truth["xrays"][:5]:
        frame = read_mrc(ts.movies[hit["tilt_index"]])[hit["frame"]]
        assert frame[hit["y_px"], hit["x_px"]] >= hit["counts"]
    hot = np.array(truth["hot_pixels_yx"])
    movie = read_mrc(ts.movies[0]).astype(float)
    assert movie[:, hot[:, 0], hot[:, 1]].mean() > movie.mean() + 20


def test_deterministic_for_a_seed(tmp_path, tiny_sim, test_data):
    again = simulate(tmp_path, "tiny", seed=7, overrides={"data_root": str(test_data)}, progress=False)
    a, b = tiny_sim.tilt_series[0], again.tilt_series[0]
    assert json.dumps(a.truth["tilts"]) == json.dumps(b.truth["tilts"])
    assert np.array_equal(read_mrc(a.movies[3]), read_mrc(b.movies[3]))
    assert a.mdoc.read_text() == b.mdoc.read_text()


def test_tiff_tomo5_super_resolution(tmp_path, test_data):
    import tifffile

    over = {
        "data_root": str(test_data),
        "detector.movie_format": "tiff",
        "detector.mdoc_flavour": "tomo5",
        "detector.super_resolution": True,
        "acquisition.tilt_step_deg": 30.0,
    }
    res = simulate(tmp_path, "tiny", seed=2, overrides=over, progress=False)
    ts = res.tilt_series[0]
    frames = tifffile.imread(ts.movies[0])
    assert frames.shape == (3, 256, 256) and frames.dtype == np.uint16
    assert ts.truth["pixel_size_A"] == pytest.approx(3.0)
    md = read_mdoc(ts.mdoc)
    assert md.software == "Tomography" and md.raw_tilt_axis_angle == pytest.approx(85.0)
    assert list(mdocfile.read(ts.mdoc)["TiltAngle"]) == pytest.approx([0.0, 30.0, -30.0])


def test_load_simulation_reopens_what_simulate_wrote(tiny_sim):
    from tomoforge.simulate import load_simulation

    again = load_simulation(tiny_sim.outdir)
    assert again.seed == tiny_sim.seed and again.config == tiny_sim.config
    assert again.gain == tiny_sim.gain
    for a, b in zip(again.tilt_series, tiny_sim.tilt_series, strict=True):
        assert (a.name, a.mdoc, a.movies, a.noise_free_stack, a.tomogram) == (
            b.name,
            b.mdoc,
            b.movies,
            b.noise_free_stack,
            b.tomogram,
        )
        assert a.truth["tilts"] == json.loads(json.dumps(b.truth["tilts"]))
