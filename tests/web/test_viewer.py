"""The tilt-series viewer's API: views in tilt order, each view's image, and save as an exclude-views run."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.protocols.conftest import HIV_MDOC
from tests.web.conftest import WRITE, run_serially
from tomoforge.engine import Project
from tomoforge.io.mdoc import read_mdoc
from tomoforge.io.mrc import write_mrc
from tomoforge.web.app import create_app
from tomoforge.web.viewer import bin_image

SIZE = 64


@pytest.fixture
def imported(tmp_path, data_file):
    """The real HIV mdoc (41 tilts) beside a stack whose section k is bright in column k only; imported."""
    raw = tmp_path / "raw"
    raw.mkdir()
    mdoc = raw / "TS_01.mrc.mdoc"
    shutil.copy(data_file(HIV_MDOC), mdoc)
    stack = np.zeros((41, SIZE, SIZE), np.float32)
    stack[np.arange(41), :, np.arange(41)] = 1.0
    write_mrc(mdoc.with_name(str(read_mdoc(mdoc).header["ImageFile"])), stack, 5.4)
    project = Project.create(tmp_path / "project")
    run_id = project.new_run("import-tilt-series", {"files_path": str(raw), "dose_per_tilt_e_A2": 3})
    run_serially(project, run_id, "run")
    yield project, run_id
    project.close()


@pytest.fixture
def viewer_client(imported):
    project, _ = imported
    return TestClient(create_app(project.root, launch=run_serially), base_url="http://127.0.0.1")


def test_views_come_in_tilt_order_with_their_metadata(viewer_client, imported):
    project, run_id = imported
    data = viewer_client.get(f"/api/runs/{run_id}/sets/tilt_series/TS_01").json()
    angles = [v["tilt_angle_deg"] for v in data["views"]]
    assert len(angles) == 41 and angles == sorted(angles)
    ts = project.output_set(run_id, "tilt_series").get("TS_01")
    by_order = {t.acquisition_order: t for t in ts.tilt_images}
    for view in data["views"]:
        assert view["tilt_angle_deg"] == by_order[view["acquisition_order"]].tilt_angle_deg
        assert view["accumulated_dose_e_A2"] == by_order[view["acquisition_order"]].accumulated_dose_e_A2
    assert data["series"] == ["TS_01"]
    assert "TS_01" in viewer_client.get(f"/runs/{run_id}/view/tilt_series").text


@pytest.mark.parametrize(("fmt", "factor"), [("png", 1), ("png", 2), ("jpg", 1)])
def test_a_view_is_its_own_section_binned(viewer_client, imported, fmt, factor):
    project, run_id = imported
    ts = project.output_set(run_id, "tilt_series").get("TS_01")
    view = next(t for t in ts.tilt_images if t.acquisition_order == 7)
    response = viewer_client.get(f"/api/runs/{run_id}/sets/tilt_series/TS_01/7.{fmt}?bin={factor}")
    assert (
        response.status_code == 200 and response.headers["content-type"] == f"image/{'jpeg' if fmt == 'jpg' else fmt}"
    )
    image = np.asarray(Image.open(io.BytesIO(response.content)), float)
    assert image.shape == (SIZE // factor, SIZE // factor)
    assert int(np.argmax(image.mean(axis=0))) == view.index // factor  # the bright column of its section


def test_binning_is_the_block_mean():
    image = np.arange(36, dtype=float).reshape(6, 6)
    assert np.array_equal(bin_image(image, 3), [[7.0, 10.0], [25.0, 28.0]])
    assert bin_image(np.ones((7, 5)), 2).shape == (3, 2)


def test_bad_view_requests_are_refused(viewer_client, imported):
    _, run_id = imported
    base = f"/api/runs/{run_id}/sets/tilt_series/TS_01"
    assert "no view of acquisition order 99" in viewer_client.get(f"{base}/99.png").json()["message"]
    assert viewer_client.get(f"{base}/1.gif").status_code == 409
    assert viewer_client.get(f"{base}/1.png?bin=0").status_code == 409
    assert viewer_client.get(f"/api/runs/{run_id}/sets/tilt_series/TS_99").status_code == 409


def test_save_creates_an_exclude_views_run_that_excludes_the_chosen_views(viewer_client, imported):
    project, run_id = imported
    response = viewer_client.post(
        f"/api/runs/{run_id}/sets/tilt_series/exclude", json={"excluded": {"TS_01": [5, 2]}}, headers=WRITE
    )
    assert response.status_code == 201
    (new,) = response.json()["runs"]
    row = project.run(new)
    assert row["protocol"] == "exclude-views" and row["state"] == "finished"
    assert project.run_inputs(new)["tilt_series"].run_id == run_id
    out = project.output_set(new, "tilt_series").get("TS_01")
    assert sorted(t.acquisition_order for t in out.tilt_images if t.excluded) == [2, 5]
    source = project.output_set(run_id, "tilt_series").get("TS_01")
    assert not any(t.excluded for t in source.tilt_images)  # the input is never changed
    # a view included again in the viewer is included again in the next run (restore, then the list)
    again = viewer_client.post(
        f"/api/runs/{new}/sets/tilt_series/exclude", json={"excluded": {"TS_01": [2]}}, headers=WRITE
    ).json()["runs"][0]
    assert [
        t.acquisition_order for t in project.output_set(again, "tilt_series").get("TS_01").tilt_images if t.excluded
    ] == [2]
    refused = viewer_client.post(
        f"/api/runs/{run_id}/sets/tilt_series/exclude", json={"excluded": {"TS_09": [1]}}, headers=WRITE
    )
    assert refused.status_code == 409 and "TS_09" in refused.json()["message"]


def test_the_png_encoder_round_trips_through_pillow():
    from tomoforge.web.viewer import png_bytes

    image = np.random.default_rng(3).integers(0, 256, (37, 53)).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(image)))), image)
