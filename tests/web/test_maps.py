"""The map viewer's API: orthogonal slices of a map, its half maps and mask, and its FSC as plot data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.web.conftest import run_serially
from tomoforge.engine import Project
from tomoforge.io.mrc import write_mrc
from tomoforge.model.volume import FSC
from tomoforge.web.app import create_app

N = 16


@pytest.fixture
def maps(tmp_path):
    """An imported 16³ map (5 Å voxels) with half maps (bright at different voxels) and a mask; an FSC added."""
    folder = tmp_path / "maps"
    folder.mkdir()
    for name, voxel in (("map", (8, 8, 8)), ("half1", (2, 3, 4)), ("half2", (12, 10, 5)), ("mask", (8, 8, 9))):
        volume = np.zeros((N, N, N), np.float32)
        volume[voxel] = 1.0
        write_mrc(folder / f"{name}.mrc", volume, 5.0)
    project = Project.create(tmp_path / "project")
    params = {"files_path": str(folder / "map.mrc"), "symmetry": "c6"}
    params |= {f"{k}_file": str(folder / f"{k}.mrc") for k in ("half1", "half2", "mask")}
    run = project.new_run("import-volumes", params)
    run_serially(project, run, "run")
    volumes = project.output_set(run, "volumes")
    volume = volumes.get(volumes.keys()[0])
    frequency = [i / (2 * 5.0 * 8) for i in range(9)]  # to Nyquist of 5 Å voxels
    volumes.replace(
        volume.model_copy(
            update={"fsc": FSC(frequency_per_A=frequency, correlation=[1, 1, 0.9, 0.6, 0.3, 0.1, 0.05, 0.0, 0.0])}
        )
    )
    yield project, run, volume.name
    project.close()


@pytest.fixture
def map_client(maps):
    return TestClient(create_app(maps[0].root, launch=run_serially), base_url="http://127.0.0.1")


def test_map_info_its_volumes_and_fsc(map_client, maps):
    _, run, name = maps
    info = map_client.get(f"/api/runs/{run}/maps/volumes/{name}").json()
    assert info["size_xyz"] == [N, N, N] and info["pixel_size_A"] == 5.0 and info["symmetry"] == "C6"
    assert info["maps"] == ["map", "half1", "half2", "mask"]
    # 0.143 is crossed between 0.3 (0.05 1/Å) and 0.1 (0.0625 1/Å): linearly at 0.05 + 0.157/0.2 * 0.0125
    crossing = 0.05 + (0.3 - 0.143) / 0.2 * 0.0125
    assert info["resolution_A"] == pytest.approx(1 / crossing, rel=1e-6)
    assert info["fsc"]["series"][0]["y"][2] == 0.9
    assert [m["value"] for m in info["fsc"]["markers"]] == pytest.approx([0.143, crossing])
    assert name in map_client.get(f"/runs/{run}/map/volumes").text


@pytest.mark.parametrize(("which", "peak_xy", "z"), [("map", (8, 8), 8), ("half1", (3, 4), 2), ("half2", (10, 5), 12)])
def test_slices_of_the_map_and_its_half_maps(map_client, maps, which, peak_xy, z):
    _, run, name = maps
    response = map_client.get(f"/api/runs/{run}/tomograms/volumes/{name}/xy/{z}.png?low=0&high=100&which={which}")
    assert response.status_code == 200
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape == (N, N) and np.unravel_index(np.argmax(image), image.shape) == peak_xy


def test_a_missing_volume_is_refused(map_client, maps, tmp_path):
    project, run, name = maps
    assert (
        "no 'odd'" in map_client.get(f"/api/runs/{run}/tomograms/volumes/{name}/xy/1.png?which=odd").json()["message"]
    )
    folder = tmp_path / "plain"
    folder.mkdir()
    write_mrc(folder / "plain.mrc", np.zeros((4, 4, 4), np.float32), 5.0)
    plain = project.new_run("import-volumes", {"files_path": str(folder)})
    run_serially(project, plain, "run")
    key = project.output_set(plain, "volumes").keys()[0]
    assert map_client.get(f"/api/runs/{plain}/maps/volumes/{key}").json()["maps"] == ["map"]
    message = map_client.get(f"/api/runs/{plain}/tomograms/volumes/{key}/xy/1.png?which=half1").json()["message"]
    assert "no 'half1' volume (it has map)" in message
