"""The Protocol base class: typed params, named inputs and outputs, tasks fanned out per item.

A protocol is thin. It declares

- ``Params``: a pydantic model (defaults, units and help in the field metadata);
- ``inputs``: named pointers to another run's output set, each with an optional item filter;
- ``outputs``: named sets and the item class they hold; ``outputs_like`` names those that hold the item
  class of an input instead (a subclass of the declared one: a subset of Particles is Particles);
- ``citations``: BibTeX keys of the methods it uses (see ``engine.citations``);

and implements ``tasks()`` (one ``Task`` per item: a picklable top-level function on paths and params
that returns small metadata) and ``collect(task, result)`` (runs in the orchestrator, the only place
that writes to the database, inside the run's final transaction).

Streaming (see ``engine.streaming``): while an input set is open, a protocol that can stream is run
item by item: ``tasks()`` is called again whenever the input grows, only tasks with new keys are
submitted, and ``collect`` runs in a small transaction per task. ``streaming`` says whether a protocol
can do that (``None``: yes when it has one input and each task's origin is one item of it, which is
what "one task per input item" protocols already declare; ``True`` for protocols that pair items of
two inputs by name and wait, with ``input_open``, for the partner of an item to arrive). A source protocol (one that watches
something outside the project, e.g. an acquisition folder) returns True from ``source_open()`` while
more tasks may come; ``stream_ended(reason)`` is told once when the run stops taking new tasks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tomoforge.errors import UserError, describe_validation_error

if TYPE_CHECKING:
    from tomoforge.engine.context import RunContext
    from tomoforge.engine.sets import ItemSet


class ProtocolParams(BaseModel):
    """Base of every protocol's parameters: unknown names are refused, values validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def param(default: Any = ..., *, help: str = "", unit: str = "", **kwargs: Any) -> Any:
    """A parameter field: default, help text and physical unit (kept in the JSON schema)."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    if unit:
        extra["unit"] = unit
    return Field(default, description=help, json_schema_extra=extra or None, **kwargs)


class ParamsError(UserError, ValueError):
    """Parameters that fail validation; the message names each offending field."""


def validate_params(protocol: type[Protocol], values: dict[str, Any]) -> ProtocolParams:
    try:
        return protocol.Params(**values)
    except ValidationError as exc:
        raise ParamsError(f"{protocol.name}: invalid parameters: {describe_validation_error(exc)}") from None


@dataclass(frozen=True)
class InputSpec:
    """A named input: which item class(es) it accepts, and whether it may be left unset."""

    item_class: type[BaseModel] | tuple[type[BaseModel], ...]
    help: str = ""
    optional: bool = False
    default_filter: str = ""

    @property
    def classes(self) -> tuple[type[BaseModel], ...]:
        return self.item_class if isinstance(self.item_class, tuple) else (self.item_class,)

    def accepts(self, cls: type) -> bool:
        """Whether items of ``cls`` may be given: an accepted class or a subclass usable in its place
        (a subclass declaring ``__usable_as_base__ = False``, e.g. tilt-series movies, is not)."""
        return any(_usable_as(cls, wanted) for wanted in self.classes)

    def describe(self) -> str:
        return " or ".join(c.__name__ for c in self.classes)


def _usable_as(cls: type, wanted: type) -> bool:
    if not (isinstance(cls, type) and issubclass(cls, wanted)):
        return False
    for klass in cls.__mro__:
        if klass is wanted:
            return True
        if klass.__dict__.get("__usable_as_base__", True) is False:
            return False
    return True


J = TypeVar("J")


@dataclass(frozen=True)
class Task(Generic[J]):
    """One unit of work: ``fn(job)`` in a worker; ``item`` stays in the orchestrator.

    ``job`` is the task's typed inputs: an instance of a small frozen dataclass, one per task kind,
    declared beside its task function (paths as ``str``, the protocol's params as its ``Params``
    object), so that the worker's signature says what it receives::

        @dataclass(frozen=True, kw_only=True)
        class DoseFilterJob:
            sources: dict[str, list[tuple[str, int]]]
            out_base: str
            ...

        def dose_filter_task(job: DoseFilterJob) -> dict[str, Any]: ...

        Task(dose_filter_task, DoseFilterJob(sources=..., out_base=...), key=ts.name)
    """

    fn: Callable[[J], Any]
    job: J
    _: KW_ONLY
    key: str
    item: Any = None
    origin: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a task needs a key (the item it works on)")
        if "<locals>" in getattr(self.fn, "__qualname__", "") or getattr(self.fn, "__name__", "") == "<lambda>":
            raise ValueError(f"task {self.key}: {self.fn!r} is not a top-level function (cannot be sent to a worker)")
        if not is_dataclass(self.job) or isinstance(self.job, type):
            raise TypeError(
                f"task {self.key}: the job of {getattr(self.fn, '__name__', self.fn)!r} must be a dataclass instance "
                f"(one typed record per task kind), not {type(self.job).__name__}"
            )


class TaskKeyError(UserError, ValueError):
    """Two tasks of one run for the same key (they would make two items with one key)."""


def check_task_keys(protocol: str, tasks: list[Task[Any]]) -> None:
    """Refuse, before any work, two tasks that would make items with the same key (naming where each came from)."""
    seen: dict[str, Task[Any]] = {}
    for task in tasks:
        if task.key in seen:

            def source(t: Task[Any]) -> str:
                first = fields(t.job)[:1]
                return ", ".join(t.origin) or ", ".join(str(getattr(t.job, f.name)) for f in first) or "?"

            raise TaskKeyError(
                f"{protocol}: two items would share the key {task.key!r}: one from {source(seen[task.key])}, the "
                f"other from {source(task)}; keys must be unique (rename one of the sources or narrow the input)"
            )
        seen[task.key] = task


class Protocol:
    """Base class of every protocol (see the module docstring)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    citations: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[ProtocolParams]] = ProtocolParams
    inputs: ClassVar[dict[str, InputSpec]] = {}
    outputs: ClassVar[dict[str, type[BaseModel]]] = {}
    #: {output: input}: the output holds the input's item class where that is a subclass of the declared one
    outputs_like: ClassVar[dict[str, str]] = {}
    streaming: ClassVar[bool | None] = None  # can consume open inputs item by item (None: one input, per item)

    def __init__(self, context: RunContext):
        self.context = context
        self.params = context.params

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", cls.name):
            raise TypeError(f"protocol name {cls.name!r} must be lower-case words joined by '-'")
        if not cls.label:
            cls.label = cls.name.replace("-", " ")

    @classmethod
    def can_stream(cls) -> bool:
        """Whether a run of this protocol may start while an input set is still open."""
        return cls.streaming if cls.streaming is not None else len(cls.inputs) == 1

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    # --- what a subclass implements --------------------------------------------------------
    def tasks(self) -> Iterable[Task[Any]]:
        raise NotImplementedError

    def collect(self, task: Task[Any], result: Any) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Called after every task was collected, still inside the final transaction."""

    def source_open(self) -> bool:
        """A source protocol: True while ``tasks()`` may yield more tasks later (the run then streams)."""
        return False

    def stream_ended(self, reason: str) -> None:
        """A streaming run takes no new task from now on (``reason``: why); e.g. report what was left."""

    # --- helpers for subclasses -------------------------------------------------------------
    def input(self, name: str) -> ItemSet:
        return self.context.input(name)

    def has_input(self, name: str) -> bool:
        return self.context.has_input(name)

    def input_open(self, name: str) -> bool:
        """Whether input ``name`` is still open (its producer is streaming): an item missing from it may yet
        arrive, so a streaming protocol that pairs items of two inputs waits instead of failing the item
        (``tasks()`` yields nothing for it now and is asked again when an input grows)."""
        return not self.input(name).is_closed

    def output(self, name: str) -> ItemSet:
        return self.context.output(name)

    def emit(self, name: str, item: BaseModel, task: Task[Any] | None = None) -> None:
        """Add an item to output ``name``, remembering the input items it was made from."""
        self.output(name).append(item, origin=task.origin if task else ())

    def out_path(self, name: str) -> Path:
        """Path for a file this run makes (in its ``out/`` folder)."""
        return self.context.out_dir / name

    def relative(self, path: Path | str) -> str:
        """A path as stored in the database: relative to the project when inside it."""
        return self.context.project.relative(path)

    def absolute(self, path: str) -> Path:
        return self.context.project.absolute(path)

    def log(self, message: str) -> None:
        self.context.log(message)
