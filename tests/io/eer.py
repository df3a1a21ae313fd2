"""A minimal EER writer for tests (imagecodecs decodes EER but cannot encode it).

EER bitstream (compression 65001, "7-2-2"), read least significant bit first: a 7-bit run of empty
pixels; a run of 127 continues without an event, any other run is followed by one event with
2 + 2 sub-pixel bits (x then y, each stored XOR 2, as imagecodecs decodes them). Each fraction is one
BigTIFF page with the EER metadata tag 65001; tifffile cannot write compression 65001, so the pages
are written as pre-encoded "zlib" strips and the Compression tag is patched afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RUN_BITS, MAX_RUN = 7, 127
METADATA = b"<metadata><item name='sensorPixelSize.width'>1e-10</item></metadata>"


def encode_fraction(events: np.ndarray, shape: tuple[int, int]) -> bytes:
    """EER bitstream of one fraction: ``events`` (k, 4) int rows (y, x, sub_y, sub_x), one per pixel at most."""
    ny, nx = shape
    events = np.asarray(events, np.int64).reshape(-1, 4)
    index = events[:, 0] * nx + events[:, 1]
    order = np.argsort(index)
    index, sub = index[order], events[order, 2:]
    if len(np.unique(index)) != len(index):
        raise ValueError("EER holds at most one event per pixel per fraction")
    runs = np.diff(np.concatenate([[-1], index])) - 1
    tail = ny * nx - (index[-1] + 1 if len(index) else 0)
    fillers = np.concatenate([runs // MAX_RUN, [tail // MAX_RUN]])
    last = np.cumsum(fillers + 1) - 1
    values = np.full(int(last[-1]) + 1, MAX_RUN, np.int64)
    lengths = np.full(len(values), RUN_BITS)
    values[last[:-1]] = runs % MAX_RUN | (sub[:, 1] ^ 2) << 7 | (sub[:, 0] ^ 2) << 9
    lengths[last[:-1]] = RUN_BITS + 4
    values[last[-1]], lengths[last[-1]] = tail % MAX_RUN, RUN_BITS  # the run that reaches the end
    bits = (values[:, None] >> np.arange(11)) & 1
    stream = bits[np.arange(11) < lengths[:, None]].astype(np.uint8)
    stream = np.concatenate([stream, np.zeros(-len(stream) % 16 + 32, np.uint8)])  # even bytes, slack
    return np.packbits(stream, bitorder="little").tobytes()


def write_eer(path: Path, fractions: list[np.ndarray], shape: tuple[int, int]) -> Path:
    """An EER file with one page per fraction (each an ``encode_fraction`` event array)."""
    import tifffile

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for events in fractions:
            tif.write(
                iter([encode_fraction(events, shape)]),
                shape=shape,
                dtype=np.uint8,
                compression="zlib",
                rowsperstrip=shape[0],
                photometric="minisblack",
                contiguous=False,
                metadata=None,
                extratags=[(65001, 7, len(METADATA), METADATA, True)],
            )
    with tifffile.TiffFile(path) as tif:
        offsets = [page.tags["Compression"].valueoffset for page in tif.pages]
    raw = bytearray(path.read_bytes())
    for offset in offsets:
        raw[offset : offset + 2] = (65001).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    return path


def events_from_counts(counts: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Spread a frame of counts (y, x) over max(counts) fractions, one event per pixel per fraction.

    Returns the fractions' event arrays (y, x, sub_y, sub_x) with random sub-pixel positions.
    """
    counts = np.asarray(counts, np.int64)
    fractions = []
    for level in range(int(counts.max())):
        y, x = np.nonzero(counts > level)
        fractions.append(np.stack([y, x, rng.integers(0, 4, len(y)), rng.integers(0, 4, len(y))], axis=1))
    return fractions
