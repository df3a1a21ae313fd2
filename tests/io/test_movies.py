"""Movie reading: MRC and TIFF, truncated files, fewer frames than promised, EER without a decoder."""
import numpy as np
import pytest
import tifffile

from tomoforge.io.errors import FormatError
from tomoforge.io.mrc import write_mrc
from tomoforge.io.movies import movie_frame_count, read_gain, read_movie


def test_mrc_and_tiff_movies_read_the_same_frames(tmp_path):
    frames = np.random.default_rng(0).integers(0, 5, (4, 6, 8)).astype(np.int16)
    write_mrc(tmp_path / "m.mrc", frames, 1.0)
    tifffile.imwrite(tmp_path / "m.tif", frames.astype(np.uint16))
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


def test_eer_says_clearly_that_it_is_not_supported_without_imagecodecs(tmp_path):
    pytest.importorskip("tifffile")
    try:
        import imagecodecs  # noqa: F401
        pytest.skip("imagecodecs is installed: EER is decoded")
    except ImportError:
        pass
    path = tmp_path / "m.eer"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint8))
    with tifffile.TiffFile(path) as tif:  # mark the pages EER-compressed (65001), as a Falcon 4 writes
        offsets = [p.tags["Compression"].valueoffset for p in tif.pages]
    raw = bytearray(path.read_bytes())
    for offset in offsets:
        raw[offset: offset + 2] = (65001).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=r"m\.eer: EER movies are not supported yet"):
        read_movie(path)


def test_gain_must_be_one_image(tmp_path):
    write_mrc(tmp_path / "g.mrc", np.ones((6, 8), np.float32), 1.0)
    assert read_gain(tmp_path / "g.mrc").shape == (6, 8)
    write_mrc(tmp_path / "g3.mrc", np.ones((2, 6, 8), np.float32), 1.0)
    with pytest.raises(FormatError, match="g3.mrc: a gain reference must be one image"):
        read_gain(tmp_path / "g3.mrc")
