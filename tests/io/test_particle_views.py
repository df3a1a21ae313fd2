import numpy as np
import pytest

from tomoforge.io.errors import FormatError
from tomoforge.io.particle_views import ParticleViews, read_particle_views, views_path, write_particle_views
from tomoforge.methods.rotations import random_rotations


def views(n: int) -> ParticleViews:
    rng = np.random.default_rng(3)
    return ParticleViews(
        particle=np.repeat(np.arange(n // 2), 2),
        view_matrix=random_rotations(n, rng),
        defocus_u_A=rng.uniform(20000, 30000, n),
        defocus_v_A=rng.uniform(19000, 20000, n),
        astigmatism_deg=rng.uniform(-90, 90, n),
        dose_e_A2=np.arange(n) * 3.0,
        tilt_deg=np.linspace(-60, 60, n),
        pixel_size_A=2.5,
        voltage_kV=300.0,
        cs_mm=2.7,
        amplitude_contrast=0.07,
        ctf_premultiplied=True,
        dose_weighted=False,
    )


def test_round_trip(tmp_path):
    written = views(8)
    path = write_particle_views(tmp_path / "particles_TS_01.mrcs", written)
    assert path == views_path(tmp_path / "particles_TS_01.mrcs") == tmp_path / "particles_TS_01.views.npz"
    read = read_particle_views(tmp_path / "particles_TS_01.mrcs")
    assert len(read) == 8 and read.ctf_premultiplied is True and read.dose_weighted is False
    assert read.pixel_size_A == 2.5 and np.array_equal(read.particle, written.particle)
    assert np.allclose(read.view_matrix, written.view_matrix) and np.allclose(read.dose_e_A2, written.dose_e_A2)


def test_rows_must_agree():
    good = views(4)
    with pytest.raises(ValueError, match="defocus_u_A has 3 rows"):
        ParticleViews(**{**good.__dict__, "defocus_u_A": good.defocus_u_A[:3]})


def test_a_missing_or_foreign_file_is_named(tmp_path):
    with pytest.raises(FormatError, match="a.views.npz"):
        read_particle_views(tmp_path / "a.mrcs")
    np.savez(tmp_path / "b.views.npz", particle=np.arange(3))
    with pytest.raises(FormatError, match="b.views.npz: not a particle view file"):
        read_particle_views(tmp_path / "b.mrcs")
