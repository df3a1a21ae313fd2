"""The per-view residual table of projection matching, and its plot (PNG + plot data for the web)."""

from tomoforge.io.plot_data import read_plot_data
from tomoforge.protocols.align.views import ViewGeometry, write_view_residuals


def test_table_and_plot_in_tilt_order(tmp_path):
    views = ViewGeometry(
        sources=[("a.mrc", 0), ("a.mrc", 1), ("a.mrc", 2)],
        tilts_deg=[0.0, 3.0, -3.0],  # stored in acquisition order
        orders=[1, 2, 3],
        axis_deg=85.0,
        shifts_A=[[0.0, 0.0]] * 3,
        pixel_size_A=2.0,
    )
    path = tmp_path / "TS_01_view_residuals.tsv"
    write_view_residuals(str(path), views, [0.5, 1.5, 2.5], [0.9, 0.8, 0.7])
    assert path.read_text().splitlines()[1:] == [
        "1\t0.00\t0.50\t0.9000",
        "2\t3.00\t1.50\t0.8000",
        "3\t-3.00\t2.50\t0.7000",
    ]
    plot = read_plot_data(tmp_path / "TS_01_view_residuals.plot.json")
    assert (tmp_path / "TS_01_view_residuals.png").is_file()
    assert plot.series[0].x == [-3.0, 0.0, 3.0] and plot.series[0].y == [2.5, 0.5, 1.5]
    assert plot.series[1].axis == "right" and plot.series[1].y == [0.7, 0.9, 0.8]
