"""Fuzzing the file parsers: every generated input parses or raises a UserError naming the file.

Inputs: random bytes, random text built from each format's own tokens, and real files (from
$TOMOFORGE_TEST_DATA, skipped where absent) mutated by deleting, inserting, replacing or truncating.
Nothing else may escape (no KeyError, IndexError, pydantic or pandas errors), and no input may hang:
every example has a deadline, the whole file runs in well under 40 s on two loaded cores.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import test_data_root as data_root
from tomoforge.errors import UserError
from tomoforge.io.ctf import read_ctffind, read_relion_ctf
from tomoforge.io.imod import read_imod_defocus, read_tlt, read_xf
from tomoforge.io.mdoc import read_mdoc
from tomoforge.io.movies import frame_shape, is_eer, movie_frame_count
from tomoforge.io.star import (
    read_particles_star,
    read_star_blocks,
    read_tilt_series_star,
)

FUZZ = settings(
    max_examples=40,
    deadline=2000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

REAL = {
    ".mdoc": [
        "mdoc/serialem_mdocfile/tilt_series.mdoc",
        "mdoc/tomo5_cryoboost/Position_12.mdoc",
        "mdoc/serialem_mdocfile/frame_set_multiple.mdoc",
    ],
    ".star": [
        "relion5/pytom-match-pick/relion5_project_example/Tomograms/job009/tilt_series/tomo200528_107.star",
        "relion5/cylindra_test_jobs/Picks/job_picks/particles.star",
        "relion5/cryoboost/vols/tilt_series/Position_1.star",
    ],
    ".tlt": ["imod/etomofiles_TS_001/TS_001.tlt"],
    ".xf": ["imod/cryoet-alignment_imod_1/tilt_1.xf"],
    ".defocus": ["imod/pytom-match-pick/test_imod.defocus"],
    ".tif": ["tomograms/cylindra_MT_tiff/14pf_MT.tif"],
}

#: tokens each text format is made of, so random text reaches past the first line
TOKENS = {
    ".mdoc": [
        "[ZValue = 0]",
        "[ZValue = 1]",
        "[FrameSet = 0]",
        "[T = SerialEM: x]",
        "TiltAngle = ",
        "PixelSpacing = ",
        "ExposureDose = ",
        "Voltage = ",
        "Defocus = ",
        "NumSubFrames = ",
        "DateTime = 30-Nov-15  15:21:38",
        "ImageFile = ",
        "SubFramePath = ",
        "=",
        "\n",
        "\r\n",
        " ",
    ],
    ".star": [
        "data_",
        "data_global",
        "data_particles",
        "loop_",
        "_rlnTomoName",
        "_rlnDefocusU",
        "_rlnDefocusV",
        "_rlnTomoNominalStageTiltAngle",
        "_rlnCenteredCoordinateXAngst",
        "_rlnCenteredCoordinateYAngst",
        "_rlnCenteredCoordinateZAngst",
        "_rlnAngleRot",
        "#",
        "\n",
        " ",
        "\t",
        "'",
        '"',
    ],
    ".tlt": ["\n", " ", ",", "#"],
    ".xf": ["\n", " ", ",", "#"],
    ".defocus": ["\n", " ", "\t", "3", "2", "1 1", "0 0 0. 0. 0 3"],
}
NUMBERS = ["0", "1", "-1", "3.5", "1e308", "-1e308", "1e-320", "nan", "NaN", "inf", "-inf", "abc", "", "1 2", "9" * 40]

TEXT_READERS: dict[str, list[Callable]] = {
    ".mdoc": [read_mdoc],
    ".star": [read_star_blocks, read_tilt_series_star, read_particles_star, read_relion_ctf],
    ".tlt": [read_tlt],
    ".xf": [read_xf],
    ".defocus": [read_imod_defocus, read_ctffind],
}
HEADER_READERS: list[Callable] = [movie_frame_count, frame_shape, is_eer]


def _scratch(suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="tomoforge-fuzz-"))
    return folder / f"fuzz{suffix}"


def _check(reader: Callable, path: Path) -> None:
    """The contract: the reader returns, or raises a UserError whose message names ``path``."""
    try:
        reader(path)
    except UserError as exc:
        assert str(path) in str(exc), f"{reader.__name__}: {exc!r} does not name {path}"


def _text(suffix: str) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(TOKENS[suffix] + NUMBERS) | st.text(max_size=8), max_size=60).map("".join)


@st.composite
def _mutated(draw, original: bytes) -> bytes:
    """``original`` after 1–4 edits: delete a slice, insert bytes or a number, overwrite bytes, or truncate."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["delete", "insert", "number", "overwrite", "truncate"]))
        if kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "number":
            data[at:at] = draw(st.sampled_from(NUMBERS)).encode()
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(chunk)] = chunk
        else:
            del data[at:]
    return bytes(data)


