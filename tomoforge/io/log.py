"""Log files: a run's ``run.log`` gets one timestamped line per message, from the orchestrator and from
workers alike (each line is written with one ``write`` on a file opened for appending)."""

from __future__ import annotations

import os
import time


def append_log_line(path: str | os.PathLike[str], message: str) -> None:
    """Append ``YYYY-mm-dd HH:MM:SS  message`` and a newline to the text file ``path`` (created if missing).

    Raises ``OSError`` when the file cannot be written; the caller decides whether that matters."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{stamp}  {message}\n")


__all__ = ["append_log_line"]
