"""The input volumes of post-processing and local resolution: those with two half maps, a refusal for others."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from tomoforge.engine import Protocol, Task
from tomoforge.model.volume import Volume
from tomoforge.protocols.refuse import Refusal, refuse


def volumes_with_halves(protocol: Protocol, action: str) -> Iterator[tuple[Volume, Task[Any] | None]]:
    """(volume, None) for each input volume with both half maps; (volume, a refusal task naming it and
    ``action``) for the others."""
    for volume in cast(Iterator[Volume], iter(protocol.input("volumes"))):
        if volume.half1_file and volume.half2_file:
            yield volume, None
        else:
            why = f"volume {volume.name} has no half maps: {action} needs both (reconstruct-particle makes them)"
            yield volume, Task(refuse, Refusal(message=why), key=volume.name)
