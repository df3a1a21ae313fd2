"""Writing a file whole or not at all: a temporary file, renamed into place when complete.

The temporary file goes to the run's scratch folder when the engine names one (``TOMOFORGE_SCRATCH``,
the run's ``tmp/``, removed when the run ends), else beside the target as a hidden ``.NAME.*.tmp``.
A process killed while writing thus leaves no partial file where the output belongs. The finished
file gets the mode an ordinary ``open`` would give it (0666 less the umask, 0644 by default), not the
0600 of a temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRATCH_VARIABLE = "TOMOFORGE_SCRATCH"


def current_umask() -> int:
    """The process's umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _scratch_for(path: Path) -> Path:
    scratch = os.environ.get(SCRATCH_VARIABLE, "")
    if scratch and Path(scratch).is_dir():
        try:
            if os.stat(scratch).st_dev == os.stat(path.parent).st_dev:  # a rename must not cross file systems
                return Path(scratch)
        except OSError:
            pass
    return path.parent


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path`` (mode from the umask), else it is removed.

    Parameters
    ----------
    path : str or os.PathLike
        The final file; its folder is created if needed. An existing file is replaced (callers check
        ``overwrite`` first).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=_scratch_for(final))
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
