"""extract-subtomograms → average-subtomograms → map-back on a simulated specimen with the TRUE coordinates and
orientations: the average matches the true reference map; a mirrored hand (the tomogram flipped in z, as a
tilt axis 180° off gives, with its coordinates) does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.protocols.sta.conftest import coordinate_run, finished_run, run
from tests.protocols.sta.test_pseudo import true_series
from tomoforge.io.mrc import read_mrc, read_voxel_size, write_mrc
from tomoforge.methods.fourier import fourier_crop, pad_to
from tomoforge.methods.sta.extraction import extract_subtomograms
from tomoforge.model import TiltSeries, Tomogram
from tomoforge.simulate.accuracy import map_fsc, truth_particles


def average_of(project, tomos, coords, box=32):
    ext = run(
        project,
        "extract-subtomograms",
        {"box": box},
        {"coordinates": f"{coords}.coordinates", "tomograms": f"{tomos}.tomograms"},
    )
    avg = run(project, "average-subtomograms", {}, {"particles": f"{ext}.particles"})
    return ext, avg, project.output_set(avg, "average").get("average")


def fsc_to_half_nyquist(average, reference, pixel):
    """Mean FSC against the reference (padded to the average's box about its centre voxel) up to half Nyquist."""
    n = average.shape[0]
    padded = pad_to(torch.as_tensor(reference), (n, n, n)).numpy()
    result = map_fsc(average, padded, pixel, symmetry="C6")
    f = np.asarray(result["frequency_per_A"])
    return float(np.mean(np.asarray(result["fsc"])[(f > 0) & (f <= 0.25 / pixel)])), result


@pytest.fixture(scope="module")
def averaged(sta_project):
    project, tomos, truth, reference = sta_project
    positions, rotations = truth_particles(truth)
    coords = coordinate_run(project, tomos, truth["tilt_series"], positions, rotations)
    ext, avg, volume = average_of(project, tomos, coords)
    return project, tomos, truth, reference, coords, ext, avg, volume


def test_average_of_true_particles_matches_the_reference_and_a_mirrored_hand_does_not(averaged, tmp_path):
    project, tomos, truth, reference, coords, ext, avg, volume = averaged
    particles = project.output_set(ext, "particles")
    arrays = particles.arrays("number", "half_set", "index")
    assert len(arrays["number"]) == 10 and sorted(np.bincount(arrays["half_set"])[1:]) == [5, 5]
    assert volume.pixel_size_A == pytest.approx(6.0) and volume.half1_file and volume.half2_file
    ref = read_mrc(reference)
    average = read_mrc(project.absolute(volume.file))
    good, result = fsc_to_half_nyquist(average, ref, 6.0)

    # the mirrored hand: tomogram flipped in z and the picks with it (z → −z), orientations unchanged
    tomogram = read_mrc(project.absolute(project.output_set(tomos, "tomograms").get(truth["tilt_series"]).file))
    folder = tmp_path / "mirrored"
    folder.mkdir()
    write_mrc(folder / f"{truth['tilt_series']}.mrc", tomogram[::-1].copy(), 6.0)
    mirrored_tomos = run(project, "import-tomograms", {"files_path": str(folder)}, {})
    positions, rotations = truth_particles(truth)
    mirrored_coords = coordinate_run(project, mirrored_tomos, truth["tilt_series"], positions * [1, 1, -1], rotations)
    _, _, mirrored = average_of(project, mirrored_tomos, mirrored_coords)
    bad, _ = fsc_to_half_nyquist(read_mrc(project.absolute(mirrored.file)), ref, 6.0)
    print(f"mean FSC to 1/(24 Å): true {good:.3f}, mirrored {bad:.3f}; resolution {result['resolution_A']:.1f} Å")
    assert good > 0.95 and bad < good - 0.2  # measured 0.998 and 0.717


def test_map_back_puts_the_average_where_the_particles_are(averaged):
    project, tomos, truth, reference, coords, ext, avg, volume = averaged
    mb = run(
        project,
        "map-back",
        {},
        {"particles": f"{ext}.particles", "average": f"{avg}.average", "tomograms": f"{tomos}.tomograms"},
    )
    placed_item = project.output_set(mb, "tomograms").get(truth["tilt_series"])
    placed = read_mrc(project.absolute(placed_item.file))
    tomogram = read_mrc(project.absolute(project.output_set(tomos, "tomograms").get(truth["tilt_series"]).file))
    assert placed.shape == tomogram.shape and read_voxel_size(project.absolute(placed_item.file)) == pytest.approx(6.0)
    # around every particle the placed map looks like the tomogram (measured r 0.979-0.995)
    positions, _ = truth_particles(truth)
    boxes = [extract_subtomograms(v, positions, pixel_size_A=6.0, box=24).boxes.numpy() for v in (placed, tomogram)]
    r = [float(np.corrcoef(a.reshape(-1), b.reshape(-1))[0, 1]) for a, b in zip(*boxes)]
    print(f"map-back vs truth tomogram around each particle: r = {np.round(r, 3)}")
    assert min(r) > 0.95
    assert (project.run_dir(mb) / "out" / f"{truth['tilt_series']}_mapped_overlay.png").is_file()


def test_re_extraction_at_bin_2_from_another_tomogram_of_the_series_agrees_and_weights_are_written(averaged, tmp_path):
    """The same particles re-extracted (tomogram source: the tilt series) from the tomogram binned by 2, with the
    tilt series' wedge and dose as 3D weights: the average at 12 Å agrees with the 6 Å one Fourier-cropped to
    12 Å (coordinates in Å do not move with binning)."""
    project, tomos, truth, reference, coords, ext, avg, volume = averaged
    name = truth["tilt_series"]
    tomo = project.output_set(tomos, "tomograms").get(name)
    binned = fourier_crop(torch.as_tensor(read_mrc(project.absolute(tomo.file))), (40, 64, 64)).numpy()
    path = write_mrc(tmp_path / f"{name}_bin2.mrc", binned, 12.0)
    series_run, series = finished_run(
        project,
        "import-tilt-series",
        {"files_path": "."},
        {},
        "tilt_series",
        TiltSeries,
        [true_series(truth, "unused.mrc")],
    )
    series.close()
    rec, out = finished_run(
        project,
        "reconstruct-tomogram",
        {},
        {"tilt_series": f"{series_run}.tilt_series"},
        "tomograms",
        Tomogram,
        [
            Tomogram(
                name=f"{name}_bin2",
                file=str(path),
                pixel_size_A=12.0,
                size_xyz=(64, 64, 40),
                binning=2.0,
                tilt_series=name,
            )
        ],
    )
    out.close()
    inputs = {
        "coordinates": f"{ext}.particles",
        "tomograms": f"{rec}.tomograms",
        "tilt_series": f"{series_run}.tilt_series",
    }
    again = run(project, "extract-subtomograms", {"box": 16, "tomogram_source": "tilt-series"}, inputs)
    particles = list(project.output_set(again, "particles"))
    first = project.output_set(ext, "particles")
    assert [p.half_set for p in particles] == [first.get(str(p.number)).half_set for p in particles]  # kept
    weight = read_mrc(project.absolute(particles[0].weight_file))
    assert weight.shape == (16, 16, 9) and weight[0, 0, 0] == pytest.approx(len(truth["tilts"]), rel=0.05)
    # the truth tomogram has no wedge: the 12 Å average is compared unweighted (the weights divide a wedge out)
    coarse = run(project, "average-subtomograms", {"use_weights": False}, {"particles": f"{again}.particles"})
    weighted = run(project, "average-subtomograms", {"name": "weighted"}, {"particles": f"{again}.particles"})
    assert ", weighted" in (project.run_dir(weighted) / "run.log").read_text()
    at_12 = read_mrc(project.absolute(project.output_set(coarse, "average").get("average").file))
    at_6 = fourier_crop(torch.as_tensor(read_mrc(project.absolute(volume.file))), (16, 16, 16)).numpy()
    r = float(np.corrcoef(at_12.reshape(-1), at_6.reshape(-1))[0, 1])
    print(f"bin 2 re-extraction vs bin 1 average at 12 Å: r = {r:.3f}")
    assert r > 0.98  # measured 0.992
