"""Coordinate sets as arrays: what the coordinate tools read (``ItemSet.arrays``) and write (``append_columns``),
never one item object per pick."""

from __future__ import annotations

from typing import Any

import numpy as np

from tomoforge.engine.sets import ItemSet

#: the Coordinate3D fields every tool reads; a subclass's set (e.g. Particles) brings its other typed columns too
FIELDS = ("number", "tomogram", "x_A", "y_A", "z_A", "group", "score", "has_orientation", "rotation")


def read_coordinates(item_set: ItemSet) -> dict[str, np.ndarray]:
    """The (filtered) set's coordinates as arrays in set order, one per typed column of its item class (for a
    Particle set: half set, shifts, tilt series, data file and index, weight file too), plus ``position``
    (n, 3) Å."""
    columns = item_set.arrays(*item_set.spec.columns)
    columns["position"] = np.stack([columns["x_A"], columns["y_A"], columns["z_A"]], axis=1)
    return columns


def column_default(item_set: ItemSet, name: str) -> Any:
    """The default value of field ``name`` of the set's item class (what a pick that lacks it gets)."""
    return item_set.item_class.model_fields[name].default


def tomogram_codes(*names: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(sorted unique tomogram names, each array of names as codes into them)."""
    every = np.unique(np.concatenate([np.asarray(n, dtype=str) for n in names])) if names else np.zeros(0, str)
    return every, [np.searchsorted(every, np.asarray(n, dtype=str)) for n in names]


def addresses(item_set: ItemSet, numbers: np.ndarray) -> list[str]:
    """``RUN.OUTPUT/NUMBER`` of each coordinate (its provenance)."""
    prefix = f"{item_set.run_id}.{item_set.name}/"
    return [prefix + str(n) for n in np.asarray(numbers).tolist()]


def append_coordinates(output: ItemSet, columns: dict[str, Any], origins: list[list[str]] | None = None) -> int:
    """Append coordinates given as arrays (``tomogram``, ``x_A``, ``y_A``, ``z_A``, and optionally any other typed
    column of the output's item class: ``group``, ``score``, ``rotation``, a Particle's ``half_set`` …; the rest
    take their defaults), numbered on from the set's count; returns how many."""
    n = len(columns["x_A"])
    if n == 0:
        return 0
    values = {name: columns[name] for name in output.spec.columns if name in columns and name != "number"}
    values["number"] = len(output) + np.arange(n)
    return output.append_columns(values, origins)


def append_subset(output: ItemSet, picks: dict[str, np.ndarray], rows: np.ndarray, source: ItemSet) -> int:
    """Append the rows ``rows`` of ``picks`` (read from ``source``) to ``output``, each with its input's address
    as its origin; returns how many."""
    kept = {name: values[rows] for name, values in picks.items()}
    return append_coordinates(output, kept, [[a] for a in addresses(source, kept["number"])])


__all__ = [
    "FIELDS",
    "addresses",
    "append_coordinates",
    "append_subset",
    "column_default",
    "read_coordinates",
    "tomogram_codes",
]
