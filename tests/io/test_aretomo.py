"""AreTomo .aln: all real layouts; conversion reproduces AreTomo's own -OutXF .xf and RELION 5's import."""

import numpy as np
import pytest

from tomoforge.io.aretomo import aln_to_projection_model, aln_to_xf, read_aln, write_aln
from tomoforge.io.errors import FormatError
from tomoforge.io.imod import projection_model_to_xf, read_tlt, read_xf, xf_to_projection_model


def test_read_layouts(data_file):
    new = read_aln(data_file("aretomo/alnfile/global_and_local.aln"))
    assert new.header["RawSize"] == (4096, 4096, 51) and new.header["AlphaOffset"] == pytest.approx(12.3)
    assert len(new.dark_frames) == 14 and new.dark_frames.tilt_deg[12] == pytest.approx(-44.01)
    assert len(new.global_alignment) == 37 and len(new.local_alignment) == 37 * 16
    row = new.global_alignment.iloc[0]
    assert (row.SEC, row.ROT, row.TX, row.TY, row.TILT) == (
        0,
        pytest.approx(84.4445),
        pytest.approx(13.382),
        pytest.approx(21.802),
        pytest.approx(-27.71),
    )
    old = read_aln(data_file("aretomo/lil-aretomo/example_v1_2_0.aln"))
    assert old.header["Sections"] == (41, 0) and len(old.global_alignment) == 41
    v13 = read_aln(data_file("aretomo/lil-aretomo/example_v1_3_0.aln"))
    assert v13.header["RawSize"] == (5760, 4092, 41) and v13.local_alignment is None
    a3 = read_aln(data_file("aretomo/cryoet-alignment/test.aln"))
    assert a3.global_alignment.SEC.tolist() == [1, 2, 3, 4] and len(a3.dark_frames) == 4
    assert a3.local_alignment.iloc[0].x == pytest.approx(-558.42)


def test_reproduces_aretomo_outxf(data_file):
    # TS_121.xf was written by AreTomo itself (-OutXF) beside TS_121.aln
    aln = read_aln(data_file("aretomo/lil-aretomo/TS_121.aln"))
    xf = read_xf(data_file("aretomo/lil-aretomo/TS_121.xf"))
    ours = aln_to_xf(aln)
    np.testing.assert_allclose(ours[:, :, :2], xf[:, :, :2], atol=5e-4)  # file has 3 decimals
    np.testing.assert_allclose(ours[:, :, 2], xf[:, :, 2], atol=6e-3)  # and 2 for shifts
    # ... and RELION 5's IMOD route gives the same projection model as its AreTomo route
    model = aln_to_projection_model(aln, 5.0)
    from_xf = xf_to_projection_model(xf, 5.0)
    np.testing.assert_allclose(from_xf["z_rot_deg"], model["z_rot_deg"], atol=0.03)
    # the file's A has 3 decimals: 5e-4 x ~120 px shifts = 0.06 px = 0.3 Å at 5 Å/px
    np.testing.assert_allclose(from_xf["x_shift_A"], model["x_shift_A"], atol=0.4)
    np.testing.assert_allclose(from_xf["y_shift_A"], model["y_shift_A"], atol=0.4)
    assert model["y_tilt_deg"][0] == pytest.approx(-42.0) and model["z_rot_deg"][0] == pytest.approx(83.8298)
    assert model["x_shift_A"][0] == pytest.approx(4.792 * 5.0)


def test_alnfile_xf_uses_opposite_rotation(data_file):
    # global_no_local.xf/.tlt were written by the alnfile package, not AreTomo: same tilts and
    # shift formula, but its rotation is +ROT where AreTomo's -OutXF uses -ROT (documented).
    aln = read_aln(data_file("aretomo/alnfile/global_no_local.aln"))
    model = aln_to_projection_model(aln, 1.0)
    xf = read_xf(data_file("aretomo/alnfile/global_no_local.xf"))
    alnfile_style = projection_model_to_xf(-model["z_rot_deg"], model["x_shift_A"], model["y_shift_A"], 1.0)
    np.testing.assert_allclose(alnfile_style, xf, atol=1e-4)
    np.testing.assert_allclose(read_tlt(data_file("aretomo/alnfile/global_no_local.tlt")), model["y_tilt_deg"])


@pytest.mark.parametrize(
    "rel",
    [
        "aretomo/alnfile/global_and_local.aln",
        "aretomo/lil-aretomo/example_v1_2_0.aln",
        "aretomo/cryoet-alignment/test.aln",
    ],
)
def test_round_trip(data_file, tmp_path, rel):
    aln = read_aln(data_file(rel))
    again = read_aln(write_aln(aln, tmp_path / "out.aln"))
    assert again.header == aln.header
    np.testing.assert_allclose(again.global_alignment.to_numpy(), aln.global_alignment.to_numpy(), atol=1e-3)
    assert again.dark_frames.equals(aln.dark_frames)
    if aln.local_alignment is not None:
        np.testing.assert_allclose(again.local_alignment.to_numpy(), aln.local_alignment.to_numpy(), atol=1e-2)


def test_bad_row(tmp_path):
    path = tmp_path / "bad.aln"
    path.write_text("# AreTomo\n# SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT\n 0 84 1 2 3 1 1 1 0\n")
    with pytest.raises(FormatError, match="bad.aln: line 3: 9 values, expected 10"):
        read_aln(path)
