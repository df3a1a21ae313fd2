"""Sets: typed columns, order, nested children, filters, keys, stream state."""

import pytest

from tests.engine.toyplugin.toy_protocols import Digit, Number, Word
from tomoforge.engine import db
from tomoforge.engine.sets import ItemSet


def make_set(project, cls, name="things"):
    run_id = project.new_run("toy-words")
    with db.transaction(project.conn):
        return ItemSet.create(project.conn, run_id, name, cls)


def test_items_come_back_in_insertion_order_with_their_fields(project):
    numbers = make_set(project, Number)
    with db.transaction(project.conn):
        for name, value in [("z", 3.5), ("a", -1.0), ("m", 2.0)]:
            numbers.append(Number(name=name, value=value, flagged=value > 0))
    assert [n.name for n in numbers] == ["z", "a", "m"]
    assert numbers.get("a").value == -1.0
    assert len(numbers) == 3
    # the typed column holds the value (queryable in SQL), not only the JSON
    row = project.conn.execute("SELECT value, flagged FROM item_toy_number WHERE key = 'z'").fetchone()
    assert tuple(row) == (3.5, 1)


def test_filter_selects_a_subset_by_typed_columns(project):
    numbers = make_set(project, Number)
    with db.transaction(project.conn):
        for i in range(10):
            numbers.append(Number(name=f"n{i}", value=i - 5, flagged=i % 2 == 0))
    subset = numbers.subset("not flagged and abs(value) <= 2")
    assert [n.value for n in subset] == [-2.0, 0.0, 2.0]  # odd i are not flagged
    assert len(subset) == 3
    assert [n.name for n in numbers.subset("value >= 3").subset("not flagged")] == ["n9"]


def test_filter_on_child_fields_filters_the_children(project):
    words = make_set(project, Word)
    with db.transaction(project.conn):
        words.append(Word(name="w", digits=[Digit(place=i, digit=i * i) for i in range(5)]))
    assert [d.digit for d in words.get("w").digits] == [0, 1, 4, 9, 16]
    assert [d.digit for d in words.subset("digit >= 4").get("w").digits] == [4, 9, 16]


@pytest.mark.parametrize(
    "bad, word",
    [
        ("nonsense > 1", "nonsense"),
        ("value; DROP TABLE runs", ";"),
        ("value > 1 union select", "union"),
    ],
)
def test_bad_filters_are_refused_naming_the_problem(project, bad, word):
    numbers = make_set(project, Number)
    with pytest.raises(ValueError, match=word):
        numbers.subset(bad)


def test_two_items_with_one_key_are_refused(project):
    numbers = make_set(project, Number)
    with pytest.raises(ValueError, match="share the name 'x'"):
        with db.transaction(project.conn):
            numbers.append(Number(name="x", value=1))
            numbers.append(Number(name="x", value=2))
    assert len(numbers) == 0  # the transaction was rolled back whole


def test_stream_state_and_replace(project):
    numbers = make_set(project, Number)
    with db.transaction(project.conn):
        numbers.append(Number(name="a", value=1))
        numbers.append(Number(name="b", value=2))
    assert numbers.stream_state == "open"
    with db.transaction(project.conn):
        numbers.replace(Number(name="a", value=10, flagged=True))
        numbers.close()
    assert numbers.is_closed
    assert [(n.name, n.value) for n in numbers] == [("a", 10.0), ("b", 2.0)]  # position kept
    assert [n.name for n in numbers.subset("flagged")] == ["a"]
