"""The protocol registry: every class published under the entry-point group ``tomoforge.protocols``.

tomoforge registers its own protocols there too (pyproject.toml), so a separate package adds
protocols exactly the same way, with no change here.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points

from tomoforge.engine.protocol import Protocol
from tomoforge.errors import UserError

GROUP = "tomoforge.protocols"


class UnknownProtocolError(UserError, KeyError):
    """No installed protocol has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


log = logging.getLogger(__name__)
_cache: dict[str, type[Protocol]] | None = None
_broken: dict[str, str] = {}
_loaded: dict[str, type[Protocol]] = {}


def protocols(reload: bool = False) -> dict[str, type[Protocol]]:
    """Name -> protocol class for every installed protocol (a broken plugin is logged, not fatal)."""
    global _cache
    if _cache is None or reload:
        _loaded.clear()
        _broken.clear()
        found = {}
        for ep in entry_points(group=GROUP):
            cls = _load(ep)
            if cls is not None:
                found[ep.name] = cls
        _cache = dict(sorted(found.items()))
    return _cache


def _load(ep: EntryPoint) -> type[Protocol] | None:
    """One entry point's class (cached), or None with the reason kept in ``_broken``."""
    if ep.name in _loaded:
        return _loaded[ep.name]
    try:
        cls = ep.load()
    except Exception as exc:  # noqa: BLE001 - one bad plugin must not hide the others
        _broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
        log.warning("protocol %s could not be loaded: %s", ep.name, _broken[ep.name])
        return None
    if not (isinstance(cls, type) and issubclass(cls, Protocol)) or cls.name != ep.name:
        _broken[ep.name] = f"{ep.value} is not a Protocol named {ep.name!r}"
        return None
    _loaded[ep.name] = cls
    return cls


def protocol_names() -> list[str]:
    """The installed protocols' names, without importing any of them."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def broken_protocols() -> dict[str, str]:
    protocols()
    return dict(_broken)


def get_protocol(name: str) -> type[Protocol]:
    """A protocol by name (only its module is imported); ``import tilt series`` and ``import_tilt_series`` also work."""
    wanted = name.strip().lower().replace("_", "-").replace(" ", "-")
    if _cache is not None and wanted in _cache:
        return _cache[wanted]
    for ep in entry_points(group=GROUP, name=wanted):
        cls = _load(ep)
        if cls is not None:
            return cls
    hint = f" ({_broken[wanted]})" if wanted in _broken else ""
    raise UnknownProtocolError(f"unknown protocol {name!r}{hint}; 'tomoforge protocols' lists them")
