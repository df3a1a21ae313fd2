"""extract-subtomograms → average-subtomograms → map-back on a simulated specimen with the TRUE coordinates and
orientations: the average matches the true reference map; a mirrored hand (the tomogram flipped in z, as a
tilt axis 180° off gives, with its coordinates) does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.protocols.sta.conftest import coordinate_run, run
from tomoforge.io.mrc import read_mrc, read_voxel_size, write_mrc
from tomoforge.methods.fourier import pad_to
from tomoforge.methods.sta.extraction import extract_subtomograms
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
