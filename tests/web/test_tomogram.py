"""The tomogram viewer's API: XY, XZ and YZ slices, and coordinates overlaid on the slices they cross."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.web.conftest import WRITE, run_serially
from tomoforge.engine import Project
from tomoforge.io.mrc import write_mrc
from tomoforge.web.app import create_app

NZ, NY, NX = 12, 20, 16
BRIGHT = (3, 5, 9)  # z, y, x


@pytest.fixture
def tomo(tmp_path):
    """An imported 16 × 20 × 12 tomogram (10 Å voxels) bright at one voxel, and 2 coordinates in it."""
    volumes = tmp_path / "tomos"
    volumes.mkdir()
    volume = np.zeros((NZ, NY, NX), np.float32)
    volume[BRIGHT] = 1.0
    write_mrc(volumes / "TS_01.mrc", volume, 10.0)
    points = tmp_path / "points"
    points.mkdir()
    (points / "TS_01.txt").write_text("9 5 3\n2 2 10\n")  # x y z in voxels
    project = Project.create(tmp_path / "project")
    tomograms = project.new_run("import-tomograms", {"files_path": str(volumes)})
    run_serially(project, tomograms, "run")
    picks = project.new_run(
        "import-coordinates",
        {"files_path": str(points), "pattern": "*.txt", "units": "pixel", "pixel_size_A": 10.0},
        {"tomograms": f"{tomograms}.tomograms"},
    )
    run_serially(project, picks, "run")
    yield project, tomograms, picks
    project.close()


@pytest.fixture
def tomo_client(tomo):
    return TestClient(create_app(tomo[0].root, launch=run_serially), base_url="http://127.0.0.1")


def test_tomogram_info_lists_the_coordinate_sets_in_it(tomo_client, tomo):
    _, tomograms, picks = tomo
    info = tomo_client.get(f"/api/runs/{tomograms}/tomograms/tomograms/TS_01").json()
    assert info["size_xyz"] == [NX, NY, NZ] and info["pixel_size_A"] == 10.0
    assert info["coordinate_sets"] == [{"set": f"{picks}.coordinates", "kind": "Coordinate3D", "count": 2}]
    assert "TS_01" in tomo_client.get(f"/runs/{tomograms}/tomogram/tomograms").text


@pytest.mark.parametrize(
    ("axis", "index", "shape", "peak"),
    [("xy", 3, (NY, NX), (5, 9)), ("xz", 5, (NZ, NX), (3, 9)), ("yz", 9, (NZ, NY), (3, 5))],
)
def test_a_slice_shows_the_bright_voxel_where_it_is(tomo_client, tomo, axis, index, shape, peak):
    _, tomograms, _ = tomo
    response = tomo_client.get(f"/api/runs/{tomograms}/tomograms/tomograms/TS_01/{axis}/{index}.png?low=0&high=100")
    assert response.status_code == 200
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape == shape
    assert np.unravel_index(np.argmax(image), shape) == peak and image.max() == 255
    other = tomo_client.get(
        f"/api/runs/{tomograms}/tomograms/tomograms/TS_01/{axis}/{index + 1}.png?low=0&high=100"
    ).content
    assert np.asarray(Image.open(io.BytesIO(other))).max() == 0  # the next slice misses it


def test_coordinates_near_a_slice(tomo_client, tomo):
    _, tomograms, picks = tomo
    base = f"/api/runs/{tomograms}/tomograms/tomograms/TS_01"
    near = tomo_client.get(f"{base}/xy/3/coordinates?set={picks}.coordinates&half_width=1").json()
    assert [(p["x"], p["y"], p["z"]) for p in near] == [(9.0, 5.0, 3.0)]
    assert near[0]["direction"] == [0.0, 0.0, 1.0]  # no orientation: the identity's Z axis
    assert len(tomo_client.get(f"{base}/xy/10/coordinates?set={picks}.coordinates&half_width=0.5").json()) == 1
    assert tomo_client.get(f"{base}/xy/6/coordinates?set={picks}.coordinates&half_width=1").json() == []
    assert len(tomo_client.get(f"{base}/yz/2/coordinates?set={picks}.coordinates").json()) == 1


def test_bad_slice_requests_are_refused(tomo_client, tomo):
    _, tomograms, _ = tomo
    base = f"/api/runs/{tomograms}/tomograms/tomograms/TS_01"
    assert "out of range" in tomo_client.get(f"{base}/xy/{NZ}.png").json()["message"]
    assert tomo_client.get(f"{base}/ab/1.png").status_code == 409
    assert tomo_client.get(f"{base}/xy/1.png?low=90&high=10").status_code == 409
    assert tomo_client.get(f"/api/runs/{tomograms}/tomograms/tomograms/TS_99").status_code == 409


def test_picked_points_become_a_new_coordinate_set(tomo_client, tomo):
    project, tomograms, _ = tomo
    url = f"/api/runs/{tomograms}/tomograms/tomograms/picks"
    response = tomo_client.post(url, json={"points": {"TS_01": [[8, 10, 6], [0, 0, 0]]}}, headers=WRITE)
    assert response.status_code == 201
    new = response.json()["run"]
    assert project.run(new)["protocol"] == "import-coordinates" and project.run(new)["state"] == "finished"
    points = sorted((c.x_A, c.y_A, c.z_A) for c in project.output_set(new, "coordinates"))
    # voxels from the corner -> Å from the centre (N // 2 = 8, 10, 6) at 10 Å per voxel
    assert points == [(-80.0, -100.0, -60.0), (0.0, 0.0, 0.0)]
    assert project.absolute(project.run_params(new)["files_path"]).parent == project.root / "picks"
    for bad in ({"TS_99": [[1, 1, 1]]}, {"TS_01": [[1, 1]]}, {"TS_01": [[1, 1, 99]]}, {"TS_01": []}, {}):
        assert tomo_client.post(url, json={"points": bad}, headers=WRITE).status_code == 409, bad
