"""Every endpoint of the JSON API and the pages: what they show, and that they follow the CLI's rules."""

from __future__ import annotations

import pytest

from tests.web.conftest import WRITE, client, made  # noqa: F401
from tomoforge.engine.protocol import ParamsError, validate_params
from tomoforge.engine.registry import get_protocol
from tomoforge.io.plot_data import LinePlot, Series
from tomoforge.protocols.plotting import save_line_plot


def test_project_lists_runs_states_outputs_and_the_graph(client):
    data = client.get("/api/project").json()
    runs = {r["id"]: r for r in data["runs"]}
    assert [runs[i]["state"] for i in (1, 2, 3)] == ["finished", "finished", "saved"]
    assert runs[1]["outputs"] == [{"name": "numbers", "kind": "Number", "count": 3, "state": "closed"}]
    assert runs[1]["duration_s"] > 0 and runs[3]["duration_s"] is None
    assert runs[2]["inputs"] == [{"name": "numbers", "run": 1, "output": "numbers", "filter": ""}]
    assert data["edges"] == [{"from": 1, "to": 2, "output": "numbers", "input": "numbers"}]


def test_run_detail_params_inputs_outputs_log_and_images(client, made):  # noqa: F811
    project, (first, second, _) = made
    plot = project.run_dir(first) / "out" / "plot.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    detail = client.get(f"/api/runs/{first}").json()
    assert detail["params"]["count"] == 3 and detail["label"] == "squares"
    assert detail["outputs"][0]["count"] == 3 and detail["consumers"] == [second]
    assert detail["images"] == [project.relative(plot)]
    assert "[3/3]" in detail["log"] or "3/3" in detail["log"]
    assert client.get(f"/files/{detail['images'][0]}").headers["content-type"] == "image/png"
    doubled = client.get(f"/api/runs/{second}").json()
    assert doubled["inputs"] == [{"name": "numbers", "run": first, "output": "numbers", "filter": ""}]
    lines = client.get(f"/api/runs/{first}/log?lines=1").json()["log"]
    assert lines and "\n" not in lines
    assert client.get("/api/runs/99").status_code == 404