def _real(suffix: str) -> list[bytes]:
    root = data_root()
    files = [root / rel for rel in REAL[suffix] if (root / rel).is_file()]
    if not files:
        pytest.skip(f"no real {suffix} file under {root} (set TOMOFORGE_TEST_DATA)")
    return [f.read_bytes() for f in files]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("suffix", list(TEXT_READERS))
def test_random_text_parses_or_names_the_file(suffix):
    path = _scratch(suffix)

    @FUZZ
    @given(text=_text(suffix) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
    def run(text):
        path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        for reader in TEXT_READERS[suffix]:
            _check(reader, path)

    run()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("suffix", list(TEXT_READERS))
def test_mutated_real_files_parse_or_name_the_file(suffix):
    originals = _real(suffix)
    path = _scratch(suffix)
    for original in originals:  # the real files themselves parse
        path.write_bytes(original)
        TEXT_READERS[suffix][0](path)

    @FUZZ
    @given(data=st.data())
    def run(data):
        original = data.draw(st.sampled_from(originals))
        path.write_bytes(data.draw(_mutated(original)))
        for reader in TEXT_READERS[suffix]:
            _check(reader, path)

    run()


def _small_movies(folder: Path) -> dict[str, bytes]:
    """A small EER (the test writer), TIFF and MRC movie, as bytes to mutate."""
    import tifffile

    from tests.io.eer import write_eer
    from tomoforge.io.mrc import write_mrc

    events = [np.array([[0, 0, 1, 2], [3, 5, 0, 0]]), np.array([[7, 7, 3, 3]])]
    eer = write_eer(folder / "m.eer", events, (8, 8))
    tif = folder / "m.tif"
    tifffile.imwrite(tif, np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8), photometric="minisblack")
    mrc = write_mrc(folder / "m.mrc", np.zeros((3, 8, 8), np.int8), 1.0)
    return {".eer": eer.read_bytes(), ".tif": tif.read_bytes(), ".mrc": mrc.read_bytes()}


@pytest.mark.timeout(120)
def test_mutated_movie_headers_parse_or_name_the_file(tmp_path, caplog):
    caplog.set_level(logging.CRITICAL, logger="tifffile")  # tifffile logs each corrupt tag it meets
    movies = _small_movies(tmp_path)
    root = data_root()
    real = [root / rel for rel in REAL[".tif"] if (root / rel).is_file()]
    if real:
        movies[".tiff"] = real[0].read_bytes()[:65536]  # the header and first strips of a real TIFF
    paths = {suffix: _scratch(suffix) for suffix in movies}
    for suffix, raw in movies.items():  # the originals' headers read
        paths[suffix].write_bytes(raw)
        if suffix != ".tiff":
            assert frame_shape(paths[suffix]) == (8, 8)

    @FUZZ
    @given(data=st.data())
    def run(data):
        suffix = data.draw(st.sampled_from(sorted(movies)))
        raw = data.draw(_mutated(movies[suffix]) | st.binary(max_size=512))
        paths[suffix].write_bytes(raw)
        for reader in HEADER_READERS:
            _check(reader, paths[suffix])

    run()


def test_what_fuzzing_found_stays_fixed(tmp_path):
    """A line of separators only in a .tlt (IndexError) and a 2-byte TIFF (struct.error) escaped before."""
    tlt = tmp_path / "a.tlt"
    tlt.write_text("-3\n,\n3\n")
    assert read_tlt(tlt).tolist() == [-3.0, 3.0]
    tlt.write_text(",\n")
    with pytest.raises(UserError, match=f"{tlt}: no tilt angles"):
        read_tlt(tlt)
    for suffix in (".eer", ".tif"):
        stub = tmp_path / f"stub{suffix}"
        stub.write_bytes(b"II")
        with pytest.raises(UserError, match=f"{stub}: not a readable TIFF/EER file"):
            movie_frame_count(stub)
        assert not is_eer(stub)
