"""The one writer of log lines: the orchestrator's run.log lines and a worker's progress lines look alike."""

from __future__ import annotations

import re

import pytest

from tomoforge.io.log import append_log_line

LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}  (.*)$")


def test_lines_are_appended_with_a_timestamp(tmp_path):
    path = tmp_path / "run.log"
    append_log_line(path, "first")
    append_log_line(str(path), "second: 3 views, 12.5 Å")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [LINE.match(line).group(1) for line in lines] == ["first", "second: 3 views, 12.5 Å"]


def test_an_unwritable_log_raises_for_the_caller_to_decide(tmp_path):
    with pytest.raises(OSError):
        append_log_line(tmp_path / "missing" / "run.log", "lost")
