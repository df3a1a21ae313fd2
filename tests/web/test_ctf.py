"""The CTF viewer's API: entries in tilt order with defocus, astigmatism and fit resolution; save as exclude-ctfs."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.protocols.conftest import hiv_dir  # noqa: F401
from tests.protocols.ctf.test_exclude import with_ctf  # noqa: F401
from tests.web.conftest import WRITE, run_serially
from tomoforge.web.app import create_app


@pytest.fixture
def ctf_client(with_ctf):  # noqa: F811
    return TestClient(create_app(with_ctf[0].root, launch=run_serially), base_url="http://127.0.0.1")


def test_entries_in_tilt_order_with_the_planted_faults(ctf_client, with_ctf):  # noqa: F811
    _, _, ctf, bad = with_ctf
    data = ctf_client.get(f"/api/runs/{ctf}/ctf/ctf/TS_01").json()
    entries = data["entries"]
    angles = [e["tilt_angle_deg"] for e in entries]
    assert len(entries) == 41 and angles == sorted(angles)
    by_angle = {e["tilt_angle_deg"]: e for e in entries}
    assert by_angle[bad["astigmatism"]]["astigmatism_A"] == pytest.approx(2500.0, abs=1e-6)
    assert by_angle[bad["resolution"]]["fit_resolution_A"] == pytest.approx(30.0)
    normal = [e["astigmatism_A"] for e in entries if e["tilt_angle_deg"] != bad["astigmatism"]]
    assert np.allclose(normal, 300.0)
    smooth = 30000.0 + 400.0 * np.sin(np.linspace(0, 3, 41))  # the fixture's defocus, in tilt order
    smooth[30] += 3000.0
    assert np.allclose([e["defocus_A"] for e in entries], smooth)
    assert data["spectra"] is False
    assert "no spectra" in ctf_client.get(f"/api/runs/{ctf}/ctf/ctf/TS_01/1.png").json()["message"]
    assert "TS_01" in ctf_client.get(f"/runs/{ctf}/ctf/ctf").text


def test_save_makes_an_exclude_ctfs_run_with_the_chosen_entries(ctf_client, with_ctf):  # noqa: F811
    project, _, ctf, bad = with_ctf
    entries = ctf_client.get(f"/api/runs/{ctf}/ctf/ctf/TS_01").json()["entries"]
    order = next(e["acquisition_order"] for e in entries if e["tilt_angle_deg"] == bad["jump"])
    response = ctf_client.post(f"/api/runs/{ctf}/ctf/ctf/exclude", json={"excluded": {"TS_01": [order]}}, headers=WRITE)
    assert response.status_code == 201
    (new,) = response.json()["runs"]
    assert project.run(new)["protocol"] == "exclude-ctfs" and project.run(new)["state"] == "finished"
    out = project.output_set(new, "ctf").get("TS_01")
    assert [e.tilt_angle_deg for e in out.entries if e.excluded] == [bad["jump"]]
    assert not any(e.excluded for e in project.output_set(ctf, "ctf").get("TS_01").entries)
    assert ctf_client.post(f"/api/runs/{ctf}/ctf/ctf/exclude", json={"excluded": [1]}, headers=WRITE).status_code == 409
