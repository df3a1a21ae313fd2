"""Toy protocols for the engine tests: a separate 'package' registered through entry points."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, Field

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.citations import register_bibtex
from tomoforge.engine.executors import publish
from tomoforge.engine.sets import origin_of

register_bibtex("@misc{toy2026, title = {A toy method}, year = {2026}}")


class Number(BaseModel):
    __item_kind__: ClassVar[str] = "toy_number"
    __key__: ClassVar[str] = "name"
    __columns__: ClassVar[tuple[str, ...]] = ("name", "value", "flagged")
    __children__: ClassVar = None
    __files__: ClassVar[tuple[str, ...]] = ("file",)

    name: str
    value: float
    flagged: bool = False
    file: str = ""


class Digit(BaseModel):
    __item_kind__: ClassVar[str] = "toy_digit"
    __key__: ClassVar[str] = "place"
    __columns__: ClassVar[tuple[str, ...]] = ("place", "digit")

    place: int
    digit: int


class Word(BaseModel):
    """A nested item: a word holds its digits."""

    __item_kind__: ClassVar[str] = "toy_word"
    __key__: ClassVar[str] = "name"
    __columns__: ClassVar[tuple[str, ...]] = ("name",)
    __children__: ClassVar = ("digits", Digit)

    name: str
    digits: list[Digit] = Field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class MakeNumberJob:
    index: int
    out_dir: str
    sleep_s: float
    control_dir: str


def make_number(job: MakeNumberJob) -> dict:
    """Writes a file; fails or kills its own worker when the control folder says so."""
    index, out_dir, sleep_s = job.index, job.out_dir, job.sleep_s
    control = Path(job.control_dir)
    (control / f"ran_{index}_{time.time_ns()}").touch()
    if (control / f"fail_{index}").exists():
        raise RuntimeError(f"item {index} was told to fail")
    if (control / f"kill_{index}").exists():
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(sleep_s)
    path = Path(out_dir) / f"n{index}.txt"
    path.write_text(str(index * index))
    return {"value": float(index * index), "file": str(path)}


@dataclass(frozen=True, kw_only=True)
class Value:
    value: float


def double_number(job: Value) -> float:
    return 2 * job.value


@dataclass(frozen=True, kw_only=True)
class Text:
    text: str


def length(job: Text) -> int:
    return len(job.text)


class MakeParams(ProtocolParams):
    count: int = param(3, ge=1, help="how many numbers")
    sleep_s: float = param(0.0, ge=0, unit="s", help="time each task takes")
    control_dir: str = param(..., help="folder whose marker files make tasks fail or die")


class MakeNumbers(Protocol):
    """Make squares of 0..count-1 (toy)."""

    name = "toy-make"
    citations = ("toy2026",)
    Params = MakeParams
    outputs: ClassVar = {"numbers": Number}

    def tasks(self):
        self.out_path("").mkdir(parents=True, exist_ok=True)
        for i in range(self.params.count):
            job = MakeNumberJob(
                index=i,
                out_dir=str(self.out_path("")),
                sleep_s=self.params.sleep_s,
                control_dir=self.params.control_dir,
            )
            yield Task(make_number, job, key=f"n{i}")

    def collect(self, task, result):
        self.emit(
            "numbers",
            Number(
                name=task.key, value=result["value"], file=self.relative(result["file"]), flagged=result["value"] > 3
            ),
            task,
        )


class DoubleNumbers(Protocol):
    """Double every number of the input (toy)."""

    name = "toy-double"
    inputs: ClassVar = {"numbers": InputSpec(Number, help="numbers to double")}
    outputs: ClassVar = {"numbers": Number}

    def tasks(self):
        numbers = self.input("numbers")
        for number in numbers:
            yield Task(
                double_number, Value(value=number.value), key=number.name, origin=(origin_of(numbers, number.name),)
            )

    def collect(self, task, result):
        self.emit("numbers", Number(name=task.key, value=result), task)


class MakeWords(Protocol):
    """Make words with nested digits (toy)."""

    name = "toy-words"
    outputs: ClassVar = {"words": Word}

    def tasks(self):
        for word in ("ab", "cde"):
            yield Task(length, Text(text=word), key=word)

    def collect(self, task, result):
        digits = [Digit(place=i, digit=i * 3) for i in range(result)]
        self.emit("words", Word(name=task.key, digits=digits), task)


@dataclass(frozen=True, kw_only=True)
class MakeArrayJob:
    index: int
    size: int
    sleep_s: float
    out_dir: str
    tmp_dir: str


def make_array(job: MakeArrayJob) -> dict:
    """Writes a deterministic array to ``out_dir/a{index}.npy`` through a temporary file in ``tmp_dir``."""
    index, size, sleep_s, out_dir, tmp_dir = job.index, job.size, job.sleep_s, job.out_dir, job.tmp_dir
    array = np.random.default_rng(index).standard_normal((size, size)).astype(np.float32)
    time.sleep(sleep_s)
    fd, temporary = tempfile.mkstemp(prefix=f"a{index}.", suffix=".npy", dir=tmp_dir)
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, array)
    final = publish(temporary, Path(out_dir) / f"a{index}.npy")
    return {"value": float(array.astype(np.float64).sum()), "file": str(final)}


class ArraysParams(ProtocolParams):
    count: int = param(8, ge=1, help="how many arrays")
    size: int = param(32, ge=1, help="side of each (size, size) array")
    sleep_s: float = param(0.0, ge=0, unit="s", help="time each task takes")


class MakeArrays(Protocol):
    """Write count random arrays, one file each, published from tmp/ into out/ (toy)."""

    name = "toy-arrays"
    Params = ArraysParams
    outputs: ClassVar = {"numbers": Number}

    def tasks(self):
        out_dir, tmp_dir = self.context.out_dir, self.context.tmp_dir
        for i in range(self.params.count):
            job = MakeArrayJob(
                index=i, size=self.params.size, sleep_s=self.params.sleep_s, out_dir=str(out_dir), tmp_dir=str(tmp_dir)
            )
            yield Task(make_array, job, key=f"a{i}")

    def collect(self, task, result):
        self.emit("numbers", Number(name=task.key, value=result["value"], file=self.relative(result["file"])), task)


def read_database(path: str) -> int:
    """Opens an SQLite file and reads from it (a worker may do this with any database but the project's)."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT 1").fetchone()[0])
