"""Task results as stored in the project: JSON, never pickle.

A task returns small metadata: numbers, strings, paths, lists, dicts, stored items (pydantic models
with ``__item_kind__``) and, now and then, a numpy array. ``encode_result`` turns that into JSON text;
arrays go to ``.npy`` files in the run folder (read back with ``allow_pickle=False``) and items are
written by their kind and fields. ``decode_result`` rebuilds the value, finding item classes among
the classes already loaded (the package's model and the installed plugins), never by importing a
name read from the database. A project file is data: nothing in it can run code.

Each record also lists the files of the run folder that the result names, with their sizes, so that
``continue`` redoes a task whose outputs were deleted or truncated (``files_intact``).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from tomoforge.engine.items import class_from_path, class_path
from tomoforge.errors import ProjectFileError

_TAG = "__tf__"  # marks an encoded non-JSON value: {"__tf__": kind, ...}


class ResultError(ValueError):
    """A stored task result that cannot be read back (the task is then redone)."""


def encode_result(value: Any, arrays_dir: Path, key: str) -> tuple[str, list[str]]:
    """JSON text for a task's result, and the ``.npy`` files its numpy arrays were saved to under
    ``arrays_dir`` (named from ``key``)."""
    counter = [0]
    arrays: list[str] = []
    stem = hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]

    def encode(v: Any) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            f = float(v)
            return f if math.isfinite(f) else {_TAG: "float", "value": repr(f)}
        if isinstance(v, Path):
            return {_TAG: "path", "value": str(v)}
        if isinstance(v, BaseModel):
            if not getattr(type(v), "__item_kind__", ""):
                raise TypeError(f"task {key}: cannot store a {type(v).__name__} (not an item class)")
            return {_TAG: "item", "class": class_path(type(v)), "fields": json.loads(v.model_dump_json())}
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                raise TypeError(f"task {key}: cannot store an array of Python objects")
            arrays_dir.mkdir(parents=True, exist_ok=True)
            name = f"{stem}_{counter[0]}.npy"
            counter[0] += 1
            np.save(arrays_dir / name, v, allow_pickle=False)
            arrays.append(name)
            return {_TAG: "array", "file": name}
        if isinstance(v, tuple):
            return {_TAG: "tuple", "items": [encode(x) for x in v]}
        if isinstance(v, list):
            return [encode(x) for x in v]
        if isinstance(v, dict):
            if all(isinstance(k, str) for k in v) and _TAG not in v:
                return {k: encode(x) for k, x in v.items()}
            return {_TAG: "dict", "pairs": [[encode(k), encode(x)] for k, x in v.items()]}
        raise TypeError(f"task {key}: cannot store a result of type {type(v).__name__}")

    return json.dumps(encode(value), allow_nan=False), arrays


def decode_result(text: str | bytes, arrays_dir: Path) -> Any:
    """The value ``encode_result`` stored; ResultError for anything else (an old pickle included)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultError(f"not a JSON task result ({exc})") from None

    def decode(v: Any) -> Any:
        if isinstance(v, list):
            return [decode(x) for x in v]
        if not isinstance(v, dict):
            return v
        tag = v.get(_TAG)
        if tag is None:
            return {k: decode(x) for k, x in v.items()}
        if tag == "float":
            return float(str(v["value"]))  # 'nan', 'inf', '-inf' only: float() of text runs no code
        if tag == "path":
            return Path(str(v["value"]))
        if tag == "tuple":
            return tuple(decode(x) for x in v["items"])
        if tag == "dict":
            return {decode(k): decode(x) for k, x in v["pairs"]}
        if tag == "item":
            return class_from_path(str(v["class"])).model_validate(v["fields"])
        if tag == "array":
            name = str(v["file"])
            if Path(name).name != name:
                raise ResultError(f"array file {name!r} is not a plain file name")
            try:
                return np.load(arrays_dir / name, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ResultError(f"array {name}: {exc}") from None
        raise ResultError(f"unknown tag {tag!r}")

    try:
        return decode(data)
    except ResultError:
        raise
    except (KeyError, TypeError, ValueError, ProjectFileError) as exc:  # ValidationError is a ValueError
        raise ResultError(f"malformed task result ({type(exc).__name__}: {exc})") from None


def result_files(value: Any, run_dir: Path) -> dict[str, int]:
    """The existing files inside ``run_dir`` that a result names, relative path → size in bytes."""
    found: dict[str, int] = {}
    root = run_dir.resolve()

    def visit(v: Any) -> None:
        if isinstance(v, BaseModel):
            visit(json.loads(v.model_dump_json()))
        elif isinstance(v, dict):
            for x in v.values():
                visit(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                visit(x)
        elif isinstance(v, (str, Path)) and str(v) and len(str(v)) < 4096:
            path = Path(v)
            candidates = [path] if path.is_absolute() else [run_dir.parent.parent / path, run_dir / path]
            for candidate in candidates:
                try:
                    resolved = candidate.resolve()
                    if resolved.is_relative_to(root) and resolved.is_file():
                        found[str(resolved.relative_to(root))] = resolved.stat().st_size
                        return
                except OSError:
                    continue

    visit(value)
    return found


def files_intact(files: dict[str, int], run_dir: Path) -> list[str]:
    """The recorded files that are missing or changed size (empty: all there)."""
    bad = []
    for name, size in files.items():
        path = run_dir / name
        try:
            if path.stat().st_size != int(size):
                bad.append(name)
        except OSError:
            bad.append(name)
    return bad
