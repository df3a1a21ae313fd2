"""Citations: BibTeX entries by key, registered by the packages whose protocols use them."""

from __future__ import annotations

import re

_ENTRIES: dict[str, str] = {}


def register_bibtex(*entries: str) -> None:
    """Register BibTeX entries (``@article{key, ...}``); their keys become citable."""
    for entry in entries:
        match = re.match(r"\s*@\w+\s*\{\s*([^,\s]+)\s*,", entry)
        if not match:
            raise ValueError(f"not a BibTeX entry: {entry[:60]!r}")
        _ENTRIES[match.group(1)] = entry.strip()


def bibtex(key: str) -> str:
    if key not in _ENTRIES:
        raise KeyError(f"no BibTeX entry registered for citation key {key!r}")
    return _ENTRIES[key]


def known_keys() -> set[str]:
    return set(_ENTRIES)
