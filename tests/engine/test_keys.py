"""Duplicate keys are refused where they are made, naming the sources of both items."""

from __future__ import annotations

import pytest

from tests.engine.toyplugin.toy_protocols import Number, Text, length
from tomoforge.engine import Task
from tomoforge.engine.protocol import TaskKeyError, check_task_keys
from tomoforge.engine.sets import DuplicateKeyError, ItemSet


def test_two_tasks_for_one_key_are_refused_before_any_work_naming_both_sources():
    tasks = [
        Task(length, Text(text="/data/a/TS_01.mdoc"), key="TS_01"),
        Task(length, Text(text="/data/b/TS_02.mdoc"), key="TS_02"),
        Task(length, Text(text="/data/b/TS_01.mdoc"), key="TS_01"),
    ]
    with pytest.raises(TaskKeyError, match=r"key 'TS_01': one from /data/a/TS_01.mdoc, the other from /data/b/TS_01"):
        check_task_keys("toy", tasks)
    check_task_keys("toy", tasks[:2])


def test_a_task_job_must_be_a_dataclass_instance_so_its_fields_are_typed():
    with pytest.raises(TypeError, match="must be a dataclass instance"):
        Task(length, {"text": "TS_01"}, key="TS_01")
    with pytest.raises(TypeError, match="must be a dataclass instance"):
        Task(length, Text, key="TS_01")


def test_a_duplicate_item_names_the_origin_and_files_of_both(project):
    run_id = project.new_run("toy-make", {"count": 1, "control_dir": "/tmp"})
    numbers = ItemSet.create(project.conn, run_id, "numbers", Number)
    numbers.append(Number(name="n1", value=1.0, file="runs/a/n1.txt"), origin=["1.words/w1"])
    with pytest.raises(
        DuplicateKeyError,
        match=r"name 'n1': one from 1.words/w1, runs/a/n1.txt, the other from "
        r"1.words/w2, runs/b/n1.txt",
    ):
        numbers.append(Number(name="n1", value=2.0, file="runs/b/n1.txt"), origin=["1.words/w2"])
