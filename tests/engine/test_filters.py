"""Item filters: a real grammar, literals bound as parameters, nothing escapes its set (issue 14.1)."""

from __future__ import annotations

import pickle
import sqlite3
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.engine.toyplugin.toy_protocols import Digit, Number, Word
from tomoforge.engine import ExecutorConfig, ProjectError, db, execute_run
from tomoforge.engine.filters import (
    FilterError,
    compile_sql,
    parse_filter,
    split_filter,
)
from tomoforge.engine.items import ensure_table, item_spec
from tomoforge.engine.project import InputPointer
from tomoforge.engine.sets import ItemSet
from tomoforge.errors import UserError
from tomoforge.model.acquisition import Acquisition
from tomoforge.model.tilt_series import TiltImage, TiltSeries

SERIAL = ExecutorConfig(kind="serial")
ESCAPE = "value < 100) or (value > -100"  # closes the set's own condition if pasted into SQL


def run_count(project) -> int:
    return project.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def source_run(project, control, count=3) -> int:
    return project.new_run("toy-make", {"count": count, "control_dir": str(control)}, executor=SERIAL)


def two_sets(project):
    """Two runs' sets of numbers: 'mine' (n0..n4, value i - 2) and 'theirs' (t0..t4, value i - 2)."""
    with db.transaction(project.conn):
        sets = []
        for prefix in ("n", "t"):
            run_id = project.new_run("toy-words")
            item_set = ItemSet.create(project.conn, run_id, "numbers", Number)
            for i in range(5):
                item_set.append(Number(name=f"{prefix}{i}", value=i - 2, flagged=i % 2 == 0))
            sets.append(item_set)
    return sets


# --- the escape of issue 14 -------------------------------------------------------------------
def test_an_escaping_filter_is_refused_at_new_run_with_its_position_and_no_run_is_saved(project, control):
    source = source_run(project, control)
    before = run_count(project)
    with pytest.raises(FilterError) as info:
        project.new_run("toy-double", inputs={"numbers": f"{source}.numbers[{ESCAPE}]"})
    message = str(info.value)
    assert "input 'numbers'" in message and "unbalanced ')' at position 11" in message
    _, shown, caret = message.splitlines()
    assert shown.strip() == ESCAPE and caret.index("^") - shown.index("v") == 11  # the caret is under the ')'
    assert info.value.position == 11 and isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    assert str(pickle.loads(pickle.dumps(info.value))) == message  # it can travel from a worker
    assert run_count(project) == before  # nothing saved


def test_the_issue_filter_on_tilt_series_is_refused_at_the_closing_bracket():
    text = "tilt_angle_deg < 100) OR (acquisition_order > 7"
    with pytest.raises(FilterError, match=r"unbalanced '\)' at position 20"):
        split_filter(item_spec(TiltSeries), text)


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("abs(value", "unbalanced '\\(' at position 3"),
        ("sqrt(value) > 1", "unknown function 'sqrt'"),
        ("value > 1 or (flagged", "unbalanced '\\(' at position 13"),
    ],
)
def test_unterminated_abs_and_unknown_functions_are_refused_at_input(project, control, bad, reason):
    source = source_run(project, control)
    before = run_count(project)
    with pytest.raises(FilterError, match=reason):
        project.new_run("toy-double", inputs={"numbers": f"{source}.numbers[{bad}]"})
    assert run_count(project) == before


def test_a_crafted_filter_stored_in_the_database_cannot_escape(project, control):
    mine = source_run(project, control, count=2)
    theirs = source_run(project, control, count=5)
    assert execute_run(project, mine) == "finished" and execute_run(project, theirs) == "finished"
    consumer = project.new_run("toy-double", inputs={"numbers": f"{mine}.numbers[not flagged]"}, executor=SERIAL)
    with db.transaction(project.conn):
        project.conn.execute("UPDATE run_inputs SET filter = ? WHERE run_id = ?", (ESCAPE, consumer))
    pointer = project.run_inputs(consumer)["numbers"]
    with pytest.raises(FilterError, match=f"set {mine}.numbers: filter .*: unbalanced"):
        project.output_set(pointer.run_id, pointer.output, pointer.filter)
    assert execute_run(project, consumer) == "failed"
    assert "unbalanced ')'" in project.run(consumer)["error"]
    assert project.output_sets(consumer) == [] or len(project.output_set(consumer, "numbers")) == 0