def test_a_line_plot_is_listed_as_plot_data_not_twice_as_an_image(client, made):  # noqa: F811
    project, (first, _, _) = made
    out = project.run_dir(first) / "out"
    (out / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    save_line_plot(
        out / "fsc.png", LinePlot(title="t", x_label="x", y_label="y", series=[Series(name="a", x=[0, 1], y=[1, 0])])
    )
    detail = client.get(f"/api/runs/{first}").json()
    assert detail["plots"] == [project.relative(out / "fsc.plot.json")]
    assert detail["images"] == [project.relative(out / "photo.png")]  # fsc.png is drawn from its data instead
    assert client.get(f"/files/{detail['plots'][0]}").json()["series"][0]["y"] == [1.0, 0.0]


def test_pages_render(client):
    assert "Runs" in client.get("/").text
    page = client.get("/runs/1").text
    assert "run 1: toy-make" in page and 'data-run="1"' in page
    assert 'data-protocol="toy-double"' in client.get("/new?protocol=toy-double").text
    assert client.get("/static/app.js").status_code == 200


def test_protocols_and_the_form_schema_with_compatible_inputs(client):
    names = [p["name"] for p in client.get("/api/protocols").json()]
    assert "toy-make" in names and "exclude-views" in names
    form = client.get("/api/protocols/toy-make").json()
    props = form["schema"]["properties"]
    assert props["count"]["default"] == 3 and props["count"]["minimum"] == 1
    assert props["sleep_s"]["unit"] == "s"
    assert form["schema"]["required"] == ["control_dir"]
    double = client.get("/api/protocols/toy-double").json()
    # run 1 and run 2 make Number sets; toy-words (run 3) makes Words, which toy-double does not accept
    assert [c["value"] for c in double["inputs"][0]["choices"]] == ["1.numbers", "2.numbers"]
    assert client.get("/api/protocols/no-such").status_code == 409


@pytest.mark.parametrize(
    "params",
    [
        {"count": 0, "control_dir": "x"},
        {"count": "many", "control_dir": "x"},
        {"count": 2},
        {"control_dir": "x", "z": 1},
    ],
)
def test_the_form_validates_like_the_cli(client, made, params):  # noqa: F811
    project, _ = made
    with pytest.raises(ParamsError) as cli:
        validate_params(get_protocol("toy-make"), params)
    response = client.post("/api/runs", json={"protocol": "toy-make", "params": params}, headers=WRITE)
    assert response.status_code == 422
    assert response.json()["message"] == str(cli.value)
    fields = response.json()["fields"]
    assert fields and set(fields) <= {"count", "control_dir", "z"}  # each message sits beside its field
    for name, text in fields.items():
        assert text.startswith(name)
    assert len(project.runs()) == 3  # nothing saved


def test_a_field_message_names_the_field_and_the_range(client):
    response = client.post(
        "/api/runs", json={"protocol": "toy-make", "params": {"count": 0, "control_dir": "x"}}, headers=WRITE
    )
    assert list(response.json()["fields"]) == ["count"]
    assert response.json()["fields"]["count"] in response.json()["message"]
    assert "0" in response.json()["fields"]["count"] and "1" in response.json()["fields"]["count"]


@pytest.mark.parametrize(
    ("inputs", "why"),
    [
        ({"numbers": "3.words"}, "holds Word"),
        ({"numbers": "1.numbers[value >]"}, "input 'numbers'"),
        ({"numbers": "1.nothing"}, "no output 'nothing'"),
        ({"numbers": "one"}, "expected RUN.OUTPUT"),
    ],
)
def test_inputs_are_checked_like_the_cli(client, made, inputs, why):  # noqa: F811
    project, _ = made
    response = client.post("/api/runs", json={"protocol": "toy-double", "inputs": inputs}, headers=WRITE)
    assert response.status_code == 422
    assert why in response.json()["message"]
    assert list(response.json()["fields"]) == ["input:numbers"]
    assert len(project.runs()) == 3


def test_a_form_saves_schedules_or_runs(client, made):  # noqa: F811
    project, _ = made
    body = {"protocol": "toy-double", "inputs": {"numbers": "1.numbers[value > 1]"}, "label": "big"}
    saved = client.post("/api/runs", json={**body, "start": "save"}, headers=WRITE)
    assert saved.status_code == 201 and saved.json()["state"] == "saved"
    assert project.run_inputs(saved.json()["run"])["numbers"].filter == "value > 1"
    scheduled = client.post("/api/runs", json={**body, "start": "schedule"}, headers=WRITE).json()
    assert scheduled["state"] == "scheduled"
    ran = client.post("/api/runs", json={**body, "start": "run"}, headers=WRITE).json()
    assert ran["state"] == "finished" and client.launched == [(ran["run"], "continue")]
    assert sorted(n.value for n in project.output_set(ran["run"], "numbers")) == [
        8.0
    ]  # of 0, 1, 4 only 4 is > 1: doubled
    assert client.post("/api/runs", json={**body, "start": "later"}, headers=WRITE).status_code == 422


def test_actions_follow_the_run_rules(client, made):  # noqa: F811
    project, (first, second, third) = made

    def act(run, action, **body):
        return client.post(f"/api/runs/{run}/{action}", json=body, headers=WRITE)

    for action in ("reset", "delete", "restart"):  # run 1's output is used by run 2
        response = act(first, action)
        assert response.status_code == 409 and "used by run(s) 2" in response.json()["message"]
    assert project.run(first)["state"] == "finished" and len(project.output_set(first, "numbers")) == 3
    assert "cannot continue" in act(first, "continue").json()["message"]
    assert "nothing to abort" in act(first, "abort").json()["message"]
    assert "only a running streaming run" in act(first, "stop").json()["message"]
    assert "only saved, failed or aborted" in act(first, "schedule").json()["message"]
    assert act(first, "launch").status_code == 409
    copy = act(second, "duplicate").json()["run"]
    assert project.run(copy)["state"] == "saved" and project.run(copy)["label"] == "doubled (copy)"
    assert act(third, "label", label="words", comment="two").status_code == 200
    assert (project.run(third)["label"], project.run(third)["comment"]) == ("words", "two")
    assert act(third, "schedule").status_code == 200 and project.run(third)["state"] == "scheduled"
    assert act(third, "abort").json()["abort"] == "aborted"
    assert act(third, "continue").json()["state"] == "finished"
    assert act(copy, "delete").status_code == 200
    assert copy not in [r["id"] for r in project.runs()] and act(copy, "label", label="x").status_code == 404
    assert act(second, "reset").status_code == 200 and project.output_sets(second) == []
    assert act(second, "restart").json()["state"] == "finished"


def test_user_text_is_escaped(client, made):  # noqa: F811
    project, (first, _, _) = made
    evil = "<script>alert(1)</script>"
    client.post(f"/api/runs/{first}/label", json={"label": evil}, headers=WRITE)
    page = client.get(f"/runs/{first}").text
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert client.get("/api/project").json()["runs"][0]["label"] == evil  # data stays data; the JS sets textContent
    for script in ("app.js", "viewers.js"):
        assert "innerHTML" not in client.get(f"/static/{script}").text
    assert "default-src 'self'" in client.get("/").headers["content-security-policy"]  # no inline script runs
