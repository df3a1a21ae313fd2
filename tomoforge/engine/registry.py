"""The protocol registry: every class published under the entry-point group ``tomoforge.protocols``.

tomoforge registers its own protocols there too (pyproject.toml), so a separate package adds
protocols exactly the same way, with no change here.
"""
from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from tomoforge.errors import UserError

if TYPE_CHECKING:
    from tomoforge.engine.protocol import Protocol

GROUP = "tomoforge.protocols"


class UnknownProtocolError(UserError, KeyError):
    """No installed protocol has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
log = logging.getLogger(__name__)
_cache: dict[str, type["Protocol"]] | None = None
_broken: dict[str, str] = {}


def protocols(reload: bool = False) -> dict[str, type["Protocol"]]:
    """Name -> protocol class for every installed protocol (a broken plugin is logged, not fatal)."""
    global _cache
    if _cache is None or reload:
        from tomoforge.engine.protocol import Protocol

        found: dict[str, type[Protocol]] = {}
        _broken.clear()
        for ep in entry_points(group=GROUP):
            try:
                cls = ep.load()
            except Exception as exc:  # noqa: BLE001 - one bad plugin must not hide the others
                _broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
                log.warning("protocol %s could not be loaded: %s", ep.name, _broken[ep.name])
                continue
            if not (isinstance(cls, type) and issubclass(cls, Protocol)) or cls.name != ep.name:
                _broken[ep.name] = f"{ep.value} is not a Protocol named {ep.name!r}"
                continue
            found[ep.name] = cls
        _cache = dict(sorted(found.items()))
    return _cache


def broken_protocols() -> dict[str, str]:
    protocols()
    return dict(_broken)


def get_protocol(name: str) -> type["Protocol"]:
    """A protocol by name; ``import tilt series`` and ``import_tilt_series`` also work."""
    table = protocols()
    wanted = name.strip().lower().replace("_", "-").replace(" ", "-")
    if wanted in table:
        return table[wanted]
    hint = f" ({_broken[wanted]})" if wanted in _broken else ""
    raise UnknownProtocolError(f"unknown protocol {name!r}{hint}; 'tomoforge protocols' lists them")
