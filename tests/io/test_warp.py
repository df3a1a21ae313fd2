"""Warp tilt-series XML (WarpTools gs04_ts_003)."""

import numpy as np
import pytest

from tomoforge.io.errors import FormatError
from tomoforge.io.warp import read_warp_tilt_series_xml, warp_attributes


def test_real_xml(data_file):
    ts = read_warp_tilt_series_xml(data_file("warp/pytom-match-pick/gs04_ts_003.xml"))
    assert len(ts.angles_deg) == 47 and ts.angles_deg[0] == 46.0 and ts.angles_deg[-1] == pytest.approx(-45.99)
    assert ts.dose_e_per_A2[0] == pytest.approx(140.97852) and ts.dose_e_per_A2.min() == pytest.approx(15.4122)
    assert ts.use_tilt.all()
    assert ts.axis_angles_deg[0] == pytest.approx(84.500114)
    np.testing.assert_allclose(ts.axis_offsets_A[0], [-10.848754, 38.199642])
    assert ts.movie_paths[0].endswith("gs04_ts_003_00000_-46.0_17.14.00.eer")
    assert ts.pixel_size_A == pytest.approx(0.7303) and ts.voltage_kV == 300 and ts.cs_mm == pytest.approx(2.7)
    assert ts.defocus_u_A[0] == pytest.approx((5.162571 + 0.008811178) * 1e4)
    assert ts.defocus_v_A[0] == pytest.approx((5.162571 - 0.008811178) * 1e4)
    assert ts.defocus_angle_deg[0] == pytest.approx(129)
    assert np.all(ts.defocus_u_A >= ts.defocus_v_A)
    assert warp_attributes(ts)["AreAnglesInverted"] is False


def test_bad_xml(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text("<TiltSeries><Angles>1\n2</Angles><Dose>1</Dose></TiltSeries>")
    with pytest.raises(FormatError, match="x.xml: <Dose> has 1 values for 2 tilts"):
        read_warp_tilt_series_xml(path)
    path.write_text("<Movie/>")
    with pytest.raises(FormatError, match="root element"):
        read_warp_tilt_series_xml(path)


@pytest.mark.parametrize(
    "node",
    [
        '<Node X="0" Y="0" Value="5.1" />',
        '<Node X="0" Y="0" Z="1" />',
        '<Node X="0" Y="0" Z="one" Value="5.1" />',
        '<Node X="0" Y="0" Z="7" Value="5.1" />',
    ],
)
def test_bad_ctf_grid_node(tmp_path, node):
    """A <GridCTF> node without a readable Z (0 .. n-1) or Value is a FormatError naming the element."""
    path = tmp_path / "g.xml"
    per_tilt = "".join(f"<{tag}>0\n0</{tag}>" for tag in ("Dose", "AxisAngle", "AxisOffsetX", "AxisOffsetY"))
    path.write_text(
        f'<TiltSeries><Angles>1\n2</Angles>{per_tilt}<GridCTF Width="1" Height="1" Depth="2">'
        f'<Node X="0" Y="0" Z="0" Value="5.0" />{node}</GridCTF></TiltSeries>'
    )
    with pytest.raises(FormatError, match="g.xml: <GridCTF> node 2"):
        read_warp_tilt_series_xml(path)