@pytest.mark.parametrize(
    "crafted",
    [
        ESCAPE,
        "1) or (1",
        "flagged) or 1=1 --",
        "flagged; DELETE FROM runs",
        "flagged or set_id > 0",
        "flagged or parent_id = 0",
        "flagged or (select 1)",
        "name = 'x' or name = \"n0\"",
    ],
)
def test_crafted_filters_raise_and_never_read_another_sets_rows(project, crafted):
    mine, _ = two_sets(project)
    with pytest.raises(FilterError):
        rows = [n.name for n in mine.subset(crafted)]
        assert not any(name.startswith("t") for name in rows)  # never reached: it must raise


def test_literals_are_bound_parameters_never_pasted(project):
    mine, _ = two_sets(project)
    injection = "x' OR 1=1 --"
    text = f"name = '{injection.replace(chr(39), chr(39) * 2)}'"
    assert list(mine.subset(text)) == []  # just a string: no item has this name
    with db.transaction(project.conn):
        mine.append(Number(name=injection, value=0))
    assert [n.name for n in mine.subset(text)] == [injection]
    sql, params = compile_sql(parse_filter(text))
    assert "OR" not in sql and "1=1" not in sql and params == [injection]
    sql, params = compile_sql(parse_filter("value between -1.5 and 2 or name like 'n%' or flagged = true"))
    assert not any(ch.isdigit() for ch in sql) and "'" not in sql and params == [1.5, 2, "n%", True]


# --- the filters in use keep their meaning ----------------------------------------------------
NUMBERS = [(f"n{i}", i - 5.0, i % 2 == 0) for i in range(10)]


@pytest.mark.parametrize(
    "text, keep",
    [
        ("not flagged and abs(value) <= 2", lambda name, v, f, i: not f and abs(v) <= 2),
        ("value >= 3", lambda name, v, f, i: v >= 3),
        ("flagged", lambda name, v, f, i: f),
        ("NOT flagged", lambda name, v, f, i: not f),
        ("name = 'n3' or key == 'n4'", lambda name, v, f, i: name in ("n3", "n4")),
        ("position between 2 and 4", lambda name, v, f, i: 2 <= i <= 4),
        ("position not between 2 and 8", lambda name, v, f, i: not 2 <= i <= 8),
        ("key in ('n1', 'n9') or value in (0, 1.0)", lambda name, v, f, i: name in ("n1", "n9") or v in (0, 1)),
        ("name not in ('n1')", lambda name, v, f, i: name != "n1"),
        ("name like 'N1%'", lambda name, v, f, i: name == "n1"),  # SQLite LIKE ignores ASCII case
        ("-value > 3 and value is not null", lambda name, v, f, i: -v > 3),
        ("value * 2 + 1 = 3 or value / 2 = -2.5", lambda name, v, f, i: v * 2 + 1 == 3 or v / 2 == -2.5),
        ("position % 3 = 0 and value <> 1 and value != -2", lambda name, v, f, i: i % 3 == 0 and v not in (1, -2)),
        ("value is null", lambda name, v, f, i: False),
        ("flagged = true and not (value < 0 or value > 3)", lambda name, v, f, i: f and 0 <= v <= 3),
        ("flagged = 0", lambda name, v, f, i: not f),
    ],
)
def test_valid_filters_select_the_same_rows_as_python(project, text, keep):
    with db.transaction(project.conn):
        numbers = ItemSet.create(project.conn, project.new_run("toy-words"), "numbers", Number)
        for name, value, flagged in NUMBERS:
            numbers.append(Number(name=name, value=value, flagged=flagged))
    expected = [name for i, (name, v, f) in enumerate(NUMBERS) if keep(name, v, f, i)]
    assert [n.name for n in numbers.subset(text)] == expected
    assert len(numbers.subset(text)) == len(expected)


