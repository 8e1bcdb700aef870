"""JSON text built in SQL: the flat rendering gives the text of the plain SQL it stands for."""

from __future__ import annotations

import itertools
import json

import duckdb
import pytest

from cardiobox.ingest.jsonsql import (
    NULL,
    Text,
    always,
    arr,
    cat,
    jstr,
    member,
    obj,
    optional,
    text,
    value,
    when,
)

# Plain SQL for the same JSON, as the helpers' docstrings define it: `||` everywhere,
# concat_ws for objects and arrays.


def ref_member(key: str, json_sql: str, present: str | None = None) -> str:
    body = f"'\"{key}\":' || {json_sql}"
    return body if present is None else f"CASE WHEN {present} THEN {body} END"


def ref_obj(*members: str) -> str:
    return f"nullif('{{' || concat_ws(',', {', '.join(members)}) || '}}', '{{}}')"


def ref_arr(*items: str) -> str:
    return f"nullif('[' || concat_ws(',', {', '.join(items)}) || ']', '[]')"


def ref_jstr(sql: str) -> str:
    return f"to_json(CAST({sql} AS VARCHAR))"


COLUMNS = ("t.a", "t.b", "t.c", "t.n")


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    """Every combination of NULL and non-NULL values of a, b, c (text) and n (a number)."""
    c = duckdb.connect()
    values = {
        "a": ["x", 'q"uote\\', None],
        "b": ["é ü", None],
        "c": ["", None],
        "n": ["1.50", None],
    }
    rows = list(itertools.product(*values.values()))
    c.execute("CREATE TABLE t (a VARCHAR, b VARCHAR, c VARCHAR, n VARCHAR)")
    c.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    return c


def same(con: duckdb.DuckDBPyConnection, built: Text, reference: str) -> list[str | None]:
    """Both expressions give the same text on every row; returns the texts."""
    got = con.execute(
        f"SELECT {built.sql()}, {reference} FROM t ORDER BY ALL NULLS FIRST"
    ).fetchall()
    assert got, "no rows"
    for mine, ref in got:
        assert mine == ref
        if mine is not None:
            json.loads(mine)  # the text is JSON
    return [m for m, _ in got]


def test_object_with_an_anchor_and_absent_members(con: duckdb.DuckDBPyConnection) -> None:
    built = obj(
        member("before", jstr("t.b"), "t.b IS NOT NULL"),
        member("resourceType", "'\"Observation\"'", "true"),
        member("a", jstr("t.a")),
        member("strict", value("t.n")),  # a bare number: NULL drops the member
        member("c", jstr("t.c"), "t.c IS NOT NULL"),
    )
    reference = ref_obj(
        ref_member("before", ref_jstr("t.b"), "t.b IS NOT NULL"),
        ref_member("resourceType", "'\"Observation\"'", "true"),
        ref_member("a", ref_jstr("t.a")),
        ref_member("strict", "t.n"),
        ref_member("c", ref_jstr("t.c"), "t.c IS NOT NULL"),
    )
    texts = same(con, built, reference)
    assert None not in texts  # the anchor is always there
    assert '{"resourceType":"Observation","a":"x"}' in texts


def test_object_without_anchor_is_null_when_empty(con: duckdb.DuckDBPyConnection) -> None:
    built = obj(member("a", jstr("t.a")), member("b", jstr("t.b")))
    reference = ref_obj(ref_member("a", ref_jstr("t.a")), ref_member("b", ref_jstr("t.b")))
    texts = same(con, built, reference)
    assert None in texts and '{"a":"x","b":"é ü"}' in texts


def test_nested_objects_arrays_and_strict_parts(con: duckdb.DuckDBPyConnection) -> None:
    inner = when(
        obj(member("system", jstr("t.b"), "t.b IS NOT NULL"), member("code", jstr("t.a", True))),
        "t.a IS NOT NULL",
    )
    ref_inner = (
        "CASE WHEN t.a IS NOT NULL THEN "
        + ref_obj(
            ref_member("system", ref_jstr("t.b"), "t.b IS NOT NULL"),
            ref_member("code", ref_jstr("t.a"), "true"),
        )
        + " END"
    )
    quantity = cat(
        text('{"value":'),
        value("t.n", "t.n"),
        optional(cat(text(',"unit":'), jstr("t.c"))),
        text("}"),
    )
    ref_quantity = (
        f"'{{\"value\":' || t.n || coalesce(',\"unit\":' || {ref_jstr('t.c')}, '') || '}}'"
    )
    built = obj(
        member("resourceType", text('"X"')),
        member("coding", arr(inner, jstr("t.c"))),
        member("valueQuantity", quantity, "t.n IS NOT NULL"),
        member("list", cat(text("["), inner, text("]"))),
    )
    reference = ref_obj(
        ref_member("resourceType", "'\"X\"'"),
        ref_member("coding", ref_arr(ref_inner, ref_jstr("t.c"))),
        ref_member("valueQuantity", ref_quantity, "t.n IS NOT NULL"),
        ref_member("list", f"'[' || ({ref_inner}) || ']'"),
    )
    same(con, built, reference)


def test_constants_merge_into_one_literal() -> None:
    built = obj(
        member("resourceType", "'\"Observation\"'", "true"),
        member("status", jstr("'final'")),
        member("category", arr(obj(member("code", jstr("'lab'"))))),
    )
    expected = '{"resourceType":"Observation","status":"final","category":[{"code":"lab"}]}'
    assert built.sql() == f"'{expected}'"
    assert built.always


def test_literal_needing_escapes_goes_through_to_json(con: duckdb.DuckDBPyConnection) -> None:
    for literal in ("it''s", 'a"b', "ünï", "back\\slash"):
        sql = f"'{literal}'"
        got = con.execute(f"SELECT {jstr(sql).sql()}, {ref_jstr(sql)}").fetchall()[0]
        assert got[0] == got[1]


def test_null_and_always() -> None:
    assert NULL.is_null and member("a", NULL).is_null and cat(text("x"), NULL).is_null
    assert obj(member("a", NULL)).is_null
    assert always("x.y").always and not value("x.y").always
    assert when(text("a"), "false").is_null and when(text("a"), "true").always
    assert value("NULL").is_null and value("'lit'").always
