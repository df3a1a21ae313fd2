"""Movie reading: MRC, TIFF and EER (fractions grouped, upsampled), truncated files, fewer frames than promised."""

import sys

import numpy as np
import pytest
import tifffile

from tests.io.eer import write_eer
from tomoforge.io.errors import FormatError
from tomoforge.io.movies import is_eer, movie_frame_count, read_eer, read_gain, read_movie
from tomoforge.io.mrc import write_mrc


def test_mrc_and_tiff_movies_read_the_same_frames(tmp_path):
    frames = np.random.default_rng(0).integers(0, 5, (4, 6, 8)).astype(np.int16)
    write_mrc(tmp_path / "m.mrc", frames, 1.0)
    tifffile.imwrite(tmp_path / "m.tif", frames.astype(np.uint16), photometric="minisblack")
    for name in ("m.mrc", "m.tif"):
        data = read_movie(tmp_path / name, n_frames=4)
        assert data.dtype == np.float32 and np.array_equal(data, frames)
        assert movie_frame_count(tmp_path / name) == 4


def test_fewer_frames_than_the_mdoc_says_names_the_file(tmp_path):
    write_mrc(tmp_path / "short.mrc", np.zeros((3, 4, 4), np.int8), 1.0)
    with pytest.raises(FormatError, match=r"short\.mrc: holds 3 frames but the metadata says 8"):
        read_movie(tmp_path / "short.mrc", n_frames=8)


def test_truncated_and_missing_movies_name_the_file(tmp_path):
    path = write_mrc(tmp_path / "cut.mrc", np.zeros((5, 16, 16), np.float32), 1.0)
    path.write_bytes(path.read_bytes()[:-600])
    with pytest.raises(FormatError, match=r"cut\.mrc: truncated"):
        read_movie(path)
    with pytest.raises(FileNotFoundError, match=r"gone\.mrc: movie file not found"):
        read_movie(tmp_path / "gone.mrc")


def eer_movie(tmp_path, n_fractions=10, shape=(24, 20), seed=0):
    """An EER file of sparse random events; returns (path, per-fraction event arrays)."""
    rng = np.random.default_rng(seed)
    fractions = []
    for _ in range(n_fractions):
        flat = rng.choice(shape[0] * shape[1], 40, replace=False)
        fractions.append(
            np.stack([flat // shape[1], flat % shape[1], rng.integers(0, 4, 40), rng.integers(0, 4, 40)], 1)
        )
    return write_eer(tmp_path / "m.eer", fractions, shape), fractions


def counts(events, shape, upsampling=1):
    out = np.zeros((shape[0] * upsampling, shape[1] * upsampling), np.int64)
    shift = {1: 2, 2: 1, 4: 0}[upsampling]  # sub-pixel bits kept: 0, 1 or 2
    np.add.at(
        out,
        (events[:, 0] * upsampling + (events[:, 2] >> shift), events[:, 1] * upsampling + (events[:, 3] >> shift)),
        1,
    )
    return out


def test_eer_fractions_are_summed_into_frames(tmp_path):
    pytest.importorskip("imagecodecs")
    path, fractions = eer_movie(tmp_path)
    assert is_eer(path) and movie_frame_count(path) == 10
    frames = read_movie(path, n_frames=10, dtype=None, eer_fractions_per_frame=3)
    assert frames.dtype == np.int16 and frames.shape == (3, 24, 20)  # the 10th fraction is dropped
    for i in range(3):
        expected = sum(counts(f, (24, 20)) for f in fractions[3 * i : 3 * i + 3])
        assert np.array_equal(frames[i], expected)
    with pytest.raises(FormatError, match=r"m\.eer: holds 10 EER fractions but the metadata says 12"):
        read_movie(path, n_frames=12, eer_fractions_per_frame=3)
    with pytest.raises(FormatError, match=r"m\.eer: an EER movie: give the number of EER fractions"):
        read_movie(path)


def test_eer_upsampling_places_events_by_their_sub_pixel_bits(tmp_path):
    pytest.importorskip("imagecodecs")
    path, fractions = eer_movie(tmp_path, n_fractions=4)
    for up in (2, 4):
        frames = read_eer(path, 2, upsampling=up)
        assert frames.shape == (2, 24 * up, 20 * up)
        assert np.array_equal(frames[1], counts(fractions[2], (24, 20), up) + counts(fractions[3], (24, 20), up))
        binned = frames.reshape(2, 24, up, 20, up).sum((2, 4))
        assert np.array_equal(binned, read_eer(path, 2))  # the same events on the physical grid


def test_eer_without_imagecodecs_says_what_is_missing(tmp_path, monkeypatch):
    pytest.importorskip("imagecodecs")
    path, _ = eer_movie(tmp_path, n_fractions=2)
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # import imagecodecs → ImportError
    with pytest.raises(FormatError, match=r"m\.eer: EER movies need the 'imagecodecs' package"):
        read_movie(path, eer_fractions_per_frame=1)


def test_gain_must_be_one_image(tmp_path):
    write_mrc(tmp_path / "g.mrc", np.ones((6, 8), np.float32), 1.0)
    assert read_gain(tmp_path / "g.mrc").shape == (6, 8)
    tifffile.imwrite(tmp_path / "eer.gain", np.full((6, 8), 2.0, np.float32))  # EER cameras' TIFF .gain
    assert np.array_equal(read_gain(tmp_path / "eer.gain"), np.full((6, 8), 2.0, np.float32))
    write_mrc(tmp_path / "g3.mrc", np.ones((2, 6, 8), np.float32), 1.0)
    with pytest.raises(FormatError, match="g3.mrc: a gain reference must be one image"):
        read_gain(tmp_path / "g3.mrc")