def test_subsets_combine_their_filters(project):
    mine, _ = two_sets(project)
    both = mine.subset("value >= 0").subset("not flagged")
    assert [n.name for n in both] == ["n3"] and len(both) == 1
    assert both.filter == "(value >= 0) and (not flagged)"


def tilt_series(name: str, angles: list[float], excluded: set[int]) -> TiltSeries:
    images = [
        TiltImage(acquisition_order=i + 1, tilt_angle_deg=a, excluded=i in excluded) for i, a in enumerate(angles)
    ]
    return TiltSeries(name=name, acquisition=Acquisition(pixel_size_A=2.0), tilt_images=images)


def test_child_fields_filter_the_children(project):
    with db.transaction(project.conn):
        words = ItemSet.create(project.conn, project.new_run("toy-words"), "words", Word)
        words.append(Word(name="w", digits=[Digit(place=i, digit=i * i) for i in range(5)]))
        words.append(Word(name="v", digits=[Digit(place=0, digit=7)]))
        series = ItemSet.create(project.conn, project.new_run("toy-words"), "tilt_series", TiltSeries)
        series.append(tilt_series("TS_01", [0.0, 30.0, -30.0, 60.0, -60.0], {1}))
        series.append(tilt_series("TS_02", [0.0, 45.0], set()))
    assert [d.digit for d in words.subset("digit >= 4").get("w").digits] == [4, 9, 16]
    # a filter on the items' own fields and one on their children's, joined by 'and'
    mixed = words.subset("name = 'w' and digit >= 4 and place < 4")
    assert [(w.name, [d.digit for d in w.digits]) for w in mixed] == [("w", [4, 9])]
    assert [w.name for w in words.subset("name = 'w'").subset("digit = 1")] == ["w"]
    kept = series.subset("not excluded and abs(tilt_angle_deg) <= 40")
    assert [[t.acquisition_order for t in ts.tilt_images] for ts in kept] == [[1, 3], [1]]
    assert [ts.name for ts in series.subset("name = 'TS_02'")] == ["TS_02"]
    with pytest.raises(FilterError, match="mixes"):
        series.subset("name = 'TS_01' or excluded")
    with pytest.raises(FilterError, match="unknown field 'colour'.*tilt_angle_deg"):
        series.subset("colour > 1")


# --- errors name the problem and where it is --------------------------------------------------
@pytest.mark.parametrize(
    "bad, reason, position",
    [
        ("nonsense > 1", "unknown field 'nonsense'", 0),
        ("value; DROP TABLE runs", "unexpected character ';'", 5),
        ("value > 1 union select", "'union'", 10),
        ("value = 'abc'", "cannot compare value \\(a number\\) with 'abc' \\(text\\)", 6),
        ("name > 3", "cannot compare name \\(text\\) with 3 \\(a number\\)", 5),
        ("value", "'value' is a number, not a condition", 0),
        ("name + 1 = 2", "'\\+' needs numbers", 5),
        ("value = null", "is null", 6),
        ("'it''s", "unterminated string", 0),
        ('"value" > 1', "unexpected character '\"'", 0),
        ("value > 1.2.3", "malformed number", 8),
        ("value > 1e", "malformed number", 8),
        ("value >", "unexpected end of the filter", 7),
        ("value is 3", "expected 'null'", 9),
        ("value between 1 or 2", "expected 'and'", 16),
        ("value in ()", "expected a value", 10),
        ("not", "unexpected end of the filter", 3),
        ("flagged and or flagged", "expected a value, found 'or'", 12),
        ("abs(name) > 1", "abs\\(\\) needs a number", 4),
        ("name like 3", "like needs text", 10),
        ("value < 1 < 2", "'<'", 10),
        ("value > 99999999999999999999e999", "out of range", 8),
    ],
)
def test_bad_filters_are_refused_with_the_reason_and_position(bad, reason, position):
    with pytest.raises(FilterError, match=reason) as info:
        split_filter(item_spec(Number), bad)
    assert info.value.position == position
    assert f"at position {position}" in str(info.value)


