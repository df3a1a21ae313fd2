"""Plain x y z coordinate text."""

import numpy as np
import pytest

from tomoforge.io.errors import FormatError
from tomoforge.io.text import read_coordinates_text


def test_whitespace_comma_comments(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("# x y z\n1 2 3\n\n4,5,6  # second\r\n7.5\t8\t-9e1\n")
    np.testing.assert_allclose(read_coordinates_text(path), [[1, 2, 3], [4, 5, 6], [7.5, 8, -90]])


def test_bad_line_named(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("1 2 3\n1 2\n")
    with pytest.raises(FormatError, match="c.txt: line 2: row has 2 values, expected 3"):
        read_coordinates_text(path)
    path.write_text("1 2 3\n1 two 3\n")
    with pytest.raises(FormatError, match="c.txt: line 2: cannot read numbers"):
        read_coordinates_text(path)
    path.write_text("# nothing\n")
    with pytest.raises(FormatError, match="no coordinates"):
        read_coordinates_text(path)
