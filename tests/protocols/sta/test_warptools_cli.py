"""import-particles and reconstruct-particle from the command line on real WarpTools 2D tilt stacks (40
particles x 37 tilts at 12 Å), compared with the RELION reconstruction shipped beside them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tomoforge.cli.main import app
from tomoforge.engine import Project
from tomoforge.io.mrc import read_mrc
from tomoforge.io.particle_views import read_particle_views
from tomoforge.io.plot_data import read_plot_data
from tomoforge.methods.map_alignment import fourier_shell_correlation

FOLDER = "relion5/tomodrgn_warptools"
STEM = "warptools_test_4-tomos_10-ptcls_box-32_angpix-12"
runner = CliRunner()


def cli(project, *args):
    result = runner.invoke(app, ["-p", str(project), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def imported(tmp_path_factory, test_data):
    folder = test_data / FOLDER
    if not (folder / f"{STEM}.star").is_file():
        pytest.skip(f"real WarpTools particles absent at {folder}")
    path = tmp_path_factory.mktemp("warptools") / "proj"
    runner.invoke(app, ["project", "new", str(path)])
    out = cli(
        path,
        "run",
        "import-particles",
        "--set",
        f"particles_star={folder / f'{STEM}.star'}",
        "--set",
        f"tomograms_star={folder / f'{STEM}_tomograms.star'}",
        "--executor",
        "serial",
    )
    assert "run 1 finished" in out
    return path, folder


def test_import_makes_particles_with_view_stacks(imported):
    path, _ = imported
    project = Project.open(path)
    try:
        particles = project.output_set(1, "particles")
        cols = particles.arrays("number", "half_set", "tilt_series", "index")
        assert len(particles) == 40 and sorted(set(cols["tilt_series"])) == ["Unt_050", "Unt_076", "Unt_083", "Unt_088"]
        first = particles.get(str(particles.arrays("key")["key"][0]))
        views = read_particle_views(project.absolute(first.file))
        # Unt_083's particles are seen in 34 of 37 tilts (rlnTomoVisibleFrames, and scale factor 0 on the rest)
        assert len(views) == 10 * 34 and views.ctf_premultiplied and views.pixel_size_A == 12.0
        assert np.allclose(np.linalg.det(views.view_matrix), 1.0, atol=1e-5)
    finally:
        project.close()


def test_reconstruct_particle_matches_relions_map(imported):
    path, folder = imported
    out = cli(
        path,
        "run",
        "reconstruct-particle",
        "--input",
        "particles=1.particles",
        "--set",
        "fsc_regularise=false",
        "--executor",
        "serial",
    )
    assert "run 2 finished" in out
    project = Project.open(path)
    try:
        volume = next(iter(project.output_set(2, "volumes")))
        ours = read_mrc(project.absolute(volume.file))
        assert (project.absolute(volume.file).parent / "map_fsc.png").is_file()
    finally:
        project.close()
    relion = read_mrc(folder / "warptools_test_box-32_angpix-12_reconstruct.mrc")
    fsc = fourier_shell_correlation(
        torch.as_tensor(relion, dtype=torch.float64), torch.as_tensor(ours, dtype=torch.float64), 12.0
    )[1]
    # NOT yet the target (≥ 0.9 to 0.8 Nyquist): the low shells agree, the rest only partly
    assert fsc[1] > 0.95 and fsc[2] > 0.88 and fsc[3:9].mean() > 0.5, np.round(fsc, 2)


def test_postprocess_and_local_resolution_from_the_cli(imported):
    path, _ = imported
    # run 2 is the reconstruction of the test above
    out = cli(
        path, "run", "postprocess", "--input", "volumes=2.volumes", "--set", "fit_from_A=100", "--executor", "serial"
    )
    assert "finished" in out
    log = cli(path, "log", "3")
    assert "resolution" in log and "B-factor" in log
    project = Project.open(path)
    try:
        post = next(iter(project.output_set(3, "volumes")))
        folder = project.absolute(post.file).parent
        assert (folder / "map_postprocess_fsc.png").is_file() and (folder / "map_postprocess_guinier.png").is_file()
        fsc = read_plot_data(folder / "map_postprocess_fsc.plot.json")  # what the web draws interactively
        assert len(fsc.series) >= 2 and [m.value for m in fsc.markers] == [0.143, 0.5]
        # 40 noisy particles at 12 Å: somewhere between Nyquist (24 Å) and 100 Å
        assert 24.0 <= post.fsc.resolution_A() <= 100.0
    finally:
        project.close()
    out = cli(
        path, "run", "local-resolution", "--input", "volumes=2.volumes", "--set", "step_px=4", "--executor", "serial"
    )
    assert "finished" in out
    project = Project.open(path)
    try:
        local = next(iter(project.output_set(4, "volumes")))
        res = read_mrc(project.absolute(local.file))
        assert res.shape == (32, 32, 32) and res.min() >= 24.0 - 1e-3
    finally:
        project.close()