def test_runaway_nesting_and_length_are_refused_not_a_recursion_error():
    spec = item_spec(Number)
    for text in (
        "(" * 3000 + "flagged" + ")" * 3000,
        "not " * 900 + "flagged",
        "-" * 3000 + "1 > 0",
        "abs(" * 200 + "value" + ")" * 200 + " > 1",
        " or ".join(["flagged"] * 3000),
    ):
        with pytest.raises(FilterError, match="too deeply|longer than"):
            split_filter(spec, text)
    sql, _ = compile_sql(split_filter(spec, " or ".join(["flagged"] * 300)).items)  # long, balanced: fine
    assert sql.count("OR") == 299


# --- RUN.OUTPUT[filter] -----------------------------------------------------------------------
def test_input_pointer_copes_with_brackets_inside_quoted_strings():
    pointer = InputPointer.parse(" 3.numbers [ name = 'a]b' or name = '[x]''s' ] ")
    assert pointer == InputPointer(3, "numbers", "name = 'a]b' or name = '[x]''s'")
    assert InputPointer.parse(str(pointer)) == pointer
    assert InputPointer.parse("3.numbers[]") == InputPointer(3, "numbers", "")
    for bad, why in [
        ("3.numbers[flagged] x", "after the filter"),
        ("3.numbers[flagged", "never closed"),
        ("3.numbers[name = 'a]", "never closed"),
        ("3.numbers x", "expected RUN.OUTPUT"),
        ("numbers[flagged]", "expected RUN.OUTPUT"),
    ]:
        with pytest.raises(ProjectError, match=why):
            InputPointer.parse(bad)


# --- fuzzing the grammar ----------------------------------------------------------------------
class Probe(BaseModel):
    __item_kind__: ClassVar[str] = "filter_probe"
    __key__: ClassVar[str] = "name"
    __columns__: ClassVar[tuple[str, ...]] = ("name", "value", "count", "flagged", "note", "score")

    name: str
    value: float
    count: int
    flagged: bool
    note: str | None = None
    score: float | None = None


PROBE = item_spec(Probe)
NOTES = [None, "a", "it's", "%_", "x' OR 1=1 --", "", "B"]


@pytest.fixture(scope="module")
def probe_db():
    """Sets 1, 2 and 3 (and children of parent 7) holding the same rows: an escape would show."""
    conn = sqlite3.connect(":memory:")
    ensure_table(conn, PROBE)
    for set_id in (1, 2, 3):
        for parent_id in (0, 7):
            for i in range(12):
                conn.execute(
                    "INSERT INTO item_filter_probe (set_id, parent_id, position, key, data, name, value, count, flagged,"
                    " note, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        set_id,
                        parent_id,
                        i,
                        f"p{i}",
                        "{}",
                        f"p{i}",
                        (i - 6) / 4,
                        i * 3 - 10,
                        i % 3 == 0,
                        NOTES[i % len(NOTES)],
                        None if i % 4 == 0 else i / 8,
                    ),
                )
    yield conn
    conn.close()


def select(conn, condition: str, params: list) -> list[tuple]:
    sql = (
        "SELECT id, set_id, parent_id FROM item_filter_probe WHERE set_id = ? AND parent_id = ? AND ("
        + condition
        + ") ORDER BY id"
    )
    return conn.execute(sql, [2, 0, *params]).fetchall()


def run_filter(conn, text: str) -> list[tuple] | None:
    """The rows of set 2 (parent 0) the filter keeps, or None where it is refused (FilterError only)."""
    try:
        parsed = split_filter(PROBE, text)
    except FilterError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)
        return None
    if parsed.items is None:
        return select(conn, "1", [])
    sql, params = compile_sql(parsed.items)
    assert "?" not in text or "'" in text or sql.count("?") == len(params)
    rows = select(conn, sql, params)
    assert all(row[1:] == (2, 0) for row in rows), (text, sql, rows)
    return rows


