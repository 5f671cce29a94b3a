"""The id formula: the SQL expression the views use equals its Python reference."""

from __future__ import annotations

import pyarrow as pa
import pytest
from datafusion import SessionContext

from codeanatomy_assets.normalize.ids import (
    bucket,
    edge_id,
    edge_id_sql,
    file_code,
    file_code_sql,
    id_halves,
    id_keys,
    node_id,
    node_id_sql,
)


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


def test_id_keys_are_equal_exactly_for_equal_ids_in_every_string_layout():
    ids = [node_id("r", "a.py", "NAME", "Name", i, i + 1) for i in range(6)]
    ids.append(ids[2])
    keys = id_keys(pa.array(ids))
    assert keys is not None and keys.dtype.name == "uint64"
    assert keys[6] == keys[2] and len(set(keys[:6].tolist())) == 6
    # A slice (non-zero offset) and DataFusion's Utf8View give the same keys.
    assert id_keys(pa.array(ids).slice(2)).tolist() == keys[2:].tolist()
    assert id_keys(pa.array(ids, pa.string_view())).tolist() == keys.tolist()
    assert id_keys(pa.array([], pa.string())).tolist() == []
    # Both halves count: ids that differ only in their second half get different keys.
    assert len(set(id_keys(pa.array([f"{i:032x}" for i in range(1000)])).tolist())) == 1000


@pytest.mark.parametrize(
    "ids",
    [
        ["0" * 32, None],  # null
        ["0" * 32, "0" * 31],  # short
        ["0" * 32, "0" * 33],  # long
        ["0" * 32, "g" * 32],  # not hex
    ],
)
def test_id_keys_decline_what_is_not_a_stable_id(ids):
    assert id_keys(pa.array(ids, pa.string())) is None


def test_a_file_s_nodes_share_its_file_code_and_an_edge_shares_its_source_s():
    ctx = SessionContext()
    a = node_id("r", "pkg/a.py", "NAME", "Name", 0, 1)
    b = node_id("r", "pkg/a.py", "FUNCTION", "FunctionDef", 5, 90)
    other = node_id("r", "pkg/b.py", "NAME", "Name", 0, 1)
    external = node_id("r", "", "EXTERNAL", "os.path.join", 0, 0)
    assert a[:4] == b[:4] == file_code("pkg/a.py", "") != other[:4]
    # The bucket is the file code's first two characters.
    assert a[:2] == bucket("pkg/a.py", "") == file_code("pkg/a.py", "")[:2]
    # Outside any file the discriminator decides: externals spread over the codes.
    assert (
        external[:4]
        == file_code("", "os.path.join")
        != node_id("r", "", "EXTERNAL", "re", 0, 0)[:4]
    )
    assert edge_id("r", "CALLS", b, external, "")[:4] == b[:4]
    sql = ", ".join(
        [
            f"{file_code_sql(repr(p), repr(d))} AS c{i}"
            for i, (p, d) in enumerate([("pkg/a.py", ""), ("", "os.path.join"), ("x.py", "y")])
        ]
        + [f"{node_id_sql('r', 'NULL', quote, quote_d, '0', '0')} AS ext"
           for quote, quote_d in [("'EXTERNAL'", "'re'")]]
    )  # fmt: skip
    got = ctx.sql(f"SELECT {sql}").to_arrow_table().to_pylist()[0]
    expected = [file_code("pkg/a.py", ""), file_code("", "os.path.join"), file_code("x.py", "y")]
    assert [got["c0"], got["c1"], got["c2"]] == expected
    assert got["ext"] == node_id("r", "", "EXTERNAL", "re", 0, 0)


def test_id_halves_are_the_ids_128_bits_and_only_lowercase_ids_have_them():
    ids = [f"{i:032x}" for i in (0, 1, 2**64, 2**128 - 1)]
    high, low = id_halves(pa.array(ids, pa.string_view()))
    assert [(int(h) << 64) | int(lo) for h, lo in zip(high, low, strict=True)] == [
        int(i, 16) for i in ids
    ]
    # Uppercase hex is the same number but another string: not a stable id.
    assert id_halves(pa.array(["0" * 31 + "A"])) is None
    assert id_keys(pa.array(["0" * 31 + "A"])) is None
    assert id_halves(pa.array([], pa.string())) is not None
