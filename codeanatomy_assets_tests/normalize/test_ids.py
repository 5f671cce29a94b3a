"""The id formula: the SQL expression the views use equals its Python reference."""

from __future__ import annotations

from datafusion import SessionContext

from codeanatomy_assets.normalize.ids import edge_id, edge_id_sql, node_id, node_id_sql


def test_sql_and_python_agree():
    ctx = SessionContext()
    sql = node_id_sql("my-repo", "'pkg/a.py'", "'FUNCTION'", "'FunctionDef'", "10", "42")
    esql = edge_id_sql("my-repo", "'CALLS'", "'aa'", "'bb'", "''")
    got = ctx.sql(f"SELECT {sql} AS n, {esql} AS e").to_arrow_table().to_pylist()[0]
    assert got["n"] == node_id("my-repo", "pkg/a.py", "FUNCTION", "FunctionDef", 10, 42)
    assert got["e"] == edge_id("my-repo", "CALLS", "aa", "bb", "")
    assert len(got["n"]) == 32 and int(got["n"], 16) >= 0


def test_ids_separate_repositories_and_spans():
    base = node_id("r1", "a.py", "NAME", "Name", 0, 1)
    assert base == node_id("r1", "a.py", "NAME", "Name", 0, 1)
    assert base != node_id("r2", "a.py", "NAME", "Name", 0, 1)
    assert base != node_id("r1", "a.py", "NAME", "Name", 0, 2)
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert node_id("r", "ab", "c", "", 0, 0) != node_id("r", "a", "bc", "", 0, 0)
