import json

import pytest

from tomoforge.io.errors import FormatError
from tomoforge.io.plot_data import LinePlot, Marker, Series, plot_data_path, read_plot_data, write_plot_data


def plot() -> LinePlot:
    return LinePlot(
        title="FSC",
        x_label="1/Å",
        y_label="correlation",
        series=[Series(name="masked", x=[0.0, 0.1, 0.2], y=[1.0, 0.5, None], hollow=[False, True, False])],
        markers=[Marker(value=0.143, label="0.143", axis="y")],
    )


def test_round_trip_beside_the_image(tmp_path):
    path = write_plot_data(tmp_path / "fsc.png", plot())
    assert path == plot_data_path(tmp_path / "fsc.png") == tmp_path / "fsc.plot.json"
    assert read_plot_data(path) == plot()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"series": []}, "series"),
        ({"series": [{"name": "a", "x": [1, 2], "y": [1]}]}, "differ in length"),
        ({"series": [{"name": "a", "x": [1], "y": [1], "colour": "red;x"}]}, "colour"),
        ({"script": "alert(1)"}, "script"),
    ],
)
def test_bad_plot_data_is_refused_naming_the_file(tmp_path, change, message):
    given = {**json.loads(plot().model_dump_json()), **change}
    (tmp_path / "a.plot.json").write_text(json.dumps(given))
    with pytest.raises(FormatError, match=f"a.plot.json: not plot data.*{message}"):
        read_plot_data(tmp_path / "a.plot.json")
    (tmp_path / "b.plot.json").write_text("{not json")
    with pytest.raises(FormatError, match="b.plot.json"):
        read_plot_data(tmp_path / "b.plot.json")


def test_values_that_are_not_finite_are_missing_points(tmp_path):
    series = Series(name="ln |F|", x=[0.0, 0.1, 0.2], y=[float("nan"), float("-inf"), 1.5])
    assert series.y == [None, None, 1.5]
    with pytest.raises(ValueError):
        Series(name="a", x=[float("nan")], y=[1.0])  # x must be finite