SOUP = [
    "value",
    "count",
    "name",
    "key",
    "position",
    "flagged",
    "note",
    "score",
    "nonsense",
    "abs",
    "sqrt",
    "and",
    "or",
    "not",
    "is",
    "null",
    "in",
    "between",
    "like",
    "true",
    "false",
    "(",
    ")",
    "(",
    ")",
    ",",
    "=",
    "==",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "1",
    "2.5",
    ".5",
    "1e3",
    "0",
    "'a'",
    "'it''s'",
    "'",
    "''",
    ";",
    "--",
    '"',
    "[",
    "]",
    "?",
    ":x",
    "@",
    "1=1",
    "union",
    "select",
    "set_id",
    "é",
    "\x00",
    "\t",
    "\n",
]
soups = st.lists(st.tuples(st.sampled_from(SOUP), st.sampled_from([" ", ""])), max_size=30).map(
    lambda parts: "".join(token + sep for token, sep in parts)
)
STRAYS = [")", "(", ") or (", ") OR 1=1 OR (", "'", "''", "--", ";", "]", " or ", "not ", "abs(", ","]


def spoil(text: str, stray: str, where: int) -> str:
    """A valid expression with a stray piece inserted: the shape of the filters that escaped (issue 14)."""
    where %= len(text) + 1
    return text[:where] + stray + text[where:]


def escape(first: str, joint: str, second: str) -> str:
    """Two valid expressions joined so that, pasted after ``... AND (``, the second would leave the set."""
    return f"{first}{joint}{second}"


@pytest.mark.timeout(60)
@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.one_of(
        soups,
        st.text(max_size=40),
        st.builds(spoil, st.deferred(lambda: conditions), st.sampled_from(STRAYS), st.integers(0, 300)),
        st.builds(
            escape,
            st.deferred(lambda: conditions),
            st.sampled_from([") or (", ") OR ((", ")) or (", ") or 1=1 or ("]),
            st.deferred(lambda: conditions),
        ),
    )
)
def test_any_text_parses_or_raises_filter_error_and_never_escapes(probe_db, text):
    run_filter(probe_db, text)


def maybe_paren(text: str, wrap: bool) -> str:
    return f"({text})" if wrap else text


numbers = st.recursive(
    st.one_of(
        st.sampled_from(["value", "count", "position", "score"]),
        st.integers(-50, 50).map(str),
        st.integers(-40, 40).map(lambda n: str(n / 4)),
    ),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner, st.booleans()).map(
            lambda t: maybe_paren(f"{t[0]} {t[1]} {t[2]}", t[3])
        ),
        inner.map(lambda s: f"- ({s})"),
        inner.map(lambda s: f"abs({s})"),
    ),
    max_leaves=6,
)
strings = st.text(alphabet="ab'%_;)(-\" é", max_size=6).map(lambda s: "'" + s.replace("'", "''") + "'")
texts = st.one_of(st.sampled_from(["name", "key", "note"]), strings)
comparisons = st.sampled_from(["=", "==", "!=", "<>", "<", "<=", ">", ">="])
negation = st.sampled_from(["", "not "])
atoms = st.one_of(
    st.sampled_from(["flagged", "true", "false", "flagged = true", "flagged != false", "not flagged"]),
    st.tuples(numbers, comparisons, numbers).map(" ".join),
    st.tuples(texts, comparisons, texts).map(" ".join),
    st.tuples(texts, negation, texts).map(lambda t: f"{t[0]} {t[1]}like {t[2]}"),
    st.tuples(numbers, negation, numbers, numbers).map(lambda t: f"{t[0]} {t[1]}between {t[2]} and {t[3]}"),
    st.tuples(numbers, negation, st.lists(numbers, min_size=1, max_size=4)).map(
        lambda t: f"{t[0]} {t[1]}in ({', '.join(t[2])})"
    ),
    st.tuples(st.one_of(numbers, texts), negation).map(lambda t: f"{t[0]} is {t[1]}null"),
)
conditions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        inner.map(lambda s: f"not ({s})"),
        st.tuples(inner, st.sampled_from(["and", "or", "AND", "Or"]), inner, st.booleans()).map(
            lambda t: maybe_paren(f"{t[0]} {t[1]} {t[2]}", t[3])
        ),
    ),
    max_leaves=6,
)


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=conditions)
def test_every_valid_expression_compiles_to_sql_selecting_what_sqlite_itself_selects(probe_db, text):
    rows = run_filter(probe_db, text)
    assert rows is not None, text  # valid: it parses
    # the generated text is balanced and plain SQL, so SQLite's own reading of it is the reference
    assert rows == select(probe_db, text, []), text
