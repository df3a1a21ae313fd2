"""What every stored item shares: a pydantic model plus a few class-level storage hints.

The engine stores any pydantic model that declares these (duck typing keeps the model layer free of
engine imports):

- ``__item_kind__``: short name of its table (``tilt_series`` -> ``item_tilt_series``);
- ``__key__``: the field that names an item uniquely within its set (or within its parent);
- ``__columns__``: fields copied into typed SQL columns so that they can be queried;
- ``__children__``: ``(field, ItemClass)`` for a nested set, e.g. a tilt series and its tilt images;
- ``__files__``: fields holding file paths (relative to the project, or absolute for raw data).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class Item(BaseModel):
    """Base of the data model: validated on assignment, extra fields refused."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid", allow_inf_nan=False)

    __item_kind__: ClassVar[str] = ""
    __key__: ClassVar[str] = "name"
    __columns__: ClassVar[tuple[str, ...]] = ()
    __children__: ClassVar[tuple[str, type[Item]] | None] = None
    __files__: ClassVar[tuple[str, ...]] = ()

    @property
    def key(self) -> str:
        return str(getattr(self, self.__key__))


def quantity(default: Any = ..., *, unit: str = "", description: str = "", **kwargs: Any) -> Any:
    """A pydantic Field with its physical unit kept in the JSON schema (``unit``)."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    if unit:
        extra["unit"] = unit
    return Field(default, description=description, json_schema_extra=extra or None, **kwargs)
