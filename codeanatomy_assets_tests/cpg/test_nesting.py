"""Nesting sorted rows by Arrow offsets gives one row per key with its list, in order."""

from __future__ import annotations

import pyarrow as pa

from codeanatomy_assets.cpg.nesting import NestSpec, nest


def test_nest_runs_of_keys():
    flat = pa.table({"k": ["a", "a", "b"], "kind": ["x", "x", "y"], "v": [1, 2, 3]})
    out = nest(flat, NestSpec("k", "items", ("v",), carry=("kind",), count="n"))
    assert out.to_pylist() == [
        {"k": "a", "kind": "x", "n": 2, "items": [{"v": 1}, {"v": 2}]},
        {"k": "b", "kind": "y", "n": 1, "items": [{"v": 3}]},
    ]


def test_nest_empty():
    flat = pa.table({"k": pa.array([], pa.string()), "v": pa.array([], pa.int64())})
    out = nest(flat, NestSpec("k", "items", ("v",), count="n"))
    assert out.num_rows == 0 and out.column_names == ["k", "n", "items"]
